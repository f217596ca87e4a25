"""likeness on a Ray cluster (``pip install likeness[ray]``): distributed ingest into sharded
collections and sharded search with Ray Serve. See docs/scale.md.

* :func:`ingest` (``likeness.ray.ingest``): images → Parquet embeddings and ``S`` shard databases.
* :func:`build_app` (``likeness.ray.serve``): the Ray Serve application (one deployment per
  shard and a router answering ``likeness serve``'s search routes).
* :func:`record_id`, :func:`shard_of` (``likeness.ray.ids``): the CLI's record ids and the
  shard routing, without Ray.

Importing ``likeness.ray`` does not import Ray; :func:`ingest` and :func:`build_app` do (an
``ImportError`` naming the extra when it is missing). ``import likeness`` never imports Ray.
"""

from __future__ import annotations

from typing import Any

from .ids import fnv1a, record_id, shard_of
from .shard import shard_path

__all__ = ["fnv1a", "record_id", "shard_of", "shard_path", "ingest", "IngestReport", "list_images", "build_app"]

_LAZY = {"ingest": "ingest", "IngestReport": "ingest", "list_images": "ingest", "build_app": "serve"}


def __getattr__(name: str) -> Any:
    mod = _LAZY.get(name)
    if mod is None:
        raise AttributeError(f"module 'likeness.ray' has no attribute '{name}'")
    try:
        import ray  # noqa: F401
    except ImportError as e:
        raise ImportError(f"likeness.ray.{name} needs Ray: pip install 'likeness[ray]' ({e})") from e
    import importlib

    module = importlib.import_module(f".{mod}", __name__)
    # Importing ``likeness.ray.ingest`` binds the submodule to the package attribute ``ingest``:
    # bind the module's exported names over it, so ``from likeness.ray import ingest`` is the function.
    for n, m in _LAZY.items():
        if m == mod:
            globals()[n] = getattr(module, n)
    return globals()[name]
