#!/usr/bin/env bash
# Gathers real test images into ./data (git-ignored) from installed packages and registries:
#   data/photos/     scikit-image sample photos (PyPI wheel) + mate-backgrounds nature photos (Debian)
#   data/emoji/      emoji-datasource-google 64px PNGs + emoji.json (npm)
#   data/fashion-mnist -> /usr/share/datasets/fashion-mnist (Debian)
# Idempotent: finished steps are skipped. `--photos` stops after data/photos (what the demo needs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/data"
mkdir -p "$data/photos" "$data/cache"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

if [[ ! -f "$data/photos/chelsea.png" ]]; then
  python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp/sk" "scikit-image==0.24.0" \
    || python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp/sk" scikit-image
  whl=$(ls "$tmp"/sk/scikit_image-*.whl | head -1)
  for f in astronaut.png chelsea.png coffee.png camera.png coins.png moon.png rocket.jpg retina.jpg \
           hubble_deep_field.jpg ihc.png motorcycle_left.png motorcycle_right.png horse.png \
           brick.png grass.png gravel.png page.png text.png color.png; do
    unzip -q -j -o "$whl" "skimage/data/$f" -d "$data/photos" 2>/dev/null || true
  done
  test -f "$data/photos/chelsea.png" || { echo "chelsea.png missing from $whl" >&2; exit 1; }
fi
if [[ ! -e "$data/photos/mate" ]]; then
  test -d /usr/share/backgrounds/mate/nature || { echo "run scripts/setup-system.sh first (mate-backgrounds)" >&2; exit 1; }
  mkdir -p "$data/photos/mate"
  cp /usr/share/backgrounds/mate/nature/*.jpg "$data/photos/mate/" 2>/dev/null || cp /usr/share/backgrounds/mate/nature/* "$data/photos/mate/"
fi
if [[ "${1:-}" == "--photos" ]]; then
  echo "sample photos ready in $data/photos"
  exit 0
fi
if [[ ! -f "$data/emoji/emoji.json" ]]; then
  (cd "$tmp" && npm pack -q emoji-datasource-google@16.0.0 >/dev/null && tar xzf emoji-datasource-google-16.0.0.tgz)
  mkdir -p "$data/emoji"
  mv "$tmp/package/img/google/64" "$data/emoji/64"
  mv "$tmp/package/emoji.json" "$data/emoji/emoji.json"
fi
if [[ ! -f "$data/cmyk/chelsea_cmyk.jpg" ]]; then
  # A CMYK JPEG (Adobe, as Photoshop and print workflows write them) made from chelsea.png with Pillow.
  python3 -c "import PIL" 2>/dev/null || python3 -m pip install -q pillow
  mkdir -p "$data/cmyk"
  python3 - "$data/photos/chelsea.png" "$data/cmyk/chelsea_cmyk.jpg" <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("CMYK").save(sys.argv[2], quality=90)
assert Image.open(sys.argv[2]).mode == "CMYK"
PY
fi
if [[ ! -e "$data/fashion-mnist" ]]; then
  test -d /usr/share/datasets/fashion-mnist || { echo "run scripts/setup-system.sh first (dataset-fashion-mnist)" >&2; exit 1; }
  ln -s /usr/share/datasets/fashion-mnist "$data/fashion-mnist"
fi
echo "test data ready in $data"
