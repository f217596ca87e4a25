//! The database: a directory of named collections, guarded by an OS file lock.
//!
//! Layout: `<dir>/LOCK` (held with an exclusive lock while open) and
//! `<dir>/collections/<name>/` per collection (see `docs/storage.md`).

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fs4::FileExt;
use parking_lot::RwLock;

use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::fsutil::sync_dir;
use crate::manifest::MANIFEST;
use crate::schema::{check_name, CollectionSchema};

/// The exclusive lock on a database directory; released when the last holder drops it.
#[derive(Debug)]
pub(crate) struct DbLock {
    _file: File,
}

/// An open database directory. Only one process may have it open at a time.
///
/// ```rust
/// use vecdb::{Database, CollectionSchema, VectorField, Metric, Record, Vector, Query, SearchRequest};
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::open(dir.path()).unwrap();           // creates the directory if missing
/// let schema = CollectionSchema { fields: vec![
///     VectorField::new("cnn", 4, Metric::Cosine, "Flat"),
///     VectorField::new("phash", 64, Metric::Hamming, "Flat"),
/// ]};
/// let images = db.create_collection("images", schema).unwrap();
/// images.insert(vec![Record::new(7)
///     .with_vector("cnn", Vector::Dense(vec![1.0, 2.0, 3.0, 4.0]))
///     .with_vector("phash", Vector::Binary(vec![0xAB; 8]))
///     .with_metadata(serde_json::json!({"path": "/photos/cat.jpg"}))]).unwrap();
/// drop((images, db));
///
/// // reopen: everything acknowledged is still there
/// let db = Database::open(dir.path()).unwrap();
/// assert_eq!(db.collection_names(), vec!["images".to_string()]);
/// let images = db.collection("images").unwrap();
/// let hits = images.search(&SearchRequest::new("phash", Query::Vector(Vector::Binary(vec![0xAB; 8])), 5)).unwrap();
/// assert_eq!((hits[0].id, hits[0].distance), (7, 0.0));
/// ```
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    lock: Arc<DbLock>,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
}

impl Database {
    /// Open (creating if missing) the database in `dir`. Fails with [`Error::Locked`]
    /// when another process has it open, and with [`Error::Corrupt`] naming the file
    /// when stored data is damaged beyond a torn WAL tail.
    pub fn open(dir: impl AsRef<Path>) -> Result<Database> {
        let path = dir.as_ref().to_path_buf();
        let cdir = path.join("collections");
        fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, e))?;
        let lock_path = path.join("LOCK");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => return Err(Error::Locked(path)),
            Err(fs4::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        let lock = Arc::new(DbLock { _file: file });
        let mut collections = BTreeMap::new();
        let rd = fs::read_dir(&cdir).map_err(|e| Error::io(&cdir, e))?;
        let mut entries: Vec<_> = rd.collect::<std::io::Result<Vec<_>>>().map_err(|e| Error::io(&cdir, e))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = e.path();
            if !p.is_dir() {
                continue;
            }
            if name.starts_with('.') || !p.join(MANIFEST).exists() {
                // A drop or a create that did not finish.
                tracing::info!(dir = %p.display(), "removing unfinished collection directory");
                fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                continue;
            }
            let c = Collection::open(&name, &p, lock.clone())?;
            collections.insert(name, Arc::new(c));
        }
        Ok(Database { path, lock, collections: RwLock::new(collections) })
    }

    /// Create a collection; fails with [`Error::CollectionExists`] if the name is taken.
    pub fn create_collection(&self, name: &str, schema: CollectionSchema) -> Result<Arc<Collection>> {
        check_name("collection", name)?;
        schema.validate()?;
        let mut cols = self.collections.write();
        if cols.contains_key(name) {
            return Err(Error::CollectionExists(name.to_string()));
        }
        let cdir = self.path.join("collections");
        let dir = cdir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        Collection::create_files(&dir, &schema)?;
        sync_dir(&cdir)?;
        let c = Arc::new(Collection::open(name, &dir, self.lock.clone())?);
        cols.insert(name.to_string(), c.clone());
        Ok(c)
    }

    /// The collection called `name`, or [`Error::UnknownCollection`].
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        self.collections.read().get(name).cloned().ok_or_else(|| Error::UnknownCollection(name.to_string()))
    }

    /// Names of all collections, sorted.
    pub fn collection_names(&self) -> Vec<String> {
        self.collections.read().keys().cloned().collect()
    }

    /// Delete a collection and its files. Handles still held elsewhere fail with
    /// [`Error::UnknownCollection`] from then on.
    pub fn drop_collection(&self, name: &str) -> Result<()> {
        let mut cols = self.collections.write();
        let c = cols.get(name).cloned().ok_or_else(|| Error::UnknownCollection(name.to_string()))?;
        c.mark_dropped();
        cols.remove(name);
        let cdir = self.path.join("collections");
        let from = cdir.join(name);
        let to = cdir.join(format!(".{name}.dropping"));
        fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
        sync_dir(&cdir)?;
        fs::remove_dir_all(&to).map_err(|e| Error::io(&to, e))
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}
