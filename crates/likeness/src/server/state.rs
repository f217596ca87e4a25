//! What the server's handlers share: the database, feature extractors per collection,
//! allowed folders, background indexing jobs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::http::HeaderMap;
use features::decode::DecodeLimits;
use features::FeatureExtractor;
use serde::Serialize;
use vecdb::{Collection, Database};

use super::error::{ApiError, ApiResult};
use super::Args;
use crate::catalog;
use crate::image_meta::ImageMeta;
use crate::indexer::{IndexProgress, IndexReport};

/// The extractors of one collection, in schema order.
pub type Extractors = Arc<Vec<Box<dyn FeatureExtractor>>>;

/// Labels of a collection with their counts, and the record count they were computed at.
type LabelCache = (usize, Vec<(String, usize)>);

/// Shared server state.
pub struct AppState {
    /// The database.
    pub db: Arc<Database>,
    /// The collection the web page starts with.
    pub default_collection: String,
    /// Required for writes, when set.
    pub api_key: Option<String>,
    /// Required for reads (the write key works too), when set.
    pub read_key: Option<String>,
    /// Folders server-side path adds may read (canonical).
    pub path_roots: Vec<PathBuf>,
    /// True for a `--read-only` replica: every write is refused with 403.
    pub read_only: bool,
    /// Folders thumbnails may be read from (canonical): `path_roots`, the roots indexed in the
    /// database, uploads. Read at startup; a replica reads the indexed roots again (at most
    /// every few seconds) when a thumbnail's folder is not among them, since its writer may have
    /// indexed new folders.
    thumb_roots: RwLock<Vec<PathBuf>>,
    /// When a replica last read the indexed roots again.
    roots_read_at: Mutex<Instant>,
    /// When a replica last caught up with its writer (`None` before the first refresh after open).
    last_refresh: Mutex<Option<Instant>>,
    /// Uploaded images are stored here.
    pub upload_dir: PathBuf,
    /// Thumbnail cache.
    pub thumb_dir: PathBuf,
    /// Held while an upload is stored or released (see [`super::uploads`]).
    pub uploads: super::uploads::UploadLock,
    /// Features for collections created by the API.
    pub new_features: Vec<String>,
    /// Index spec (`--index`) for collections created by the API.
    pub new_index: String,
    /// Where the CNN model is and runs.
    pub model: crate::model_args::ModelArgs,
    /// Decoder guards for files added from `--root` folders and thumbnails (the CLI's).
    pub limits: DecodeLimits,
    /// Decoder guards for uploaded images (`--max-upload-pixels`).
    pub upload_limits: DecodeLimits,
    /// Admission of searches by image, uploads and adds (see [`super::admission`]).
    pub admission: super::admission::Admission,
    /// Admission of thumbnail generation: its own line, the same workers.
    pub thumb_admission: super::admission::Admission,
    /// Largest accepted request body, in bytes.
    pub max_body: usize,
    extractors: Mutex<HashMap<String, Extractors>>,
    labels: Mutex<HashMap<String, LabelCache>>,
    jobs: Mutex<BTreeMap<u64, Arc<Mutex<Job>>>>,
}

/// Where a background job is; over HTTP the lower-case name (`"running"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Still indexing.
    Running,
    /// Finished; the job's `report` says what was indexed.
    Done,
    /// Stopped by an error; the job's `error` says which.
    Failed,
}

/// A background indexing job started by adding a server-side folder.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    /// Job id.
    pub id: u64,
    /// The folder being indexed.
    pub path: PathBuf,
    /// The collection.
    pub collection: String,
    /// Where the job is.
    pub state: JobState,
    /// Progress so far.
    pub progress: IndexProgress,
    /// The final report, when done.
    pub report: Option<IndexReport>,
    /// Why it failed, when it did.
    pub error: Option<String>,
}

impl AppState {
    /// Build the state for `args` over an opened database.
    pub fn new(db: Arc<Database>, args: &Args) -> Result<Arc<AppState>> {
        let files = args.files_dir.clone().unwrap_or_else(|| db.path().join("likeness-files"));
        let upload_dir = files.join("uploads");
        let thumb_dir = files.join("thumbs");
        if args.read_only {
            // A replica stores nothing of its own; its thumbnail cache is best effort (the
            // directory may be on read-only shared storage).
            if let Err(e) = std::fs::create_dir_all(&thumb_dir) {
                tracing::info!(dir = %thumb_dir.display(), error = %e, "thumbnails will not be cached");
            }
        } else {
            for d in [&upload_dir, &thumb_dir] {
                std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            }
        }
        let upload_dir = upload_dir.canonicalize().unwrap_or(upload_dir);
        let path_roots = args.roots.iter().map(|r| crate::walk::canonical_dir(r)).collect::<Result<Vec<_>>>()?;
        let mut thumb_roots: BTreeSet<PathBuf> = path_roots.iter().cloned().collect();
        thumb_roots.insert(upload_dir.clone());
        thumb_roots.extend(indexed_roots(&db));
        let new_features = catalog::parse_feature_list(&args.features)?;
        let canonical: Vec<String> = new_features.iter().map(|f| crate::heads::canonical(f)).collect();
        catalog::check_index_arg(&args.index, &canonical)?;
        let workers = args.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        let admission =
            super::admission::Admission::new(workers, args.queue, Duration::from_secs(args.queue_wait_s.max(1)));
        // A results page asks for dozens of thumbnails at once.
        let thumb_admission = admission.sharing_workers(args.queue.max(256));
        Ok(Arc::new(AppState {
            db,
            default_collection: args.collection.clone(),
            api_key: args.api_key.clone().filter(|k| !k.is_empty()),
            read_key: args.read_key.clone().filter(|k| !k.is_empty()),
            path_roots,
            read_only: args.read_only,
            thumb_roots: RwLock::new(thumb_roots.into_iter().collect()),
            roots_read_at: Mutex::new(Instant::now().checked_sub(ROOTS_REREAD).unwrap_or_else(Instant::now)),
            last_refresh: Mutex::new(None),
            upload_dir,
            thumb_dir,
            uploads: Default::default(),
            new_features,
            new_index: args.index.clone(),
            model: args.model.clone(),
            limits: DecodeLimits::default(),
            upload_limits: DecodeLimits {
                max_pixels: args.max_upload_pixels.min(DecodeLimits::default().max_pixels),
                ..DecodeLimits::default()
            },
            admission,
            thumb_admission,
            max_body: args.max_body,
            extractors: Mutex::new(HashMap::new()),
            labels: Mutex::new(HashMap::new()),
            jobs: Mutex::new(BTreeMap::new()),
        }))
    }

    /// Refuse a write on a read-only replica, or without the right API key (when one is configured).
    pub fn check_write(&self, headers: &HeaderMap) -> ApiResult<()> {
        if self.read_only {
            return Err(ApiError::forbidden(format!(
                "this server is a read-only replica of {} (--read-only): send writes to the server that opened it \
                 for writing",
                self.db.path().display()
            )));
        }
        let Some(key) = &self.api_key else { return Ok(()) };
        match super::auth::presented_key(headers) {
            Some(g) if super::auth::key_matches(&g, key) => Ok(()),
            Some(_) => Err(ApiError::new(axum::http::StatusCode::UNAUTHORIZED, "wrong API key")),
            None => Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "this server needs an API key for writes: send header 'x-api-key: KEY' or 'Authorization: Bearer KEY'",
            )),
        }
    }

    /// An existing collection, or 404.
    pub fn collection(&self, name: &str) -> ApiResult<Arc<Collection>> {
        Ok(self.db.collection(name)?)
    }

    /// The collection, created with the server's features when missing.
    pub async fn collection_or_create(self: &Arc<Self>, name: &str) -> ApiResult<Arc<Collection>> {
        if let Ok(c) = self.db.collection(name) {
            return Ok(c);
        }
        let this = self.clone();
        let name = name.to_string();
        tokio::task::spawn_blocking(move || -> ApiResult<Arc<Collection>> {
            let names = crate::heads::install(this.db.path(), &this.new_features)?;
            let ex = catalog::build_extractors(&names, &this.model, Some(this.db.path()))?;
            let schema = catalog::schema_for(&ex, &this.new_index)?;
            match this.db.create_collection(&name, schema) {
                Ok(c) => {
                    this.extractors.lock().expect("lock").insert(name, Arc::new(ex));
                    Ok(c)
                }
                Err(vecdb::Error::CollectionExists(_)) => Ok(this.db.collection(&name)?),
                Err(e) => Err(e.into()),
            }
        })
        .await?
    }

    /// The extractors for a collection's fields (built once; the CNN loads its model).
    pub async fn extractors(self: &Arc<Self>, coll: &Arc<Collection>) -> ApiResult<Extractors> {
        if let Some(e) = self.extractors.lock().expect("lock").get(coll.name()) {
            return Ok(e.clone());
        }
        let this = self.clone();
        let coll = coll.clone();
        tokio::task::spawn_blocking(move || -> ApiResult<Extractors> {
            let names = catalog::field_names(&coll);
            let ex: Extractors = Arc::new(catalog::build_extractors(&names, &this.model, Some(this.db.path()))?);
            this.extractors.lock().expect("lock").insert(coll.name().to_string(), ex.clone());
            Ok(ex)
        })
        .await?
    }

    /// Distinct labels of a collection with their counts (cached until the count changes).
    pub fn labels(&self, coll: &Collection) -> Vec<(String, usize)> {
        let count = coll.count();
        if let Some((c, l)) = self.labels.lock().expect("lock").get(coll.name()) {
            if *c == count {
                return l.clone();
            }
        }
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for id in coll.ids() {
            if let Some(l) = coll.get_metadata(id).and_then(|m| ImageMeta::from_metadata(m).label) {
                *counts.entry(l).or_default() += 1;
            }
        }
        let out: Vec<(String, usize)> = counts.into_iter().collect();
        self.labels.lock().expect("lock").insert(coll.name().to_string(), (count, out.clone()));
        out
    }

    /// True when `path` (canonical) lies under a folder thumbnails may be read from.
    pub fn thumb_allowed(&self, path: &Path) -> bool {
        let allowed = |roots: &[PathBuf]| roots.iter().any(|r| path.starts_with(r));
        if allowed(&self.thumb_roots.read().expect("lock")) {
            return true;
        }
        if !self.read_only {
            return false; // only this process writes: the roots it read at startup and adds are all
        }
        {
            let mut at = self.roots_read_at.lock().expect("lock");
            if at.elapsed() < ROOTS_REREAD {
                return false;
            }
            *at = Instant::now();
        }
        let mut roots = self.thumb_roots.write().expect("lock");
        for r in indexed_roots(&self.db) {
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
        allowed(&roots)
    }

    /// Catch a replica up with its writer (see [`Database::refresh`]); returns how many
    /// collections changed. Does nothing on a writable server.
    pub fn refresh(&self) -> vecdb::Result<usize> {
        let changed = self.db.refresh()?;
        *self.last_refresh.lock().expect("lock") = Some(Instant::now());
        Ok(changed)
    }

    /// Milliseconds since a replica last caught up with its writer (`None` on a writable server
    /// or before the first refresh).
    pub fn refresh_age_ms(&self) -> Option<u64> {
        let at = (*self.last_refresh.lock().expect("lock"))?;
        Some(at.elapsed().as_millis() as u64)
    }

    /// The configured root `path` (canonical) lies under, if any.
    pub fn path_root_of(&self, path: &Path) -> Option<&Path> {
        self.path_roots.iter().find(|r| path.starts_with(r)).map(PathBuf::as_path)
    }

    /// Register a new background job.
    pub fn new_job(&self, path: PathBuf, collection: &str) -> Arc<Mutex<Job>> {
        let mut jobs = self.jobs.lock().expect("lock");
        let id = jobs.keys().next_back().map_or(1, |k| k + 1);
        let job = Arc::new(Mutex::new(Job {
            id,
            path,
            collection: collection.to_string(),
            state: JobState::Running,
            progress: IndexProgress::default(),
            report: None,
            error: None,
        }));
        jobs.insert(id, job.clone());
        job
    }

    /// A job's current status.
    pub fn job(&self, id: u64) -> Option<Job> {
        self.jobs.lock().expect("lock").get(&id).map(|j| j.lock().expect("lock").clone())
    }
}

/// Least time between two reads of a replica's indexed roots (each reads every record's metadata).
const ROOTS_REREAD: Duration = Duration::from_secs(5);

/// Distinct `root` values stored in the database's records.
fn indexed_roots(db: &Database) -> BTreeSet<PathBuf> {
    let mut roots = BTreeSet::new();
    for name in db.collection_names() {
        let Ok(c) = db.collection(&name) else { continue };
        for id in c.ids() {
            if let Some(r) = c.get_metadata(id).and_then(|m| ImageMeta::from_metadata(m).root_buf()) {
                if !roots.contains(&r) {
                    if let Ok(canon) = r.canonicalize() {
                        roots.insert(canon);
                    }
                    roots.insert(r);
                }
            }
        }
    }
    roots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_states_serialize_as_the_strings_the_api_has_always_sent() {
        let json = |s: JobState| serde_json::to_value(s).unwrap();
        assert_eq!(json(JobState::Running), "running");
        assert_eq!(json(JobState::Done), "done");
        assert_eq!(json(JobState::Failed), "failed");
        let job = Job {
            id: 3,
            path: "/photos".into(),
            collection: "images".into(),
            state: JobState::Running,
            progress: IndexProgress::default(),
            report: None,
            error: None,
        };
        assert_eq!(serde_json::to_value(&job).unwrap()["state"], "running");
    }
}
