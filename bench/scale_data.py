#!/usr/bin/env python3
"""Seeded clustered float32 vectors for the scale benchmark (no numpy needed).

Writes N x D float32 rows as .npy: C cluster centres drawn uniformly in [-1, 1]^D, each row is a
centre picked uniformly at random plus Gaussian noise (sigma 0.15 per component). Also writes
Q query rows drawn the same way (different stream) to a second file.

usage: scale_data.py N D OUT.npy QUERIES.npy [Q=1000] [C=1000] [SEED=42]

With SCALE_DATA_NUMPY=1 (used for 10 M rows: the pure-Python loop takes about 1 min per million)
the same recipe runs with numpy's PCG64 generators (seeds SEED, SEED+1, SEED+2), a million rows
at a time: the same distribution, not the same rows as the pure-Python stream.
"""
import array
import os
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


def write_numpy(path, n, d, centres, seed, sigma=0.15):
    import numpy as np

    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        f.write(npy_header(n, d))
        for start in range(0, n, 1 << 20):
            m = min(1 << 20, n - start)
            rows = centres[rng.integers(0, len(centres), m)] + sigma * rng.standard_normal((m, d))
            f.write(rows.astype("<f4").tobytes())


def main():
    n, d, out, qout = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    q = int(sys.argv[5]) if len(sys.argv) > 5 else 1000
    c = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    seed = int(sys.argv[7]) if len(sys.argv) > 7 else 42
    if os.environ.get("SCALE_DATA_NUMPY") == "1":
        import numpy as np

        centres = np.random.default_rng(seed).uniform(-1.0, 1.0, (c, d))
        write_numpy(out, n, d, centres, seed + 1)
        write_numpy(qout, q, d, centres, seed + 2)
        return
    rng = random.Random(seed)
    centres = [[rng.uniform(-1.0, 1.0) for _ in range(d)] for _ in range(c)]
    write(out, n, d, centres, random.Random(seed + 1))
    write(qout, q, d, centres, random.Random(seed + 2))


if __name__ == "__main__":
    main()
