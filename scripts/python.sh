#!/usr/bin/env bash
# Builds the Python package `likeness` (crates/likeness-py, PyO3 + maturin, an abi3 wheel for
# CPython >= 3.9), installs it into a virtual environment and runs its tests (pytest).
#
#   bash scripts/python.sh              # build, install, test
#   bash scripts/python.sh --no-test    # build and install only
#   bash scripts/python.sh -k search    # extra arguments go to pytest
#
# LIKENESS_PY_VENV     the virtual environment (default .venv-py, git-ignored); activate it to use likeness
# LIKENESS_PY_PROFILE  cargo profile of the wheel: `test` (default) or `release` (for benchmarks).
#
# `test` reuses everything `cargo build --workspace --profile test` compiled (CI builds the wheel in
# seconds): maturin cannot take `--profile test` (cargo rustc builds a test harness with it), so the
# wheel is built with the dev profile at the test profile's opt-level 2, which is the test profile.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${LIKENESS_PY_VENV:-$root/.venv-py}
profile=${LIKENESS_PY_PROFILE:-test}
run_tests=1
if [[ "${1:-}" == "--no-test" ]]; then run_tests=0; shift; fi

[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "maturin>=1.9.4,<2" pytest numpy Pillow

# The wheel reuses the workspace build only while likeness-py alone resolves the same features of
# shared crates as the whole workspace (see "Feature unification" in crates/likeness-py/Cargo.toml).
features_of() { cargo tree "$@" -e normal,build -f '{p} [{f}]' --prefix none 2>/dev/null | sort -u; }
if drift=$(comm -13 <(features_of --workspace) <(features_of -p likeness-py)) && [[ -n "$drift" ]]; then
  echo "python.sh: warning: the wheel build will recompile shared crates; these resolve other features than in" >&2
  echo "the workspace build (enable the workspace's in crates/likeness-py/Cargo.toml):" >&2
  echo "$drift" >&2
fi

wheels="$root/target/wheels/likeness-py"
rm -rf "$wheels"
if [[ "$profile" == test ]]; then
  profile=dev
  export CARGO_PROFILE_DEV_OPT_LEVEL=2
fi
"$venv/bin/maturin" build --quiet --locked --manifest-path crates/likeness-py/Cargo.toml \
  --profile "$profile" --interpreter "$venv/bin/python" --out "$wheels"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheels"/likeness-*.whl

if (( run_tests )); then
  # The CLI tests run the binary the workspace build made (see tests/conftest.py).
  cd crates/likeness-py
  "$venv/bin/python" -m pytest -q "$@"
fi
