"""Concurrency: the GIL is released during searches, inserts and embedding."""

import threading
import time

import numpy as np

import likeness
from likeness import VectorField


def test_eight_threads_search_while_one_inserts(tmp_path, rng):
    dim = 8  # low dimension: the HNSW graph finds a stored vector itself
    base = rng.standard_normal((2000, dim)).astype(np.float32)
    extra = rng.standard_normal((2000, dim)).astype(np.float32)
    with likeness.Database(tmp_path / "db") as db:
        c = db.create_collection("c", [VectorField("emb", dim, "l2", "HNSW16")])
        c.insert(np.arange(2000), {"emb": base})
        errors, done = [], threading.Event()
        searches = [0] * 8

        def searcher(t):
            try:
                while not done.is_set():
                    i = (searches[t] * 8 + t) % 2000
                    res = c.search(base[i], k=5, ef=64)
                    assert res.ids[0] == i, (i, res.ids)
                    batch = c.search(base[:16], k=3)
                    assert (batch.ids[:, 0] == np.arange(16)).all()
                    searches[t] += 1
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        def inserter():
            try:
                for b in range(20):
                    ids = np.arange(2000 + b * 100, 2100 + b * 100)
                    c.insert(ids, {"emb": extra[b * 100 : (b + 1) * 100]})
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=searcher, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        writer = threading.Thread(target=inserter)
        writer.start()
        writer.join()
        done.set()
        for t in threads:
            t.join()
        assert errors == []
        assert c.count() == 4000
        assert all(s > 0 for s in searches), searches
        res = c.search(extra[1999], k=1)
        assert res.ids[0] == 3999


def test_python_thread_runs_during_a_long_embedding(photos):
    emb = likeness.Embedder(["color", "texture", "phash"])
    items = [str(p) for p in photos] * 6
    ticks = 0
    stop = threading.Event()

    def counter():
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    result = {}

    def work():
        result["emb"] = emb.embed(items)

    t = threading.Thread(target=counter)
    t.start()
    time.sleep(0.05)
    start_ticks = ticks
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    during = ticks - start_ticks
    stop.set()
    t.join()
    assert result["emb"].errors == []
    # With the GIL held for the whole embedding the counter could only run in the short
    # switches before and after it; released, it runs the whole time.
    assert elapsed > 0.2, f"embedding too quick to tell ({elapsed:.3f} s)"
    rate_during = during / elapsed
    assert during > 10_000 and rate_during > 100_000, (during, elapsed)
