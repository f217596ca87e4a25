#!/usr/bin/env python3
"""Bulk graph build of a peer library on an .npy file, for bench/lean_build.sh (issue 21 item 4).

Loads the base vectors with numpy (in memory, as a user of the library would), builds the
graph with M / efConstruction / threads, then searches the queries at each ef and prints one
JSON line: {"lib", "build_s", "recall": {ef: r}, "qps": {ef: q}}. Peak RSS is measured from
outside (/usr/bin/time), so it includes the data the library is given.

usage: build_peers.py LIB BASE.npy QUERIES.npy GT.ivecs [--m 16] [--efc 200] [--threads 2] [--ef 64]
LIB: hnswlib | faiss | faiss-sq8 | usearch | usearch-i8   (L2 everywhere)
Install: python3 -m pip install numpy faiss-cpu hnswlib usearch (scripts/setup-system.sh --bench)
"""
import argparse
import json
import time

import numpy as np


def read_ivecs(path):
    a = np.fromfile(path, dtype=np.int32)
    d = a[0]
    return a.reshape(-1, d + 1)[:, 1:]


def recall(found, gt, k=10):
    hits = sum(len(set(map(int, f[:k])) & set(map(int, g[:k]))) for f, g in zip(found, gt))
    return hits / (k * len(gt))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("lib")
    p.add_argument("base")
    p.add_argument("queries")
    p.add_argument("gt")
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--efc", type=int, default=200)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ef", type=int, nargs="+", default=[64])
    a = p.parse_args()
    x = np.load(a.base)
    q = np.load(a.queries)
    gt = read_ivecs(a.gt)
    n, d = x.shape
    t = time.perf_counter()
    if a.lib == "hnswlib":
        import hnswlib

        ix = hnswlib.Index(space="l2", dim=d)
        ix.init_index(max_elements=n, M=a.m, ef_construction=a.efc)
        ix.set_num_threads(a.threads)
        ix.add_items(x, np.arange(n))

        def search(ef):
            ix.set_ef(ef)
            return ix.knn_query(q, k=10)[0]

    elif a.lib in ("faiss", "faiss-sq8"):
        import faiss

        faiss.omp_set_num_threads(a.threads)
        if a.lib == "faiss":
            ix = faiss.IndexHNSWFlat(d, a.m)
        else:
            ix = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, a.m)
            ix.train(x)
        ix.hnsw.efConstruction = a.efc
        ix.add(x)

        def search(ef):
            ix.hnsw.efSearch = ef
            return ix.search(q, 10)[1]

    elif a.lib in ("usearch", "usearch-i8"):
        from usearch.index import Index

        ix = Index(ndim=d, metric="l2sq", dtype="f32" if a.lib == "usearch" else "i8",
                   connectivity=a.m, expansion_add=a.efc)
        ix.add(np.arange(n), x, threads=a.threads)

        def search(ef):
            ix.expansion_search = ef
            return ix.search(q, 10, threads=a.threads).keys

    else:
        raise SystemExit(f"unknown lib {a.lib}")
    build = time.perf_counter() - t
    out = {"lib": a.lib, "n": n, "dim": d, "build_s": build, "recall": {}, "qps": {}}
    for ef in a.ef:
        t = time.perf_counter()
        found = search(ef)
        dt = time.perf_counter() - t
        out["recall"][ef] = recall(found, gt)
        out["qps"][ef] = len(q) / dt
    print(json.dumps(out))


if __name__ == "__main__":
    main()
