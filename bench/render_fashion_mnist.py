#!/usr/bin/env python3
"""Render Fashion-MNIST (Debian's official IDX files) as an ImageFolder tree of PNGs:
OUT/<class-name>/<split>-<index>.png, 28x28 grayscale. Standard library only.

Used to make real-image CNN embeddings for `likeness-bench ann` (bench/cnn_embeddings.sh) and
as a labelled tree for `likeness eval` / `likeness train`.

usage: render_fashion_mnist.py OUT [--split train|t10k] [--limit N] [--src DIR]
"""
import argparse
import gzip
import os
import struct
import zlib

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    return dims, raw[4 + 4 * ndim:]


def png_gray(width, height, pixels):
    """A minimal 8-bit grayscale PNG."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b"")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--split", default="t10k", choices=["train", "t10k"])
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--src", default="/usr/share/datasets/fashion-mnist")
    a = ap.parse_args()
    (n, h, w), pixels = read_idx(os.path.join(a.src, f"{a.split}-images-idx3-ubyte.gz"))
    (nl,), labels = read_idx(os.path.join(a.src, f"{a.split}-labels-idx1-ubyte.gz"))
    assert n == nl, f"{n} images but {nl} labels"
    n = min(n, a.limit or n)
    for c in CLASSES:
        os.makedirs(os.path.join(a.out, c), exist_ok=True)
    for i in range(n):
        img = pixels[i * h * w:(i + 1) * h * w]
        path = os.path.join(a.out, CLASSES[labels[i]], f"{a.split}-{i:05d}.png")
        with open(path, "wb") as f:
            f.write(png_gray(w, h, img))
    print(f"wrote {n} images of {h}x{w} into {a.out}")


if __name__ == "__main__":
    main()
