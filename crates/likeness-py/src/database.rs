//! `likeness.Database` and `likeness.VectorField`: open a database directory, create, list and
//! drop collections (the same files and schema model as the CLI).

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use vecdb::{Collection, CollectionSchema, Database, Metric};

use crate::collection::PyCollection;
use crate::errors::{class_err, type_error, without_gil, BindError, ErrorClass};
use crate::metadata::type_name;

/// An open database shared by the `Database` object and every `Collection` taken from it;
/// `close()` empties it, and every handle fails from then on.
#[derive(Debug)]
pub struct DbState {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
}

impl DbState {
    /// The open database, or `likeness.Error` once closed.
    pub fn database(&self) -> Result<Arc<Database>, BindError> {
        self.db
            .read()
            .clone()
            .ok_or_else(|| BindError::Class(ErrorClass::Base, format!("database {} is closed", self.path.display())))
    }

    /// Collection `name` of the open database.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>, BindError> {
        Ok(self.database()?.collection(name)?)
    }

    /// The database directory.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

/// Open the database in `path`: read-write (creating it when missing, taking the directory
/// lock), or read-only (no lock, nothing written: beside a running writer; `refresh()` catches up).
fn open_database(path: &std::path::Path, read_only: bool) -> Result<Database, BindError> {
    Ok(if read_only { Database::open_read_only(path)? } else { Database::open(path)? })
}

/// One named vector field of a collection: its dimension, metric and index.
///
/// Args:
///     name: field name (letters, digits, ``_``, ``-``, ``.``), e.g. ``"cnn"``.
///     dim: number of components (floats; bits for ``hamming``).
///     metric: ``"l2"``, ``"cosine"``, ``"dot"`` or ``"hamming"`` (packed bits, uint8).
///     index: index factory string, e.g. ``"Flat"``, ``"HNSW16"``, ``"HNSW16,SQ8"``, ``"IVF256,PQ16"``.
///     vectors_per_record: above 1, a multi-vector field (e.g. regional descriptors): each record
///         holds that many vectors of ``dim`` (arrays of shape ``(n, vectors_per_record, dim)`` or
///         ``(n, vectors_per_record * dim)``), a query one or more (``(q * dim,)``), and a search
///         scores each record by its best pair. Float metrics only.
///
/// Example:
///     >>> likeness.VectorField("emb", 128, "cosine", "HNSW16")
///     VectorField('emb', 128, 'cosine', 'HNSW16')
#[pyclass(name = "VectorField", module = "likeness", frozen, eq)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyVectorField {
    /// Field name.
    #[pyo3(get)]
    pub name: String,
    /// Dimension (floats, or bits for hamming).
    #[pyo3(get)]
    pub dim: usize,
    /// Metric: l2, cosine, dot or hamming.
    #[pyo3(get)]
    pub metric: String,
    /// Index factory string.
    #[pyo3(get)]
    pub index: String,
    /// Vectors per record (above 1: a multi-vector field).
    #[pyo3(get)]
    pub vectors_per_record: usize,
}

#[pymethods]
impl PyVectorField {
    #[new]
    #[pyo3(signature = (name, dim, metric = "l2", index = String::from("Auto"), vectors_per_record = 1))]
    fn new(name: String, dim: usize, metric: &str, index: String, vectors_per_record: usize) -> PyResult<Self> {
        let metric: Metric = metric.parse().map_err(|e: vecdb::Error| BindError::from(e))?;
        Ok(PyVectorField { name, dim, metric: metric.to_string(), index, vectors_per_record })
    }

    /// ``"float32"`` for dense fields, ``"uint8"`` (packed bits) for hamming fields.
    #[getter]
    fn dtype(&self) -> &'static str {
        if self.metric == "hamming" {
            "uint8"
        } else {
            "float32"
        }
    }

    fn __repr__(&self) -> String {
        let multi = match self.vectors_per_record {
            1 => String::new(),
            n => format!(", vectors_per_record={n}"),
        };
        format!("VectorField({:?}, {}, {:?}, {:?}{multi})", self.name, self.dim, self.metric, self.index)
            .replace('"', "'")
    }
}

impl PyVectorField {
    /// The vecdb field.
    pub fn to_field(&self) -> Result<vecdb::VectorField, BindError> {
        Ok(vecdb::VectorField::new(&self.name, self.dim, self.metric.parse()?, &self.index)
            .with_vectors_per_record(self.vectors_per_record))
    }

    /// From a vecdb field.
    pub fn from_field(f: &vecdb::VectorField) -> Self {
        PyVectorField {
            name: f.name.clone(),
            dim: f.dim,
            metric: f.metric.to_string(),
            index: f.index.clone(),
            vectors_per_record: f.vectors_per_record,
        }
    }
}

/// A field given to `create_collection`: a `VectorField` or a `(name, dim, metric[, index])` tuple.
fn field_from_py(obj: &Bound<'_, PyAny>) -> PyResult<vecdb::VectorField> {
    if let Ok(f) = obj.cast::<PyVectorField>() {
        return Ok(f.get().to_field()?);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        let parsed = match t.len() {
            3 => t.extract::<(String, usize, String)>().map(|(n, d, m)| (n, d, m, "Auto".to_string())),
            4 => t.extract::<(String, usize, String, String)>(),
            _ => Err(type_error("")),
        };
        if let Ok((name, dim, metric, index)) = parsed {
            return Ok(PyVectorField::new(name, dim, &metric, index, 1)?.to_field()?);
        }
    }
    Err(type_error(format!(
        "a field is a likeness.VectorField or a (name, dim, metric[, index]) tuple, got {}",
        type_name(obj)
    )))
}

/// A database: a directory of named collections (the same files the ``likeness`` CLI uses).
///
/// Only one process may have a database open for writing at a time (``LockedError``
/// otherwise); any number may open it with ``read_only=True`` beside it. Within a process,
/// share one ``Database`` between threads. Use it as a context manager, or call :meth:`close`,
/// to release the directory for other processes.
///
/// Args:
///     path: the database directory (created when missing).
///     read_only: open without taking the lock and write nothing (beside a process that has it
///         open for writing); writes raise ``likeness.Error``; :meth:`refresh` catches up with
///         what the writer acknowledged since.
///
/// Example:
///     >>> import likeness, numpy as np
///     >>> with likeness.Database("/tmp/demo-db") as db:
///     ...     photos = db.create_collection("photos", [likeness.VectorField("emb", 3, "cosine")])
///     ...     photos.insert([1, 2], {"emb": np.eye(3, dtype=np.float32)[:2]}, [{"label": "a"}, {"label": "b"}])
///     ...     photos.search(np.array([1, 0, 0], np.float32), k=1).ids
///     array([1], dtype=uint64)
#[pyclass(name = "Database", module = "likeness", frozen)]
pub struct PyDatabase {
    state: Arc<DbState>,
}

#[pymethods]
impl PyDatabase {
    #[new]
    #[pyo3(signature = (path, read_only = false))]
    fn new(py: Python<'_>, path: PathBuf, read_only: bool) -> PyResult<Self> {
        let db = without_gil(py, || open_database(&path, read_only))?;
        Ok(PyDatabase { state: Arc::new(DbState { path, db: RwLock::new(Some(Arc::new(db))) }) })
    }

    /// The database directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.state.path.clone()
    }

    /// True once :meth:`close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.state.db.read().is_none()
    }

    /// True for a read-only open.
    #[getter]
    fn read_only(&self) -> PyResult<bool> {
        Ok(self.state.database()?.is_read_only())
    }

    /// Read-only opens: catch up with what the writer acknowledged since the open (or the last
    /// refresh): new records, checkpoints, compactions, new and dropped collections. Returns
    /// how many collections changed; 0 for a read-write open.
    fn refresh(&self, py: Python<'_>) -> PyResult<usize> {
        let db = self.state.database()?;
        without_gil(py, move || db.refresh().map_err(BindError::from))
    }

    /// Names of all collections, sorted.
    fn collection_names(&self) -> PyResult<Vec<String>> {
        Ok(self.state.database()?.collection_names())
    }

    /// Create a collection.
    ///
    /// Args:
    ///     name: collection name (letters, digits, ``_``, ``-``, ``.``).
    ///     fields: its vector fields: ``VectorField`` objects or ``(name, dim, metric[, index])`` tuples.
    ///     exist_ok: return the existing collection of that name instead of failing (its schema
    ///         is kept as it is).
    ///
    /// Raises:
    ///     InvalidArgumentError: the name is taken (without ``exist_ok``), or a field is invalid.
    #[pyo3(signature = (name, fields, exist_ok = false))]
    fn create_collection(
        &self,
        py: Python<'_>,
        name: String,
        fields: Vec<Bound<'_, PyAny>>,
        exist_ok: bool,
    ) -> PyResult<PyCollection> {
        let schema = CollectionSchema { fields: fields.iter().map(field_from_py).collect::<PyResult<_>>()? };
        let db = self.state.database()?;
        let created = without_gil(py, || {
            if exist_ok && db.collection_names().contains(&name) {
                return Ok(());
            }
            db.create_collection(&name, schema).map(|_| ()).map_err(BindError::from)
        });
        created?;
        Ok(PyCollection::new(self.state.clone(), name))
    }

    /// The collection called ``name`` (``NotFoundError`` when there is none).
    fn collection(&self, name: String) -> PyResult<PyCollection> {
        self.state.collection(&name)?;
        Ok(PyCollection::new(self.state.clone(), name))
    }

    /// Delete a collection and its files; handles to it fail from then on.
    fn drop_collection(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let db = self.state.database()?;
        without_gil(py, || db.drop_collection(&name).map_err(BindError::from))
    }

    /// Close the database: save index snapshots and release the directory lock once no
    /// operation is running. Every handle taken from it fails from then on. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let db = self.state.db.write().take();
        if let Some(db) = db {
            // Dropping the last handle checkpoints every collection: without the GIL.
            without_gil(py, move || {
                drop(db);
                Ok(())
            })?;
        }
        Ok(())
    }

    fn __getitem__(&self, name: String) -> PyResult<PyCollection> {
        self.collection(name)
    }

    fn __contains__(&self, name: &str) -> PyResult<bool> {
        Ok(self.state.database()?.collection_names().iter().any(|n| n == name))
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.state.database()?.collection_names().len())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " (closed)" } else { "" };
        format!("Database({:?}){state}", self.state.path.display().to_string())
    }
}

impl PyDatabase {
    /// The shared state behind this object and its collections.
    pub fn state(&self) -> &Arc<DbState> {
        &self.state
    }
}

/// Raise `NotFoundError` for an unknown field name of `coll`.
pub fn check_field<'c>(coll: &'c Collection, field: &str) -> PyResult<&'c vecdb::VectorField> {
    coll.schema().fields.iter().find(|f| f.name == field).ok_or_else(|| {
        let names: Vec<&str> = coll.schema().fields.iter().map(|f| f.name.as_str()).collect();
        class_err(
            ErrorClass::NotFound,
            format!("collection '{}' has no vector field '{field}' (it has: {})", coll.name(), names.join(", ")),
        )
    })
}
