//! A collection: durable records (WAL + segments) plus one index per vector field.
//!
//! Concurrency: any number of readers share a `RwLock` over the in-memory state
//! (so a search sees one consistent snapshot); writes go through a group-commit
//! queue: the first waiting writer becomes the leader, validates every queued
//! operation, appends them all to the WAL with one `write`, makes them durable with
//! one `fdatasync`, and only then applies them to the in-memory state and indexes.
//! See `docs/storage.md` for the on-disk format.
//!
//! One crash-critical job per file:
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the [`Collection`] handle, its lifecycle (drop = checkpoint + snapshots) |
//! | `state.rs` | the in-memory view readers share: where each record is, memtable, indexes |
//! | `open.rs` | creating the files of a new collection; opening = recovery (segments, WAL replay, stray files) |
//! | `commit.rs` | group commit: validate, append + fsync the WAL, then apply |
//! | `follow.rs` | read-only handles that follow another process's writes (catch-up) |
//! | `checkpoint.rs` | moving the WAL into a segment, compaction, index changes (the MANIFEST commits) |
//! | `snapshot.rs` | saving and loading index snapshots so a restart does not rebuild them |
//! | `query.rs` | reads: get, scan, search, batch search, stats |

mod auto;
mod background;
mod checkpoint;
mod commit;
mod follow;
mod in_place;
mod open;
mod query;
mod rows;
mod snapshot;
mod state;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::{Condvar, Mutex, RecursiveRwLock};

use crate::error::{Error, Result};
use crate::lock::DbLock;
use crate::manifest::Manifest;
use crate::schema::CollectionSchema;
use crate::wal::Wal;

pub(crate) use auto::is_auto_graph;
pub use auto::{parse_size, AutoPolicy, DEFAULT_THRESHOLD as AUTO_THRESHOLD};
pub use background::set_background_builds;
use commit::Queue;
pub use follow::RefreshReport;
pub(crate) use snapshot::{read_marker, snapshot_dir, snapshot_marker};
use state::State;

/// The writer's side: the open WAL and the current MANIFEST (behind the writer lock).
struct Writer {
    wal: Wal,
    manifest: Manifest,
    /// Set after a failed WAL write or checkpoint: further writes are refused.
    poisoned: Option<String>,
}

/// The schema and its later versions (after [`Collection::set_index`]): a list that only grows,
/// so `schema()` can hand out a reference without a lock.
struct SchemaNode {
    schema: CollectionSchema,
    next: OnceLock<Box<SchemaNode>>,
}

/// A named set of records with a fixed schema. Obtain one from
/// [`crate::Database::create_collection`] or [`crate::Database::collection`];
/// every method takes `&self`, share it as `Arc<Collection>` across threads.
///
/// ```rust
/// use vecdb::{Database, CollectionSchema, Metric, Record, Vector, Query, SearchRequest, Filter};
/// use serde_json::json;
///
/// let dir = tempfile::tempdir().unwrap();
/// let db = Database::open(dir.path()).unwrap();
/// let photos = db.create_collection("photos", CollectionSchema::single("emb", 3, Metric::L2, "Flat")).unwrap();
/// photos.insert(vec![
///     Record::new(1).with_vector("emb", Vector::Dense(vec![0.0, 0.0, 1.0])).with_metadata(json!({"label": "cat"})),
///     Record::new(2).with_vector("emb", Vector::Dense(vec![0.0, 1.0, 0.0])).with_metadata(json!({"label": "dog"})),
///     Record::new(3).with_vector("emb", Vector::Dense(vec![0.0, 0.9, 0.1])).with_metadata(json!({"label": "dog"})),
/// ]).unwrap();
/// assert_eq!(photos.count(), 3);
///
/// // top-2 with a filter, and "more like this" by id
/// let req = SearchRequest::new("emb", Query::Vector(Vector::Dense(vec![0.0, 0.0, 1.0])), 2)
///     .with_filter(Filter::parse("label=dog").unwrap());
/// let hits = photos.search(&req).unwrap();
/// assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![3, 2]);
/// let like2 = photos.search(&SearchRequest::new("emb", Query::Id(2), 1)).unwrap();
/// assert_eq!(like2[0].id, 3);
///
/// // range search: everything within a distance, with or without k
/// let mut near = SearchRequest::new("emb", Query::Vector(Vector::Dense(vec![0.0, 1.0, 0.0])), 10);
/// near.threshold = Some(0.2);
/// assert_eq!(photos.search(&near).unwrap().iter().map(|h| h.id).collect::<Vec<_>>(), vec![2, 3]);
///
/// // a batch of queries runs in parallel (one result list per query)
/// let qs: Vec<SearchRequest> = [vec![0.0, 0.0, 1.0], vec![0.0, 1.0, 0.0]]
///     .into_iter()
///     .map(|v| SearchRequest::new("emb", Query::Vector(Vector::Dense(v)), 1))
///     .collect();
/// let firsts: Vec<u64> = photos.search_batch(&qs).unwrap().iter().map(|h| h[0].id).collect();
/// assert_eq!(firsts, vec![1, 2]);
///
/// // upsert replaces, get returns vectors and metadata, delete removes, for_each scans in id order
/// photos.upsert(vec![Record::new(1).with_vector("emb", Vector::Dense(vec![1.0, 0.0, 0.0]))
///     .with_metadata(json!({"label": "fox"}))]).unwrap();
/// let one = photos.get(1).unwrap().unwrap();
/// assert_eq!((one.vectors["emb"].clone(), one.metadata["label"].clone()), (Vector::Dense(vec![1.0, 0.0, 0.0]), json!("fox")));
/// assert_eq!(photos.delete(&[2]).unwrap(), 1);
/// let mut seen = Vec::new();
/// photos.for_each(|r| seen.push(r.id)).unwrap();
/// assert_eq!(seen, vec![1, 3]);
/// // a duplicate id on insert is an error that changes nothing
/// assert!(photos.insert(vec![Record::new(3).with_vector("emb", Vector::Dense(vec![0.0; 3]))]).is_err());
/// assert_eq!(photos.count(), 2);
/// ```
pub struct Collection {
    name: String,
    dir: PathBuf,
    schemas: SchemaNode,
    /// Recursive: a search may run inside a rayon task that another search holding a
    /// read lock on this thread waits for (search_batch), so readers must not queue
    /// behind a waiting writer.
    state: RecursiveRwLock<State>,
    /// Writer (owns the WAL and the MANIFEST) or read-only follower of another process's files.
    access: Access,
    /// Held while index snapshots are written (outside the writer lock), so that two
    /// checkpoints, or a checkpoint and a drop, never write the same files at once.
    snapshotting: Mutex<()>,
    queue: Mutex<Queue>,
    cv: Condvar,
    dropped: AtomicBool,
    /// The database lock (writers only).
    _lock: Option<Arc<DbLock>>,
    /// A weak handle on the `Arc` this collection lives in (set by [`Collection::shared`]), for
    /// the background index builds.
    me: OnceLock<Weak<Collection>>,
    /// Background build threads still running (including the checkpoint after a swap).
    builds_running: Arc<AtomicUsize>,
}

/// How this handle reaches the files.
enum Access {
    /// This process writes: the WAL and the MANIFEST are its own.
    Writer(Mutex<Writer>),
    /// Read-only: follows the files another process writes (see `follow.rs`).
    Follower(Mutex<follow::Follower>),
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("name", &self.name).field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Collection {
    /// Put an opened collection in its `Arc` and start the background index builds it is due.
    pub(crate) fn shared(self) -> Arc<Collection> {
        let c = Arc::new(self);
        let _ = c.me.set(Arc::downgrade(&c));
        c.start_due_builds();
        c
    }

    /// Mark dropped: later calls fail with [`Error::UnknownCollection`].
    pub(crate) fn mark_dropped(&self) {
        let _s = self.snapshotting.lock();
        let _w = match &self.access {
            Access::Writer(w) => Some(w.lock()),
            Access::Follower(_) => None,
        };
        self.dropped.store(true, Ordering::SeqCst);
    }

    /// The writer's side, or [`Error::ReadOnly`] for a read-only handle.
    fn writer(&self) -> Result<parking_lot::MutexGuard<'_, Writer>> {
        match &self.access {
            Access::Writer(w) => Ok(w.lock()),
            Access::Follower(_) => Err(Error::ReadOnly(self.name.clone())),
        }
    }

    /// True for a handle from [`crate::Database::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        matches!(self.access, Access::Follower(_))
    }

    fn check_alive(&self) -> Result<()> {
        if self.dropped.load(Ordering::SeqCst) {
            Err(Error::UnknownCollection(self.name.clone()))
        } else {
            Ok(())
        }
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The current schema (index specs follow [`Collection::set_index`]).
    pub fn schema(&self) -> &CollectionSchema {
        let mut n = &self.schemas;
        while let Some(next) = n.next.get() {
            n = next;
        }
        &n.schema
    }

    fn push_schema(&self, schema: CollectionSchema) {
        let mut n = &self.schemas;
        loop {
            match n.next.get() {
                Some(next) => n = next,
                None => {
                    // Only the writer (holding the writer lock) appends, so this cannot race.
                    let _ = n.next.set(Box::new(SchemaNode { schema, next: OnceLock::new() }));
                    return;
                }
            }
        }
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        self.state.get_mut().cancel_builds();
        if self.dropped.load(Ordering::SeqCst) {
            return;
        }
        let Access::Writer(writer) = &mut self.access else {
            return; // a follower writes nothing
        };
        let poisoned = writer.get_mut().poisoned.is_some();
        let st = self.state.get_mut();
        let dirty = !st.memtable.is_empty() || !st.tombstones.is_empty();
        if !poisoned && dirty {
            let Ok(mut w) = self.writer() else { return };
            if let Err(e) = self.checkpoint_locked(&mut w) {
                tracing::warn!(collection = %self.name, error = %e, "checkpoint on close failed (the WAL still holds the data)");
                return;
            }
        }
        if poisoned {
            return;
        }
        // Closing: nothing else holds the collection, so the indexes are saved in place.
        let Ok(w) = self.writer() else { return };
        let st = self.state.read();
        for (f, marker) in self.snapshots_due(&w, &st) {
            let index = st.indexes[f].index.as_ref();
            self.write_snapshot(f, index, &marker, st.row_hints(f, index).as_deref());
        }
    }
}

fn poisoned_error(collection: &str, why: &str) -> Error {
    Error::Poisoned { collection: collection.to_string(), reason: why.to_string() }
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}
