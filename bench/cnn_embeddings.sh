#!/usr/bin/env bash
# Real-image CNN embeddings for `likeness-bench ann` (issue 5's "1280-d CNN embeddings, cosine"):
# the 10,000 Fashion-MNIST test images rendered as PNGs plus the 3,786 emoji PNGs, embedded with
# EfficientNet-Lite0 by `likeness index`, exported by `likeness vectors export`.
# Needs scripts/fetch-test-data.sh (emoji, fashion-mnist) and a built binary ($LIKENESS, default release).
# Prints the path of the .npy (13,786 x 1280 float32, rows in record-id order, i.e. shuffled).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
L=${LIKENESS:-$root/target/release/likeness}
out=$root/data/cache/cnn-embeddings
npy=$out/cnn.npy
if [[ ! -f "$npy" ]]; then
  mkdir -p "$out"
  [[ -d "$out/fashion" ]] || python3 "$root/bench/render_fashion_mnist.py" "$out/fashion" --split t10k >&2
  "$L" index "$out/fashion" "$root/data/emoji/64" --db "$out/db" --features cnn >&2
  "$L" vectors export --db "$out/db" --field cnn --out "$npy" --ids "$out/ids.tsv" >&2
fi
echo "$npy"
