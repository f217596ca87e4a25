#!/usr/bin/env bash
# Property-based API test: schemathesis (PyPI) generates requests from the server's own
# /openapi.json and checks that no answer is a 5xx, every status is documented and every body
# matches its schema. (Schema-valid requests the server refuses for semantic reasons — a filter on
# a field no record has, a zero-result id — are allowed: `positive_data_acceptance` is off.)
# Usage: scripts/api-schema-check.sh [LIKENESS_BINARY]   (needs data/photos: scripts/fetch-test-data.sh)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-$root/target/debug/likeness}
data=${LIKENESS_TEST_DATA:-$root/data}
venv="$root/.venv-st"
if [[ ! -x "$venv/bin/schemathesis" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi
tmp=$(mktemp -d)
pid=""
cleanup() { [[ -n "$pid" ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
"$bin" index "$data/photos" --db "$tmp/db" --features color,phash --json >/dev/null
# Unlimited rate: schemathesis is one client address sending as fast as it can.
"$bin" serve --db "$tmp/db" --addr 127.0.0.1:0 --features color,phash --rate-limit 0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
pid=$!
for _ in $(seq 100); do grep -q "http://" "$tmp/serve.out" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$tmp/serve.out" | head -1)
[[ -n "$url" ]] || { echo "serve did not start:"; cat "$tmp/serve.err"; exit 1; }
"$venv/bin/schemathesis" run "$url/openapi.json" --max-examples "${SCHEMATHESIS_EXAMPLES:-30}" --seed 1 \
  --exclude-checks positive_data_acceptance
