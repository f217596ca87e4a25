"""Record ids and shard routing, without Ray.

Record ids are the CLI's (``crates/likeness/src/catalog.rs`` ``record_id``): the 64-bit FNV-1a
hash of the file's absolute path bytes, so a record ingested on a Ray cluster has the id
``likeness index`` gives the same file. A record lives in shard ``shard_of(id, shards)``, a
stable function of the id alone (the same on every node, in every run).
"""

from __future__ import annotations

import os
from typing import Union

__all__ = ["fnv1a", "record_id", "shard_of"]

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


def fnv1a(data: bytes) -> int:
    """The 64-bit FNV-1a hash of ``data`` (as ``catalog::fnv1a``)."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h


def record_id(path: Union[str, "os.PathLike[str]"]) -> int:
    """The record id the CLI gives the image at ``path``: FNV-1a of the absolute path's bytes.

    ``path`` is made absolute (not resolved: the CLI resolves the folder it indexes, then
    walks it without following links, as :func:`likeness.ray.ingest.list_images` does).
    """
    return fnv1a(os.fsencode(os.path.abspath(os.fspath(path))))


def _mix64(x: int) -> int:
    """SplitMix64's finalizer: spreads every bit of ``x`` over the low bits."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK
    return x ^ (x >> 31)


def shard_of(id: int, shards: int) -> int:
    """The shard (``0 .. shards-1``) that owns record ``id``: a stable hash of the id."""
    if shards < 1:
        raise ValueError(f"shards must be >= 1, got {shards}")
    return _mix64(int(id) & _MASK) % shards
