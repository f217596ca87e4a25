"""Shard databases and their single writers.

A sharded collection is ``S`` likeness databases ``<root>/shard-000 … shard-<S-1>``, each
holding collection ``<collection>`` for the records :func:`likeness.ray.ids.shard_of` routes
to it. A database has one writer (vecdb takes a lock), so every write of a shard goes through
one Ray actor, :class:`ShardWriter`, found by name (``likeness-writer:<absolute path>`` in
namespace ``likeness``): ingest jobs and the Serve router share it. Upserts by id are
idempotent, so a retried batch stores no duplicate. An ingest job also streams the stored
records to Parquet fragments through the writer (:meth:`ShardWriter.flush_export`,
:meth:`ShardWriter.reconcile_export`): each id exactly once, whatever was retried or resumed.
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

    def upsert(self, ids: np.ndarray, vectors: Dict[str, np.ndarray], metadata: List[Dict[str, Any]],
               export: Optional[str] = None, export_rows: int = 4096) -> int:
        """Insert or replace records (idempotent); returns how many were written.

        ``export``: a folder of Parquet fragments (``<out>/embeddings/shard-NNN``) the stored
        records are also streamed to, ``export_rows`` rows per fragment (see :meth:`flush_export`)."""
        ids = np.asarray(ids, dtype=np.uint64)
        if len(ids) == 0:
            return 0
        vectors = {k: np.ascontiguousarray(v) for k, v in vectors.items()}
        self.coll.upsert(ids, vectors, list(metadata))
        if export:
            self._export_rows(export, ids, vectors, list(metadata), export_rows)
        return len(ids)

    def delete(self, ids: np.ndarray) -> int:
        return self.coll.delete(np.asarray(ids, dtype=np.uint64))

    def checkpoint(self) -> None:
        self.coll.checkpoint()

    # --- the streamed Parquet export ------------------------------------------------------
    # A shard's export is a folder of fragments ``part-NNNNNN.parquet`` (written atomically: a
    # hidden temporary file renamed; Parquet readers skip hidden files), each a batch of records
    # in the order they were stored. The shard database is the ledger: a record stored but not
    # yet exported (a fragment still buffered when the job was killed) is caught up from the
    # database by :meth:`reconcile_export`; a record already in a fragment is never exported
    # again (``_exported``, read from the fragments' id columns when the writer starts
    # exporting), so retried batches and resumed jobs give each id exactly once.
    def _export_state(self, folder: str) -> Dict[str, Any]:
        st = getattr(self, "_export", None)
        if st is None or st["folder"] != folder:
            import pyarrow.parquet as pq

            os.makedirs(folder, exist_ok=True)
            exported: set = set()
            seq = 0
            for name in sorted(os.listdir(folder)):
                if name.startswith("part-") and name.endswith(".parquet"):
                    exported.update(pq.read_table(os.path.join(folder, name), columns=["id"]).column("id").to_pylist())
                    seq = max(seq, int(name[5:-8]) + 1)
            st = {"folder": folder, "exported": exported, "seq": seq, "buf": []}
            self._export = st
        return st

    def _export_rows(self, folder: str, ids: np.ndarray, vectors: Dict[str, np.ndarray],
                     metadata: List[Dict[str, Any]], rows: int) -> None:
        st = self._export_state(folder)
        buffered = {r[0] for r in st["buf"]}
        for i, id_ in enumerate(ids.tolist()):
            if id_ in st["exported"] or id_ in buffered:
                continue
            buffered.add(id_)
            st["buf"].append((id_, metadata[i], {k: v[i] for k, v in vectors.items()}))
        if len(st["buf"]) >= max(1, rows):
            self.flush_export(folder)

    def flush_export(self, folder: str) -> int:
        """Write the buffered records as one fragment; returns its row count (0: nothing buffered)."""
        st = self._export_state(folder)
        if not st["buf"]:
            return 0
        rows = st["buf"]
        dest = os.path.join(folder, f"part-{st['seq']:06d}.parquet")
        _write_parquet(dest, self.coll.schema, [r[0] for r in rows], [r[1] for r in rows], {f.name: [r[2][f.name] for r in rows] for f in self.coll.schema})
        st["seq"] += 1
        st["exported"].update(r[0] for r in rows)
        st["buf"] = []
        return len(rows)

    def reconcile_export(self, folder: str, rows: int = 4096) -> Dict[str, int]:
        """Make the export hold every stored record exactly once: flush the buffer, then export
        the records the database holds and no fragment does (a killed job's unflushed buffer).
        Returns ``{"rows": exported ids, "caught_up": records exported from the database}``."""
        self.flush_export(folder)
        st = self._export_state(folder)
        missing = [int(i) for i in self.coll.ids().tolist() if int(i) not in st["exported"]]
        for start in range(0, len(missing), max(1, rows)):
            part = missing[start : start + max(1, rows)]
            recs = [self.coll.get(i) for i in part]
            recs = [r for r in recs if r is not None]
            if not recs:
                continue
            ids = np.array([r.id for r in recs], dtype=np.uint64)
            vecs = {f.name: np.stack([np.asarray(r.vectors[f.name]) for r in recs]) for f in self.coll.schema}
            self._export_rows(folder, ids, vecs, [r.metadata for r in recs], len(recs))
            self.flush_export(folder)
        return {"rows": len(st["exported"]), "caught_up": len(missing)}

    def close(self) -> None:
        self.db.close()


def _write_parquet(dest: str, schema: Sequence[Any], ids: List[int], metas: List[Dict[str, Any]], vecs: Dict[str, List[np.ndarray]]) -> None:
    """One Parquet file (atomically: a hidden temporary file renamed): ``id`` (uint64),
    ``path``, ``metadata`` (JSON text) and one fixed-size list column per vector field."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols: Dict[str, Any] = {
        "id": pa.array(ids, type=pa.uint64()),
        "path": pa.array([m.get("path") for m in metas], type=pa.string()),
        "metadata": pa.array([json.dumps(m, sort_keys=True) for m in metas], type=pa.string()),
    }
    for f in schema:
        inner = pa.uint8() if f.dtype == "uint8" else pa.float32()
        width = len(vecs[f.name][0]) if vecs[f.name] else 0
        flat = np.concatenate(vecs[f.name]) if vecs[f.name] else np.zeros(0, np.uint8 if f.dtype == "uint8" else np.float32)
        cols[f.name] = pa.FixedSizeListArray.from_arrays(pa.array(flat, type=inner), width) if width else pa.array([], pa.list_(inner))
    folder, name = os.path.split(os.path.abspath(dest))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp-{os.getpid()}")
    pq.write_table(pa.table(cols), tmp)
    os.replace(tmp, dest)


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
