"""likeness: image similarity search on an embedded vector database, from Python.

* :class:`Database` / :class:`Collection`: the vector database the ``likeness`` CLI uses
  (same files: a database made by one opens in the other), numpy vectors in and out,
  metadata filters, batch search on all cores without the GIL.
* :class:`Embedder`: images (paths, bytes, numpy arrays, PIL images) to feature vectors,
  exactly as ``likeness index`` computes them.
* :func:`index_folder`, :func:`search_images`, :func:`dedup`: the ``likeness index``,
  ``search`` and ``dedup`` commands as functions (the same code: the same results on the
  same database), returning plain Python objects.
* Exceptions: :class:`Error` and its subclasses.

Example::

    import likeness, numpy as np

    with likeness.Database("vectors.db") as db:
        items = db.create_collection("items", [likeness.VectorField("emb", 64, "l2", "HNSW16")])
        items.insert(np.arange(1000), {"emb": np.random.rand(1000, 64).astype(np.float32)})
        res = items.search(np.random.rand(5, 64).astype(np.float32), k=10)
        print(res.ids.shape, res.distances.dtype)   # (5, 10) float32
"""

from ._errors import (
    DimensionError,
    Error,
    FilterError,
    ImageError,
    InvalidArgumentError,
    LockedError,
    NotFoundError,
)
from ._likeness import (
    DEFAULT_FEATURES,
    NO_ID,
    Collection,
    Database,
    Embedder,
    Embeddings,
    Record,
    SearchResults,
    VectorField,
    __version__,
    dedup,
    index_folder,
    search_images,
)

__all__ = [
    "Collection",
    "Database",
    "DEFAULT_FEATURES",
    "DimensionError",
    "Embedder",
    "Embeddings",
    "Error",
    "FilterError",
    "ImageError",
    "InvalidArgumentError",
    "LockedError",
    "NO_ID",
    "NotFoundError",
    "Record",
    "SearchResults",
    "VectorField",
    "__version__",
    "dedup",
    "index_folder",
    "search_images",
]
