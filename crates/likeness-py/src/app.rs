//! `likeness.index_folder`, `likeness.search_images` and `likeness.dedup`: the `likeness index`,
//! `search` and `dedup` commands from Python, through the very library functions the CLI
//! calls (`likeness::index_cmd::index_folders`, `search_cmd::search_images`,
//! `dedup_cmd::dedup`), so that both give the same results on the same database.
//!
//! The work runs without the GIL. Between batches the run takes the GIL for a moment to look
//! for Ctrl-C (`KeyboardInterrupt`: the batch in flight is stored, then the exception is
//! raised) and to call the caller's `progress(done, total)`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use likeness::dedup_cmd::{self, DedupProgress, DedupSettings};
use likeness::index_cmd::{self, IndexSettings};
use likeness::indexer::IndexProgress;
use likeness::model_args::ModelArgs;
use likeness::search_cmd::{self, Queries, QueryImageError, SearchSettings};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString, PyTuple};
use vecdb::{Database, SearchParams};

use crate::database::PyDatabase;
use crate::errors::{class_err, db_class, feature_class, type_error, without_gil, BindError, ErrorClass};
use crate::metadata::type_name;

/// The database argument: an open `likeness.Database`, or a directory opened for this call.
enum DbArg {
    /// A `Database` object's database.
    Open(Arc<Database>),
    /// A directory.
    Path(PathBuf),
}

impl DbArg {
    fn read(obj: &Bound<'_, PyAny>) -> PyResult<Self> {
        if let Ok(db) = obj.cast::<PyDatabase>() {
            return Ok(DbArg::Open(db.get().state().database()?));
        }
        if obj.is_instance_of::<PyString>() || obj.hasattr("__fspath__")? {
            return Ok(DbArg::Path(obj.extract()?));
        }
        Err(type_error(format!(
            "db is a likeness.Database or a directory (str or os.PathLike), got {}",
            type_name(obj)
        )))
    }

    /// The database: the object's, or the directory opened read-write (`index_folder`, taking
    /// the lock) or read-only (`search_images`, `dedup`: beside a writer, as the CLI does).
    fn open(self, write: bool) -> Result<Arc<Database>, BindError> {
        Ok(match self {
            DbArg::Open(db) => db,
            DbArg::Path(p) if write => Arc::new(Database::open(&p)?),
            DbArg::Path(p) => Arc::new(Database::open_read_only(&p)?),
        })
    }
}

/// `value` as plain Python objects, as `json.loads` reads the CLI's `--json` output (through
/// its JSON: an f32 distance of 0.16 is the float 0.16, not 0.1599999964...), except that record
/// ids are Python ints: JSON carries them as strings only because JavaScript rounds big numbers.
fn to_python<'py>(py: Python<'py>, value: &impl serde_core::Serialize) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(value).map_err(|e| class_err(ErrorClass::Base, e.to_string()))?;
    let mut value: serde_json::Value =
        serde_json::from_str(&json).map_err(|e| class_err(ErrorClass::Base, e.to_string()))?;
    ids_as_numbers(&mut value);
    Ok(pythonize::pythonize(py, &value)?)
}

/// Turn the string record ids of the CLI's JSON (`"id": "123"`, `"ids": ["1", "2"]`) back into
/// numbers, at any depth.
fn ids_as_numbers(value: &mut serde_json::Value) {
    use serde_json::Value;
    let number = |v: &mut Value| {
        if let Some(n) = v.as_str().and_then(|s| s.parse::<u64>().ok()) {
            *v = Value::from(n);
        }
    };
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match (key.as_str(), v) {
                    ("id", v @ Value::String(_)) => number(v),
                    ("ids", Value::Array(items)) => items.iter_mut().for_each(number),
                    (_, v) => ids_as_numbers(v),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(ids_as_numbers),
        _ => {}
    }
}

/// The Python exception of an error of the likeness library: the class of the first typed
/// cause in its chain (a vecdb or features error, a query image), `likeness.Error` otherwise;
/// the message is the whole chain, as the CLI prints it.
fn app_error(e: anyhow::Error) -> BindError {
    let class = e
        .chain()
        .find_map(|cause| {
            if let Some(e) = cause.downcast_ref::<vecdb::Error>() {
                Some(db_class(e))
            } else if let Some(e) = cause.downcast_ref::<features::FeatureError>() {
                Some(feature_class(e))
            } else if cause.is::<QueryImageError>() {
                Some(ErrorClass::Image)
            } else if cause.is::<dedup_cmd::ThresholdError>() {
                Some(ErrorClass::InvalidArgument)
            } else {
                None
            }
        })
        .unwrap_or(ErrorClass::Base);
    BindError::Class(class, format!("{e:#}"))
}

/// Check that collection `name` exists and has the feature asked for: `NotFoundError` naming
/// what there is otherwise (the library reports these as plain messages).
fn check_collection(db: &Database, name: &str, feature: Option<&str>) -> Result<(), BindError> {
    let not_found = |e: anyhow::Error| match app_error(e) {
        BindError::Class(ErrorClass::Base, msg) => BindError::Class(ErrorClass::NotFound, msg),
        other => other,
    };
    let coll = likeness::catalog::open_collection(db, name).map_err(not_found)?;
    if let Some(f) = feature {
        likeness::multi_search::choose_features(&coll, Some(f)).map_err(not_found)?;
    }
    Ok(())
}

/// Ctrl-C and the caller's progress callback, looked at between batches of a run without the
/// GIL: the first exception (KeyboardInterrupt, or raised by the callback) stops the run and is
/// raised when it returns.
struct Watch {
    stop: AtomicBool,
    error: Mutex<Option<PyErr>>,
    progress: Option<Py<PyAny>>,
}

impl Watch {
    fn new(progress: Option<Py<PyAny>>) -> Self {
        Watch { stop: AtomicBool::new(false), error: Mutex::new(None), progress }
    }

    /// Called between batches, on the thread running the work.
    fn tick(&self, done: usize, total: usize) {
        if self.stop.load(Ordering::SeqCst) {
            return;
        }
        let result = Python::attach(|py| {
            py.check_signals()?;
            if let Some(cb) = &self.progress {
                cb.call1(py, (done, total))?;
                // A Ctrl-C during the callback (or one it raised with `_thread.interrupt_main`)
                // stops the run now, not at the next tick: the last tick has no next one.
                py.check_signals()?;
            }
            Ok::<_, PyErr>(())
        });
        if let Err(e) = result {
            *self.error.lock() = Some(e);
            self.stop.store(true, Ordering::SeqCst);
        }
    }

    /// The exception that stopped the run, if any; else a Ctrl-C that came after the last
    /// tick (raised here, at the end of the call it interrupted, rather than in whatever
    /// Python code runs next).
    fn take_error(&self, py: Python<'_>) -> Option<PyErr> {
        self.error.lock().take().or_else(|| py.check_signals().err())
    }
}

/// Features given as a list of names or one comma-separated string.
fn feature_list(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(obj) = obj else { return Ok(None) };
    if obj.is_none() {
        return Ok(None);
    }
    if let Ok(s) = obj.extract::<String>() {
        return Ok(Some(s));
    }
    match obj.extract::<Vec<String>>() {
        Ok(names) if !names.is_empty() => Ok(Some(names.join(","))),
        Ok(_) => Err(class_err(ErrorClass::InvalidArgument, "give at least one feature")),
        Err(_) => Err(type_error(format!("features is a list of names or a string, got {}", type_name(obj)))),
    }
}

/// One path or a list/tuple of them; `true` when a list was given.
fn path_list(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<(Vec<PathBuf>, bool)> {
    let is_path = |o: &Bound<'_, PyAny>| o.is_instance_of::<PyString>() || o.hasattr("__fspath__").unwrap_or(false);
    if is_path(obj) {
        return Ok((vec![obj.extract()?], false));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut out = Vec::new();
        for item in obj.try_iter()? {
            let item = item?;
            if !is_path(&item) {
                return Err(type_error(format!("{what} are paths (str or os.PathLike), got {}", type_name(&item))));
            }
            out.push(item.extract()?);
        }
        return Ok((out, true));
    }
    Err(type_error(format!("{what}: a path (str or os.PathLike) or a list of them, got {}", type_name(obj))))
}

fn model_args(model_dir: Option<PathBuf>, device: &str) -> PyResult<ModelArgs> {
    Ok(ModelArgs { model_dir, device: device.parse().map_err(BindError::from)? })
}

/// Index the images under a folder into a collection, exactly as ``likeness index`` does.
///
/// Incremental: files whose size and modification time match their record are skipped, so
/// running it again only embeds what is new or changed. Each batch is stored durably as soon
/// as it is embedded. A file that cannot be read or decoded is reported in ``failed`` and
/// skipped; the run goes on. With an ImageFolder layout (``root/<label>/<file>``) the first
/// sub-folder becomes the image's ``label``.
///
/// Args:
///     folder: the folder (``str`` / ``os.PathLike``), or a list of folders.
///     db: a :class:`Database` (opened for writing), or a database directory (created when
///         missing; opened, locked and closed for this call — pass the ``Database`` object
///         instead when this process has it open).
///     collection: collection name (created when missing).
///     features: for a new collection, a list of feature names or a comma-separated string
///         (default ``cnn,color,phash``; trained heads as ``"cnn+head:PATH"``). An existing
///         collection keeps its own features.
///     index: index of a new collection's fields, e.g. ``"HNSW16"`` (see ``likeness index --index``).
///     prune: delete the records of files under the folder that no longer exist.
///     batch: files embedded per durable batch.
///     model_dir, device: where the CNN model is and where it runs (as for :class:`Embedder`).
///     progress: called as ``progress(done, total)`` between batches (files embedded so far,
///         files to embed in this run); an exception it raises stops the run.
///
/// Returns:
///     The report of ``likeness index --json``: ``{"found", "added", "updated", "unchanged",
///     "pruned", "gone", "failed": [{"path", "reason"}], "interrupted", "seconds", "images_per_second"}``.
///
/// Raises:
///     KeyboardInterrupt: Ctrl-C; every batch stored before it is kept (run again to resume).
///
/// Runs without the GIL, on all cores.
///
/// Example:
///     >>> report = likeness.index_folder("photos", "photos.db", features=["cnn", "phash"])
///     >>> report["added"], report["failed"]
///     (12, [])
#[pyfunction]
#[pyo3(signature = (folder, db, *, collection = "images".to_string(), features = None, index = "Auto".to_string(),
    prune = false, batch = 128, model_dir = None, device = "cpu", progress = None))]
#[allow(clippy::too_many_arguments)]
pub fn index_folder<'py>(
    py: Python<'py>,
    folder: &Bound<'py, PyAny>,
    db: &Bound<'py, PyAny>,
    collection: String,
    features: Option<&Bound<'py, PyAny>>,
    index: String,
    prune: bool,
    batch: usize,
    model_dir: Option<PathBuf>,
    device: &str,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let (dirs, _) = path_list(folder, "folders")?;
    if batch == 0 {
        return Err(class_err(ErrorClass::InvalidArgument, "batch must be at least 1"));
    }
    let settings = IndexSettings {
        collection,
        features: feature_list(features)?,
        index,
        prune,
        batch,
        model: model_args(model_dir, device)?,
    };
    let db = DbArg::read(db)?;
    let watch = Watch::new(progress);
    let report = without_gil(py, || {
        // The folders are checked before a database directory is created (as the CLI does).
        index_cmd::canonical_roots(&dirs).map_err(|e| BindError::Class(ErrorClass::NotFound, format!("{e:#}")))?;
        let db = db.open(true)?;
        let on_progress = |p: IndexProgress| watch.tick(p.done, p.total);
        let report = index_cmd::index_folders(&db, &dirs, &settings, &on_progress, &watch.stop).map_err(app_error)?;
        if !report.interrupted {
            // An `Auto` collection past its threshold: leave its graph built and saved.
            if let Ok(c) = db.collection(&settings.collection) {
                c.wait_for_index_builds(|_| {});
            }
        }
        Ok(report)
    })?;
    if let Some(e) = watch.take_error(py) {
        return Err(e);
    }
    to_python(py, &report)
}

/// Search a collection with query images, exactly as ``likeness search`` does.
///
/// The query images are embedded with the collection's own extractor for the feature searched
/// (a trained head stored in the database included) and searched as one batch.
///
/// Args:
///     db: a :class:`Database`, or a database directory (opened read-only for this call).
///     images: one query image file (``str`` / ``os.PathLike``), or a list of them.
///     k: results per query (default 10; with ``threshold``, unlimited unless given).
///     threshold: range search: every result within this distance.
///     filter: metadata filter, e.g. ``"label=cat and width>=640"``.
///     feature: feature to search by (default: ``cnn`` when present, else the first).
///     collection: collection name.
///     ids: search by stored records instead of images ("more like this"; the record itself
///         is excluded): one id or a list; give ``images=None`` then.
///     ef, nprobe, checks, rerank: index knobs (as for :meth:`Collection.search`).
///     model_dir, device: where the CNN model is and where it runs.
///
/// Returns:
///     For one query, ``{"query": path, "feature": name, "results": [{"id", "distance",
///     "path", "label"}, ...]}`` (closest first); for a list, a list of those — the JSON of
///     ``likeness search --json``.
///
/// Raises:
///     ImageError: a query image cannot be read or decoded. NotFoundError: no such collection
///     or feature. FilterError: a bad filter.
///
/// Runs without the GIL, on all cores.
///
/// Example:
///     >>> hits = likeness.search_images("photos.db", "query.jpg", k=5)
///     >>> [(h["path"], round(h["distance"], 3)) for h in hits["results"]]
#[pyfunction]
#[pyo3(signature = (db, images = None, *, k = None, threshold = None, filter = None, feature = None,
    collection = "images".to_string(), ids = None, ef = None, nprobe = None, checks = None, rerank = None,
    model_dir = None, device = "cpu", robust = None, fusion = "rrf"))]
#[allow(clippy::too_many_arguments)]
pub fn search_images<'py>(
    py: Python<'py>,
    db: &Bound<'py, PyAny>,
    images: Option<&Bound<'py, PyAny>>,
    k: Option<usize>,
    threshold: Option<f32>,
    filter: Option<String>,
    feature: Option<String>,
    collection: String,
    ids: Option<&Bound<'py, PyAny>>,
    ef: Option<usize>,
    nprobe: Option<usize>,
    checks: Option<usize>,
    rerank: Option<usize>,
    model_dir: Option<PathBuf>,
    device: &str,
    robust: Option<String>,
    fusion: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let (queries, many) = match (images.filter(|i| !i.is_none()), ids.filter(|i| !i.is_none())) {
        (Some(images), None) => {
            let (paths, many) = path_list(images, "query images")?;
            (Queries::Images(paths), many)
        }
        (None, Some(ids)) => match ids.extract::<u64>() {
            Ok(id) => (Queries::Ids(vec![id]), false),
            Err(_) => (Queries::Ids(ids.extract::<Vec<u64>>()?), true),
        },
        _ => return Err(type_error("give query images or ids (one of them)")),
    };
    if k == Some(0) {
        return Err(class_err(ErrorClass::InvalidArgument, "k must be at least 1"));
    }
    if threshold.is_some_and(|t| !t.is_finite()) {
        return Err(class_err(ErrorClass::InvalidArgument, "threshold must be a finite number"));
    }
    let settings = SearchSettings {
        collection,
        k,
        threshold,
        filter,
        feature,
        robust: match robust.as_deref() {
            None => likeness::robust::Views::none(),
            Some(spec) => likeness::robust::Views::parse(spec)
                .map_err(|e| class_err(ErrorClass::InvalidArgument, e.to_string()))?,
        },
        fusion: fusion.parse().map_err(|e: String| class_err(ErrorClass::InvalidArgument, e))?,
        verify: None,
        params: SearchParams { ef, nprobe, checks, rerank, ..Default::default() },
        model: model_args(model_dir, device)?,
    };
    let db = DbArg::read(db)?;
    let out = without_gil(py, || {
        let db = db.open(false)?;
        check_collection(&db, &settings.collection, settings.feature.as_deref())?;
        search_cmd::search_images(&db, &queries, &settings).map_err(app_error)
    })?;
    if many {
        to_python(py, &out)
    } else {
        to_python(py, &out.into_iter().next())
    }
}

/// Groups of near-duplicate images in a collection, exactly as ``likeness dedup`` finds them.
///
/// Every record is range-searched on one feature; pairs within ``threshold`` are joined, and
/// the connected groups of two or more images are returned.
///
/// Args:
///     db: a :class:`Database`, or a database directory (opened read-only for this call).
///     collection: collection name.
///     feature: feature to compare (default: ``cnn`` when present, else ``phash``, else the first).
///     threshold: largest distance within a group (default: the feature's calibrated one:
///         0.16 for cnn, 12 bits for phash, 6 for dhash; other features need one).
///     progress: called as ``progress(done, total)`` (records searched) between batches; an
///         exception it raises stops the run.
///
/// Returns:
///     The report of ``likeness dedup --json``: ``{"feature", "threshold", "records",
///     "groups": [{"ids", "paths", "max_distance"}, ...]}``, largest group first, each
///     group's images sorted by path.
///
/// Runs without the GIL, on all cores; Ctrl-C raises ``KeyboardInterrupt`` between batches.
///
/// Example:
///     >>> for g in likeness.dedup("photos.db")["groups"]:
///     ...     print(g["paths"])
#[pyfunction]
#[pyo3(signature = (db, *, collection = "images".to_string(), feature = None, threshold = None, progress = None))]
pub fn dedup<'py>(
    py: Python<'py>,
    db: &Bound<'py, PyAny>,
    collection: String,
    feature: Option<String>,
    threshold: Option<f32>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    let settings = DedupSettings { collection, feature, threshold };
    let db = DbArg::read(db)?;
    let watch = Watch::new(progress);
    let report = without_gil(py, || {
        let db = db.open(false)?;
        check_collection(&db, &settings.collection, settings.feature.as_deref())?;
        let on_progress = |p: DedupProgress| watch.tick(p.done, p.total);
        let report = dedup_cmd::dedup(&db, &settings, &on_progress, &watch.stop);
        match report {
            Err(e) if e.is::<dedup_cmd::Interrupted>() => Ok(None),
            other => other.map(Some).map_err(app_error),
        }
    })?;
    if let Some(e) = watch.take_error(py) {
        return Err(e);
    }
    let report = report.ok_or_else(|| class_err(ErrorClass::Base, "dedup interrupted"))?;
    to_python(py, &report)
}
