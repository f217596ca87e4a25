//! A collection: durable records (WAL + segments) plus one index per vector field.
//!
//! Concurrency: any number of readers share a `RwLock` over the in-memory state
//! (so a search sees one consistent snapshot); writes go through a group-commit
//! queue: the first waiting writer becomes the leader, validates every queued
//! operation, appends them all to the WAL with one `write`, makes them durable with
//! one `fdatasync`, and only then applies them to the in-memory state and indexes.
//! See `docs/storage.md` for the on-disk format.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex, RecursiveRwLock};
use rayon::prelude::*;

use crate::db::DbLock;
use crate::error::{Error, Result};
use crate::filter::Metadata;
use crate::fsutil::{remove_if_exists, sync_dir};
use crate::index::{build_index, IdFilter, Neighbor, VectorIndex};
use crate::manifest::{Manifest, MANIFEST};
use crate::metric::Element;
use crate::schema::{prepare_vector, prepare_vectors, CollectionSchema, Record, VectorField};
use crate::search::{CollectionStats, FieldStats, Hit, IndexOrigin, Query, SearchRequest};
use crate::segment::{segment_file_name, write_segment, Segment, SegmentSource};
use crate::vector::{Vector, VectorRef, VectorsRef};
use crate::wal::{wal_file_name, PutRec, Wal, WalOp};

/// WAL size that triggers a checkpoint into a new segment.
const CHECKPOINT_BYTES: u64 = 64 << 20;
/// Rows per `VectorIndex::add` call when (re)building an index.
const BUILD_CHUNK: usize = 16_384;
/// Most vectors used to train an index that needs training.
const TRAIN_SAMPLE: usize = 100_000;

/// Where a live record's vectors are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loc {
    /// In the memtable (written to the WAL, not yet to a segment).
    Mem,
    /// Segment slot, row.
    Seg(u32, u32),
}

struct Slot {
    loc: Loc,
    meta: Metadata,
}

struct FieldIndex {
    index: Box<dyn VectorIndex>,
    /// False while the index could not be trained or failed an update: searches
    /// on the field then scan the stored vectors exactly.
    ready: bool,
    /// Live count when a (failed) build was last tried.
    tried_at: usize,
    /// Built here, or loaded from a snapshot.
    origin: IndexOrigin,
}

/// The in-memory view readers share.
struct State {
    segments: Vec<Arc<Segment>>,
    slots: HashMap<u64, Slot>,
    memtable: HashMap<u64, Vec<Vector>>,
    /// Ids deleted since the last checkpoint (written into the next segment).
    tombstones: Vec<u64>,
    /// Live records whose vectors are in a segment.
    seg_live: usize,
    indexes: Vec<FieldIndex>,
}

struct Writer {
    wal: Wal,
    manifest: Manifest,
    /// Set after a failed WAL write or checkpoint: further writes are refused.
    poisoned: Option<String>,
}

enum Op {
    Insert(Vec<PutRec>),
    Upsert(Vec<PutRec>),
    Delete(Vec<u64>),
}

struct Ticket {
    op: Mutex<Option<Op>>,
    result: Mutex<Option<Result<usize>>>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Arc<Ticket>>,
    leader: bool,
}

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
    writer: Mutex<Writer>,
    /// Held while index snapshots are written (outside the writer lock), so that two
    /// checkpoints, or a checkpoint and a drop, never write the same files at once.
    snapshotting: Mutex<()>,
    queue: Mutex<Queue>,
    cv: Condvar,
    dropped: AtomicBool,
    _lock: Arc<DbLock>,
}

impl std::fmt::Debug for Collection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collection").field("name", &self.name).field("dir", &self.dir).finish_non_exhaustive()
    }
}

/// A growable row-major buffer of vectors of one field.
enum Buf {
    Dense(Vec<f32>),
    Bits(Vec<u8>),
}

impl Buf {
    fn new(el: Element) -> Buf {
        match el {
            Element::F32 => Buf::Dense(Vec::new()),
            Element::Bit => Buf::Bits(Vec::new()),
        }
    }
    fn push(&mut self, v: VectorRef<'_>) {
        match (self, v) {
            (Buf::Dense(b), VectorRef::Dense(x)) => b.extend_from_slice(x),
            (Buf::Bits(b), VectorRef::Binary(x)) => b.extend_from_slice(x),
            _ => unreachable!("vectors are validated against the field's element kind"),
        }
    }
    fn as_ref(&self) -> VectorsRef<'_> {
        match self {
            Buf::Dense(b) => VectorsRef::Dense(b),
            Buf::Bits(b) => VectorsRef::Binary(b),
        }
    }
    fn clear(&mut self) {
        match self {
            Buf::Dense(b) => b.clear(),
            Buf::Bits(b) => b.clear(),
        }
    }
}

impl State {
    fn vector(&self, id: u64, f: usize) -> Option<VectorRef<'_>> {
        match self.slots.get(&id)?.loc {
            Loc::Mem => self.memtable.get(&id).map(|v| v[f].as_ref()),
            Loc::Seg(s, r) => Some(self.segments[s as usize].vector(f, r as usize)),
        }
    }

    fn vectors_map(&self, id: u64, schema: &CollectionSchema) -> Option<BTreeMap<String, Vector>> {
        let mut out = BTreeMap::new();
        for (f, field) in schema.fields.iter().enumerate() {
            out.insert(field.name.clone(), self.vector(id, f)?.to_owned());
        }
        Some(out)
    }

    /// Call `cb` for every live record's vector of field `f`.
    fn for_each_live(&self, f: usize, cb: impl FnMut(u64, VectorRef<'_>)) {
        self.for_each_live_since(f, 0, cb)
    }

    /// [`State::for_each_live`] restricted to the records that live in segments
    /// `first_segment..` or in the memtable.
    fn for_each_live_since(&self, f: usize, first_segment: usize, mut cb: impl FnMut(u64, VectorRef<'_>)) {
        for (si, seg) in self.segments.iter().enumerate().skip(first_segment) {
            for (row, &id) in seg.ids().iter().enumerate() {
                if self.slots.get(&id).is_some_and(|s| s.loc == Loc::Seg(si as u32, row as u32)) {
                    cb(id, seg.vector(f, row));
                }
            }
        }
        for (&id, v) in &self.memtable {
            cb(id, v[f].as_ref());
        }
    }

    fn put(&mut self, recs: Vec<PutRec>, schema: &CollectionSchema, update_index: bool) {
        if update_index {
            let ids: Vec<u64> = recs.iter().map(|r| r.id).collect();
            for (f, field) in schema.fields.iter().enumerate() {
                let mut buf = Buf::new(field.element());
                for r in &recs {
                    buf.push(r.vectors[f].as_ref());
                }
                let fi = &mut self.indexes[f];
                if fi.ready {
                    if let Err(e) = fi.index.add(&ids, buf.as_ref()) {
                        tracing::warn!(field = %field.name, error = %e, "index update failed; searching this field exactly until it is rebuilt");
                        fi.ready = false;
                    }
                }
            }
        }
        for r in recs {
            if let Some(old) = self.slots.insert(r.id, Slot { loc: Loc::Mem, meta: r.metadata }) {
                if let Loc::Seg(..) = old.loc {
                    self.seg_live -= 1;
                }
            }
            self.memtable.insert(r.id, r.vectors);
        }
    }

    fn delete(&mut self, ids: &[u64], update_index: bool) -> usize {
        let mut n = 0;
        for &id in ids {
            if let Some(old) = self.slots.remove(&id) {
                n += 1;
                match old.loc {
                    Loc::Seg(..) => self.seg_live -= 1,
                    Loc::Mem => {
                        self.memtable.remove(&id);
                    }
                }
            }
            // Always tombstone: an older segment may hold a row of this id even
            // when its latest version lived in the memtable.
            self.tombstones.push(id);
        }
        if update_index {
            for fi in self.indexes.iter_mut().filter(|fi| fi.ready) {
                if let Err(e) = fi.index.remove(ids) {
                    tracing::warn!(error = %e, "index remove failed; searching this field exactly until it is rebuilt");
                    fi.ready = false;
                }
            }
        }
        n
    }

    /// Build a fresh index of `spec` for field `f` from the stored vectors.
    fn build_field(&self, spec: &str, field: &VectorField, f: usize) -> Result<FieldIndex> {
        let mut index = build_index(spec, field.dim, field.metric)?;
        let n = self.slots.len();
        let not_ready = |index| Ok(FieldIndex { index, ready: false, tried_at: n, origin: IndexOrigin::Built });
        if !index.is_trained() {
            if n == 0 {
                return not_ready(index);
            }
            let stride = n.div_ceil(TRAIN_SAMPLE).max(1);
            let mut sample = Buf::new(field.element());
            let mut i = 0usize;
            self.for_each_live(f, |_, v| {
                if i.is_multiple_of(stride) {
                    sample.push(v);
                }
                i += 1;
            });
            if let Err(e) = index.train(sample.as_ref()) {
                tracing::warn!(field = %field.name, spec, error = %e, "index not trained yet; exact search meanwhile");
                return not_ready(index);
            }
        }
        if let Err(e) = self.add_live_since(field, f, 0, index.as_mut()) {
            tracing::warn!(field = %field.name, spec, error = %e, "index build failed; exact search meanwhile");
            return not_ready(index);
        }
        Ok(FieldIndex { index, ready: true, tried_at: n, origin: IndexOrigin::Built })
    }

    /// Add to `index`, in chunks of [`BUILD_CHUNK`], field `f`'s vector of every live record
    /// in segments `first_segment..` or in the memtable; returns how many were added. Stops at
    /// the first failed add.
    fn add_live_since(
        &self,
        field: &VectorField,
        f: usize,
        first_segment: usize,
        index: &mut dyn VectorIndex,
    ) -> Result<usize> {
        let (mut ids, mut buf) = (Vec::with_capacity(BUILD_CHUNK), Buf::new(field.element()));
        let (mut added, mut failed) = (0, None);
        let mut flush = |ids: &mut Vec<u64>, buf: &mut Buf| {
            if failed.is_none() && !ids.is_empty() {
                match index.add(ids, buf.as_ref()) {
                    Ok(()) => added += ids.len(),
                    Err(e) => failed = Some(e),
                }
            }
            ids.clear();
            buf.clear();
        };
        self.for_each_live_since(f, first_segment, |id, v| {
            ids.push(id);
            buf.push(v);
            if ids.len() == BUILD_CHUNK {
                flush(&mut ids, &mut buf);
            }
        });
        flush(&mut ids, &mut buf);
        match failed {
            Some(e) => Err(e),
            None => Ok(added),
        }
    }

    /// Retry building indexes that are not ready once the collection has doubled.
    fn retry_unready(&mut self, schema: &CollectionSchema) {
        let n = self.slots.len();
        for (f, field) in schema.fields.iter().enumerate() {
            let fi = &self.indexes[f];
            if !fi.ready && n > 0 && n >= fi.tried_at.saturating_mul(2).max(1) {
                match self.build_field(&field.index, field, f) {
                    Ok(b) => self.indexes[f] = b,
                    Err(e) => {
                        tracing::warn!(field = %field.name, error = %e, "index rebuild failed");
                        self.indexes[f].tried_at = n;
                    }
                }
            }
        }
    }

    /// Turn index results into hits with the metadata/vectors `req` asks for.
    /// Distances are clamped to the metric's range (rounding can put an identical vector at a
    /// cosine distance of −1e-7).
    fn hits(&self, neighbors: Vec<Neighbor>, schema: &CollectionSchema, req: &SearchRequest) -> Vec<Hit> {
        let metric = schema.field_index(&req.field).ok().map(|f| schema.fields[f].metric);
        neighbors
            .into_iter()
            .filter_map(|n| {
                let slot = self.slots.get(&n.id)?;
                Some(Hit {
                    id: n.id,
                    distance: metric.map_or(n.distance, |m| m.clamp_distance(n.distance)),
                    metadata: req.include_metadata.then(|| slot.meta.clone()),
                    vectors: if req.include_vectors { self.vectors_map(n.id, schema) } else { None },
                })
            })
            .collect()
    }

    /// Exact search over stored vectors (used while a field's index is not ready).
    fn exact_search(
        &self,
        field: &VectorField,
        f: usize,
        q: VectorRef<'_>,
        k: Option<usize>,
        threshold: Option<f32>,
        pred: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let mut out = Vec::new();
        let mut err = None;
        self.for_each_live(f, |id, v| {
            if pred.is_some_and(|p| !p(id)) {
                return;
            }
            match field.metric.distance(q, v) {
                Ok(d) if threshold.is_none_or(|t| d <= t) => out.push(Neighbor { id, distance: d }),
                Ok(_) => {}
                Err(e) => err = Some(e),
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        out.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
        if let Some(k) = k {
            out.truncate(k);
        }
        Ok(out)
    }
}

/// Rows for a new segment: a sorted list of ids read from the state.
struct StateRows<'a> {
    ids: Vec<u64>,
    /// Where each row's vectors and metadata are, resolved once.
    rows: Vec<(RowRef<'a>, &'a Metadata)>,
}

enum RowRef<'a> {
    Mem(&'a [Vector]),
    Seg(&'a Segment, usize),
}

impl<'a> StateRows<'a> {
    /// Rows for `ids`, which must all be live.
    fn new(st: &'a State, ids: Vec<u64>) -> Self {
        let rows = ids
            .iter()
            .map(|id| {
                let slot = &st.slots[id];
                let r = match slot.loc {
                    Loc::Mem => RowRef::Mem(&st.memtable[id]),
                    Loc::Seg(s, r) => RowRef::Seg(&st.segments[s as usize], r as usize),
                };
                (r, &slot.meta)
            })
            .collect();
        StateRows { ids, rows }
    }
}

impl SegmentSource for StateRows<'_> {
    fn rows(&self) -> usize {
        self.ids.len()
    }
    fn id(&self, i: usize) -> u64 {
        self.ids[i]
    }
    fn vector(&self, i: usize, f: usize) -> VectorRef<'_> {
        match self.rows[i].0 {
            RowRef::Mem(v) => v[f].as_ref(),
            RowRef::Seg(seg, r) => seg.vector(f, r),
        }
    }
    fn metadata(&self, i: usize) -> &Metadata {
        self.rows[i].1
    }
}

impl Collection {
    /// Open the collection stored in `dir` (replaying its WAL).
    pub(crate) fn open(name: &str, dir: &Path, lock: Arc<DbLock>) -> Result<Collection> {
        let manifest = Manifest::read(dir)?;
        let schema = manifest.schema.clone();
        let mut segments = Vec::with_capacity(manifest.segments.len());
        for &seq in &manifest.segments {
            segments.push(Arc::new(Segment::open(&dir.join(segment_file_name(seq)), seq, &schema)?));
        }
        let mut st = State {
            segments: Vec::new(),
            slots: HashMap::new(),
            memtable: HashMap::new(),
            tombstones: Vec::new(),
            seg_live: 0,
            indexes: Vec::new(),
        };
        for (si, seg) in segments.iter().enumerate() {
            for &t in seg.tombstones() {
                if let Some(old) = st.slots.remove(&t) {
                    if let Loc::Seg(..) = old.loc {
                        st.seg_live -= 1;
                    }
                }
            }
            let metas: Vec<Metadata> =
                (0..seg.rows()).into_par_iter().map(|r| seg.metadata(r)).collect::<Result<_>>()?;
            st.slots.reserve(seg.rows());
            for (row, (&id, meta)) in seg.ids().iter().zip(metas).enumerate() {
                let old = st.slots.insert(id, Slot { loc: Loc::Seg(si as u32, row as u32), meta });
                if !matches!(old, Some(Slot { loc: Loc::Seg(..), .. })) {
                    st.seg_live += 1;
                }
            }
        }
        st.segments = segments;
        let wal_path = dir.join(wal_file_name(manifest.wal_gen));
        let (wal, report) = Wal::open(&wal_path, manifest.wal_gen, |payload| {
            match WalOp::decode(payload, &schema, &wal_path)? {
                WalOp::Put(recs) => st.put(recs, &schema, false),
                WalOp::Delete(ids) => {
                    st.delete(&ids, false);
                }
            }
            Ok(())
        })?;
        tracing::debug!(collection = name, frames = report.frames, truncated = report.truncated_bytes, "WAL replayed");
        remove_stray_files(dir, &manifest)?;
        let built: Vec<Result<FieldIndex>> = schema
            .fields
            .par_iter()
            .enumerate()
            .map(|(f, field)| match st.load_snapshot(dir, field, f, &manifest) {
                Some(fi) => Ok(fi),
                None => st.build_field(&field.index, field, f),
            })
            .collect();
        st.indexes = built.into_iter().collect::<Result<_>>()?;
        Ok(Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            schemas: SchemaNode { schema, next: OnceLock::new() },
            state: RecursiveRwLock::new(st),
            writer: Mutex::new(Writer { wal, manifest, poisoned: None }),
            snapshotting: Mutex::new(()),
            queue: Mutex::new(Queue::default()),
            cv: Condvar::new(),
            dropped: AtomicBool::new(false),
            _lock: lock,
        })
    }

    /// Write the files of a new, empty collection into `dir` (which must exist).
    pub(crate) fn create_files(dir: &Path, schema: &CollectionSchema) -> Result<()> {
        let gen = 1;
        Wal::create(&dir.join(wal_file_name(gen)), gen)?;
        sync_dir(dir)?;
        Manifest { schema: schema.clone(), segments: vec![], wal_gen: gen, next_seq: 1 }.write(dir)
    }

    /// Mark dropped: later calls fail with [`Error::UnknownCollection`].
    pub(crate) fn mark_dropped(&self) {
        let _s = self.snapshotting.lock();
        let _w = self.writer.lock();
        self.dropped.store(true, Ordering::SeqCst);
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

    fn prepare(&self, records: Vec<Record>) -> Result<Vec<PutRec>> {
        let schema = self.schema();
        records
            .into_iter()
            .map(|mut r| Ok(PutRec { id: r.id, vectors: prepare_vectors(schema, &mut r)?, metadata: r.metadata }))
            .collect()
    }

    /// Insert new records: all or nothing, durable (fsynced) when this returns.
    /// Fails without writing anything on a duplicate id (in the batch or already
    /// stored), a wrong dimension, NaN/inf, an unknown or missing vector field.
    pub fn insert(&self, records: Vec<Record>) -> Result<()> {
        self.check_alive()?;
        let recs = self.prepare(records)?;
        let mut seen = HashSet::with_capacity(recs.len());
        if let Some(r) = recs.iter().find(|r| !seen.insert(r.id)) {
            return Err(Error::DuplicateId(r.id));
        }
        if recs.is_empty() {
            return Ok(());
        }
        self.submit(Op::Insert(recs)).map(|_| ())
    }

    /// Insert or replace records (all or nothing, durable when this returns);
    /// within one batch a later record with the same id wins.
    pub fn upsert(&self, records: Vec<Record>) -> Result<()> {
        self.check_alive()?;
        let recs = self.prepare(records)?;
        if recs.is_empty() {
            return Ok(());
        }
        self.submit(Op::Upsert(recs)).map(|_| ())
    }

    /// Delete ids (durable when this returns); returns how many existed.
    pub fn delete(&self, ids: &[u64]) -> Result<usize> {
        self.check_alive()?;
        if ids.is_empty() {
            return Ok(0);
        }
        self.submit(Op::Delete(ids.to_vec()))
    }

    /// Group commit: queue `op`; the first waiting writer commits everything queued.
    fn submit(&self, op: Op) -> Result<usize> {
        let ticket = Arc::new(Ticket { op: Mutex::new(Some(op)), result: Mutex::new(None) });
        let mut q = self.queue.lock();
        q.pending.push(ticket.clone());
        loop {
            if let Some(r) = ticket.result.lock().take() {
                return r;
            }
            if !q.leader {
                q.leader = true;
                let batch = std::mem::take(&mut q.pending);
                drop(q);
                let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.commit_group(&batch)));
                if run.is_err() {
                    // An index panicked mid-apply: the WAL is intact but memory may be half
                    // updated, so refuse further writes (reopening recovers) and wake everyone.
                    let why = "internal panic while applying a write".to_string();
                    self.writer.lock().poisoned = Some(why.clone());
                    for t in &batch {
                        let mut r = t.result.lock();
                        if r.is_none() {
                            *r = Some(Err(poisoned_error(&self.dir, &why)));
                        }
                    }
                }
                q = self.queue.lock();
                q.leader = false;
                self.cv.notify_all();
                continue;
            }
            self.cv.wait(&mut q);
        }
    }

    fn commit_group(&self, batch: &[Arc<Ticket>]) {
        let finish = |t: &Ticket, r: Result<usize>| *t.result.lock() = Some(r);
        let mut w = self.writer.lock();
        if self.dropped.load(Ordering::SeqCst) {
            batch.iter().for_each(|t| finish(t, Err(Error::UnknownCollection(self.name.clone()))));
            return;
        }
        if let Some(why) = &w.poisoned {
            let why = why.clone();
            batch.iter().for_each(|t| finish(t, Err(poisoned_error(&self.dir, &why))));
            return;
        }
        let schema = self.schema();
        // Validate against the state plus the effects of earlier operations in this group.
        let mut accepted: Vec<(usize, WalOp, usize)> = Vec::new();
        {
            let st = self.state.read();
            let mut overlay: HashMap<u64, bool> = HashMap::new();
            for (i, t) in batch.iter().enumerate() {
                let Some(op) = t.op.lock().take() else {
                    continue;
                };
                let present = |overlay: &HashMap<u64, bool>, id: u64| {
                    overlay.get(&id).copied().unwrap_or_else(|| st.slots.contains_key(&id))
                };
                match op {
                    Op::Insert(recs) => {
                        if let Some(r) = recs.iter().find(|r| present(&overlay, r.id)) {
                            finish(t, Err(Error::DuplicateId(r.id)));
                            continue;
                        }
                        recs.iter().for_each(|r| {
                            overlay.insert(r.id, true);
                        });
                        let n = recs.len();
                        accepted.push((i, WalOp::Put(recs), n));
                    }
                    Op::Upsert(recs) => {
                        recs.iter().for_each(|r| {
                            overlay.insert(r.id, true);
                        });
                        let n = recs.len();
                        accepted.push((i, WalOp::Put(recs), n));
                    }
                    Op::Delete(ids) => {
                        let mut seen = HashSet::new();
                        let live: Vec<u64> =
                            ids.into_iter().filter(|&id| seen.insert(id) && present(&overlay, id)).collect();
                        if live.is_empty() {
                            finish(t, Ok(0));
                            continue;
                        }
                        live.iter().for_each(|&id| {
                            overlay.insert(id, false);
                        });
                        let n = live.len();
                        accepted.push((i, WalOp::Delete(live), n));
                    }
                }
            }
        }
        if accepted.is_empty() {
            return;
        }
        let mut payloads = Vec::with_capacity(accepted.len());
        let mut ok = Vec::with_capacity(accepted.len());
        for (i, op, n) in accepted {
            match op.encode() {
                Ok(p) => {
                    payloads.push(p);
                    ok.push((i, op, n));
                }
                Err(e) => finish(&batch[i], Err(e)),
            }
        }
        if let Err(e) = w.wal.append(&payloads).and_then(|_| w.wal.sync()) {
            let why = e.to_string();
            tracing::error!(collection = %self.name, error = %why, "WAL write failed; collection is now read-only");
            w.poisoned = Some(why);
            for (i, _, _) in &ok {
                finish(&batch[*i], Err(Error::io(w.wal.path(), std::io::Error::other(e.to_string()))));
            }
            return;
        }
        {
            let mut st = self.state.write();
            for (i, op, n) in ok {
                match op {
                    WalOp::Put(recs) => st.put(recs, schema, true),
                    WalOp::Delete(ids) => {
                        st.delete(&ids, true);
                    }
                }
                finish(&batch[i], Ok(n));
            }
            if st.indexes.iter().any(|fi| !fi.ready) {
                st.retry_unready(schema);
            }
        }
        if w.wal.len() >= CHECKPOINT_BYTES {
            if let Err(e) = self.checkpoint_locked(&mut w) {
                tracing::error!(collection = %self.name, error = %e, "checkpoint failed");
            }
        }
    }

    /// Move the WAL's records into a new segment and start an empty WAL, then save a snapshot
    /// of every index that is costly to rebuild (all but `Flat`), so that an open after a crash
    /// loads it and adds only what was written since. Done automatically when the collection
    /// is dropped; the WAL is also moved (without snapshots) whenever it grows past 64 MiB.
    ///
    /// Writers wait only while the indexes are copied in memory
    /// ([`VectorIndex::clone_index`], for indexes up to 4 GiB); the copies are written to
    /// disk after the locks are released, and searches go on throughout.
    pub fn checkpoint(&self) -> Result<()> {
        self.check_alive()?;
        let _one_at_a_time = self.snapshotting.lock();
        let copies = {
            let mut w = self.writer.lock();
            if let Some(why) = &w.poisoned {
                return Err(poisoned_error(&self.dir, why));
            }
            self.checkpoint_locked(&mut w)?;
            let st = self.state.read();
            let mut copies = Vec::new();
            for (f, marker) in self.snapshots_due(&w, &st) {
                let index = st.indexes[f].index.as_ref();
                let copy = if index.memory_bytes() <= SNAPSHOT_COPY_MAX_BYTES { index.clone_index() } else { None };
                match copy {
                    Some(copy) => copies.push((f, copy, marker)),
                    None => self.write_snapshot(f, index, &marker),
                }
            }
            copies
        };
        for (f, index, marker) in copies {
            self.write_snapshot(f, index.as_ref(), &marker);
        }
        Ok(())
    }

    fn checkpoint_locked(&self, w: &mut Writer) -> Result<()> {
        let (empty, tomb_empty) = {
            let st = self.state.read();
            (st.memtable.is_empty(), st.tombstones.is_empty())
        };
        if empty && tomb_empty {
            return Ok(());
        }
        self.rewrite(w, false)
    }

    /// Rewrite storage: `full == false` writes the memtable and pending tombstones into
    /// one new segment; `full == true` writes every live record into one segment and
    /// removes all older ones (compaction).
    fn rewrite(&self, w: &mut Writer, full: bool) -> Result<()> {
        let schema = self.schema().clone();
        let seq = w.manifest.next_seq;
        let seg_path = self.dir.join(segment_file_name(seq));
        {
            let st = self.state.read();
            let mut ids: Vec<u64> =
                if full { st.slots.keys().copied().collect() } else { st.memtable.keys().copied().collect() };
            ids.sort_unstable();
            let mut tombs = if full { vec![] } else { st.tombstones.clone() };
            tombs.sort_unstable();
            tombs.dedup();
            write_segment(&seg_path, seq, &schema, &StateRows::new(&st, ids), &tombs)?;
        }
        let new_gen = w.manifest.wal_gen + 1;
        let new_wal = Wal::create(&self.dir.join(wal_file_name(new_gen)), new_gen)?;
        sync_dir(&self.dir)?;
        let seg = Arc::new(Segment::open(&seg_path, seq, &schema)?);
        let mut manifest = w.manifest.clone();
        let old_segments = std::mem::take(&mut manifest.segments);
        manifest.segments = if full { vec![seq] } else { old_segments.iter().copied().chain([seq]).collect() };
        manifest.wal_gen = new_gen;
        manifest.next_seq = seq + 1;
        if let Err(e) = manifest.write(&self.dir) {
            w.poisoned = Some(format!("manifest write failed during checkpoint: {e}"));
            return Err(e);
        }
        let old_wal = std::mem::replace(&mut w.wal, new_wal);
        w.manifest = manifest;
        {
            let mut st = self.state.write();
            if full {
                st.segments.clear();
                st.seg_live = 0;
            }
            let si = st.segments.len() as u32;
            for (row, &id) in seg.ids().iter().enumerate() {
                if let Some(slot) = st.slots.get_mut(&id) {
                    slot.loc = Loc::Seg(si, row as u32);
                }
            }
            st.seg_live += seg.rows();
            st.segments.push(seg);
            st.memtable.clear();
            st.tombstones.clear();
        }
        remove_if_exists(old_wal.path())?;
        if full {
            for s in old_segments {
                remove_if_exists(&self.dir.join(segment_file_name(s)))?;
            }
        }
        sync_dir(&self.dir)
    }

    /// Rewrite all live records into one segment without deleted or replaced rows.
    pub fn compact(&self) -> Result<()> {
        self.check_alive()?;
        let mut w = self.writer.lock();
        if let Some(why) = &w.poisoned {
            return Err(poisoned_error(&self.dir, why));
        }
        self.rewrite(&mut w, true)
    }

    /// The record with this id (vectors as stored: unit-normalized for cosine fields).
    pub fn get(&self, id: u64) -> Result<Option<Record>> {
        self.check_alive()?;
        let st = self.state.read();
        let Some(slot) = st.slots.get(&id) else {
            return Ok(None);
        };
        let vectors = st.vectors_map(id, self.schema()).expect("live record has all vectors");
        Ok(Some(Record { id, vectors, metadata: slot.meta.clone() }))
    }

    /// The metadata of this id, if stored.
    pub fn get_metadata(&self, id: u64) -> Option<Metadata> {
        self.state.read().slots.get(&id).map(|s| s.meta.clone())
    }

    /// Number of live records.
    pub fn count(&self) -> usize {
        self.state.read().slots.len()
    }

    /// All live ids, ascending.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.state.read().slots.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Call `f` on every live record, in id order. Records are read in chunks, so
    /// `f` may call other methods of the collection (writes made meanwhile may or
    /// may not be seen).
    pub fn for_each(&self, mut f: impl FnMut(&Record)) -> Result<()> {
        self.check_alive()?;
        let ids = self.ids();
        for chunk in ids.chunks(1024) {
            let recs: Vec<Record> = {
                let st = self.state.read();
                let schema = self.schema();
                chunk
                    .iter()
                    .filter_map(|&id| {
                        let slot = st.slots.get(&id)?;
                        Some(Record { id, vectors: st.vectors_map(id, schema)?, metadata: slot.meta.clone() })
                    })
                    .collect()
            };
            recs.iter().for_each(&mut f);
        }
        Ok(())
    }

    /// Run one search (see [`SearchRequest`]).
    pub fn search(&self, req: &SearchRequest) -> Result<Vec<Hit>> {
        self.check_alive()?;
        let schema = self.schema();
        let f = schema.field_index(&req.field)?;
        let field = &schema.fields[f];
        if let Some(t) = req.threshold {
            if t.is_nan() {
                return Err(Error::InvalidArgument("threshold is NaN".into()));
            }
        }
        let st = self.state.read();
        let (query, exclude) = match &req.query {
            Query::Vector(v) => (prepare_vector(field, v.as_ref())?, None),
            Query::Id(id) => (st.vector(*id, f).ok_or(Error::NotFound(*id))?.to_owned(), Some(*id)),
        };
        let filter = req.filter.as_ref();
        let pred = |id: u64| {
            exclude != Some(id) && filter.is_none_or(|flt| st.slots.get(&id).is_some_and(|s| flt.matches(&s.meta)))
        };
        let pred_ref: Option<IdFilter<'_>> = if exclude.is_some() || filter.is_some() { Some(&pred) } else { None };
        let fi = &st.indexes[f];
        let q = query.as_ref();
        let neighbors = match (req.k, req.threshold) {
            (None, None) => {
                return Err(Error::InvalidArgument("a search needs k, a threshold, or both".into()));
            }
            (Some(0), _) => Vec::new(),
            _ if !fi.ready => st.exact_search(field, f, q, req.k, req.threshold, pred_ref)?,
            (Some(k), None) => fi.index.search(q, k, &req.params, pred_ref)?,
            (Some(k), Some(t)) => {
                let mut v = fi.index.search(q, k, &req.params, pred_ref)?;
                v.retain(|n| n.distance <= t);
                v
            }
            (None, Some(t)) => fi.index.range_search(q, t, &req.params, pred_ref)?,
        };
        Ok(st.hits(neighbors, schema, req))
    }

    /// Run many searches in parallel; results in request order. Plain top-k
    /// requests on one field (query vectors, same k and params, no filter or
    /// threshold) go to the index's batched search in one call.
    pub fn search_batch(&self, reqs: &[SearchRequest]) -> Result<Vec<Vec<Hit>>> {
        let Some(first) = reqs.first() else {
            return Ok(Vec::new());
        };
        let batchable = reqs.len() > 1
            && reqs.iter().all(|r| {
                r.field == first.field
                    && r.k == first.k
                    && r.k.is_some_and(|k| k > 0)
                    && r.threshold.is_none()
                    && r.filter.is_none()
                    && r.params == first.params
                    && matches!(r.query, Query::Vector(_))
            });
        if !batchable {
            return reqs.par_iter().map(|r| self.search(r)).collect();
        }
        self.check_alive()?;
        let schema = self.schema();
        let f = schema.field_index(&first.field)?;
        let field = &schema.fields[f];
        let mut buf = Buf::new(field.element());
        for r in reqs {
            if let Query::Vector(v) = &r.query {
                buf.push(prepare_vector(field, v.as_ref())?.as_ref());
            }
        }
        let st = self.state.read();
        let fi = &st.indexes[f];
        if !fi.ready {
            drop(st);
            return reqs.par_iter().map(|r| self.search(r)).collect();
        }
        let k = first.k.expect("batchable requests have k");
        let results = fi.index.search_batch(buf.as_ref(), k, &first.params, None)?;
        Ok(results.into_iter().zip(reqs).map(|(n, r)| st.hits(n, schema, r)).collect())
    }

    /// Rebuild field `field`'s index with factory spec `spec` and persist the choice in the schema.
    pub fn set_index(&self, field: &str, spec: &str) -> Result<()> {
        self.check_alive()?;
        let mut w = self.writer.lock();
        if let Some(why) = &w.poisoned {
            return Err(poisoned_error(&self.dir, why));
        }
        let mut schema = self.schema().clone();
        let f = schema.field_index(field)?;
        let built = {
            let st = self.state.read();
            st.build_field(spec, &schema.fields[f], f)?
        };
        schema.fields[f].index = spec.trim().to_string();
        let mut manifest = w.manifest.clone();
        manifest.schema = schema.clone();
        manifest.write(&self.dir)?;
        w.manifest = manifest;
        self.state.write().indexes[f] = built;
        self.push_schema(schema);
        Ok(())
    }

    /// Counts, disk usage and per-field index figures.
    pub fn stats(&self) -> CollectionStats {
        let schema = self.schema();
        let (wal_bytes, disk_bytes) = {
            let w = self.writer.lock();
            (w.wal.len(), dir_bytes(&self.dir))
        };
        let st = self.state.read();
        let seg_rows: usize = st.segments.iter().map(|s| s.rows()).sum();
        CollectionStats {
            count: st.slots.len(),
            deleted: seg_rows - st.seg_live,
            disk_bytes,
            segments: st.segments.len(),
            wal_bytes,
            fields: schema
                .fields
                .iter()
                .zip(&st.indexes)
                .map(|(field, fi)| FieldStats {
                    name: field.name.clone(),
                    dim: field.dim,
                    metric: field.metric,
                    index: if fi.ready {
                        fi.index.description()
                    } else {
                        format!("{} (untrained: exact scan)", fi.index.description())
                    },
                    memory_bytes: fi.index.memory_bytes(),
                    origin: fi.origin,
                })
                .collect(),
        }
    }
}

impl Collection {
    /// The fields whose index should be saved now, with the marker each snapshot gets: every
    /// ready index that is costly to rebuild (all but `Flat`) and not saved for this manifest
    /// yet. None while the WAL holds records (a snapshot must hold exactly the segments').
    fn snapshots_due(&self, w: &Writer, st: &State) -> Vec<(usize, SnapshotMarker)> {
        if !st.memtable.is_empty() || !st.tombstones.is_empty() {
            return vec![];
        }
        let mut due = Vec::new();
        for (f, (field, fi)) in self.schema().fields.iter().zip(&st.indexes).enumerate() {
            if !fi.ready || fi.index.description() == "Flat" {
                continue;
            }
            let marker = SnapshotMarker {
                spec: field.index.clone(),
                segments: w.manifest.segments.clone(),
                wal_gen: w.manifest.wal_gen,
            };
            if read_marker(&self.dir, &field.name).as_ref() != Some(&marker) {
                due.push((f, marker));
            }
        }
        due
    }

    /// Save field `f`'s index under `marker`; on failure, log and leave no snapshot behind.
    fn write_snapshot(&self, f: usize, index: &dyn VectorIndex, marker: &SnapshotMarker) {
        let field = &self.schema().fields[f].name;
        if let Err(e) = save_snapshot(&self.dir, field, index, marker) {
            tracing::warn!(field = %field, error = %e, "could not save the index snapshot");
            discard_snapshot(&self.dir, field);
        }
    }
}

impl Drop for Collection {
    fn drop(&mut self) {
        if self.dropped.load(Ordering::SeqCst) {
            return;
        }
        let poisoned = self.writer.get_mut().poisoned.is_some();
        let st = self.state.get_mut();
        let dirty = !st.memtable.is_empty() || !st.tombstones.is_empty();
        if !poisoned && dirty {
            let mut w = self.writer.lock();
            if let Err(e) = self.checkpoint_locked(&mut w) {
                tracing::warn!(collection = %self.name, error = %e, "checkpoint on close failed (the WAL still holds the data)");
                return;
            }
        }
        if poisoned {
            return;
        }
        // Closing: nothing else holds the collection, so the indexes are saved in place.
        let w = self.writer.lock();
        let st = self.state.read();
        for (f, marker) in self.snapshots_due(&w, &st) {
            self.write_snapshot(f, st.indexes[f].index.as_ref(), &marker);
        }
    }
}

fn poisoned_error(dir: &Path, why: &str) -> Error {
    Error::io(dir, std::io::Error::other(format!("collection is read-only after an earlier write failure: {why}")))
}

fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()?.metadata().ok()).filter(|m| m.is_file()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Remove files a crash may have left behind: temporaries, old WALs, unreferenced segments.
fn remove_stray_files(dir: &Path, m: &Manifest) -> Result<()> {
    let keep_wal = wal_file_name(m.wal_gen);
    let keep_segs: HashSet<String> = m.segments.iter().map(|&s| segment_file_name(s)).collect();
    let rd = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for e in rd {
        let e = e.map_err(|e| Error::io(dir, e))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let stray = name.ends_with(".tmp")
            || (name.starts_with("wal-") && name.ends_with(".log") && name != keep_wal)
            || (name.starts_with("seg-") && name.ends_with(".seg") && !keep_segs.contains(&name));
        if stray && name != MANIFEST {
            tracing::debug!(file = %name, "removing stray file");
            remove_if_exists(&e.path())?;
        }
    }
    Ok(())
}

/// Largest index a checkpoint copies in memory to write its snapshot outside the writer lock;
/// a bigger one is written under the lock (writers wait for the disk) rather than doubling
/// its memory.
const SNAPSHOT_COPY_MAX_BYTES: usize = 4 << 30;

/// What an index snapshot was saved from; it is used only when all of this still holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SnapshotMarker {
    spec: String,
    segments: Vec<u64>,
    wal_gen: u64,
}

fn snapshot_dir(dir: &Path, field: &str) -> PathBuf {
    dir.join(format!("index-{field}"))
}
fn snapshot_marker(dir: &Path, field: &str) -> PathBuf {
    dir.join(format!("index-{field}.json"))
}

fn read_marker(dir: &Path, field: &str) -> Option<SnapshotMarker> {
    let bytes = fs::read(snapshot_marker(dir, field)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Save `index` for `field` so the next open can load it instead of rebuilding.
fn save_snapshot(dir: &Path, field: &str, index: &dyn VectorIndex, marker: &SnapshotMarker) -> Result<()> {
    let mpath = snapshot_marker(dir, field);
    remove_if_exists(&mpath)?;
    sync_dir(dir)?;
    let sdir = snapshot_dir(dir, field);
    if sdir.exists() {
        fs::remove_dir_all(&sdir).map_err(|e| Error::io(&sdir, e))?;
    }
    index.save(&sdir)?;
    let json = serde_json::to_vec(marker).map_err(|e| Error::Metadata(e.to_string()))?;
    crate::fsutil::atomic_write(&mpath, &json)
}

/// Remove a snapshot that no longer matches.
fn discard_snapshot(dir: &Path, field: &str) {
    let _ = remove_if_exists(&snapshot_marker(dir, field));
    let sdir = snapshot_dir(dir, field);
    if sdir.exists() {
        let _ = fs::remove_dir_all(&sdir);
    }
}

impl State {
    /// Load field `f`'s saved index when it is still a base of the stored records, then
    /// bring it up to date.
    ///
    /// A snapshot is saved with an empty WAL, so it holds exactly the records of the segments
    /// its marker lists. Checkpoints since then only appended segments (a compaction replaces
    /// them all, and then the snapshot is rebuilt): the catch-up removes the ids deleted since
    /// and adds the records of the newer segments and of the replayed WAL. So a crash costs a
    /// rebuild of what changed since the last snapshot, not of the whole index.
    fn load_snapshot(&self, dir: &Path, field: &VectorField, f: usize, m: &Manifest) -> Option<FieldIndex> {
        let marker = read_marker(dir, &field.name)?;
        if marker.spec != field.index || !m.segments.starts_with(&marker.segments) {
            discard_snapshot(dir, &field.name);
            return None;
        }
        let mut index = match crate::index::load_index(&snapshot_dir(dir, &field.name)) {
            Ok(i) if i.dim() == field.dim && i.metric() == field.metric => i,
            Ok(_) => return None,
            Err(e) => {
                tracing::warn!(field = %field.name, error = %e, "index snapshot unreadable; rebuilding");
                return None;
            }
        };
        let since = marker.segments.len();
        let mut gone: Vec<u64> = self.segments[since..]
            .iter()
            .flat_map(|seg| seg.tombstones().iter().copied())
            .chain(self.tombstones.iter().copied())
            .filter(|id| !self.slots.contains_key(id))
            .collect();
        gone.sort_unstable();
        gone.dedup();
        if index.remove(&gone).is_err() {
            return None;
        }
        let caught_up = self.add_live_since(field, f, since, index.as_mut()).ok()?;
        if index.len() != self.slots.len() {
            tracing::warn!(field = %field.name, "index snapshot does not match the stored records; rebuilding");
            return None;
        }
        tracing::debug!(field = %field.name, since_segment = since, "index snapshot loaded and brought up to date");
        Some(FieldIndex { index, ready: true, tried_at: self.slots.len(), origin: IndexOrigin::Snapshot { caught_up } })
    }
}
