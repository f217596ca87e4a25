#!/usr/bin/env bash
# Before/after timing of vecdb's exact (flat_search bench) and HNSW (hnsw_bench example) search
# for a refactor: builds both at two checkouts in release, then runs them interleaved
# (base, now, now, base, ...) so that load from other processes hits both sides alike.
#
#   scripts/bench-before-after.sh BASE_CHECKOUT [ROUNDS]
#
# BASE_CHECKOUT is a worktree of the base commit (git worktree add /tmp/base <sha>); this
# checkout is "now". The base gets this checkout's examples/hnsw_bench.rs when it has none.
# HNSW_ARGS are hnsw_bench's [n_base] [n_queries] [M] [efC] (default "20000 10000"); the
# flat_search variables (VECDB_BENCH_SINGLE, VECDB_BENCH_THREADS, ...) pass through.
# Binaries go to $BIN (default /tmp/vecdb-bench-bin); the release dependencies are built once,
# in $CARGO_TARGET_DIR (default BASE_CHECKOUT/target). Fashion-MNIST comes from data/.
set -euo pipefail
base=$(cd "$1" && pwd)
rounds=${2:-2}
now=$(cd "$(dirname "$0")/.." && pwd)
bin=${BIN:-/tmp/vecdb-bench-bin}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$base/target}
mkdir -p "$bin"

build() { # $1 checkout, $2 tag
    [ -f "$1/crates/vecdb/examples/hnsw_bench.rs" ] || cp "$now/crates/vecdb/examples/hnsw_bench.rs" "$1/crates/vecdb/examples/"
    (cd "$1" && cargo build -q -p vecdb --release --example hnsw_bench)
    cp "$CARGO_TARGET_DIR/release/examples/hnsw_bench" "$bin/hnsw_bench.$2"
    local exe
    exe=$(cd "$1" && cargo bench -q -p vecdb --bench flat_search --no-run --message-format=json 2>/dev/null |
        sed -n 's/.*"executable":"\([^"]*flat_search[^"]*\)".*/\1/p' | tail -1)
    cp "$exe" "$bin/flat_search.$2"
}
for tag in base now; do
    [ -x "$bin/flat_search.$tag" ] && [ -x "$bin/hnsw_bench.$tag" ] && continue
    if [ "$tag" = base ]; then build "$base" base; else build "$now" now; fi
done

train=$bin/train.idx; t10k=$bin/t10k.idx
[ -f "$train" ] || gunzip -c "$now/data/fashion-mnist/train-images-idx3-ubyte.gz" > "$train"
[ -f "$t10k" ] || gunzip -c "$now/data/fashion-mnist/t10k-images-idx3-ubyte.gz" > "$t10k"

echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$rounds"); do
    # ABBA order (base, now, now, base, ...): a load that rises or falls during the run does not
    # always hit the same side second.
    order="base now"
    [ $((r % 2)) -eq 0 ] && order="now base"
    for tag in $order; do
        echo "## round $r: $tag flat_search"
        "$bin/flat_search.$tag" --bench
        echo "## round $r: $tag hnsw_bench"
        # shellcheck disable=SC2086
        "$bin/hnsw_bench.$tag" "$train" "$t10k" ${HNSW_ARGS:-20000 10000}
    done
done
