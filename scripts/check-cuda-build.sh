#!/usr/bin/env bash
# Compile check of the `cuda` cargo feature (candle's CUDA backend and the CNN's GPU path), with
# the CUDA toolkit that scripts/setup-cuda-toolkit.sh installs from PyPI. No GPU and no link:
# `cargo check` builds candle's CUDA kernels with nvcc and type-checks the libraries and binaries
# (the feature changes no test code; checking every test target as well cost CI a minute).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup-cuda-toolkit.sh
# shellcheck disable=SC1091
source .cache/cuda/env.sh
cargo check -p features -p likeness --features cuda --lib --bins --locked --target-dir target/cuda-check
echo "cuda feature: compiles (kernels for compute capability ${CUDA_COMPUTE_CAP:-90})"
