"""Exact 10 nearest neighbours (L2) of each query, as an .ivecs file, with FAISS's flat index
(the base is read memory-mapped and added in blocks, so a 10 M x 128 set needs its 5 GB once).

usage: python3 bench/ground_truth.py BASE.npy QUERIES.npy OUT.ivecs [K=10]
"""
import sys

import faiss
import numpy as np


def main() -> None:
    base = np.load(sys.argv[1], mmap_mode="r")
    queries = np.ascontiguousarray(np.load(sys.argv[2]), dtype=np.float32)
    k = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    index = faiss.IndexFlatL2(base.shape[1])
    for start in range(0, base.shape[0], 1_000_000):
        index.add(np.ascontiguousarray(base[start : start + 1_000_000], dtype=np.float32))
    _, ids = index.search(queries, k)
    rows = np.hstack([np.full((ids.shape[0], 1), k, dtype=np.int32), ids.astype(np.int32)])
    rows.tofile(sys.argv[3])


if __name__ == "__main__":
    main()
