#!/usr/bin/env bash
# Fuzz the project's parsers with cargo-fuzz (libFuzzer): see docs/fuzzing.md.
#
#   bash scripts/fuzz.sh SECONDS [TARGET...]   build every target, run each (or the ones named) for
#                                              SECONDS over its committed corpus; fails on a crash
#   bash scripts/fuzz.sh seeds                 regenerate the seed corpora (fuzz/corpus/) from the real code
#   bash scripts/fuzz.sh list                  the targets
#
# Installs cargo-fuzz into ~/.cargo/bin when it is missing. Uses a nightly toolchain when rustup has one,
# else the stable one with RUSTC_BOOTSTRAP=1 (libFuzzer and the sanitizer flags need unstable options).
# The fuzz build lives in fuzz/target (not the workspace's target/). New corpus entries go to
# fuzz/corpus-new/<target>, crashes to fuzz/artifacts/<target>/, logs to fuzz/logs/ (all git-ignored);
# the committed corpus is only read. Environment: FUZZ_SANITIZER (none, the default: safe Rust needs
# no ASan and runs ~2x faster; or address),
# FUZZ_RSS_MB (2048), FUZZ_TIMEOUT (10: seconds one input may take), FUZZ_JOBS (1: targets run at once),
# FUZZ_BUILD (release, or dev for runs under 60 s: see below), FUZZ_NIGHTLY=0 (use the stable fallback even
# where nightly is installed), FUZZ_TARGET_DIR (fuzz/target).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

targets=(wal_replay segment_open manifest_open index_snapshot database_open filter_parse search_request image_decode)
# Largest input per target (bytes): a little above the largest seed.
declare -A max_len=(
  [wal_replay]=16384 [segment_open]=65536 [manifest_open]=4096 [index_snapshot]=131072
  [database_open]=131072 [filter_parse]=4096 [search_request]=4096 [image_decode]=65536
)

usage() { sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 ]] || usage

if [[ $1 == list ]]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$root/fuzz/target}"
if [[ $1 == seeds ]]; then
  cargo run --locked --manifest-path fuzz/Cargo.toml --example make_seeds
  exit 0
fi

secs=$1
shift
[[ $secs =~ ^[0-9]+$ ]] || usage
run=("$@")
[[ ${#run[@]} -gt 0 ]] || run=("${targets[@]}")
for t in "${run[@]}"; do
  [[ -n ${max_len[$t]:-} ]] || { echo "fuzz.sh: unknown target '$t' (see: fuzz.sh list)" >&2; exit 2; }
done

if ! command -v cargo-fuzz >/dev/null 2>&1 && [[ ! -x $HOME/.cargo/bin/cargo-fuzz ]]; then
  echo "fuzz.sh: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
export PATH="$HOME/.cargo/bin:$PATH"

fuzz=(cargo)
if [[ ${FUZZ_NIGHTLY:-1} != 0 ]] && command -v rustup >/dev/null 2>&1 && rustup toolchain list | grep -q '^nightly'; then
  fuzz+=(+nightly)
else
  export RUSTC_BOOTSTRAP=1   # stable rustc accepts the -Z flags cargo-fuzz passes
fi
fuzz+=(fuzz)
sanitizer=${FUZZ_SANITIZER:-none}

# Short runs (CI) build unoptimized: the instrumented optimized build of faer, image and vecdb costs
# minutes more than the seconds of fuzzing it would speed up. FUZZ_BUILD=release|dev overrides.
build=${FUZZ_BUILD:-$( ((secs < 60)) && echo dev || echo release)}
flags=(--sanitizer "$sanitizer" --debug-assertions)
[[ $build == dev ]] && flags+=(--dev)

start=$(date +%s)
mkdir -p fuzz/logs
if ! "${fuzz[@]}" build "${flags[@]}" >fuzz/logs/build.log 2>&1; then
  tail -40 fuzz/logs/build.log >&2
  echo "fuzz.sh: build failed (fuzz/logs/build.log)" >&2
  exit 1
fi
echo "fuzz.sh: built ($build) in $(( $(date +%s) - start )) s"

run_one() {
  local t=$1
  mkdir -p "fuzz/corpus-new/$t" "fuzz/artifacts/$t" "fuzz/corpus/$t"
  local log="fuzz/logs/$t.log"
  # -fork/-jobs are not used: one process, so a crash stops it and fails the run.
  if "${fuzz[@]}" run "${flags[@]}" "$t" "fuzz/corpus-new/$t" "fuzz/corpus/$t" -- \
      -max_total_time="$secs" -max_len="${max_len[$t]}" -rss_limit_mb="${FUZZ_RSS_MB:-2048}" \
      -timeout="${FUZZ_TIMEOUT:-10}" -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >"$log" 2>&1; then
    local last
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    echo "fuzz.sh: $t ok: $last"
  else
    echo "fuzz.sh: $t FAILED (log: $log, input: fuzz/artifacts/$t/)" >&2
    grep -E 'panicked|ERROR|SUMMARY|deadly signal|Test unit written' "$log" | head -20 >&2 || true
    return 1
  fi
}

failed=0
jobs=${FUZZ_JOBS:-1}
pids=()
for t in "${run[@]}"; do
  run_one "$t" &
  pids+=($!)
  if [[ ${#pids[@]} -ge $jobs ]]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
echo "fuzz.sh: done in $(( $(date +%s) - start )) s"
exit $failed
