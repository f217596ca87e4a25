#!/usr/bin/env python3
"""likeness.ray figures for BENCHMARKS.md: ingest images/s with 1 and 2 embedding actors, and
search latency (p50/p99) through Ray Serve with S = 1, 2, 4 shards.

usage: .venv-ray/bin/python bench/ray_bench.py IMAGES [--features color,phash] [--queries 300]
       [--cpus 2] [--actors 1,2] [--shards 1,2,4] [--replicas 1]

(--actors "" or --shards "" skips that part.)

IMAGES is a folder (e.g. data/photos plus rendered Fashion-MNIST: bench/render_fashion_mnist.py).
A local `ray.init(num_cpus=CPUS)` cluster; each run ingests into a fresh temporary directory.
Search: id queries (k = 10) sent one at a time from one client over HTTP to the router.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import tempfile
import time

import numpy as np
import requests


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("images")
    ap.add_argument("--features", default="color,phash")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--actors", default="1,2")
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--replicas", type=int, default=1, help="replicas per shard")
    args = ap.parse_args()
    features = args.features.split(",")

    import ray
    from ray import serve

    import likeness.ray as lr

    tmp = tempfile.mkdtemp(prefix="ray-bench-")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local cluster
    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="warning", _temp_dir=os.path.join(tmp, "ray"))
    out: dict = {"features": features, "cpus": args.cpus, "ingest": [], "search": []}
    try:
        for a in (int(x) for x in args.actors.split(",") if x):
            dest = os.path.join(tmp, f"ingest-{a}")
            rep = lr.ingest(args.images, dest, shards=2, features=features, actors=a, cpus_per_actor=1.0, batch_size=16)
            # images/s of the whole job (listing, actor start with model load, embedding, writes, Parquet)
            out["ingest"].append({"actors": a, "images": rep.added, "seconds": round(rep.seconds, 2), "images_per_second": round(rep.images_per_second, 1)})
            print(json.dumps(out["ingest"][-1]), flush=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for n in (int(x) for x in args.shards.split(",") if x):
            dest = os.path.join(tmp, f"search-{n}")
            lr.ingest(args.images, dest, shards=n, features=features, actors=1, cpus_per_actor=1.0, parquet=False)
            serve.run(lr.build_app(dest, n, replicas=args.replicas), name=f"bench{n}", route_prefix="/")
            base = f"http://127.0.0.1:{port}/api/collections/images/search"
            all_ids = []
            for s in range(n):
                with likeness_db(lr.shard_path(dest, s)) as db:
                    all_ids += [str(int(i)) for i in db["images"].ids()]
            rng = np.random.default_rng(1)
            sess = requests.Session()
            for q in rng.choice(all_ids, 20):  # warm-up
                sess.post(base, json={"id": q, "k": 10}, timeout=30)
            lat = []
            for q in rng.choice(all_ids, args.queries):
                t0 = time.perf_counter()
                r = sess.post(base, json={"id": q, "k": 10}, timeout=30)
                lat.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and not r.json()["partial"], r.text
            lat.sort()
            row = {"shards": n, "replicas": args.replicas, "queries": len(lat), "p50_ms": round(statistics.median(lat), 2),
                   "p99_ms": round(lat[int(0.99 * (len(lat) - 1))], 2), "qps_1_client": round(1000 * len(lat) / sum(lat), 1)}
            out["search"].append(row)
            print(json.dumps(row), flush=True)
            serve.delete(f"bench{n}")
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(out, indent=1))


def likeness_db(path: str):
    import likeness

    return likeness.Database(path, read_only=True)


if __name__ == "__main__":
    main()
