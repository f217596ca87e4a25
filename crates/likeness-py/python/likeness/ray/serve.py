"""Sharded search with Ray Serve: one deployment per shard and a router answering the search
routes of ``likeness serve``.

* ``shard-<i>`` (:class:`ShardSearcher`): replicas (``replicas``, per shard if a list) open
  shard ``i`` read-only and follow its writer (``Database.refresh`` at most every
  ``refresh_s``); they search it with the filter.
* ``router`` (:class:`Router`, a FastAPI ingress): a query (a vector, a stored id, or an
  uploaded image embedded once) goes to every shard; the per-shard top-k lists are merged
  exactly (by distance, then id: the order of one database). An id query first goes to the
  owning shard alone, which looks the vector up *and* searches with it in the same call; the
  other shards get the vector next (one round trip instead of two with ``S = 1``, and one shard
  call fewer for any ``S``). A call that fails because its replica died is retried on another
  replica of the shard until ``shard_timeout_s``; a shard that does not answer by then (no live
  replica) is named in ``missing_shards`` and the answer carries ``partial: true``. Upserts go
  to the owning shard's single writer actor.

Build the application with :func:`build_app` and run it with ``ray.serve.run``.
"""


import asyncio
import json
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from .ids import shard_of
from .shard import get_writer, shard_path

__all__ = ["ShardSearcher", "Router", "build_app", "PREFERRED_FEATURES", "MAX_K"]

PREFERRED_FEATURES = ("cnn", "cnn-lite2", "color", "texture", "phash", "dhash")
"""The default feature order of ``likeness serve`` (``catalog::PREFERRED_FEATURES``)."""
MAX_K = 10_000
KNOBS = ("ef", "nprobe", "checks", "rerank")
MAX_KNOB = 100_000


class ApiError(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _fields_json(schema: Sequence[Any]) -> List[Dict[str, Any]]:
    return [{"name": f.name, "dim": f.dim, "metric": f.metric, "index": f.index} for f in schema]


class ShardSearcher:
    """One replica of a shard: the shard database opened read-only, searched on request."""

    def __init__(self, path: str, collection: str, shard: int, refresh_s: float = 0.5) -> None:
        import likeness

        self.path, self.name, self.shard, self.refresh_s = path, collection, shard, refresh_s
        self.db = likeness.Database(path, read_only=True)
        self._last = time.monotonic()
        try:
            self.replica = serve.get_replica_context().replica_id.unique_id
        except Exception:  # outside Serve
            self.replica = f"pid-{os.getpid()}"

    def _coll(self) -> Any:
        now = time.monotonic()
        if now - self._last >= self.refresh_s:
            self.db.refresh()
            self._last = now
        return self.db.collection(self.name)

    def info(self) -> Dict[str, Any]:
        """The shard, this replica, its record count and the collection's fields."""
        c = self._coll()
        return {"shard": self.shard, "replica": self.replica, "pid": os.getpid(), "count": c.count(), "fields": _fields_json(c.schema)}

    def vector(self, id: int, feature: str) -> Optional[np.ndarray]:
        """The stored vector of record ``id`` (``None`` when this shard has no such record)."""
        rec = self._coll().get(int(id))
        return None if rec is None else rec.vectors[feature]

    def search_id(self, id: int, q: Dict[str, Any]) -> Dict[str, Any]:
        """Search by a record this shard owns: its stored vector for ``q["feature"]`` and the
        shard's hits for it (the record itself left out): ``{"vector", "hits"}``, ``vector``
        ``None`` (no hits) when the shard has no such record."""
        v = self.vector(id, q["feature"])
        if v is None:
            return {"vector": None, "hits": []}
        return {"vector": v, "hits": self.search(dict(q, vector=v, exclude=int(id)))}

    def search(self, q: Dict[str, Any]) -> List[Dict[str, Any]]:
        """Top-k / range search of this shard: ``q`` holds ``vector``, ``feature``, ``k``,
        ``threshold``, ``filter``, ``exclude`` (an id left out, for search by id),
        ``include_vectors`` and the index knobs. Hits sorted by (distance, id)."""
        c = self._coll()
        k = q["k"] + (1 if q.get("exclude") is not None else 0)
        res = c.search(
            q["vector"], k, field=q["feature"], threshold=q.get("threshold"), filter=q.get("filter"),
            include_metadata=True, **{n: q[n] for n in KNOBS if q.get(n) is not None},
        )
        hits = []
        for i, (id_, d) in enumerate(zip(res.ids.tolist(), res.distances.tolist())):
            if q.get("exclude") is not None and id_ == q["exclude"]:
                continue
            hit = {"id": id_, "distance": d, "metadata": res.metadata[i] if res.metadata else None}
            if q.get("include_vectors"):
                rec = c.get(id_)
                hit["vectors"] = {n: v.tolist() for n, v in rec.vectors.items()} if rec else None
            hits.append(hit)
        return hits[: q["k"]]


def _hit_json(h: Dict[str, Any]) -> Dict[str, Any]:
    meta = h.get("metadata") or {}
    out = {
        "id": str(h["id"]),
        "distance": h["distance"],
        "path": meta.get("path"),
        "label": meta.get("label"),
        "thumb": f"/thumb/{h['id']}",
        "metadata": h.get("metadata"),
    }
    if "vectors" in h:
        out["vectors"] = h["vectors"]
    return out


def _parse_id(v: Any) -> int:
    try:
        if isinstance(v, bool):
            raise ValueError
        i = int(v.strip()) if isinstance(v, str) else int(v) if isinstance(v, int) else None
        if i is None or i < 0 or i >= 1 << 64:
            raise ValueError
        return i
    except ValueError:
        raise ApiError(400, f"bad id {json.dumps(v)} (expected a decimal string)") from None


app = FastAPI(title="likeness sharded search (Ray Serve)")


@app.exception_handler(ApiError)
async def _api_error(_req: Request, e: ApiError) -> JSONResponse:
    return JSONResponse({"error": e.message}, status_code=e.status)


@serve.ingress(app)
class Router:
    """The HTTP front: search routes of ``likeness serve`` over ``S`` shards, a health route,
    and upserts to the shards' writers."""

    def __init__(self, shards: List[Any], root: str, collection: str, shard_timeout_s: float = 2.0, model_dir: Optional[str] = None) -> None:
        self.shards = shards
        self.root, self.name = root, collection
        self.timeout = shard_timeout_s
        self.model_dir = model_dir or os.environ.get("LIKENESS_MODEL_DIR")
        self._schema: Optional[List[Dict[str, Any]]] = None
        self._embedders: Dict[str, Any] = {}
        self._writers: Dict[int, Any] = {}

    # --- fan-out -----------------------------------------------------------------------
    async def _call(self, shard: int, method: str, *args: Any) -> Any:
        """One shard's answer, or an exception (no live replica within the timeout, an error).

        A call whose replica died under it (another replica of the shard, or the one Serve
        starts in its place, can answer) is sent again until the timeout."""
        import ray

        deadline = time.monotonic() + self.timeout
        while True:
            resp = getattr(self.shards[shard], method).remote(*args)
            try:
                return await asyncio.wait_for(resp, max(0.01, deadline - time.monotonic()))
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as e:
                if time.monotonic() + 0.05 >= deadline:
                    return e
                await asyncio.sleep(0.05)
            except BaseException as e:  # noqa: BLE001 - a dead shard is an answer, not a crash
                try:
                    resp.cancel()
                except Exception:
                    pass
                return e if isinstance(e, Exception) else RuntimeError(repr(e))

    async def _all(self, method: str, *args: Any) -> List[Any]:
        return await asyncio.gather(*(self._call(s, method, *args) for s in range(len(self.shards))))

    async def _fields(self) -> List[Dict[str, Any]]:
        if self._schema is None:
            for r in await self._all("info"):
                if isinstance(r, dict):
                    self._schema = r["fields"]
                    break
            else:
                raise ApiError(503, "no shard answered (no live replica)")
        return self._schema

    def _check_name(self, name: str) -> None:
        if name != self.name:
            raise ApiError(404, f"no collection '{name}' (this router serves '{self.name}')")

    # --- routes --------------------------------------------------------------------------
    @app.get("/api/health")
    async def health(self) -> Dict[str, Any]:
        """Shards (live or not, record counts, the replica that answered) and Serve's replica states."""
        infos = await self._all("info")
        states: Dict[str, Any] = {}
        try:
            st = serve.status()
            for app_st in st.applications.values():
                for dname, d in app_st.deployments.items():
                    states[dname] = {str(k.value if hasattr(k, "value") else k): v for k, v in d.replica_states.items()}
        except Exception:  # serve.status is best effort
            pass
        shards = []
        for i, r in enumerate(infos):
            ok = isinstance(r, dict)
            shards.append({
                "shard": i,
                "live": ok,
                "count": r["count"] if ok else None,
                "answered_by": r["replica"] if ok else None,
                "replicas": states.get(f"shard-{i}", {}),
                "error": None if ok else f"{type(r).__name__}: {r}"[:300],
            })
        missing = [s["shard"] for s in shards if not s["live"]]
        return {"status": "ok" if not missing else "degraded", "collection": self.name, "shards": shards,
                "missing_shards": missing, "count": sum(s["count"] or 0 for s in shards)}

    @app.get("/api/collections")
    async def collections(self) -> Dict[str, Any]:
        return {"collections": [await self._collection_json()], "default": self.name}

    @app.get("/api/collections/{name}")
    async def collection(self, name: str) -> Dict[str, Any]:
        self._check_name(name)
        return await self._collection_json()

    async def _collection_json(self) -> Dict[str, Any]:
        h = await self.health()
        return {"name": self.name, "count": h["count"], "fields": await self._fields(), "partial": bool(h["missing_shards"]),
                "missing_shards": h["missing_shards"]}

    @app.post("/api/collections/{name}/search")
    async def search(self, name: str, request: Request) -> Dict[str, Any]:
        """JSON ``{vector | id, feature, k, threshold, filter, include_vectors, ef, nprobe, checks, rerank}``."""
        started = time.monotonic()
        self._check_name(name)
        try:
            body = await request.json()
        except Exception as e:
            raise ApiError(400, f"bad JSON body: {e}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        allowed = {"vector", "id", "feature", "k", "threshold", "filter", "include_vectors", *KNOBS}
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise ApiError(422, f"unknown field `{unknown[0]}`, expected one of {', '.join(sorted(allowed))}")
        spec = await self._spec(body)
        vec, idq = body.get("vector"), body.get("id")
        if vec is not None and idq is not None:
            raise ApiError(400, "give either 'vector' or 'id', not both")
        if vec is not None:
            spec["vector"] = self._query_vector(spec["feature"], vec)
        elif idq is not None:
            id_ = _parse_id(idq)
            owner = shard_of(id_, len(self.shards))
            first = await self._call(owner, "search_id", id_, spec)
            if isinstance(first, Exception):
                self._raise_bad_query(first)
                return self._answer(spec, [], [owner], started)
            if first["vector"] is None:
                raise ApiError(404, f"no record with id {id_} in collection '{self.name}'")
            spec["vector"], spec["exclude"] = first["vector"], id_
            return await self._fan_out(spec, started, done={owner: first["hits"]})
        else:
            raise ApiError(400, "give 'vector' or 'id' (to search by an image, POST multipart to /search/image)")
        return await self._fan_out(spec, started)

    @app.post("/api/collections/{name}/search/image")
    async def search_image(self, name: str, request: Request) -> Dict[str, Any]:
        """Multipart ``image`` plus optional ``k``, ``threshold``, ``feature``, ``filter`` (JSON) fields."""
        started = time.monotonic()
        self._check_name(name)
        try:
            form = await request.form()
        except Exception as e:
            raise ApiError(400, f"bad multipart upload: {e}") from None
        body: Dict[str, Any] = {}
        image = None
        for key, value in form.multi_items():
            if key == "image":
                if image is not None:
                    raise ApiError(400, "send one image per request")
                image = await value.read() if hasattr(value, "read") else value.encode()
                continue
            if hasattr(value, "read"):
                raise ApiError(400, f"the image must be sent in a multipart part named 'image' (got a file in a part named '{key}')")
            v = value.strip()
            if not v:
                continue
            try:
                if key in ("k", *KNOBS):
                    body[key] = int(v)
                elif key == "threshold":
                    body[key] = float(v)
                elif key == "feature":
                    body[key] = v
                elif key == "filter":
                    body[key] = json.loads(v)
                else:
                    raise ApiError(400, f"unknown form field '{key}'")
            except ValueError:
                raise ApiError(400, f"{key} must be a {'number' if key == 'threshold' else 'positive integer' if key != 'filter' else 'JSON object'}, got '{v}'") from None
        spec = await self._spec(body)
        if image is None:
            raise ApiError(400, "missing multipart file field 'image'")
        spec["vector"] = await asyncio.get_running_loop().run_in_executor(None, self._embed, spec["feature"], image)
        return await self._fan_out(spec, started)

    @app.post("/api/collections/{name}/records")
    async def upsert(self, name: str, request: Request) -> JSONResponse:
        """JSON ``{"id", "vectors": {field: [...]}, "metadata": {...}}`` or ``{"records": [...]}``:
        insert or replace, each record in its owning shard (through the shard's writer)."""
        self._check_name(name)
        body = await request.json()
        recs = body.get("records", [body]) if isinstance(body, dict) else None
        if not recs:
            raise ApiError(400, "give a record {id, vectors, metadata} or {records: [...]}")
        fields = {f["name"]: f for f in await self._fields()}
        by_shard: Dict[int, List[Dict[str, Any]]] = {}
        for r in recs:
            id_ = _parse_id(r.get("id"))
            vecs = r.get("vectors") or {}
            if set(vecs) != set(fields):
                raise ApiError(400, f"give a vector for every field: {', '.join(sorted(fields))}")
            by_shard.setdefault(shard_of(id_, len(self.shards)), []).append({"id": id_, "vectors": vecs, "metadata": r.get("metadata") or {}})
        import ray

        refs = []
        for s, rs in by_shard.items():
            w = self._writer(s)
            vectors = {n: np.array([x["vectors"][n] for x in rs], dtype=np.uint8 if f["metric"] == "hamming" else np.float32) for n, f in fields.items()}
            refs.append(w.upsert.remote(np.array([x["id"] for x in rs], dtype=np.uint64), vectors, [x["metadata"] for x in rs]))
        try:
            n = sum(await asyncio.gather(*refs))
        except ray.exceptions.RayError as e:
            raise ApiError(500, f"upsert failed: {e}") from None
        return JSONResponse({"upserted": n, "ids": [str(x["id"]) for rs in by_shard.values() for x in rs]}, status_code=201)

    # --- helpers -------------------------------------------------------------------------
    def _writer(self, shard: int) -> Any:
        if shard not in self._writers:
            fields = [(f["name"], f["dim"], f["metric"], f["index"]) for f in self._schema or []]
            self._writers[shard] = get_writer(shard_path(self.root, shard), self.name, fields)
        return self._writers[shard]

    async def _spec(self, b: Dict[str, Any]) -> Dict[str, Any]:
        fields = await self._fields()
        names = [f["name"] for f in fields]
        feature = b.get("feature")
        if feature is not None:
            if feature not in names:
                raise ApiError(400, f"collection '{self.name}' has no feature '{feature}' (it has: {', '.join(names)})")
        else:
            feature = next((p for p in PREFERRED_FEATURES if p in names), names[0] if names else None)
        k = b.get("k")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_K):
            raise ApiError(400, f"k must be between 1 and {MAX_K}, got {k}")
        t = b.get("threshold")
        if t is not None and (not isinstance(t, (int, float)) or isinstance(t, bool) or not np.isfinite(t)):
            raise ApiError(400, "threshold must be a finite number")
        spec: Dict[str, Any] = {
            "feature": feature,
            "k": k if k is not None else (MAX_K if t is not None else 10),
            "threshold": float(t) if t is not None else None,
            "filter": b.get("filter"),
            "include_vectors": bool(b.get("include_vectors", False)),
        }
        for n in KNOBS:
            v = b.get(n)
            if v is not None and (not isinstance(v, int) or not 1 <= v <= MAX_KNOB):
                raise ApiError(400, f"{n} must be between 1 and {MAX_KNOB}, got {v}")
            spec[n] = v
        spec["metric"] = next(f["metric"] for f in fields if f["name"] == feature)
        return spec

    def _query_vector(self, feature: str, v: Any) -> np.ndarray:
        f = next(f for f in self._schema or [] if f["name"] == feature)
        if not isinstance(v, list):
            raise ApiError(400, "vector must be an array of numbers")
        if f["metric"] == "hamming":
            if not all(isinstance(x, (int, float)) and float(x).is_integer() and 0 <= x <= 255 for x in v):
                raise ApiError(400, f"feature '{feature}' holds bit vectors: give the packed bytes as integers 0..255")
            return np.array(v, dtype=np.uint8)
        return np.array(v, dtype=np.float32)

    def _embed(self, feature: str, image: bytes) -> np.ndarray:
        import likeness

        if feature not in self._embedders:
            self._embedders[feature] = likeness.Embedder([feature], model_dir=self.model_dir)
        try:
            return self._embedders[feature].embed(image)[feature]
        except likeness.ImageError as e:
            raise ApiError(422, str(e)) from None

    @staticmethod
    def _raise_bad_query(a: Exception) -> None:
        if "FilterError" in type(a).__name__ or "FilterError" in str(a) or "InvalidArgument" in str(a):
            raise ApiError(400, str(a).splitlines()[-1][:500])

    async def _fan_out(self, spec: Dict[str, Any], started: float, done: Optional[Dict[int, List[Dict[str, Any]]]] = None) -> Dict[str, Any]:
        """Search every shard but those in ``done`` (their hits already known) and merge."""
        done = done or {}
        todo = [s for s in range(len(self.shards)) if s not in done]
        answers = dict(zip(todo, await asyncio.gather(*(self._call(s, "search", spec) for s in todo))))
        missing, hits = [], []
        for s in range(len(self.shards)):
            a = done[s] if s in done else answers[s]
            if isinstance(a, Exception):
                self._raise_bad_query(a)
                missing.append(s)
            else:
                hits.extend(a)
        return self._answer(spec, hits, missing, started)

    def _answer(self, spec: Dict[str, Any], hits: List[Dict[str, Any]], missing: List[int], started: float) -> Dict[str, Any]:
        hits.sort(key=lambda h: (h["distance"], h["id"]))
        out: Dict[str, Any] = {
            "collection": self.name,
            "feature": spec["feature"],
            "took_ms": (time.monotonic() - started) * 1000.0,
            "results": [_hit_json(h) for h in hits[: spec["k"]]],
            "partial": bool(missing),
            "missing_shards": missing,
        }
        return out


def build_app(
    root: str,
    shards: int,
    *,
    collection: str = "images",
    replicas: "int | Sequence[int]" = 1,
    shard_cpus: float = 0.0,
    router_replicas: int = 1,
    shard_timeout_s: float = 2.0,
    refresh_s: float = 0.5,
    model_dir: Optional[str] = None,
) -> Any:
    """The Serve application over the shard databases ``<root>/shard-NNN`` (``shards`` of
    them). ``replicas``: read-only replicas per shard, one number for every shard or a list
    with one per shard (e.g. more for a hot shard); with two or more, a dead replica costs
    nothing but a retry (the answer stays complete) while Serve starts its replacement. Run it
    with ``serve.run(build_app(...), route_prefix="/")``."""
    root = os.path.abspath(root)
    per_shard = [int(replicas)] * shards if isinstance(replicas, int) else [int(r) for r in replicas]
    if len(per_shard) != shards or any(r < 1 for r in per_shard):
        raise ValueError(f"replicas: one number >= 1, or a list of {shards} of them; got {replicas!r}")
    handles = []
    for i in range(shards):
        d = serve.deployment(ShardSearcher, name=f"shard-{i}", num_replicas=per_shard[i],
                             ray_actor_options={"num_cpus": shard_cpus})
        handles.append(d.bind(shard_path(root, i), collection, i, refresh_s))
    router = serve.deployment(Router, name="router", num_replicas=router_replicas, ray_actor_options={"num_cpus": 0})
    return router.bind(handles, root, collection, shard_timeout_s, model_dir)
