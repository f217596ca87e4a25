#!/usr/bin/env bash
# Lean bulk graph builds against the peers (issue 21, item 4): `likeness vectors import` of N x D
# vectors into `HNSW16` (the graph reads the mapped segment columns: no copy of the vectors) and
# `HNSW16,SQ8`, against hnswlib, FAISS (`IndexHNSWFlat`, `IndexHNSWSQ` 8-bit), usearch (f32, i8), all
# with M = 16, efConstruction = 200 and 2 threads, on clustered (bench/scale_data.py) and uniform
# [0,1)^D data. Prints per build: wall time, peak RSS (/usr/bin/time, data included: the peers hold
# the numpy array, likeness streams the file and maps its segments), and recall@10 at ef 64
# against exact ground truth (a `Flat` search), with queries/s.
#
# usage: bench/lean_build.sh [LIKENESS_BIN] [N=1000000] [D=128] [WORK=/tmp/scale]
# env: RUNS (default 2), DATASETS ("clustered uniform"), PEERS (default all five), SPECS.
set -euo pipefail
BIN=${1:-target/debug/likeness}
N=${2:-1000000}
D=${3:-128}
WORK=${4:-/tmp/scale}
HERE=$(cd "$(dirname "$0")" && pwd)
PEERS=${PEERS:-hnswlib faiss faiss-sq8 usearch usearch-i8}
SPECS=${SPECS:-HNSW16 HNSW16,SQ8}
# shellcheck source=bench/measure.sh
source "$HERE/measure.sh"
mkdir -p "$WORK"

ground_truth() { # BASE QUERIES GT
  [ -f "$3" ] && return
  rm -rf "$WORK/gt_db"
  "$BIN" vectors import --db "$WORK/gt_db" --collection c --index Flat "$1" > /dev/null
  "$BIN" vectors search --db "$WORK/gt_db" --collection c -k 10 "$2" --json | python3 -c '
import json, struct, sys
with open(sys.argv[1], "wb") as f:
    for row in json.load(sys.stdin)["results"]:
        f.write(struct.pack("<i", len(row)) + struct.pack("<%di" % len(row), *[int(i) for i, _ in row]))
' "$3"
  rm -rf "$WORK/gt_db"
}

for data in ${DATASETS:-clustered uniform}; do
  if [ "$data" = clustered ]; then
    BASE="$WORK/base_${N}_${D}.npy"; QUERIES="$WORK/q_1k_${D}.npy"; GT="$WORK/gt_${N}_${D}.ivecs"
    [ -f "$BASE" ] || python3 "$HERE/scale_data.py" "$N" "$D" "$BASE" "$QUERIES"
  else
    BASE="$WORK/uniform_${N}_${D}.npy"; QUERIES="$WORK/uniform_q_1k_${D}.npy"; GT="$WORK/uniform_gt_${N}_${D}.ivecs"
    [ -f "$BASE" ] || python3 -c "
import numpy as np, sys
r = np.random.default_rng(7)
np.save(sys.argv[1], r.random(($N, $D), dtype=np.float32)); np.save(sys.argv[2], r.random((1000, $D), dtype=np.float32))
" "$BASE" "$QUERIES"
  fi
  ground_truth "$BASE" "$QUERIES" "$GT"
  for run in $(seq 1 "${RUNS:-2}"); do
    # likeness and the peers alternate, so a change of load hits them alike.
    for spec in $SPECS; do
      DB="$WORK/lean_db"
      rm -rf "$DB"
      read -r t rss _ < <(measure "$BIN" vectors import --db "$DB" --collection c --index "$spec" "$BASE")
      r=$("$BIN" vectors search --db "$DB" --collection c -k 10 --ef 64 "$QUERIES" --ground-truth "$GT" --json |
        python3 -c 'import json,sys; r=json.load(sys.stdin); print("recall@10 %.4f at ef 64, %.0f q/s" % (r["recall"], r["qps"]))')
      disk=$(du -sb "$DB" | cut -f1)
      echo "$data run $run likeness $spec: build ${t}s, peak RSS $((rss / 1024)) MiB, $r, disk $((disk / 1048576)) MiB"
      rm -rf "$DB"
    done
    for lib in $PEERS; do
      out=$(mktemp)
      read -r t rss _ < <(MEASURE_OUT=$out measure python3 "$HERE/build_peers.py" "$lib" "$BASE" "$QUERIES" "$GT" --ef 64)
      r=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("build %.1fs, recall@10 %.4f at ef 64, %.0f q/s" % (r["build_s"], r["recall"]["64"], r["qps"]["64"]))' "$out")
      echo "$data run $run $lib: process ${t}s, peak RSS $((rss / 1024)) MiB, $r"
      rm -f "$out"
    done
  done
done
