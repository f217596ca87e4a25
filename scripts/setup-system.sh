#!/usr/bin/env bash
# Installs the system packages tests and the demo need (Debian). Idempotent.
# Usage: scripts/setup-system.sh [--bench | --demo]
#   --bench adds the peers (faiss-cpu, hnswlib, usearch, torch); --demo installs only what
#   scripts/demo.sh needs (the sample photos' packages), not the browser or the test data sets.
set -euo pipefail
need=()
dpkg -s mate-backgrounds >/dev/null 2>&1 || need+=(mate-backgrounds)
dpkg -s unzip >/dev/null 2>&1 || need+=(unzip)
if [[ "${1:-}" != "--demo" ]]; then
  dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need+=(dataset-fashion-mnist)
  dpkg -s chromium >/dev/null 2>&1 || need+=(chromium)
fi
if [[ "${1:-}" == "--bench" ]]; then
  dpkg -s python3-torch >/dev/null 2>&1 || need+=(python3-torch python3-numpy)
  # bench/ingest.sh: the Pillow + PyTorch pipeline, the large JPEGs it generates, peak RSS.
  dpkg -s python3-pil >/dev/null 2>&1 || need+=(python3-pil)
  dpkg -s time >/dev/null 2>&1 || need+=(time)
fi
if ((${#need[@]})); then
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  echo "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ "${1:-}" == "--bench" ]]; then
  python3 -m pip install -q numpy faiss-cpu hnswlib usearch
fi
