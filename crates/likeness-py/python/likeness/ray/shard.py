"""Shard databases and their single writers.

A sharded collection is ``S`` likeness databases ``<root>/shard-000 … shard-<S-1>``, each
holding collection ``<collection>`` for the records :func:`likeness.ray.ids.shard_of` routes
to it. A database has one writer (vecdb takes a lock), so every write of a shard goes through
one Ray actor, :class:`ShardWriter`, found by name (``likeness-writer:<absolute path>`` in
namespace ``likeness``): ingest jobs and the Serve router share it. Upserts by id are
idempotent, so a retried batch stores no duplicate.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ["ShardWriter", "shard_path", "writer_name", "get_writer", "FieldTuple"]

FieldTuple = Tuple[str, int, str, str]
"""A vector field as ``(name, dim, metric, index)``."""

NAMESPACE = "likeness"


def shard_path(root: "os.PathLike[str] | str", shard: int) -> str:
    """The database directory of shard ``shard`` under ``root``."""
    return os.path.join(os.path.abspath(os.fspath(root)), f"shard-{shard:03d}")


def writer_name(path: str) -> str:
    """The Ray actor name of the writer of the shard database at ``path``."""
    return f"likeness-writer:{os.path.abspath(path)}"


class ShardWriter:
    """The one writer of a shard database (run as a Ray actor; usable directly too)."""

    def __init__(self, path: str, collection: str, fields: Sequence[FieldTuple]) -> None:
        import likeness

        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.path = os.path.abspath(path)
        self.db = likeness.Database(self.path)
        specs = [likeness.VectorField(*f) for f in fields]
        self.coll = self.db.create_collection(collection, specs, exist_ok=True)

    def ids(self) -> np.ndarray:
        """The ids stored in the shard."""
        return self.coll.ids()

    def count(self) -> int:
        return self.coll.count()

    def upsert(self, ids: np.ndarray, vectors: Dict[str, np.ndarray], metadata: List[Dict[str, Any]]) -> int:
        """Insert or replace records (idempotent); returns how many were written."""
        ids = np.asarray(ids, dtype=np.uint64)
        if len(ids) == 0:
            return 0
        self.coll.upsert(ids, {k: np.ascontiguousarray(v) for k, v in vectors.items()}, list(metadata))
        return len(ids)

    def delete(self, ids: np.ndarray) -> int:
        return self.coll.delete(np.asarray(ids, dtype=np.uint64))

    def checkpoint(self) -> None:
        self.coll.checkpoint()

    def export_parquet(self, dest: str) -> int:
        """Write every record of the shard to the Parquet file ``dest`` (atomically: a temporary
        file renamed); columns ``id`` (uint64), ``path``, ``metadata`` (JSON text) and one list
        column per vector field. Returns the number of rows."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        ids: List[int] = []
        paths: List[Optional[str]] = []
        metas: List[str] = []
        vecs: Dict[str, List[np.ndarray]] = {f.name: [] for f in self.coll.schema}
        for rec in self.coll:
            ids.append(rec.id)
            paths.append(rec.metadata.get("path"))
            metas.append(json.dumps(rec.metadata, sort_keys=True))
            for name in vecs:
                vecs[name].append(rec.vectors[name])
        cols: Dict[str, Any] = {
            "id": pa.array(ids, type=pa.uint64()),
            "path": pa.array(paths, type=pa.string()),
            "metadata": pa.array(metas, type=pa.string()),
        }
        for f in self.coll.schema:
            inner = pa.uint8() if f.dtype == "uint8" else pa.float32()
            width = len(vecs[f.name][0]) if vecs[f.name] else 0
            flat = np.concatenate(vecs[f.name]) if vecs[f.name] else np.zeros(0, np.uint8 if f.dtype == "uint8" else np.float32)
            cols[f.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=inner), width) if width else pa.array([], pa.list_(inner))
        table = pa.table(cols)
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        tmp = f"{dest}.tmp-{os.getpid()}"
        pq.write_table(table, tmp)
        os.replace(tmp, dest)
        return len(ids)

    def close(self) -> None:
        self.db.close()


def get_writer(path: str, collection: str, fields: Sequence[FieldTuple]) -> Any:
    """The writer actor of the shard at ``path``: the running one, or a new one (restarted by
    Ray if its process dies; a retried call is safe since upserts are idempotent)."""
    import ray

    cls = ray.remote(ShardWriter)
    return cls.options(
        name=writer_name(path),
        namespace=NAMESPACE,
        get_if_exists=True,
        max_restarts=-1,
        max_task_retries=-1,
        num_cpus=0,
    ).remote(path, collection, list(fields))
