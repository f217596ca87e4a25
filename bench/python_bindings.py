#!/usr/bin/env python3
"""The Python bindings against hnswlib's and FAISS's, in one process, on Fashion-MNIST; and the
bindings against the Rust figures of the same build (the `likeness` CLI), to measure what the
binding adds.

  python bench/python_bindings.py --data data/fashion-mnist --cli target/release/likeness \
      --ef 20,80 --out bench/results/python-bindings.json

Per index (HNSW16 and HNSW16,SQ8; M = 16, efConstruction = 200, k = 10, 60k x 784 L2):
* single-query QPS: one `search` call per query on one Python thread (likeness: `Collection.search`,
  hnswlib: `knn_query(q, num_threads=1)`, FAISS: `index.search(q[None])` with 1 OpenMP thread);
* batch QPS: one call for all queries on all cores;
* the Rust figures of the same build: batch = `likeness vectors search --json` on the same database
  (the Collection's search_batch timed inside the process); 1 thread = `likeness-bench ann
  --threads 1` (--bench-cli, default: beside --cli; the bare index, all queries in one call on a
  1-thread pool: no Python, no collection, no per-call cost at all).
Also `Embedder.embed` images/s (files, and the same files' bytes in memory) against `likeness index`
on the same files (--images DIR).
Needs: the likeness wheel (scripts/python.sh, LIKENESS_PY_PROFILE=release), numpy, hnswlib, faiss-cpu.
"""

import argparse
import gzip
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import likeness


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32)


def best_of(passes, fn):
    best, out = float("inf"), None
    for _ in range(passes):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def recall(found, gt, k=10):
    return float(np.mean([len(set(f[:k].tolist()) & set(g[:k].tolist())) / k for f, g in zip(found, gt)]))


def ground_truth(base, queries, k=10):
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    return index.search(queries, k)[1]


def bench_likeness(spec, base, queries, efs, passes, tmp, cli):
    path = pathlib.Path(tmp) / spec.replace(",", "_")
    out = {}
    with likeness.Database(path) as db:
        c = db.create_collection("fm", [likeness.VectorField("vector", base.shape[1], "l2", spec)])
        t = time.perf_counter()
        for s in range(0, len(base), 10_000):
            c.insert(np.arange(s, min(s + 10_000, len(base))), {"vector": base[s : s + 10_000]})
        out["build_s"] = time.perf_counter() - t
        for ef in efs:
            single, ts = best_of(passes, lambda: [c.search(q, 10, ef=ef).ids for q in queries])
            batch, tb = best_of(passes, lambda: c.search(queries, 10, ef=ef).ids)
            out[ef] = {"single_qps": len(queries) / ts, "batch_qps": len(queries) / tb,
                       "single_ids": np.array(single), "batch_ids": batch}
    if cli:
        np.save(pathlib.Path(tmp) / "q.npy", queries)
        for ef in efs:
            best = 0.0
            for _ in range(passes):
                r = subprocess.run([cli, "vectors", "search", str(pathlib.Path(tmp) / "q.npy"), "--db", str(path),
                                    "--collection", "fm", "-k", "10", "--ef", str(ef), "--json"],
                                   capture_output=True, text=True, check=True)
                best = max(best, json.loads(r.stdout)["qps"])
            out[ef]["rust_batch_qps"] = best
    return out


def bench_rust_single(bench_cli, specs, efs, nq, passes):
    """One-thread QPS of the Rust index (no Python, no collection) from `likeness-bench ann`: all
    queries in one batched call on a 1-thread pool."""
    r = subprocess.run([bench_cli, "ann", "--dataset", "fashion-mnist", "--index", ";".join(specs),
                        "--ef", ",".join(map(str, efs)), "--threads", "1", "--queries", str(nq),
                        "--passes", str(passes), "--peers", "none", "--json"],
                       capture_output=True, text=True, check=True)
    doc = json.loads(r.stdout[r.stdout.index("{"):])
    return {(row["index"], int(row["value"])): row["qps"]["1"] for row in doc["rows"] if row["lib"] == "likeness"}


def bench_hnswlib(base, queries, efs, passes):
    import hnswlib

    index = hnswlib.Index(space="l2", dim=base.shape[1])
    t = time.perf_counter()
    index.init_index(max_elements=len(base), ef_construction=200, M=16)
    index.add_items(base, np.arange(len(base)), num_threads=os.cpu_count())
    out = {"build_s": time.perf_counter() - t}
    for ef in efs:
        index.set_ef(ef)
        single, ts = best_of(passes, lambda: [index.knn_query(q, k=10, num_threads=1)[0][0] for q in queries])
        batch, tb = best_of(passes, lambda: index.knn_query(queries, k=10, num_threads=os.cpu_count())[0])
        out[ef] = {"single_qps": len(queries) / ts, "batch_qps": len(queries) / tb,
                   "single_ids": np.array(single), "batch_ids": batch}
    return out


def bench_faiss(kind, base, queries, efs, passes):
    import faiss

    d = base.shape[1]
    index = faiss.IndexHNSWFlat(d, 16) if kind == "HNSW16" else faiss.IndexHNSWSQ(d, faiss.ScalarQuantizer.QT_8bit, 16)
    index.hnsw.efConstruction = 200
    faiss.omp_set_num_threads(os.cpu_count())
    t = time.perf_counter()
    if not index.is_trained:
        index.train(base)
    index.add(base)
    out = {"build_s": time.perf_counter() - t}
    for ef in efs:
        index.hnsw.efSearch = ef
        faiss.omp_set_num_threads(1)
        single, ts = best_of(passes, lambda: [index.search(q[None], 10)[1][0] for q in queries])
        faiss.omp_set_num_threads(os.cpu_count())
        batch, tb = best_of(passes, lambda: index.search(queries, 10)[1])
        out[ef] = {"single_qps": len(queries) / ts, "batch_qps": len(queries) / tb,
                   "single_ids": np.array(single), "batch_ids": batch}
    return out


def bench_embed(images_dir, cli, model_dir, limit, tmp):
    files = sorted(p for p in pathlib.Path(images_dir).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    files = files[:limit]
    sub = pathlib.Path(tmp) / "images"
    sub.mkdir()
    for i, f in enumerate(files):
        shutil.copyfile(f, sub / f"{i:05d}{f.suffix}")  # copies: the CLI's walk does not follow symlinks
    emb = likeness.Embedder(["cnn"], model_dir=model_dir)
    paths = [str(p) for p in sorted(sub.iterdir())]
    emb.embed(paths[:32])  # warm up: model load, page cache
    t = time.perf_counter()
    res = emb.embed(paths)
    py_s = time.perf_counter() - t
    out = {"images": len(paths), "errors": len(res.errors), "python_images_per_s": len(paths) / py_s}
    # In-memory inputs (the encoded bytes) go through the same batched pipeline.
    blobs = [pathlib.Path(p).read_bytes() for p in paths]
    t = time.perf_counter()
    res = emb.embed(blobs)
    out["python_bytes_images_per_s"] = len(blobs) / (time.perf_counter() - t)
    out["bytes_errors"] = len(res.errors)
    if cli:
        env = dict(os.environ, LIKENESS_MODEL_DIR=str(model_dir))
        t = time.perf_counter()
        subprocess.run([cli, "index", str(sub), "--db", str(pathlib.Path(tmp) / "embed-db"), "--features", "cnn"],
                       capture_output=True, text=True, check=True, env=env)
        out["cli_index_images_per_s"] = len(paths) / (time.perf_counter() - t)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--cli", help="the likeness binary of the same build (Rust figures)")
    ap.add_argument("--bench-cli", help="the likeness-bench binary (default: beside --cli)")
    ap.add_argument("--ef", default="20,80")
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--images", help="a folder of images for the Embedder benchmark")
    ap.add_argument("--image-limit", type=int, default=1000)
    ap.add_argument("--model-dir", default=os.environ.get("LIKENESS_MODEL_DIR", "data/models"))
    ap.add_argument("--out")
    a = ap.parse_args()
    efs = [int(x) for x in a.ef.split(",")]
    data = pathlib.Path(a.data)
    base = read_idx_images(data / "train-images-idx3-ubyte.gz")
    queries = read_idx_images(data / "t10k-images-idx3-ubyte.gz")[: a.queries]
    gt = ground_truth(base, queries)
    report = {"machine": os.uname().machine, "cpus": os.cpu_count(), "n": len(base), "queries": len(queries),
              "efs": efs, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for spec in ("HNSW16", "HNSW16,SQ8"):
            results[("likeness", spec)] = bench_likeness(spec, base, queries, efs, a.passes, tmp, a.cli)
            results[("faiss", spec)] = bench_faiss(spec, base, queries, efs, a.passes)
        results[("hnswlib", "HNSW16")] = bench_hnswlib(base, queries, efs, a.passes)
        rust_single = {}
        bench_cli = a.bench_cli or (a.cli and str(pathlib.Path(a.cli).with_name("likeness-bench")))
        if bench_cli:
            try:
                rust_single = bench_rust_single(bench_cli, ["HNSW16", "HNSW16,SQ8"], efs, len(queries), a.passes)
            except (OSError, subprocess.CalledProcessError) as e:
                print(f"Rust 1-thread figures skipped: {e}", file=sys.stderr, flush=True)
        for (lib, spec), r in results.items():
            for ef in efs:
                row = {"lib": lib, "index": spec, "ef": ef, "build_s": round(r["build_s"], 2),
                       "recall_single": round(recall(r[ef]["single_ids"], gt), 4),
                       "recall_batch": round(recall(r[ef]["batch_ids"], gt), 4),
                       "single_qps": round(r[ef]["single_qps"]), "batch_qps": round(r[ef]["batch_qps"])}
                if lib == "likeness":
                    if "rust_batch_qps" in r[ef]:
                        row["rust_batch_qps"] = round(r[ef]["rust_batch_qps"])
                    if (spec, ef) in rust_single and rust_single[(spec, ef)]:
                        row["rust_single_qps"] = round(rust_single[(spec, ef)])
                report["rows"].append(row)
                print(json.dumps(row), flush=True)
        if a.images:
            report["embed"] = bench_embed(a.images, a.cli, a.model_dir, a.image_limit, tmp)
            print(json.dumps(report["embed"]), flush=True)
    if a.out:
        pathlib.Path(a.out).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
