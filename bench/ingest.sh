#!/usr/bin/env bash
# End-to-end ingest benchmark (issue 18): images/s of `likeness index --features cnn` (decode, CNN,
# durable store) on the wallpapers and on seeded large JPEGs (12 and 24 MP), against
#   (a) a baseline likeness binary (today's: BASELINE=path/to/likeness of the commit before),
#   (b) the Pillow draft() + PyTorch pipeline of bench/ingest_torch.py (same weights, same threads),
#   (c) the network alone (`likeness-bench cnn`, preprocessed 224 px batches),
# each set ROUNDS times, interleaved, with the peak RSS of each run. Prints a Markdown table.
#
#   BASELINE=/path/to/old/likeness bash bench/ingest.sh [--rounds 2] [--threads N] [--per-size 4]
#
# Needs: a built workspace (cargo build --workspace --profile test, or BIN_DIR=target/release),
# the CNN weights (likeness model fetch), `bash scripts/setup-system.sh --bench` (mate-backgrounds,
# Debian's python3-torch, python3-pil, python3-numpy, time).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=2
THREADS=$(nproc)
PER_SIZE=4
while (($#)); do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --per-size) PER_SIZE=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
BIN_DIR=${BIN_DIR:-target/debug}
NEW="$BIN_DIR/likeness"
BENCH="$BIN_DIR/likeness-bench"
PY=${LIKENESS_PYTHON:-/usr/bin/python3}
WORK=${WORK:-$(mktemp -d /tmp/likeness-ingest-XXXX)}
MODELS=${LIKENESS_MODEL_DIR:-data/models}
export LIKENESS_MODEL_DIR=$MODELS RAYON_NUM_THREADS=$THREADS
[[ -x $NEW ]] || { echo "$NEW missing: cargo build --workspace --profile test" >&2; exit 1; }
"$NEW" model fetch >/dev/null
PTH=$(ls "$MODELS"/efficientnet-lite0-*.pth | head -1)

# The image sets: the wallpapers (every folder that exists) and the generated large JPEGs.
WALL=()
for d in /usr/share/wallpapers /usr/share/backgrounds/mate; do [[ -d $d ]] && WALL+=("$d"); done
((${#WALL[@]})) || { echo "no wallpapers: bash scripts/setup-system.sh --bench" >&2; exit 1; }
LARGE="$WORK/large"
if [[ ! -d $LARGE ]]; then
  "$PY" bench/make_large_jpegs.py --src /usr/share/backgrounds/mate --out "$LARGE" --mp 12,24 --per-size "$PER_SIZE" >/dev/null
fi

# run LABEL BIN DIRS...: one `likeness index` into a fresh database; prints "images/s peak_rss_MB".
run_likeness() {
  local bin=$1; shift
  rm -rf "$WORK/db"
  /usr/bin/time -f "%M" -o "$WORK/rss" "$bin" index "$@" --db "$WORK/db" --features cnn --json >"$WORK/report.json"
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); assert not r['failed'], r['failed']; print('%.2f' % r['images_per_second'], end=' ')" "$WORK/report.json"
  echo "$(( $(cat "$WORK/rss") / 1024 ))"
}
run_torch() {
  /usr/bin/time -f "%M" -o "$WORK/rss" "$PY" bench/ingest_torch.py --weights "$PTH" --threads "$THREADS" --out "$WORK/emb.npy" "$@" >"$WORK/torch.json"
  "$PY" -c "import json,sys; r=json.load(open(sys.argv[1])); print('%.2f' % r['images_per_s'], end=' ')" "$WORK/torch.json"
  echo "$(( $(cat "$WORK/rss") / 1024 ))"
}
net_only() {
  "$BENCH" cnn --threads "$THREADS" --images 64 --passes 2 --json 2>/dev/null |
    "$PY" -c "import json,sys; r=json.load(sys.stdin); print('%.2f' % r['ours_images_per_s'])"
}

echo "threads $THREADS, rounds $ROUNDS, $(date -u '+%Y-%m-%d %H:%M UTC'), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "wallpapers: $(find "${WALL[@]}" -type f | wc -l) files; large: $(ls "$LARGE" | wc -l) files (12 and 24 MP)"
echo
echo "| set | round | likeness (images/s, peak RSS MB) | baseline | Pillow+PyTorch | network only | vs baseline | vs PyTorch | of network |"
echo "|---|---|---|---|---|---|---|---|---|"
for ((r = 1; r <= ROUNDS; r++)); do
  net=$(net_only)
  for set in wallpapers large; do
    if [[ $set == wallpapers ]]; then dirs=("${WALL[@]}"); else dirs=("$LARGE"); fi
    read -r n_rate n_rss < <(run_likeness "$NEW" "${dirs[@]}")
    if [[ -n ${BASELINE:-} ]]; then read -r b_rate b_rss < <(run_likeness "$BASELINE" "${dirs[@]}"); else b_rate=; b_rss=; fi
    read -r t_rate t_rss < <(run_torch "${dirs[@]}")
    ratio() { [[ -n $2 ]] && "$PY" -c "print('%.2f×' % ($1 / $2))" || echo "–"; }
    pct() { "$PY" -c "print('%.0f %%' % (100 * $1 / $2))"; }
    echo "| $set | $r | $n_rate ($n_rss MB) | ${b_rate:-–} (${b_rss:-–} MB) | $t_rate ($t_rss MB) | $net | $(ratio "$n_rate" "$b_rate") | $(ratio "$n_rate" "$t_rate") | $(pct "$n_rate" "$net") |"
  done
done
