#!/usr/bin/env bash
# The likeness.ray tests (distributed ingest, sharded search with Ray Serve) on a local Ray
# cluster of three nodes started with `ray start` (crates/likeness-py/tests-ray).
#
#   bash scripts/ray-tests.sh            # after scripts/python.sh: reuses its wheel
#   bash scripts/ray-tests.sh -k ingest  # extra arguments go to pytest
#   bash scripts/ray-tests.sh --prepare  # only the environment's dependencies (no wheel needed):
#                                        # scripts/test.sh runs this beside the build
#
# LIKENESS_RAY_VENV   the virtual environment (default .venv-ray, git-ignored): Ray 2.60.0
#                     (`likeness[ray]`), pytest and the wheel scripts/python.sh built in
#                     target/wheels/likeness-py (not rebuilt here).
# LIKENESS_RAY_NODES  0: one `ray.init()` node instead of `ray start` head + 2 workers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${LIKENESS_RAY_VENV:-$root/.venv-ray}
started=$(date +%s)
prepare() {
  [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
  # The `ray` extra's requirements (crates/likeness-py/pyproject.toml) and the tests'.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "ray[data,serve]==2.60.0" "pyarrow>=14" \
    "python-multipart>=0.0.9" pytest Pillow requests
}
if [[ "${1:-}" == --prepare ]]; then
  prepare
  echo "ray-tests.sh: dependencies ready in $(( $(date +%s) - started )) s" >&2
  exit 0
fi
wheel=$(ls "$root"/target/wheels/likeness-py/likeness-*.whl 2>/dev/null | head -1 || true)
if [[ -z "$wheel" ]]; then
  echo "ray-tests.sh: no wheel in target/wheels/likeness-py: run scripts/python.sh first" >&2
  exit 1
fi
prepare
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
echo "ray-tests.sh: environment ready in $(( $(date +%s) - started )) s" >&2
export RAY_USAGE_STATS_ENABLED=0
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}   # a throwaway cluster on this machine (see tests-ray/conftest.py)
cd crates/likeness-py
# A bound on the whole run; the cluster's processes are stopped by the tests' finalizer, and
# once more here should pytest itself be killed.
status=0
timeout --signal=INT --kill-after=30 600 nice "$venv/bin/python" -m pytest -q -p no:cacheprovider tests-ray "$@" || status=$?
if (( status == 124 || status == 137 )); then "$venv/bin/ray" stop --force >/dev/null 2>&1 || true; fi
echo "ray-tests.sh: done in $(( $(date +%s) - started )) s" >&2
exit $status
