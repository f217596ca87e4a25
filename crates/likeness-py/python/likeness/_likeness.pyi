"""Type stubs of the native module ``likeness._likeness`` (import ``likeness`` instead)."""

import os
from typing import Any, Callable, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, Tuple, TypedDict, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str
NO_ID: int
"""The id that pads batch search results where a query has fewer hits (``2**64 - 1``)."""
DEFAULT_FEATURES: List[str]

Metric = Literal["l2", "cosine", "dot", "hamming"]
Ids = Union[int, Sequence[int], npt.NDArray[np.uint64], npt.NDArray[np.int64]]
VectorArray = Union[npt.NDArray[np.float32], npt.NDArray[np.uint8]]
FieldSpec = Union["VectorField", Tuple[str, int, str], Tuple[str, int, str, str]]
Filter = Union[str, Mapping[str, Any]]
Metadata = Dict[str, Any]
ImageInput = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, npt.NDArray[np.uint8], Any]

class VectorField:
    """One named vector field: dimension, metric and index factory string."""

    name: str
    dim: int
    metric: str
    index: str
    def __init__(self, name: str, dim: int, metric: Metric = "l2", index: str = "Auto") -> None: ...
    @property
    def dtype(self) -> Literal["float32", "uint8"]:
        """``"float32"`` for dense fields, ``"uint8"`` (packed bits) for hamming fields."""

class Record:
    """A stored record."""

    id: int
    vectors: Dict[str, VectorArray]
    metadata: Metadata

class SearchResults:
    """Results of :meth:`Collection.search`: 1-D arrays for one query, ``n x k`` for a batch
    (padded with ``NO_ID`` / ``inf`` where a query has fewer hits; ``valid`` marks hits)."""

    ids: npt.NDArray[np.uint64]
    distances: npt.NDArray[np.float32]
    valid: npt.NDArray[np.bool_]
    counts: npt.NDArray[np.int64]
    metadata: Optional[Union[List[Metadata], List[List[Metadata]]]]
    field: str
    metric: str
    @property
    def batch(self) -> bool: ...
    def to_list(self) -> List[Any]:
        """One query: ``[{"id", "distance"[, "metadata"]}, ...]``; a batch: a list of such lists."""
    def __len__(self) -> int: ...

class Collection:
    """A collection of records (``uint64`` id, one vector per field, a metadata dict)."""

    @property
    def name(self) -> str: ...
    @property
    def schema(self) -> List[VectorField]: ...
    @property
    def fields(self) -> List[str]: ...
    def insert(
        self,
        ids: Ids,
        vectors: Mapping[str, VectorArray],
        metadata: Optional[Union[Sequence[Optional[Metadata]], Metadata]] = None,
    ) -> None:
        """Insert new records, all or nothing (``InvalidArgumentError`` on an existing id)."""
    def upsert(
        self,
        ids: Ids,
        vectors: Mapping[str, VectorArray],
        metadata: Optional[Union[Sequence[Optional[Metadata]], Metadata]] = None,
    ) -> None:
        """Insert or replace records."""
    def delete(self, ids: Ids) -> int:
        """Delete records; returns how many existed."""
    @overload
    def get(self, id: int) -> Optional[Record]: ...
    @overload
    def get(self, id: int, default: Any) -> Any: ...
    def __getitem__(self, id: int) -> Record: ...
    def count(self) -> int: ...
    def __len__(self) -> int: ...
    def __contains__(self, id: object) -> bool: ...
    def __iter__(self) -> Iterator[Record]: ...
    def ids(self) -> npt.NDArray[np.uint64]: ...
    def search(
        self,
        query: Union[VectorArray, int, Sequence[int], npt.NDArray[np.uint64], npt.NDArray[np.int64]],
        k: Optional[int] = None,
        *,
        field: Optional[str] = None,
        threshold: Optional[float] = None,
        filter: Optional[Filter] = None,
        ef: Optional[int] = None,
        nprobe: Optional[int] = None,
        checks: Optional[int] = None,
        rerank: Optional[int] = None,
        include_metadata: bool = False,
    ) -> SearchResults:
        """Top-k (and/or range) search by a vector, a batch, a record id or a list of ids."""
    def set_index(self, field: str, spec: str) -> None:
        """Rebuild a field's index with a factory string, e.g. ``"HNSW16,SQ8"`` or ``"Auto"``."""
    def wait_for_index(self) -> None:
        """Wait until background index builds (``Auto`` fields past their threshold) end."""
    def compact(self) -> None: ...
    def checkpoint(self) -> None: ...
    def stats(self) -> Dict[str, Any]: ...

class Database:
    """A database directory of named collections (the files the ``likeness`` CLI uses)."""

    def __init__(self, path: Union[str, "os.PathLike[str]"], read_only: bool = False) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def read_only(self) -> bool: ...
    def refresh(self) -> int:
        """Read-only opens: catch up with the writer; returns how many collections changed."""
    def collection_names(self) -> List[str]: ...
    def create_collection(self, name: str, fields: Sequence[FieldSpec], exist_ok: bool = False) -> Collection: ...
    def collection(self, name: str) -> Collection: ...
    def drop_collection(self, name: str) -> None: ...
    def close(self) -> None: ...
    def __getitem__(self, name: str) -> Collection: ...
    def __contains__(self, name: str) -> bool: ...
    def __len__(self) -> int: ...
    def __enter__(self) -> "Database": ...
    def __exit__(self, *exc: object) -> bool: ...

class Embeddings:
    """Vectors of a batch: ``emb[feature]`` is ``n x dim`` (zeros where an item failed)."""

    vectors: Dict[str, VectorArray]
    ok: npt.NDArray[np.bool_]
    errors: List[Tuple[int, str]]
    info: List[Optional[Dict[str, Any]]]
    @property
    def count(self) -> int: ...
    def keys(self) -> List[str]: ...
    def __getitem__(self, feature: str) -> VectorArray: ...
    def __contains__(self, feature: str) -> bool: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...

class Embedder:
    """Turns images into feature vectors, exactly as the CLI does."""

    def __init__(
        self,
        features: Optional[Sequence[str]] = None,
        model_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        device: str = "cpu",
    ) -> None: ...
    @property
    def features(self) -> List[str]: ...
    @property
    def dims(self) -> Dict[str, int]: ...
    @property
    def metrics(self) -> Dict[str, str]: ...
    @property
    def device(self) -> str: ...
    def fields(self, index: str = "Auto", binary_index: str = "Flat") -> List[VectorField]: ...
    @overload
    def embed(self, images: Union[List[ImageInput], Tuple[ImageInput, ...]]) -> Embeddings: ...
    @overload
    def embed(self, images: ImageInput) -> Dict[str, VectorArray]:
        """Embed one image (``{feature: vector}``; a bad image raises ``ImageError``) or a list
        (:class:`Embeddings`; a bad item is reported in ``errors``, not raised). Paths, bytes,
        HxWx3 uint8 arrays and PIL images all go through the CLI's pipeline: decoded in
        parallel, the CNN in batches, without the GIL."""

# --- The CLI's commands as functions (same library code, same results) -----------------------

PathLike = Union[str, "os.PathLike[str]"]
DbArg = Union[Database, PathLike]
Progress = Callable[[int, int], Any]

class FailedFile(TypedDict):
    path: str
    reason: str

class IndexReport(TypedDict):
    """The report of ``likeness index --json``."""

    found: int
    added: int
    updated: int
    unchanged: int
    pruned: int
    gone: int
    failed: List[FailedFile]
    interrupted: bool
    seconds: float
    images_per_second: float

class Hit(TypedDict):
    id: int
    distance: float
    path: Optional[str]
    label: Optional[str]

class QueryResults(TypedDict):
    """One query's results, as in ``likeness search --json``."""

    query: str
    feature: str
    results: List[Hit]

class DuplicateGroup(TypedDict):
    ids: List[int]
    paths: List[str]
    max_distance: float

class DedupReport(TypedDict):
    """The report of ``likeness dedup --json``."""

    feature: str
    threshold: float
    records: int
    groups: List[DuplicateGroup]

def index_folder(
    folder: Union[PathLike, Sequence[PathLike]],
    db: DbArg,
    *,
    collection: str = "images",
    features: Optional[Union[str, Sequence[str]]] = None,
    index: str = "Auto",
    prune: bool = False,
    batch: int = 128,
    model_dir: Optional[PathLike] = None,
    device: str = "cpu",
    progress: Optional[Progress] = None,
) -> IndexReport:
    """Index the images under a folder into a collection, exactly as ``likeness index`` does
    (incremental; bad files are reported in ``failed`` and skipped; runs without the GIL;
    Ctrl-C raises ``KeyboardInterrupt`` after storing the batch in flight)."""

@overload
def search_images(
    db: DbArg,
    images: PathLike,
    *,
    k: Optional[int] = None,
    threshold: Optional[float] = None,
    filter: Optional[str] = None,
    feature: Optional[str] = None,
    collection: str = "images",
    ids: None = None,
    ef: Optional[int] = None,
    nprobe: Optional[int] = None,
    checks: Optional[int] = None,
    rerank: Optional[int] = None,
    model_dir: Optional[PathLike] = None,
    device: str = "cpu",
    robust: Optional[str] = None,
    fusion: str = "rrf",
) -> QueryResults: ...
@overload
def search_images(
    db: DbArg,
    images: Union[List[PathLike], Tuple[PathLike, ...]],
    *,
    k: Optional[int] = None,
    threshold: Optional[float] = None,
    filter: Optional[str] = None,
    feature: Optional[str] = None,
    collection: str = "images",
    ids: None = None,
    ef: Optional[int] = None,
    nprobe: Optional[int] = None,
    checks: Optional[int] = None,
    rerank: Optional[int] = None,
    model_dir: Optional[PathLike] = None,
    device: str = "cpu",
    robust: Optional[str] = None,
    fusion: str = "rrf",
) -> List[QueryResults]: ...
@overload
def search_images(
    db: DbArg,
    images: None = None,
    *,
    k: Optional[int] = None,
    threshold: Optional[float] = None,
    filter: Optional[str] = None,
    feature: Optional[str] = None,
    collection: str = "images",
    ids: Union[int, Sequence[int]],
    ef: Optional[int] = None,
    nprobe: Optional[int] = None,
    checks: Optional[int] = None,
    rerank: Optional[int] = None,
    model_dir: Optional[PathLike] = None,
    device: str = "cpu",
    robust: Optional[str] = None,
    fusion: str = "rrf",
) -> Union[QueryResults, List[QueryResults]]:
    """Search a collection with query images (or stored ids), exactly as ``likeness search``
    does; one query gives one ``QueryResults``, a list gives a list."""

def dedup(
    db: DbArg,
    *,
    collection: str = "images",
    feature: Optional[str] = None,
    threshold: Optional[float] = None,
    progress: Optional[Progress] = None,
) -> DedupReport:
    """Groups of near-duplicate images, exactly as ``likeness dedup`` finds them (default
    threshold: the feature's calibrated one)."""
