#!/usr/bin/env bash
# The automatic index policy at scale (issue 21, item 3): import N x D clustered vectors with the
# default `--index Auto` (float graph within the memory budget), with `--memory-budget` below the
# float graph (8-bit graph, exact re-rank from the mapped vectors) and with the graph pinned
# (`--index HNSW32`), then search 1,000 queries against exact ground truth: import time and peak
# RSS, recall@10, queries/s, and the search process's peak RssAnon (heap) and max RSS.
#
# usage: bench/auto_policy.sh [LIKENESS_BIN] [N=1000000] [D=128] [WORK=/tmp/scale] [BUDGET=256M]
# Data: bench/scale_data.py (as bench/scale.sh). Ground truth: an exact (`Flat`) search of the same
# queries, written once as .ivecs. Every configuration runs twice.
set -euo pipefail
BIN=${1:-target/debug/likeness}  # cargo build --workspace --profile test (opt-level 2/3)
N=${2:-1000000}
D=${3:-128}
WORK=${4:-/tmp/scale}
BUDGET=${5:-256M}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$WORK"
BASE="$WORK/base_${N}_${D}.npy"
QUERIES="$WORK/q_1k_${D}.npy"
GT="$WORK/gt_${N}_${D}.ivecs"
[ -f "$BASE" ] || python3 "$HERE/scale_data.py" "$N" "$D" "$BASE" "$QUERIES"
# shellcheck source=bench/measure.sh
source "$HERE/measure.sh"

if [ ! -f "$GT" ]; then
  rm -rf "$WORK/gt_db"
  "$BIN" vectors import --db "$WORK/gt_db" --collection c --index Flat "$BASE" > /dev/null
  "$BIN" vectors search --db "$WORK/gt_db" --collection c -k 10 "$QUERIES" --json |
    python3 -c '
import json, struct, sys
res = json.load(sys.stdin)["results"]
with open(sys.argv[1], "wb") as f:
    for row in res:
        f.write(struct.pack("<i", len(row)))
        f.write(struct.pack("<%di" % len(row), *[int(i) for i, _ in row]))
' "$GT"
  rm -rf "$WORK/gt_db"
fi

for run in $(seq 1 "${RUNS:-2}"); do
  for cfg in "auto|--index Auto" "auto-budget|--index Auto --memory-budget $BUDGET" "pinned|--index HNSW32"; do
    name=${cfg%%|*}
    # shellcheck disable=SC2206
    opts=(${cfg#*|})
    DB="$WORK/auto_${name}"
    rm -rf "$DB"
    read -r t rss anon < <(measure "$BIN" vectors import --db "$DB" --collection c "${opts[@]}" "$BASE")
    serving=$("$BIN" db info "$DB" --json | python3 -c 'import json,sys; f=json.load(sys.stdin)["collections"][0]["fields"][0]; print(f["index"])')
    echo "run $run $name: import ${t}s, max RSS $((rss / 1024)) MiB, serving $serving"
    out=$(mktemp)
    read -r t rss anon < <(MEASURE_OUT=$out measure "$BIN" vectors search --db "$DB" --collection c -k 10 "$QUERIES" --ground-truth "$GT" --json)
    python3 - "$out" "$run" "$name" "$t" "$rss" "$anon" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
run, name, t, rss, anon = sys.argv[2:7]
print(f"run {run} {name}: search 1000 queries: recall@10 {r['recall']:.4f}, {r['qps']:.0f} queries/s, "
      f"process {t}s, max RSS {int(rss)//1024} MiB, peak RssAnon {int(anon)//1024} MiB")
PY
    rm -f "$out"
  done
done
"$BIN" db info "$WORK/auto_auto-budget"
