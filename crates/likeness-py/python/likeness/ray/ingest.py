"""Distributed ingest on Ray: images in, Parquet embeddings and ``S`` shard databases out.

Ray Data ``map_batches`` runs a pool of actors, each holding one :class:`likeness.Embedder`
(the model loaded once per actor); the driver routes each embedded batch, split by
:func:`likeness.ray.ids.shard_of`, to the shard's single :class:`~likeness.ray.shard.ShardWriter`.
A record is finished once its shard stores it: a re-run skips those (resumable), and a batch
retried after a dead worker (or a whole dead node: Ray Data restarts the actors elsewhere and
re-runs their batches; the writers are restartable actors whose calls are retried) is upserted
again by id (no duplicate). The writers stream the stored records to Parquet fragments as the
batches arrive (``<out>/embeddings/shard-NNN/part-NNNNNN.parquet``), each id exactly once
(:meth:`likeness.ray.shard.ShardWriter.reconcile_export`).
"""

from __future__ import annotations

import glob as globmod
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np

from .ids import record_id, shard_of
from .shard import NAMESPACE, FieldTuple, get_writer, shard_path, writer_name

__all__ = ["IngestReport", "ingest", "list_images", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
"""The extensions ``likeness index`` takes (``features::decode::IMAGE_EXTENSIONS``)."""

Source = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]], Any]
Progress = Callable[[int, int], Any]


@dataclass
class IngestReport:
    """What an ingest did, as ``likeness index --json`` reports it, plus the shard layout."""

    found: int = 0
    skipped: int = 0
    added: int = 0
    failed: List[Dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_second: float = 0.0
    shards: int = 0
    shard_counts: List[int] = field(default_factory=list)
    actors: int = 0
    parquet: List[str] = field(default_factory=list)
    parquet_caught_up: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def list_images(source: Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]) -> List[Dict[str, Optional[str]]]:
    """The images of a folder (walked as ``likeness index`` does: the folder resolved, hidden
    entries skipped, links not followed), a glob pattern, or a list of paths; each as
    ``{"path", "root", "label"}`` (``label``: the first folder below ``root``, the CLI's
    ImageFolder label). Sorted by path."""
    if isinstance(source, (str, os.PathLike)):
        s = os.fspath(source)
        if os.path.isdir(s):
            root = os.path.realpath(s)
            out: List[Dict[str, Optional[str]]] = []
            for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for f in filenames:
                    if f.startswith(".") or not _is_image(f):
                        continue
                    p = os.path.join(dirpath, f)
                    if not os.path.isfile(p) or os.path.islink(p):
                        continue
                    rel = os.path.relpath(p, root).split(os.sep)
                    out.append({"path": p, "root": root, "label": rel[0] if len(rel) > 1 else None})
            return sorted(out, key=lambda r: r["path"] or "")
        if any(c in s for c in "*?["):
            return [{"path": os.path.abspath(p), "root": None, "label": None} for p in sorted(globmod.glob(s, recursive=True)) if _is_image(p)]
        if os.path.isfile(s):
            return [{"path": os.path.abspath(s), "root": None, "label": None}]
        raise FileNotFoundError(f"no folder, file or glob match: {s}")
    return [{"path": os.path.abspath(os.fspath(p)), "root": None, "label": None} for p in source]


class _EmbedBatch:
    """The ``map_batches`` callable: one Embedder per actor, a batch of paths (or bytes) in,
    ids, vectors, metadata and errors out."""

    def __init__(self, features: List[str], model_dir: Optional[str], device: str, pid_dir: Optional[str], delay_s: float = 0.0) -> None:
        import likeness

        self.features = features
        self.delay_s = delay_s  # a test slows the job down to kill something in its middle
        self.embedder = likeness.Embedder(features, model_dir=model_dir, device=device)
        if pid_dir:  # lets a test find (and kill) a worker
            os.makedirs(pid_dir, exist_ok=True)
            with open(os.path.join(pid_dir, str(os.getpid())), "w") as f:
                f.write(str(os.getpid()))

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, Any]:
        paths = [str(p) for p in batch["path"]]
        has_bytes = "bytes" in batch
        inputs: List[Any] = [bytes(b) for b in batch["bytes"]] if has_bytes else paths
        emb = self.embedder.embed(inputs)
        if self.delay_s:
            time.sleep(self.delay_s)
        errors = {i: msg for i, msg in emb.errors}
        ids = np.array([int(x) for x in batch["id"]] if "id" in batch else [record_id(p) for p in paths], dtype=np.uint64)
        metas: List[str] = []
        for i, p in enumerate(paths):
            meta: Dict[str, Any] = {"path": p}
            for key in ("root", "label"):
                v = batch[key][i] if key in batch else None
                if v is not None and v == v:  # not None / NaN
                    meta[key] = str(v)
            if has_bytes:
                meta["size"] = len(inputs[i])
            else:
                try:
                    st = os.stat(p)
                    meta.update(size=st.st_size, mtime=st.st_mtime_ns // 1_000_000_000, mtime_ns=st.st_mtime_ns)
                except OSError:
                    pass
            info = emb.info[i]
            if info:
                meta.update(info)
            metas.append(json.dumps(meta))
        out: Dict[str, Any] = {
            "id": ids,
            "path": np.array(paths, dtype=object),
            "ok": np.asarray(emb.ok, dtype=bool),
            "error": np.array([errors.get(i, "") for i in range(len(paths))], dtype=object),
            "metadata": np.array(metas, dtype=object),
        }
        for f in self.features:
            out[f"vec_{f}"] = np.asarray(emb[f])
        return out


def _fields(features: Optional[Sequence[str]], index: str, model_dir: Optional[str]) -> List[FieldTuple]:
    import likeness

    emb = likeness.Embedder(list(features) if features else None, model_dir=model_dir)
    return [(f.name, f.dim, f.metric, f.index) for f in emb.fields(index)]


def _wait_names_free(names: List[str], timeout_s: float = 30.0, only_dead: bool = False) -> None:
    """Wait until the killed writers' names are released (a later ``get_writer`` must not find
    them); ``only_dead``: wait only for the names of dead actors (a live writer is kept)."""
    import ray

    deadline = time.monotonic() + timeout_s
    for name in names:
        while time.monotonic() < deadline:
            try:
                a = ray.get_actor(name, namespace=NAMESPACE)
            except ValueError:
                break
            if only_dead:
                try:
                    ray.get(a.count.remote(), timeout=5)
                    break  # alive
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                    pass
            time.sleep(0.1)


def _live_writers(paths: List[str], collection: str, fields: List[FieldTuple], timeout_s: float = 60.0) -> Any:
    """The shards' writers and the ids each stores. A writer left by a killed earlier job (its
    driver died: the actor dies with it, the name is released a moment later, the shard's lock
    when its process exits) is waited out and a new one started."""
    import ray

    deadline = time.monotonic() + timeout_s
    while True:
        writers = [get_writer(p, collection, fields) for p in paths]
        try:
            return writers, ray.get([w.ids.remote() for w in writers])
        except ray.exceptions.RayActorError:
            if time.monotonic() > deadline:
                raise
            _wait_names_free([writer_name(p) for p in paths], timeout_s=max(1.0, deadline - time.monotonic()), only_dead=True)
            time.sleep(0.5)


def ingest(
    source: Source,
    out: Union[str, "os.PathLike[str]"],
    *,
    shards: int = 3,
    features: Optional[Sequence[str]] = None,
    collection: str = "images",
    index: str = "Flat",
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    batch_size: int = 16,
    model_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
    device: str = "cpu",
    parquet: bool = True,
    parquet_rows: int = 4096,
    spread: bool = True,
    progress: Optional[Progress] = None,
    verbose: bool = False,
    _pid_dir: Optional[str] = None,
    _delay_s: float = 0.0,
) -> IngestReport:
    """Embed images on the Ray cluster (``ray.init()`` is called if needed) into ``S = shards``
    databases ``<out>/shard-NNN`` and, with ``parquet``, Parquet fragments
    ``<out>/embeddings/shard-NNN/part-NNNNNN.parquet`` written by the shard's writer as records
    are stored (``parquet_rows`` rows per fragment; read them all with
    ``pyarrow.parquet.read_table("<out>/embeddings")``). At the end of the job each shard's
    export holds each of its records exactly once: records a killed job stored but had not yet
    written to a fragment are caught up from the database (``report.parquet_caught_up``).
    ``spread``: place the embedding actors on as many nodes as possible (Ray's ``SPREAD``).

    ``source``: a folder, a glob, a list of paths, or a ``ray.data.Dataset`` with columns
    ``path`` and ``bytes`` (and optionally ``id``; else the id is ``record_id(path)``).
    Records already in their shard are skipped (a re-run resumes); a failed image is reported
    in ``failed`` (``{"path", "reason"}``) and retried by the next run. ``progress(done, total)``
    is called after each batch."""
    import ray

    if shards < 1 or actors < 1:
        raise ValueError("shards and actors must be >= 1")
    if not ray.is_initialized():
        ray.init()
    started = time.monotonic()
    mdir = os.fspath(model_dir) if model_dir else os.environ.get("LIKENESS_MODEL_DIR")
    fields = _fields(features, index, mdir)
    feats = [f[0] for f in fields]
    paths = [shard_path(out, s) for s in range(shards)]
    writers, stored = _live_writers(paths, collection, fields)
    exports = [os.path.join(os.path.abspath(os.fspath(out)), "embeddings", f"shard-{s:03d}") for s in range(shards)]
    export_args = [(e, parquet_rows) if parquet else (None, parquet_rows) for e in exports]
    done: set = set()
    for ids in stored:
        done.update(int(i) for i in ids)

    report = IngestReport(shards=shards, actors=actors)
    if isinstance(source, ray.data.Dataset):
        ds = source
        if done:
            ds = ds.filter(lambda r: int(r["id"] if "id" in r else record_id(r["path"])) not in done)
        total = ds.count()
        report.found = total + len(done)  # an estimate: the dataset is filtered before counting
        report.skipped = len(done)
    else:
        rows = list_images(source)
        report.found = len(rows)
        todo = [r for r in rows if record_id(r["path"] or "") not in done]
        report.skipped = len(rows) - len(todo)
        total = len(todo)
        ds = ray.data.from_items(todo) if todo else None

    added = 0
    if ds is not None and total:
        ds = ds.map_batches(
            _EmbedBatch,
            fn_constructor_kwargs={"features": feats, "model_dir": mdir, "device": device, "pid_dir": _pid_dir, "delay_s": _delay_s},
            batch_size=batch_size,
            concurrency=actors,
            num_cpus=cpus_per_actor,
            num_gpus=gpus_per_actor,
            batch_format="numpy",
            **({"scheduling_strategy": "SPREAD"} if spread else {}),
        )
        pending: List[Any] = []
        seen = 0
        for b in ds.iter_batches(batch_size=None, batch_format="numpy"):
            ok = np.asarray(b["ok"], dtype=bool)
            for p, e in zip(b["path"][~ok], b["error"][~ok]):
                report.failed.append({"path": str(p), "reason": str(e)})
            ids = np.asarray(b["id"], dtype=np.uint64)[ok]
            owner = np.array([shard_of(int(i), shards) for i in ids], dtype=np.int64)
            metas = [json.loads(m) for m in b["metadata"][ok]]
            for s in range(shards):
                sel = np.nonzero(owner == s)[0]
                if len(sel) == 0:
                    continue
                vecs = {f: np.asarray(b[f"vec_{f}"])[ok][sel] for f in feats}
                pending.append(writers[s].upsert.remote(ids[sel], vecs, [metas[i] for i in sel], *export_args[s]))
            seen += len(ok)
            if len(pending) > 4 * shards:
                added += sum(ray.get(pending))
                pending = []
            if progress:
                progress(seen, total)
            if verbose:
                print(f"likeness.ray.ingest: {seen}/{total} images", file=sys.stderr)
        added += sum(ray.get(pending))
    report.added = added
    ray.get([w.checkpoint.remote() for w in writers])
    report.shard_counts = ray.get([w.count.remote() for w in writers])
    if parquet:
        # Flush the buffered rows and catch up what a killed earlier run stored but never exported.
        done_exports = ray.get([w.reconcile_export.remote(e, parquet_rows) for w, e in zip(writers, exports)])
        report.parquet_caught_up = sum(d["caught_up"] for d in done_exports)
        report.parquet = exports
        for s in range(shards):  # the single file per shard of earlier versions: superseded by the fragments
            legacy = os.path.join(os.path.dirname(exports[s]), f"shard-{s:03d}.parquet")
            if os.path.exists(legacy):
                os.remove(legacy)
    for w in writers:  # free the shard locks (the Serve router starts its own writers)
        ray.get(w.close.remote())
        ray.kill(w)
    _wait_names_free([writer_name(p) for p in paths])
    report.seconds = time.monotonic() - started
    embedded = added + len(report.failed)
    report.images_per_second = embedded / report.seconds if report.seconds > 0 else 0.0
    return report
