#!/usr/bin/env python3
"""Seeded large JPEGs for the ingest benchmark: photo-like 12 and 24 MP files.

Each file is one of the source photos (the mate-backgrounds wallpapers) enlarged to the target size
(Lanczos), with seeded Gaussian sensor noise (sigma 3) so the encoder sees fine detail as in a camera
photo, saved as baseline JPEG quality 90, 4:2:0 (what phones write). The same seed gives the same
files.

  make_large_jpegs.py --src DIR --out DIR [--mp 12,24] [--per-size 8] [--seed 7]
"""
import argparse
import os
import sys

import numpy as np
from PIL import Image

SIZES = {12: (4000, 3000), 24: (6000, 4000), 48: (8000, 6000)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True, help="folder of source JPEG/PNG photos (searched recursively)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--mp", default="12,24", help="comma-separated megapixel sizes among 12, 24, 48")
    ap.add_argument("--per-size", type=int, default=8)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    srcs = sorted(
        os.path.join(d, f)
        for d, _, fs in os.walk(a.src)
        for f in fs
        if f.lower().endswith((".jpg", ".jpeg"))
    )
    if not srcs:
        sys.exit(f"no JPEG under {a.src}")
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    for mp in (int(x) for x in a.mp.split(",")):
        w, h = SIZES[mp]
        for i in range(a.per_size):
            out = os.path.join(a.out, f"large{mp}mp_{i:02d}.jpg")
            src = srcs[(i * 5 + mp) % len(srcs)]
            img = Image.open(src).convert("RGB")
            # Portrait for every third file, so orientation-dependent code paths are exercised.
            tw, th = (h, w) if i % 3 == 2 else (w, h)
            img = img.resize((tw, th), Image.LANCZOS)
            px = np.asarray(img, dtype=np.float32)
            px += rng.normal(0.0, 3.0, size=px.shape).astype(np.float32)
            Image.fromarray(np.clip(px, 0, 255).astype(np.uint8)).save(out, quality=90, subsampling=2)
            print(out, tw, th, os.path.getsize(out), flush=True)


if __name__ == "__main__":
    main()
