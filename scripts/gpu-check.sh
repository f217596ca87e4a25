#!/usr/bin/env bash
# The CNN on a real NVIDIA GPU, for sessions lent one (the device tool's H200 here); two steps:
#
#   bash scripts/gpu-check.sh build   # here: `--features cuda` release binaries (likeness, likeness-bench), stripped, with the
#                                     # Lite0 weights and a few photos, into .gpu/ (git-ignored)
#   bash scripts/gpu-check.sh run     # there (device tool `run`, carry [".gpu"]): embeds and classifies the photos on the GPU
#                                     # and on the CPU, compares, times `likeness-bench cnn` on both
#
# The build links against CUDA 13.0 (CUDA_WHEEL_VERSION) from PyPI wheels, since the lent
# machine's driver is CUDA 13.0 and loads no newer PTX. A stub libcuda.so stands in for the
# driver library, which only a GPU machine has; the binary asks for libcuda.so.1 and finds the real one
# there, with cuBLAS/cuRAND/cudart from that machine's Python packages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out=.gpu

build() {
  local tk="$root/.cache/cuda-${CUDA_WHEEL_VERSION:-13.0.88}"
  CUDA_WHEEL_VERSION="${CUDA_WHEEL_VERSION:-13.0.88}" bash scripts/setup-cuda-toolkit.sh --link "$tk"
  local stubs="$root/.cache/cuda/stubs"
  mkdir -p "$stubs"
  echo 'void likeness_cuda_stub(void) {}' > "$stubs/stub.c"
  gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/stub.c"
  # shellcheck disable=SC1091
  source "$tk/env.sh"
  export LIBRARY_PATH="$stubs:$CUDA_ROOT/lib"
  export RUSTFLAGS="-C link-arg=-Wl,--unresolved-symbols=ignore-in-object-files -C link-arg=-L$stubs"
  local bin
  for bin in likeness likeness-bench; do
    cargo rustc --release --locked -p "$bin" --bin "$bin" --features cuda --target-dir target/cuda-build -- \
      -C link-arg=-Wl,--no-as-needed -C link-arg=-lcuda
  done
  rm -rf "$out" && mkdir -p "$out/models" "$out/photos"
  # Stripped each is ~70 MB (candle's CUDA kernels are embedded), gzipped ~18 MB: what travels
  # to the device machine (64 MiB in all) is the gzip.
  for bin in likeness likeness-bench; do
    strip -o "$out/$bin" "target/cuda-build/release/$bin"
    gzip -9 -f "$out/$bin"
  done
  cp data/models/efficientnet-lite0.safetensors "$out/models/"
  for p in chelsea.png coffee.png astronaut.png rocket.jpg motorcycle_left.png motorcycle_right.png horse.png; do
    cp "data/photos/$p" "$out/photos/"
  done
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  du -sh "$out"
}

run() {
  # GPU_CHECK_BIN / GPU_CHECK_BENCH_BIN / GPU_CHECK_DEVICE allow a dry run of this step on a CPU
  # machine, e.g. with target/release/likeness, target/release/likeness-bench and cpu-ref.
  local bin="${GPU_CHECK_BIN:-/tmp/likeness-cuda}" dev0="${GPU_CHECK_DEVICE:-cuda}" res="${OUT:-/tmp/gpu-check}"
  local bench="${GPU_CHECK_BENCH_BIN:-/tmp/likeness-bench-cuda}"
  local work=/tmp/gpu-check-work
  rm -rf "$work" && mkdir -p "$res" "$work"
  [[ -n "${GPU_CHECK_BIN:-}" ]] || { gunzip -c "$out/likeness.gz" > "$bin" && chmod +x "$bin"; }
  [[ -n "${GPU_CHECK_BENCH_BIN:-}" ]] || { gunzip -c "$out/likeness-bench.gz" > "$bench" && chmod +x "$bench"; }
  # cuBLAS, cuRAND and cudart from the machine's Python packages (NVIDIA's wheels).
  local libs
  libs=$(find / -xdev -name 'libcublas.so.13' -path '*nvidia*' 2>/dev/null | head -1 | xargs -r dirname)
  [[ -n "$libs" ]] || { echo "no libcublas.so.13 on this machine" >&2; exit 1; }
  export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LIKENESS_MODEL_DIR="$root/$out/models"
  nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
  for dev in "$dev0" cpu; do
    rm -rf "/tmp/gpu-db-$dev"
    "$bin" model classify --device "$dev" --top 3 --json "$out"/photos/* > "$res/classify-$dev.json"
    "$bin" index "$out/photos" --db "/tmp/gpu-db-$dev" --features cnn --device "$dev" --json > "$work/index-$dev.json"
    "$bin" vectors export --db "/tmp/gpu-db-$dev" --field cnn --out "$work/cnn-$dev.npy" --ids "$work/ids-$dev.txt"
  done
  python3 - "$res" "$work" "$dev0" <<'EOF' | tee "$res/summary.json"
import json, sys
import numpy as np
res, work, dev = sys.argv[1], sys.argv[2], sys.argv[3]
a, b = np.load(f"{work}/cnn-{dev}.npy"), np.load(f"{work}/cnn-cpu.npy")
ids = lambda f: [line.split("\t")[0] for line in open(f).read().splitlines()]
ia, ib = ids(f"{work}/ids-{dev}.txt"), ids(f"{work}/ids-cpu.txt")
assert ia == ib, "the two databases hold different images"
diff = float(np.abs(a - b).max())
cos = float(min((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
ca, cb = json.load(open(f"{res}/classify-{dev}.json")), json.load(open(f"{res}/classify-cpu.json"))
same = all([c["class"] for c in x["classes"]] == [c["class"] for c in y["classes"]] for x, y in zip(ca, cb))
print(json.dumps({"device": dev, "images": len(ia), "max_abs_diff": diff, "min_cosine": cos, "same_top3": same}))
assert diff < 1e-3 and same, f"{dev} and cpu disagree"
EOF
  for dev in "$dev0" cpu; do
    "$bench" cnn --device "$dev" --batch 32 --images 256 --passes 2 --photos "$out/photos" --json \
      > "$res/bench-$dev.json" || true
  done
  cat "$res"/bench-*.json
}

case "${1:-}" in
  build) build ;;
  run) run ;;
  *) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
