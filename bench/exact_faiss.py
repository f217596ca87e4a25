#!/usr/bin/env python3
"""FAISS side of `likeness-bench exact`.

Loads the base and query vectors the Rust side wrote (2-D float32 .npy), builds
IndexFlatL2 (metric l2) or IndexFlatIP (metric ip, on unit vectors = cosine),
and times, with a fixed number of threads:
  * single queries: one index.search call per query (first --single queries),
  * one batch: a single index.search call on the first --batch queries.
Writes a JSON file with the throughputs and the batch results (ids, distances as
FAISS reports them: squared L2 or inner product) for the agreement check.

Run by `likeness-bench exact`; can be used alone:
  python3 bench/exact_faiss.py --base b.npy --queries q.npy --metric l2 --threads 1 --out r.json
"""
import argparse
import json
import sys
import time

try:
    import numpy as np
    import faiss
except ImportError as e:  # pragma: no cover - environment problem
    sys.exit(f"exact_faiss.py: {e}; install with: python3 -m pip install -q numpy faiss-cpu")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--metric", choices=["l2", "ip"], required=True)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--single", type=int, default=100)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--out", required=True)
    a = p.parse_args()

    faiss.omp_set_num_threads(a.threads)
    base = np.ascontiguousarray(np.load(a.base), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(a.queries), dtype=np.float32)
    if base.ndim != 2 or queries.ndim != 2 or base.shape[1] != queries.shape[1]:
        sys.exit(f"exact_faiss.py: bad shapes base {base.shape} queries {queries.shape}")
    d = base.shape[1]
    index = faiss.IndexFlatL2(d) if a.metric == "l2" else faiss.IndexFlatIP(d)
    t0 = time.perf_counter()
    index.add(base)
    add_s = time.perf_counter() - t0

    ns = min(a.single, len(queries))
    nb = min(a.batch, len(queries))
    index.search(queries[:1], a.k)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(ns):
        index.search(queries[i : i + 1], a.k)
    single_qps = ns / (time.perf_counter() - t0)
    single_cpu_ms = (time.process_time() - c0) / ns * 1e3

    t0, c0 = time.perf_counter(), time.process_time()
    D, I = index.search(queries[:nb], a.k)
    batch_qps = nb / (time.perf_counter() - t0)
    batch_cpu_ms = (time.process_time() - c0) / nb * 1e3

    with open(a.out, "w") as f:
        json.dump(
            {
                "faiss_version": faiss.__version__,
                "threads": a.threads,
                "add_s": add_s,
                "single_qps": single_qps,
                "batch_qps": batch_qps,
                "single_cpu_ms": single_cpu_ms,
                "batch_cpu_ms": batch_cpu_ms,
                "batch_ids": I.tolist(),
                "batch_distances": D.tolist(),
            },
            f,
        )


if __name__ == "__main__":
    main()
