#!/usr/bin/env bash
# Installs a CUDA 13.4 toolkit from NVIDIA's PyPI wheels, enough to build likeness with
# `--features cuda` (candle compiles its CUDA kernels with nvcc at build time). No root, no
# apt repository: everything lands in one folder.
#
# Usage: scripts/setup-cuda-toolkit.sh [--link] [DIR]
#   DIR     where to install (default: .cache/cuda in the repository, git-ignored)
#   --link  also the shared libraries a linked binary needs (cuBLAS, cuRAND, NVRTC: ~1 GB).
#           Without it the toolkit suffices for `cargo check --features cuda`; building the binary
#           also needs libcuda.so from the NVIDIA driver, which only a machine with a GPU has.
# Then:  source DIR/env.sh && cargo build --release -p likeness --features cuda
set -euo pipefail
link=0
dir=""
for a in "$@"; do
  case "$a" in
    --link) link=1 ;;
    -*) echo "unknown option $a" >&2; exit 2 ;;
    *) dir="$a" ;;
  esac
done
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${dir:-$root/.cache/cuda}"
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)   # env.sh must hold absolute paths
# cudarc 0.19 knows CUDA up to 13.4: keep the toolkit on that release. The GPU's driver must be
# at least as new as the toolkit (it compiles the kernels' PTX when they load): for an older
# driver pick an older toolkit, e.g. CUDA_WHEEL_VERSION=13.0.88 for driver 580 (CUDA 13.0).
version="${CUDA_WHEEL_VERSION:-13.4.92}"
wheels=("nvidia-cuda-nvcc==$version" "nvidia-nvvm==$version" "nvidia-cuda-crt==$version"
        "nvidia-cuda-runtime==$version" "nvidia-cuda-cccl")
if ((link)); then
  wheels+=("nvidia-cublas" "nvidia-curand" "nvidia-cuda-nvrtc==$version")
fi
cuda="$dir/nvidia/cu13"
have=$("$cuda/bin/nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\),.*/\1/p' || true)
if [[ "$have" != "${version%.*}" || ( $link == 1 && ! -e "$cuda/lib/libcublas.so" ) ]]; then
  mkdir -p "$dir"
  python3 -m pip install -q --no-deps --upgrade --target "$dir" "${wheels[@]}"
fi
# Wheels do not keep the executable bit of every tool nvcc runs.
find "$cuda/bin" "$cuda/nvvm/bin" -type f -exec chmod +x {} +
# The linker looks for libX.so; the wheels ship libX.so.N.
for lib in "$cuda"/lib/lib*.so.*; do
  [[ -e "$lib" ]] || continue
  base="${lib%%.so.*}.so"
  [[ -e "$base" ]] || ln -s "$(basename "$lib")" "$base"
done
cat > "$dir/env.sh" <<EOF
# Source this before building with --features cuda.
export CUDA_ROOT="$cuda" CUDA_PATH="$cuda" CUDARC_CUDA_VERSION=$(echo "$version" | awk -F. '{printf "%d0%d0", $1, $2}')
export PATH="$cuda/bin:\$PATH"
export LD_LIBRARY_PATH="$cuda/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# The GPU generation to compile kernels for; nvidia-smi tells on a machine with a GPU, else 90 (H100/H200).
command -v nvidia-smi >/dev/null || export CUDA_COMPUTE_CAP="\${CUDA_COMPUTE_CAP:-90}"
EOF
"$cuda/bin/nvcc" --version | tail -2
echo "CUDA toolkit in $cuda; now: source $dir/env.sh"
