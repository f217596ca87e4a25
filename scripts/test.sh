#!/usr/bin/env bash
# The project's test command: installs what the tests need (system packages, test images, the CNN model,
# the browser-test driver), then runs the whole test suite. Works on a fresh Debian machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-system.sh
bash scripts/fetch-test-data.sh
export LIKENESS_TEST_DATA="$root/data"
export LIKENESS_MODEL_DIR="${LIKENESS_MODEL_DIR:-$root/data/models}"
export LIKENESS_REQUIRE_BROWSER=1   # this script installs chromium and playwright-core: the browser test must run
if [[ -f tests/browser/package.json && ! -d tests/browser/node_modules ]]; then
  (cd tests/browser && npm install --no-audit --no-fund --silent)
fi
cargo build --workspace --all-targets --profile test --locked
# The binary the workspace build just made (`cargo run -p likeness` would rebuild candle with
# the single-package feature set: minutes of CI for nothing).
target/debug/likeness model fetch
cargo test --workspace --profile test --locked -- --test-threads=2
bash scripts/api-schema-check.sh target/debug/likeness   # schemathesis against /openapi.json: no 5xx, schema conformance
LIKENESS_REQUIRE_ALL=1 bash scripts/python.sh   # the Python package: wheel into .venv-py, then pytest
LIKENESS_REQUIRE_ALL=1 bash scripts/ray-tests.sh   # likeness.ray on a local 3-node Ray cluster (.venv-ray, the same wheel)
bash scripts/fuzz.sh 10   # each cargo-fuzz target for 10 s over its committed corpus (docs/fuzzing.md)
