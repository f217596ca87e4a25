#!/usr/bin/env python3
"""Seeded clustered float32 vectors for the scale benchmark (no numpy needed).

Writes N x D float32 rows as .npy: C cluster centres drawn uniformly in [-1, 1]^D, each row is a
centre picked uniformly at random plus Gaussian noise (sigma 0.15 per component). Also writes
Q query rows drawn the same way (different stream) to a second file.

usage: scale_data.py N D OUT.npy QUERIES.npy [Q=1000] [C=1000] [SEED=42]
"""
import array
import random
import sys


def npy_header(n, d):
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, d)
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode()


def write(path, n, d, centres, rng, sigma=0.15):
    g = rng.gauss
    with open(path, "wb") as f:
        f.write(npy_header(n, d))
        chunk = array.array("f")
        for i in range(n):
            c = centres[rng.randrange(len(centres))]
            chunk.extend([x + sigma * g(0.0, 1.0) for x in c])
            if len(chunk) >= 1 << 20:
                f.write(chunk.tobytes())
                chunk = array.array("f")
        f.write(chunk.tobytes())


def main():
    n, d, out, qout = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    q = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    c = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    seed = int(sys.argv[7]) if len(sys.argv) > 7 else 42
    rng = random.Random(seed)
    centres = [[rng.uniform(-1.0, 1.0) for _ in range(d)] for _ in range(c)]
    write(out, n, d, centres, random.Random(seed + 1))
    write(qout, q, d, centres, random.Random(seed + 2))


if __name__ == "__main__":
    main()
