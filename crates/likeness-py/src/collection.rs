//! `likeness.Collection`: records in and out (numpy vectors, dict metadata), iteration,
//! index management. Searches are in [`crate::search`].

use std::collections::BTreeMap;
use std::sync::Arc;

use numpy::{IntoPyArray, PyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use vecdb::{Collection, Metadata, Record, SearchParams, Vector};

use crate::arrays::{field_rows, read_ids, FieldRows, Ids};
use crate::database::{check_field, DbState, PyVectorField};
use crate::errors::{class_err, type_error, without_gil, BindError, ErrorClass};
use crate::metadata;
use crate::search::{self, SearchOptions, SearchResults};

/// A collection of records: a ``uint64`` id, one vector per field, a metadata ``dict``.
///
/// Taken from a :class:`Database` (``db["photos"]``, ``db.collection("photos")``,
/// ``db.create_collection(...)``). Safe to share between threads: searches run in parallel
/// with each other and with writes, without the GIL.
///
/// Example:
///     >>> photos.insert([10, 11], {"emb": vectors}, [{"label": "cat"}, {"label": "dog"}])
///     >>> res = photos.search(vectors[0], k=5, filter="label=cat")
///     >>> res.ids, res.distances
#[pyclass(name = "Collection", module = "likeness", frozen)]
pub struct PyCollection {
    db: Arc<DbState>,
    name: String,
}

impl PyCollection {
    /// A handle to collection `name` of `db`.
    pub fn new(db: Arc<DbState>, name: String) -> Self {
        PyCollection { db, name }
    }

    /// The open collection (fails once the database is closed or the collection dropped).
    pub fn open(&self) -> PyResult<Arc<Collection>> {
        Ok(self.db.collection(&self.name)?)
    }

    /// `insert` / `upsert`: the records are read with the GIL held (numpy buffers are only read
    /// while Python guarantees they stay alive), then `op` writes them without it.
    fn write(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
        op: fn(&Collection, Vec<Record>) -> vecdb::Result<()>,
    ) -> PyResult<()> {
        let coll = self.open()?;
        let records = read_batch(&coll, ids, vectors, metadata)?.records();
        without_gil(py, move || op(&coll, records).map_err(BindError::from))
    }
}

/// The records of an `insert`/`upsert` call, read from Python before the GIL is released.
struct Batch<'py> {
    ids: Ids,
    fields: Vec<(String, FieldRows<'py>)>,
    metadata: Vec<Metadata>,
}

impl Batch<'_> {
    /// The vecdb records (vectors copied out of the numpy buffers).
    fn records(self) -> Vec<Record> {
        let Batch { ids, fields, metadata } = self;
        let mut metas = metadata.into_iter();
        ids.as_slice()
            .iter()
            .enumerate()
            .map(|(i, &id)| {
                let vectors: BTreeMap<String, Vector> =
                    fields.iter().map(|(name, rows)| (name.clone(), rows.row(i).to_owned())).collect();
                Record { id, vectors, metadata: metas.next().unwrap_or_default() }
            })
            .collect()
    }
}

/// Read and check the arguments of `insert`/`upsert`.
fn read_batch<'py>(
    coll: &Collection,
    ids: &Bound<'py, PyAny>,
    vectors: &Bound<'py, PyAny>,
    meta: Option<&Bound<'py, PyAny>>,
) -> PyResult<Batch<'py>> {
    let ids = read_ids(ids)?;
    let n = ids.as_slice().len();
    let single = matches!(ids, Ids::One(_));
    let vectors =
        vectors.cast::<PyDict>().map_err(|_| type_error("vectors must be a dict {field name: numpy array}"))?;
    let mut fields = Vec::with_capacity(vectors.len());
    for (k, v) in vectors.iter() {
        let name: String = k.extract().map_err(|_| type_error("vectors must be a dict with str keys"))?;
        let field = check_field(coll, &name)?;
        let rows = field_rows(&v, field)?;
        if rows.rows != n || (single && !rows.single && rows.rows != 1) {
            return Err(class_err(
                ErrorClass::Dimension,
                format!("{n} ids but {} rows of vectors for field '{name}'", rows.rows),
            ));
        }
        fields.push((name, rows));
    }
    if let Some(missing) = coll.schema().fields.iter().find(|f| !fields.iter().any(|(n, _)| *n == f.name)) {
        return Err(class_err(
            ErrorClass::InvalidArgument,
            format!("vectors has no array for field '{}' (every record needs one vector per field)", missing.name),
        ));
    }
    let metadata = match meta {
        None => Vec::new(),
        Some(m) if m.is_none() => Vec::new(),
        Some(m) if single && m.is_instance_of::<PyDict>() => vec![metadata::from_py(m, "metadata")?],
        Some(m) => {
            let list: Vec<Bound<'py, PyAny>> =
                m.extract().map_err(|_| type_error("metadata must be a list of dicts (one per id), or None"))?;
            if list.len() != n {
                return Err(class_err(
                    ErrorClass::InvalidArgument,
                    format!("{n} ids but {} metadata dicts", list.len()),
                ));
            }
            list.iter()
                .enumerate()
                .map(|(i, d)| metadata::from_py(d, &format!("metadata[{i}]")))
                .collect::<PyResult<_>>()?
        }
    };
    Ok(Batch { ids, fields, metadata })
}

/// A stored record: ``id``, ``vectors`` (``{field: numpy array}``) and ``metadata`` (``dict``).
#[pyclass(name = "Record", module = "likeness", frozen)]
pub struct PyRecord {
    /// The record id.
    #[pyo3(get)]
    id: u64,
    /// Vectors by field: float32 arrays, or packed uint8 bits for hamming fields (cosine fields
    /// hold the unit-normalized vector that was stored).
    #[pyo3(get)]
    vectors: Py<PyDict>,
    /// The metadata document.
    #[pyo3(get)]
    metadata: Py<PyAny>,
}

#[pymethods]
impl PyRecord {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let keys: Vec<String> = self.vectors.bind(py).keys().extract()?;
        Ok(format!("Record(id={}, fields={keys:?}, metadata={})", self.id, self.metadata.bind(py).repr()?))
    }
}

/// A vector as a numpy array.
pub fn vector_to_py<'py>(py: Python<'py>, v: Vector) -> Bound<'py, PyAny> {
    match v {
        Vector::Dense(x) => x.into_pyarray(py).into_any(),
        Vector::Binary(x) => x.into_pyarray(py).into_any(),
    }
}

fn record_to_py(py: Python<'_>, rec: Record) -> PyResult<PyRecord> {
    let vectors = PyDict::new(py);
    for (name, v) in rec.vectors {
        vectors.set_item(name, vector_to_py(py, v))?;
    }
    Ok(PyRecord { id: rec.id, vectors: vectors.unbind(), metadata: metadata::to_py(py, &rec.metadata)?.unbind() })
}

#[pymethods]
impl PyCollection {
    /// The collection's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The vector fields (index specs follow :meth:`set_index`).
    #[getter]
    fn schema(&self) -> PyResult<Vec<PyVectorField>> {
        Ok(self.open()?.schema().fields.iter().map(PyVectorField::from_field).collect())
    }

    /// Names of the vector fields, in schema order.
    #[getter]
    fn fields(&self) -> PyResult<Vec<String>> {
        Ok(self.open()?.schema().fields.iter().map(|f| f.name.clone()).collect())
    }

    /// Insert new records, all or nothing (durable when this returns).
    ///
    /// Args:
    ///     ids: an ``int``, or a sequence / 1-D integer array of ``n`` ids.
    ///     vectors: ``{field: array}`` with one array per field: float32 of shape ``(n, dim)``
    ///         (packed uint8 of shape ``(n, ceil(dim/8))`` for hamming fields); 1-D for one id.
    ///     metadata: a list of ``n`` dicts (or one dict for one id), or ``None``.
    ///
    /// Raises:
    ///     InvalidArgumentError: an id exists already (nothing is written), NaN/inf components.
    ///     DimensionError: an array has the wrong shape. ``TypeError``: the wrong dtype.
    #[pyo3(signature = (ids, vectors, metadata = None))]
    fn insert(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write(py, ids, vectors, metadata, Collection::insert)
    }

    /// Insert or replace records (same arguments as :meth:`insert`); within one call a later
    /// record with the same id wins.
    #[pyo3(signature = (ids, vectors, metadata = None))]
    fn upsert(
        &self,
        py: Python<'_>,
        ids: &Bound<'_, PyAny>,
        vectors: &Bound<'_, PyAny>,
        metadata: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.write(py, ids, vectors, metadata, Collection::upsert)
    }

    /// Delete records by id (an ``int`` or a sequence); returns how many existed.
    fn delete(&self, py: Python<'_>, ids: &Bound<'_, PyAny>) -> PyResult<usize> {
        let ids = read_ids(ids)?;
        let coll = self.open()?;
        without_gil(py, move || coll.delete(ids.as_slice()).map_err(BindError::from))
    }

    /// The record with this id, or ``default`` (``None``) when there is none.
    #[pyo3(signature = (id, default = None))]
    fn get(&self, py: Python<'_>, id: u64, default: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let coll = self.open()?;
        match without_gil(py, move || coll.get(id).map_err(BindError::from))? {
            Some(rec) => Ok(Py::new(py, record_to_py(py, rec)?)?.into_any()),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// The record with this id (``NotFoundError`` when there is none).
    fn __getitem__(&self, py: Python<'_>, id: u64) -> PyResult<PyRecord> {
        let coll = self.open()?;
        match without_gil(py, move || coll.get(id).map_err(BindError::from))? {
            Some(rec) => record_to_py(py, rec),
            None => Err(BindError::from(vecdb::Error::NotFound(id)).into()),
        }
    }

    /// Number of records.
    fn count(&self) -> PyResult<usize> {
        Ok(self.open()?.count())
    }

    fn __len__(&self) -> PyResult<usize> {
        self.count()
    }

    fn __contains__(&self, id: &Bound<'_, PyAny>) -> PyResult<bool> {
        let Ok(id) = id.extract::<u64>() else { return Ok(false) };
        Ok(self.open()?.get_metadata(id).is_some())
    }

    /// All ids, ascending, as a uint64 array.
    fn ids<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<u64>>> {
        Ok(self.open()?.ids().into_pyarray(py))
    }

    /// Iterate over the records in id order (records written meanwhile may or may not be seen).
    fn __iter__(&self) -> PyResult<RecordIter> {
        let coll = self.open()?;
        let ids = coll.ids();
        Ok(RecordIter { coll, ids, next: std::sync::atomic::AtomicUsize::new(0) })
    }

    /// Search the collection.
    ///
    /// Args:
    ///     query: one vector (1-D float32; packed uint8 for hamming fields), a batch (2-D,
    ///         one query per row), a record id (``int``: "more like this", the record itself
    ///         excluded) or a list / 1-D integer array of record ids.
    ///     k: hits per query (default 10; with ``threshold``, unlimited unless given).
    ///     field: the vector field to search (default: the collection's first field).
    ///     threshold: range search: only hits with ``distance <= threshold``.
    ///     filter: metadata filter, the CLI form (``"label=cat and width>=640"``,
    ///         ``"label in cat,dog"``, ``"path^=/photos/"``) or the JSON form of the HTTP API
    ///         (``{"label": {"in": ["cat", "dog"]}}``), applied during the search.
    ///     ef: HNSW candidate list size; ``nprobe``: IVF lists probed; ``checks``: k-d forest
    ///         leaf points; ``rerank``: candidates re-ranked with full vectors.
    ///     include_metadata: also return each hit's metadata.
    ///
    /// Returns:
    ///     SearchResults: numpy ``ids``/``distances`` (1-D for one query, ``n × k`` for a batch).
    ///
    /// Runs without the GIL; a batch is searched on all cores.
    #[pyo3(signature = (query, k = None, *, field = None, threshold = None, filter = None, ef = None,
                        nprobe = None, checks = None, rerank = None, include_metadata = false))]
    #[allow(clippy::too_many_arguments)]
    fn search(
        &self,
        py: Python<'_>,
        query: &Bound<'_, PyAny>,
        k: Option<usize>,
        field: Option<String>,
        threshold: Option<f32>,
        filter: Option<Bound<'_, PyAny>>,
        ef: Option<usize>,
        nprobe: Option<usize>,
        checks: Option<usize>,
        rerank: Option<usize>,
        include_metadata: bool,
    ) -> PyResult<SearchResults> {
        let params = SearchParams { ef, nprobe, checks, rerank, threads: None };
        let opts =
            SearchOptions { k, field, threshold, filter: filter.filter(|f| !f.is_none()), params, include_metadata };
        search::search(py, self.open()?, query, opts)
    }

    /// Rebuild a field's index with a factory string (e.g. ``"HNSW16,SQ8"``, or ``"Auto"``: its
    /// graph then builds in the background, see :meth:`wait_for_index`) and keep it in the
    /// schema; runs without the GIL.
    fn set_index(&self, py: Python<'_>, field: String, spec: String) -> PyResult<()> {
        let coll = self.open()?;
        without_gil(py, move || coll.set_index(&field, &spec).map_err(BindError::from))
    }

    /// Wait until the background index builds of ``Auto`` fields end (the graph swapped in and
    /// saved); returns at once when none runs. Runs without the GIL.
    fn wait_for_index(&self, py: Python<'_>) -> PyResult<()> {
        let coll = self.open()?;
        without_gil(py, move || {
            coll.wait_for_index_builds(|_| {});
            Ok(())
        })
    }

    /// Rewrite all live records into one segment, dropping deleted and replaced rows.
    fn compact(&self, py: Python<'_>) -> PyResult<()> {
        let coll = self.open()?;
        without_gil(py, move || coll.compact().map_err(BindError::from))
    }

    /// Move the write-ahead log into a segment and save index snapshots (done on close too).
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        let coll = self.open()?;
        without_gil(py, move || coll.checkpoint().map_err(BindError::from))
    }

    /// Counts, disk usage and per-field index figures, as a dict.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let coll = self.open()?;
        let stats = without_gil(py, move || Ok(coll.stats()))?;
        let value = serde_json::to_value(&stats)
            .map_err(|e| class_err(ErrorClass::Base, format!("cannot convert stats: {e}")))?;
        pythonize::pythonize(py, &value).map_err(|e| class_err(ErrorClass::Base, e.to_string()))
    }

    fn __repr__(&self) -> String {
        match self.open() {
            Ok(c) => format!("Collection({:?}, count={}, fields={:?})", self.name, c.count(), {
                c.schema().fields.iter().map(|f| f.name.clone()).collect::<Vec<_>>()
            }),
            Err(_) => format!("Collection({:?}) (closed)", self.name),
        }
    }
}

/// Iterator over a collection's records (``for rec in collection``).
#[pyclass(module = "likeness")]
pub struct RecordIter {
    coll: Arc<Collection>,
    ids: Vec<u64>,
    next: std::sync::atomic::AtomicUsize,
}

#[pymethods]
impl RecordIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyRecord>> {
        use std::sync::atomic::Ordering;
        loop {
            let i = self.next.fetch_add(1, Ordering::SeqCst);
            let Some(&id) = self.ids.get(i) else { return Ok(None) };
            if let Some(rec) = self.coll.get(id).map_err(BindError::from)? {
                return record_to_py(py, rec).map(Some);
            }
        }
    }
}
