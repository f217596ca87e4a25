#!/usr/bin/env bash
# The project's test command: installs what the tests need (system packages, test images, the CNN model,
# the browser-test driver), then runs the whole test suite. Works on a fresh Debian machine.
# Each stage prints its wall time ("test.sh stage NAME: N s"): CI must stay under 45 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
stage() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  echo "test.sh stage $name: $((SECONDS - start)) s (total $SECONDS s)"
}
stage setup-system bash scripts/setup-system.sh
# Ray's environment (~750 MB from PyPI, mostly download) is installed beside the CPU-bound build
# and the Rust tests, and awaited before the Ray stage.
ray_prep_log=$(mktemp)
nice bash scripts/ray-tests.sh --prepare >"$ray_prep_log" 2>&1 &
ray_prep=$!
ray_prepared() {
  local status=0
  wait "$ray_prep" || status=$?
  sed 's/^/ray prepare: /' "$ray_prep_log"
  rm -f "$ray_prep_log"
  return "$status"
}
stage fetch-test-data bash scripts/fetch-test-data.sh
export LIKENESS_TEST_DATA="$root/data"
export LIKENESS_MODEL_DIR="${LIKENESS_MODEL_DIR:-$root/data/models}"
export LIKENESS_REQUIRE_BROWSER=1   # this script installs chromium and playwright-core: the browser test must run
if [[ -f tests/browser/package.json && ! -d tests/browser/node_modules ]]; then
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi
stage build cargo build --workspace --all-targets --profile test --locked
# The binary the workspace build just made (`cargo run -p likeness` would rebuild candle with
# the single-package feature set: minutes of CI for nothing).
target/debug/likeness model fetch
stage rust-tests cargo test --workspace --profile test --locked -- --test-threads=2
stage schemathesis bash scripts/api-schema-check.sh target/debug/likeness   # schemathesis against /openapi.json: no 5xx, schema conformance
LIKENESS_REQUIRE_ALL=1 stage python bash scripts/python.sh   # the Python package: wheel into .venv-py, then pytest
stage ray-prepare-wait ray_prepared
LIKENESS_REQUIRE_ALL=1 stage ray bash scripts/ray-tests.sh   # likeness.ray on a local 3-node Ray cluster (.venv-ray, the same wheel)
stage fuzz bash scripts/fuzz.sh 10   # each cargo-fuzz target for 10 s over its committed corpus (docs/fuzzing.md)
