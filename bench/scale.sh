#!/usr/bin/env bash
# Scale benchmark of a collection (issue 21): import time, bytes on disk per vector,
# `db info` time, open + first query time, and the memory of a search process (max RSS and
# peak RssAnon: heap, as opposed to page cache), on N x D seeded clustered float32 vectors (L2).
#
# usage: bench/scale.sh [LIKENESS_BIN] [N=1000000] [D=128] [WORK=/tmp/scale]
# env: SPEC (index spec, default Flat), RUNS (default 2), GT (an .ivecs of the exact 10 nearest
#      of each query, e.g. from bench/ground_truth.py: then recall@10 and q/s at EFS, default
#      "32 64 128", are printed for a graph).
# Data: bench/scale_data.py (1,000 centres in [-1,1]^D, sigma 0.15, seed 42; 1,000 queries).
# Every timing runs RUNS times (warm page cache after the first import).
set -euo pipefail
BIN=${1:-target/debug/likeness}
N=${2:-1000000}
D=${3:-128}
WORK=${4:-/tmp/scale}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
BASE="$WORK/base_${N}_${D}.npy"
QUERIES="$WORK/q_1k_${D}.npy"
[ -f "$BASE" ] || python3 "$HERE/scale_data.py" "$N" "$D" "$BASE" "$QUERIES"

# shellcheck source=bench/measure.sh
source "$HERE/measure.sh"

SPEC=${SPEC:-Flat}
for run in $(seq 1 "${RUNS:-2}"); do
  DB="$WORK/db_${N}_${D}"
  rm -rf "$DB"
  read -r t rss anon < <(measure "$BIN" vectors import --db "$DB" --collection c --index "$SPEC" "$BASE")
  bytes=$(du -sb "$DB" | cut -f1)
  echo "run $run: import ${N}x${D} $SPEC: ${t}s, max RSS $((rss/1024)) MiB; disk $bytes B = $(awk -v b="$bytes" -v n="$N" 'BEGIN{printf "%.1f", b/n}') B/vector"
  read -r t rss anon < <(measure "$BIN" db info "$DB")
  echo "run $run: db info: ${t}s, max RSS $((rss/1024)) MiB, peak RssAnon $((anon/1024)) MiB"
  read -r t rss anon < <(measure "$BIN" vectors search --db "$DB" --collection c --limit 1 -k 10 "$QUERIES")
  echo "run $run: open + 1 query: ${t}s, max RSS $((rss/1024)) MiB, peak RssAnon $((anon/1024)) MiB"
  read -r t rss anon < <(measure "$BIN" vectors search --db "$DB" --collection c -k 10 "$QUERIES")
  echo "run $run: open + 1000 queries (batch): ${t}s, max RSS $((rss/1024)) MiB, peak RssAnon $((anon/1024)) MiB"
  if [ -n "${GT:-}" ] && [ "$SPEC" != Flat ]; then
    for ef in ${EFS:-32 64 128}; do
      "$BIN" vectors search --db "$DB" --collection c -k 10 --ef "$ef" "$QUERIES" --ground-truth "$GT" --json |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("run %s: ef %s: recall@10 %.4f, %.0f q/s (1,000 queries, batch)" % (sys.argv[1], sys.argv[2], r["recall"], r["qps"]))' "$run" "$ef"
    done
  fi
done
"$BIN" db info "$DB"
