#!/usr/bin/env python3
"""ANN peers for `likeness-bench ann`: hnswlib, faiss-cpu (HNSW and IVF-PQ) and usearch on
the very data the Rust benchmark uses, with the same M / ef_construction / ef sweep.

Inputs are written by `likeness-bench ann` into data/cache/ann/:
  --base B.npy      float32 n x d (rows already unit-normalised for cosine)
  --queries Q.npy   float32 nq x d
  --gt GT.npy       float32 nq x K: ids of the exact K nearest base rows (ids < 2^24 are exact in f32)
Output: one JSON object per line on stdout (or --out FILE):
  {"lib", "index", "param", "value", "recall", "qps": {"1": .., "2": ..}, "build_s", "mem_per_vec"}
mem_per_vec is the growth of the process's resident memory while the index was built, divided by n.
Install the peers with: python3 -m pip install -q numpy faiss-cpu hnswlib usearch
"""
import argparse
import gc
import json
import os
import sys
import time

import numpy as np


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def recall_at(found, gt, k):
    hits = 0
    for row, truth in zip(found, gt[:, :k]):
        hits += len(set(int(x) for x in row[:k]) & set(int(x) for x in truth))
    return hits / (k * len(gt))


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def best_of(passes, fn):
    """Run `fn` `passes` times; its last output and the fastest time (as likeness-bench ann does)."""
    best, out = float("inf"), None
    for _ in range(max(1, passes)):
        out, secs = timed(fn)
        best = min(best, secs)
    return out, best


def emit(out, **rec):
    out.write(json.dumps(rec) + "\n")
    out.flush()


def run_hnswlib(a, base, queries, gt, out):
    import hnswlib
    space = "l2" if a.metric == "l2" else "ip"
    for m in a.m:
        gc.collect()
        before = rss_bytes()
        idx = hnswlib.Index(space=space, dim=base.shape[1])
        idx.init_index(max_elements=base.shape[0], M=m, ef_construction=a.efc, random_seed=100)
        idx.set_num_threads(a.build_threads)
        _, build = timed(lambda: idx.add_items(base, np.arange(base.shape[0])))
        mem = (rss_bytes() - before) / base.shape[0]
        for ef in a.ef:
            idx.set_ef(max(ef, a.k))
            qps, rec = {}, None
            for t in a.threads:
                idx.set_num_threads(t)
                (labels, _), secs = best_of(a.passes, lambda: idx.knn_query(queries, k=a.k))
                qps[str(t)] = len(queries) / secs
                rec = recall_at(labels, gt, a.k)
            emit(out, lib="hnswlib", index=f"HNSW{m}", param="ef", value=ef, recall=rec, qps=qps,
                 build_s=build, mem_per_vec=mem)
        del idx


def faiss_search_sweep(faiss, idx, name, param, values, setp, queries, gt, a, build, mem, out):
    for v in values:
        setp(v)
        qps, rec = {}, None
        for t in a.threads:
            faiss.omp_set_num_threads(t)
            (_, labels), secs = best_of(a.passes, lambda: idx.search(queries, a.k))
            qps[str(t)] = len(queries) / secs
            rec = recall_at(labels, gt, a.k)
        emit(out, lib="faiss", index=name, param=param, value=v, recall=rec, qps=qps, build_s=build,
             mem_per_vec=mem)


def run_faiss(a, base, queries, gt, out):
    import faiss
    metric = faiss.METRIC_L2 if a.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    d = base.shape[1]
    for m in a.m:
        gc.collect()
        before = rss_bytes()
        idx = faiss.IndexHNSWFlat(d, m, metric)
        idx.hnsw.efConstruction = a.efc
        faiss.omp_set_num_threads(a.build_threads)
        _, build = timed(lambda: idx.add(base))
        mem = (rss_bytes() - before) / base.shape[0]

        def set_ef(ef, idx=idx):
            idx.hnsw.efSearch = max(ef, a.k)

        faiss_search_sweep(faiss, idx, f"HNSW{m}", "ef", a.ef, set_ef, queries, gt, a, build, mem, out)
        del idx
    for m in a.sq_m:
        # FAISS's own graph over 8-bit codes (IndexHNSWSQ, per-dimension ranges).
        gc.collect()
        before = rss_bytes()
        idx = faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, m, metric)
        idx.hnsw.efConstruction = a.efc
        faiss.omp_set_num_threads(a.build_threads)
        _, build = timed(lambda: (idx.train(base), idx.add(base)))
        mem = (rss_bytes() - before) / base.shape[0]

        def set_ef(ef, idx=idx):
            idx.hnsw.efSearch = max(ef, a.k)

        faiss_search_sweep(faiss, idx, f"HNSW{m},SQ8", "ef", a.ef, set_ef, queries, gt, a, build, mem, out)
        del idx
    for spec in a.faiss_ivf:
        gc.collect()
        before = rss_bytes()
        idx = faiss.index_factory(d, spec, metric)
        faiss.omp_set_num_threads(a.build_threads)
        _, build = timed(lambda: (idx.train(base), idx.add(base)))
        mem = (rss_bytes() - before) / base.shape[0]
        ivf = faiss.extract_index_ivf(idx)

        def set_nprobe(p, ivf=ivf):
            ivf.nprobe = p

        faiss_search_sweep(faiss, idx, spec, "nprobe", a.nprobe, set_nprobe, queries, gt, a, build, mem, out)
        del idx


def run_usearch(a, base, queries, gt, out):
    from usearch.index import Index
    metric = "l2sq" if a.metric == "l2" else "ip"
    for m in a.m:
        gc.collect()
        before = rss_bytes()
        idx = Index(ndim=base.shape[1], metric=metric, dtype="f32", connectivity=m, expansion_add=a.efc)
        keys = np.arange(base.shape[0], dtype=np.uint64)
        _, build = timed(lambda: idx.add(keys, base, threads=a.build_threads))
        mem = (rss_bytes() - before) / base.shape[0]
        for ef in a.ef:
            idx.expansion_search = max(ef, a.k)
            qps, rec = {}, None
            for t in a.threads:
                res, secs = best_of(a.passes, lambda: idx.search(queries, a.k, threads=t))
                qps[str(t)] = len(queries) / secs
                rec = recall_at(res.keys, gt, a.k)
            emit(out, lib="usearch", index=f"HNSW{m}", param="ef", value=ef, recall=rec, qps=qps,
                 build_s=build, mem_per_vec=mem)
        del idx


def ints(s):
    return [int(x) for x in s.split(",") if x]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--gt", required=True)
    p.add_argument("--metric", choices=["l2", "cosine"], default="l2")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--m", type=ints, default=[16, 32])
    p.add_argument("--sq-m", type=ints, default=[], help="M values of faiss HNSW<M>,SQ8 graphs to run")
    p.add_argument("--efc", type=int, default=200)
    p.add_argument("--ef", type=ints, default=[10, 20, 40, 80, 160, 320])
    p.add_argument("--nprobe", type=ints, default=[1, 2, 4, 8, 16, 32, 64])
    p.add_argument("--threads", type=ints, default=[1, 2])
    p.add_argument("--passes", type=int, default=1, help="timed passes per point; the fastest counts")
    p.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--faiss-ivf", type=lambda s: [x for x in s.split(";") if x], default=["IVF1024,PQ56"],
                   help="';'-separated faiss factory strings swept over --nprobe")
    p.add_argument("--libs", default="hnswlib,faiss,usearch")
    p.add_argument("--out", help="write JSON lines here instead of stdout")
    a = p.parse_args()

    base = np.ascontiguousarray(np.load(a.base), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(a.queries), dtype=np.float32)
    gt = np.load(a.gt).astype(np.int64)
    if gt.shape[0] != queries.shape[0] or gt.shape[1] < a.k:
        sys.exit(f"ground truth {gt.shape} does not cover {queries.shape[0]} queries x k={a.k}")
    out = open(a.out, "w") if a.out else sys.stdout
    runners = {"hnswlib": run_hnswlib, "faiss": run_faiss, "usearch": run_usearch}
    for lib in a.libs.split(","):
        lib = lib.strip()
        if lib not in runners:
            sys.exit(f"unknown peer library '{lib}' (expected hnswlib, faiss, usearch)")
        try:
            runners[lib](a, base, queries, gt, out)
        except ImportError as e:
            print(f"skipping {lib}: {e} (python3 -m pip install -q numpy faiss-cpu hnswlib usearch)",
                  file=sys.stderr)


if __name__ == "__main__":
    main()
