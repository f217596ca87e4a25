#!/usr/bin/env python3
"""What the Python binding adds to a search, measured in instructions (valgrind's callgrind),
which other processes' load does not change the way it changes seconds.

For each index spec and ef, the same collection is searched one query at a time
* from Python: `for q in queries[:n]: coll.search(q, 10, ef=ef)` (the wheel), and
* from Rust: `search_loop` (crates/vecdb/examples/search_loop.rs), the same `Collection::search`
  call per query with the same options (no metadata),
each at two query counts; the instruction difference divided by the extra queries is the cost per
query with process start, imports and the collection's open cancelled out. The binding's share
is python / rust - 1.

  cargo build --workspace --profile test --examples && bash scripts/python.sh --no-test
  .venv-py/bin/python bench/binding_cost.py --data data/fashion-mnist \
      --search-loop target/debug/examples/search_loop --out bench/results/binding-cost.json

Fashion-MNIST (60k x 784, L2), the first test images as queries, M = 16, efConstruction = 200.
"""

import argparse
import gzip
import json
import pathlib
import re
import subprocess
import sys
import tempfile

import numpy as np

import likeness

PY_LOOP = """
import sys, numpy as np, likeness
db, field, qpath, dim, n, ef = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
queries = np.fromfile(qpath, dtype=np.float32).reshape(-1, dim)
coll = likeness.Database(db, read_only=True)["fm"]
hits = 0
for q in queries[:n]:
    hits += len(coll.search(q, 10, field=field, ef=ef).ids)
print(hits)
"""


def read_idx_images(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(n, rows * cols).astype(np.float32)


def instructions(cmd):
    """Instructions the whole process executed (callgrind's "Collected")."""
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *cmd],
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{cmd[0]} failed under valgrind:\n{r.stderr[-2000:]}")
    m = re.search(r"Collected\s*:\s*(\d+)", r.stderr)
    if not m:
        sys.exit(f"no instruction count in valgrind's output:\n{r.stderr[-2000:]}")
    return int(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/fashion-mnist")
    ap.add_argument("--search-loop", default="target/debug/examples/search_loop")
    ap.add_argument("--specs", default="HNSW16,HNSW16;SQ8", help="';'-free list: use ';' for ',' inside a spec")
    ap.add_argument("--ef", default="20,80")
    ap.add_argument("--queries", type=int, nargs=2, default=[20, 220], help="the two query counts")
    ap.add_argument("--out")
    a = ap.parse_args()
    base = read_idx_images(pathlib.Path(a.data) / "train-images-idx3-ubyte.gz")
    queries = read_idx_images(pathlib.Path(a.data) / "t10k-images-idx3-ubyte.gz")[: max(a.queries)]
    dim = base.shape[1]
    specs = [s.replace(";", ",") for s in a.specs.split(",")]
    efs = [int(e) for e in a.ef.split(",")]
    n0, n1 = a.queries
    results = []
    with tempfile.TemporaryDirectory(prefix="binding-cost-") as tmp:
        qpath = pathlib.Path(tmp) / "q.f32"
        queries.astype("<f4").tofile(qpath)
        loop = pathlib.Path(tmp) / "loop.py"
        loop.write_text(PY_LOOP)
        for spec in specs:
            db = pathlib.Path(tmp) / spec.replace(",", "_")
            with likeness.Database(db) as d:
                c = d.create_collection("fm", [likeness.VectorField("vector", dim, "l2", spec)])
                for s in range(0, len(base), 10_000):
                    c.insert(np.arange(s, min(s + 10_000, len(base))), {"vector": base[s : s + 10_000]})
            for ef in efs:
                args = [str(db), "vector", str(qpath), str(dim)]
                py = [instructions([sys.executable, str(loop), *args, str(n), str(ef)]) for n in (n0, n1)]
                rs = [instructions([a.search_loop, str(db), "fm", "vector", str(qpath), str(dim), str(n), str(ef)])
                      for n in (n0, n1)]
                per_py = (py[1] - py[0]) / (n1 - n0)
                per_rs = (rs[1] - rs[0]) / (n1 - n0)
                row = {"spec": spec, "ef": ef, "python_instr_per_query": per_py, "rust_instr_per_query": per_rs,
                       "binding_share": per_py / per_rs - 1}
                results.append(row)
                print(f"{spec:>12} ef {ef:>3}: Python {per_py:,.0f} instr/query, Rust {per_rs:,.0f}: "
                      f"the binding adds {100 * row['binding_share']:+.1f}%", flush=True)
    if a.out:
        pathlib.Path(a.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
