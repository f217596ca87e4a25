//! The database: a directory of named collections, guarded by an OS file lock.
//!
//! Layout: `<dir>/LOCK` (held with an exclusive lock while open) and
//! `<dir>/collections/<name>/` per collection (see `docs/storage.md`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::collection::Collection;
use crate::error::{Error, Result};
use crate::fsutil::sync_dir;
use crate::lock::DbLock;
use crate::manifest::MANIFEST;
use crate::schema::{check_name, CollectionSchema};
use crate::wal;

/// An open database directory. One process at a time may open it for writing
/// ([`Database::open`]); any number may open it read-only beside that writer
/// ([`Database::open_read_only`]).
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
    /// The database lock; `None` for a read-only handle, which takes no lock.
    lock: Option<Arc<DbLock>>,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
}

impl Database {
    /// Open (creating if missing) the database in `dir`. Fails with [`Error::Locked`]
    /// when another process has it open, with [`Error::Corrupt`] naming the file
    /// when stored data is damaged beyond a torn WAL tail, and with
    /// [`Error::MissingManifest`] when a collection directory holds data but no MANIFEST
    /// (see [`crate::repair`]).
    pub fn open(dir: impl AsRef<Path>) -> Result<Database> {
        let path = dir.as_ref().to_path_buf();
        let cdir = path.join("collections");
        fs::create_dir_all(&cdir).map_err(|e| Error::io(&cdir, e))?;
        let lock = Arc::new(DbLock::acquire(&path)?);
        let mut collections = BTreeMap::new();
        for (name, p) in collection_dirs(&cdir)? {
            match classify_collection_dir(&p)? {
                DirKind::Collection => {
                    let c = Collection::open(&name, &p, lock.clone())?;
                    collections.insert(name, c.shared());
                }
                DirKind::Unfinished => {
                    // A drop or a create that did not finish: the rename protocol proves it obsolete.
                    tracing::info!(dir = %p.display(), "removing unfinished collection directory");
                    fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                }
                DirKind::Other => {}
            }
        }
        Ok(Database { path, lock: Some(lock), collections: RwLock::new(collections) })
    }

    /// Open the database in `dir` read-only, beside a writer in another process (or none): no
    /// lock is taken and not a byte is written (a torn WAL tail is left for the writer; stray
    /// files stay; stale index snapshots are not discarded). Searches see the records
    /// acknowledged up to the open; [`Database::refresh`] (or [`Collection::refresh`]) catches
    /// up with what the writer acknowledged since. Writes fail with [`Error::ReadOnly`].
    ///
    /// ```rust
    /// use vecdb::{Database, CollectionSchema, Metric, Record, Vector};
    /// let dir = tempfile::tempdir().unwrap();
    /// let writer = Database::open(dir.path()).unwrap();
    /// let c = writer.create_collection("c", CollectionSchema::single("v", 2, Metric::L2, "Flat")).unwrap();
    /// c.insert(vec![Record::new(1).with_vector("v", Vector::Dense(vec![1.0, 2.0]))]).unwrap();
    ///
    /// let reader = Database::open_read_only(dir.path()).unwrap();   // beside the open writer
    /// assert_eq!(reader.collection("c").unwrap().count(), 1);
    /// c.insert(vec![Record::new(2).with_vector("v", Vector::Dense(vec![3.0, 4.0]))]).unwrap();
    /// reader.refresh().unwrap();
    /// assert_eq!(reader.collection("c").unwrap().count(), 2);
    /// let write = reader.collection("c").unwrap().insert(vec![Record::new(3).with_vector("v", Vector::Dense(vec![0.0, 0.0]))]);
    /// assert!(matches!(write, Err(vecdb::Error::ReadOnly(_))));
    /// assert!(reader.create_collection("d", CollectionSchema::single("v", 2, Metric::L2, "Flat")).is_err());
    /// ```
    pub fn open_read_only(dir: impl AsRef<Path>) -> Result<Database> {
        let path = dir.as_ref().to_path_buf();
        existing_collections_dir(&path)?;
        let db = Database { path, lock: None, collections: RwLock::new(BTreeMap::new()) };
        db.refresh()?;
        Ok(db)
    }

    /// True for a handle from [`Database::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.lock.is_none()
    }

    /// Catch a read-only handle up with the writer: every collection applies what was
    /// acknowledged since (see [`Collection::refresh`]), collections created since appear and
    /// dropped ones go (their handles fail with [`Error::UnknownCollection`]). Returns how many
    /// collections changed. On a writable handle it does nothing.
    pub fn refresh(&self) -> Result<usize> {
        if !self.is_read_only() {
            return Ok(0);
        }
        let cdir = self.path.join("collections");
        let mut present = Vec::new();
        for (name, p) in collection_dirs(&cdir)? {
            // A directory with data and no MANIFEST is an error here too, never "no collection".
            if classify_collection_dir(&p)? == DirKind::Collection {
                present.push((name, p));
            }
        }
        let mut changed = 0;
        let known: Vec<(String, Arc<Collection>)> =
            self.collections.read().iter().map(|(n, c)| (n.clone(), c.clone())).collect();
        for (name, c) in &known {
            if !present.iter().any(|(n, _)| n == name) {
                c.mark_dropped();
                self.collections.write().remove(name);
                changed += 1;
            } else if c.refresh()?.changed() {
                changed += 1;
            }
        }
        for (name, p) in present {
            if !known.iter().any(|(n, _)| *n == name) {
                let c = Collection::open_read_only(&name, &p)?.shared();
                self.collections.write().insert(name, c);
                changed += 1;
            }
        }
        Ok(changed)
    }

    /// Create a collection; fails with [`Error::CollectionExists`] if the name is taken.
    pub fn create_collection(&self, name: &str, schema: CollectionSchema) -> Result<Arc<Collection>> {
        check_name("collection", name)?;
        let Some(lock) = &self.lock else {
            return Err(Error::ReadOnly(name.to_string()));
        };
        schema.validate()?;
        let mut cols = self.collections.write();
        if cols.contains_key(name) {
            return Err(Error::CollectionExists(name.to_string()));
        }
        let cdir = self.path.join("collections");
        let dir = cdir.join(name);
        if dir.exists() {
            // Never reuse (let alone wipe) a directory that may hold someone's records.
            return Err(Error::io(
                &dir,
                std::io::Error::new(std::io::ErrorKind::AlreadyExists, "a directory of this name exists already"),
            ));
        }
        // The files are made in a hidden directory that is renamed into place once complete, so a
        // crash leaves either nothing or a whole collection, and a directory with a collection's
        // name but no MANIFEST always means damage.
        let tmp = cdir.join(format!(".{name}.creating"));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Collection::create_files(&tmp, &schema)?;
        fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        sync_dir(&cdir)?;
        let c = Collection::open(name, &dir, lock.clone())?.shared();
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
        if self.is_read_only() {
            return Err(Error::ReadOnly(name.to_string()));
        }
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

/// What an entry of `<db>/collections/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirKind {
    /// A collection with a MANIFEST.
    Collection,
    /// `.<name>.creating` / `.<name>.dropping`, or a directory without a MANIFEST that holds
    /// nothing but empty write-ahead logs (a create that an older version did not finish).
    Unfinished,
    /// Something else (a file, another hidden directory): left alone.
    Other,
}

/// `<db>/collections` of an existing database, or a `NotFound` I/O error saying `db` is not one
/// (read-only opens, check and repair never create a database).
pub(crate) fn existing_collections_dir(db: &Path) -> Result<PathBuf> {
    let cdir = db.join("collections");
    if !cdir.is_dir() {
        return Err(Error::io(&cdir, std::io::Error::new(std::io::ErrorKind::NotFound, "not a vecdb database")));
    }
    Ok(cdir)
}

/// The names of the plain files in a collection directory, sorted.
pub(crate) fn collection_file_names(dir: &Path) -> Result<Vec<String>> {
    let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut names: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// The sub-directories of `cdir` (name, path), sorted by name.
pub(crate) fn collection_dirs(cdir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let rd = fs::read_dir(cdir).map_err(|e| Error::io(cdir, e))?;
    let mut entries: Vec<_> = rd.collect::<std::io::Result<Vec<_>>>().map_err(|e| Error::io(cdir, e))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries
        .into_iter()
        .filter(|e| e.path().is_dir())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .collect())
}

/// Classify a directory under `<db>/collections/`. A directory with a collection's name and no
/// MANIFEST that holds data is [`Error::MissingManifest`]: it is never opened as empty, removed
/// or overwritten.
pub(crate) fn classify_collection_dir(p: &Path) -> Result<DirKind> {
    let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.starts_with('.') {
        let unfinished = name.ends_with(".creating") || name.ends_with(".dropping");
        return Ok(if unfinished { DirKind::Unfinished } else { DirKind::Other });
    }
    if p.join(MANIFEST).exists() {
        return Ok(DirKind::Collection);
    }
    let data = data_files_without_manifest(p)?;
    if data.is_empty() {
        Ok(DirKind::Unfinished)
    } else {
        Err(Error::MissingManifest { dir: p.to_path_buf(), files: data.join(", ") })
    }
}

/// The entries of a collection directory that may hold records: everything but write-ahead logs
/// whose header is intact and that hold no frame.
fn data_files_without_manifest(dir: &Path) -> Result<Vec<String>> {
    let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let empty_wal = name.starts_with("wal-")
            && name.ends_with(".log")
            && fs::read(e.path()).ok().and_then(|d| wal::parse_header(&d, &e.path()).ok().map(|h| h.len == d.len()))
                == Some(true);
        if !empty_wal {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}
