//! The in-memory view readers share: where each live record's vectors and metadata are, the
//! memtable of records not yet in a segment, and one index per field, with the operations the
//! writer applies to it (after the WAL made them durable) and the exact scans used while an
//! index is not ready.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::Result;
use crate::filter::Metadata;
use crate::index::{build_index, IdFilter, Neighbor, VectorIndex};
use crate::manifest::Manifest;
use crate::schema::{CollectionSchema, VectorField};
use crate::search::{Hit, IndexOrigin, SearchRequest};
use crate::segment::{segment_file_name, Segment};
use crate::vector::{Element, Vector, VectorRef, VectorsRef};
use crate::wal::{PutRec, WalOp};

/// Rows per `VectorIndex::add` call when (re)building an index.
const BUILD_CHUNK: usize = 16_384;
/// Most vectors used to train an index that needs training.
const TRAIN_SAMPLE: usize = 100_000;

/// Where a live record's vectors are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Loc {
    /// In the memtable (written to the WAL, not yet to a segment).
    Mem,
    /// Segment slot, row.
    Seg(u32, u32),
}

pub(super) struct Slot {
    pub(super) loc: Loc,
    pub(super) meta: Metadata,
}

pub(super) struct FieldIndex {
    pub(super) index: Box<dyn VectorIndex>,
    /// False while the index could not be trained or failed an update: searches
    /// on the field then scan the stored vectors exactly.
    pub(super) ready: bool,
    /// Live count when a (failed) build was last tried.
    pub(super) tried_at: usize,
    /// Built here, or loaded from a snapshot.
    pub(super) origin: IndexOrigin,
}

/// The in-memory view readers share.
pub(super) struct State {
    pub(super) segments: Vec<Arc<Segment>>,
    pub(super) slots: HashMap<u64, Slot>,
    pub(super) memtable: HashMap<u64, Vec<Vector>>,
    /// Ids deleted since the last checkpoint (written into the next segment).
    pub(super) tombstones: Vec<u64>,
    /// Live records whose vectors are in a segment.
    pub(super) seg_live: usize,
    pub(super) indexes: Vec<FieldIndex>,
}

/// A growable row-major buffer of vectors of one field.
pub(super) enum Buf {
    Dense(Vec<f32>),
    Bits(Vec<u8>),
}

impl Buf {
    pub(super) fn new(el: Element) -> Buf {
        match el {
            Element::F32 => Buf::Dense(Vec::new()),
            Element::Bit => Buf::Bits(Vec::new()),
        }
    }
    pub(super) fn push(&mut self, v: VectorRef<'_>) {
        match (self, v) {
            (Buf::Dense(b), VectorRef::Dense(x)) => b.extend_from_slice(x),
            (Buf::Bits(b), VectorRef::Binary(x)) => b.extend_from_slice(x),
            _ => unreachable!("vectors are validated against the field's element kind"),
        }
    }
    pub(super) fn as_ref(&self) -> VectorsRef<'_> {
        match self {
            Buf::Dense(b) => VectorsRef::Dense(b),
            Buf::Bits(b) => VectorsRef::Binary(b),
        }
    }
    pub(super) fn clear(&mut self) {
        match self {
            Buf::Dense(b) => b.clear(),
            Buf::Bits(b) => b.clear(),
        }
    }
}

impl State {
    pub(super) fn vector(&self, id: u64, f: usize) -> Option<VectorRef<'_>> {
        match self.slots.get(&id)?.loc {
            Loc::Mem => self.memtable.get(&id).map(|v| v[f].as_ref()),
            Loc::Seg(s, r) => Some(self.segments[s as usize].vector(f, r as usize)),
        }
    }

    pub(super) fn vectors_map(&self, id: u64, schema: &CollectionSchema) -> Option<BTreeMap<String, Vector>> {
        let mut out = BTreeMap::new();
        for (f, field) in schema.fields.iter().enumerate() {
            out.insert(field.name.clone(), self.vector(id, f)?.to_owned());
        }
        Some(out)
    }

    /// Call `cb` for every live record's vector of field `f`.
    pub(super) fn for_each_live(&self, f: usize, cb: impl FnMut(u64, VectorRef<'_>)) {
        self.for_each_live_since(f, 0, cb)
    }

    /// [`State::for_each_live`] restricted to the records that live in segments
    /// `first_segment..` or in the memtable.
    pub(super) fn for_each_live_since(&self, f: usize, first_segment: usize, mut cb: impl FnMut(u64, VectorRef<'_>)) {
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

    /// Add (or replace) `ids` with the vectors in `buf` in field `f`'s index; an index that fails
    /// is marked not ready (searches scan exactly until it is rebuilt).
    fn add_to_index(&mut self, f: usize, field: &VectorField, ids: &[u64], buf: &Buf) {
        let fi = &mut self.indexes[f];
        if fi.ready && !ids.is_empty() {
            if let Err(e) = fi.index.add(ids, buf.as_ref()) {
                tracing::warn!(field = %field.name, error = %e, "index update failed; searching this field exactly until it is rebuilt");
                fi.ready = false;
            }
        }
    }

    /// Remove `ids` from every index (same failure rule as [`State::add_to_index`]).
    fn remove_from_indexes(&mut self, ids: &[u64]) {
        if ids.is_empty() {
            return;
        }
        for fi in self.indexes.iter_mut().filter(|fi| fi.ready) {
            if let Err(e) = fi.index.remove(ids) {
                tracing::warn!(error = %e, "index remove failed; searching this field exactly until it is rebuilt");
                fi.ready = false;
            }
        }
    }

    /// Insert or replace records (in the indexes too when `update_index`).
    pub(super) fn put(&mut self, recs: Vec<PutRec>, schema: &CollectionSchema, update_index: bool) {
        if update_index {
            let ids: Vec<u64> = recs.iter().map(|r| r.id).collect();
            for (f, field) in schema.fields.iter().enumerate() {
                let mut buf = Buf::new(field.element());
                for r in &recs {
                    buf.push(r.vectors[f].as_ref());
                }
                self.add_to_index(f, field, &ids, &buf);
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

    /// Delete ids (from the indexes too when `update_index`); returns how many were live.
    pub(super) fn delete(&mut self, ids: &[u64], update_index: bool) -> usize {
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
            self.remove_from_indexes(ids);
        }
        n
    }

    /// Build a fresh index of `spec` for field `f` from the stored vectors.
    pub(super) fn build_field(&self, spec: &str, field: &VectorField, f: usize) -> Result<FieldIndex> {
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
    pub(super) fn add_live_since(
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
    pub(super) fn retry_unready(&mut self, schema: &CollectionSchema) {
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
    pub(super) fn hits(&self, neighbors: Vec<Neighbor>, schema: &CollectionSchema, req: &SearchRequest) -> Vec<Hit> {
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
    pub(super) fn exact_search(
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

impl State {
    /// A state with no records and no indexes.
    pub(super) fn empty() -> State {
        State {
            segments: Vec::new(),
            slots: HashMap::new(),
            memtable: HashMap::new(),
            tombstones: Vec::new(),
            seg_live: 0,
            indexes: Vec::new(),
        }
    }

    /// The state of the segments `manifest` lists in `dir`, each verified, applied oldest first
    /// (no WAL, no indexes yet).
    pub(super) fn load_segments(dir: &Path, manifest: &Manifest) -> Result<State> {
        let mut st = State::empty();
        for &seq in &manifest.segments {
            let seg = Segment::open(&dir.join(segment_file_name(seq)), seq, &manifest.schema)?;
            st.apply_segment(Arc::new(seg), &manifest.schema, false)?;
        }
        Ok(st)
    }

    /// Apply one more segment on top: its tombstones, then its rows (an id's newest row wins).
    ///
    /// A follower (`update_index`) applies the segment a checkpoint made from WAL records it has
    /// already applied: the segment holds the memtable's final state, so every memtable record
    /// moves into it (index untouched where the vectors did not change) and the memtable empties.
    pub(super) fn apply_segment(
        &mut self,
        seg: Arc<Segment>,
        schema: &CollectionSchema,
        update_index: bool,
    ) -> Result<()> {
        let si = self.segments.len() as u32;
        let rows: HashSet<u64> = seg.ids().iter().copied().collect();
        let mut gone = Vec::new();
        for &t in seg.tombstones() {
            if rows.contains(&t) {
                continue; // deleted, then written again: the row below wins
            }
            if let Some(old) = self.slots.remove(&t) {
                gone.push(t);
                match old.loc {
                    Loc::Seg(..) => self.seg_live -= 1,
                    Loc::Mem => {
                        self.memtable.remove(&t);
                    }
                }
            }
        }
        let metas: Vec<Metadata> = (0..seg.rows()).into_par_iter().map(|r| seg.metadata(r)).collect::<Result<_>>()?;
        self.slots.reserve(seg.rows());
        let mut changed = Vec::new();
        for (row, (&id, meta)) in seg.ids().iter().zip(metas).enumerate() {
            let unchanged = update_index
                && self
                    .memtable
                    .get(&id)
                    .is_some_and(|vs| vs.iter().enumerate().all(|(f, v)| v.as_ref() == seg.vector(f, row)));
            let old = self.slots.insert(id, Slot { loc: Loc::Seg(si, row as u32), meta });
            if !matches!(old, Some(Slot { loc: Loc::Seg(..), .. })) {
                self.seg_live += 1;
            }
            self.memtable.remove(&id);
            if update_index && !unchanged {
                changed.push(row);
            }
        }
        if update_index {
            if !self.memtable.is_empty() {
                tracing::warn!(
                    left = self.memtable.len(),
                    "a checkpoint segment did not cover the follower's memtable"
                );
            }
            self.remove_from_indexes(&gone);
            let ids: Vec<u64> = changed.iter().map(|&r| seg.ids()[r]).collect();
            for (f, field) in schema.fields.iter().enumerate() {
                let mut buf = Buf::new(field.element());
                for &r in &changed {
                    buf.push(seg.vector(f, r));
                }
                self.add_to_index(f, field, &ids, &buf);
            }
        }
        self.tombstones.clear();
        self.segments.push(seg);
        Ok(())
    }

    /// Apply one logged operation (replay on open, or a follower catching up).
    pub(super) fn apply_wal_op(&mut self, op: WalOp, schema: &CollectionSchema, update_index: bool) {
        match op {
            WalOp::Put(recs) => self.put(recs, schema, update_index),
            WalOp::Delete(ids) => {
                self.delete(&ids, update_index);
            }
        }
    }

    /// Load every field's index from its snapshot where one matches `manifest`, else build it.
    /// A follower (`read_only`) never discards a snapshot that does not match.
    pub(super) fn build_indexes(&mut self, dir: &Path, manifest: &Manifest, read_only: bool) -> Result<()> {
        let st = &*self;
        let built: Vec<Result<FieldIndex>> = manifest
            .schema
            .fields
            .par_iter()
            .enumerate()
            .map(|(f, field)| match st.load_snapshot(dir, field, f, manifest, read_only) {
                Some(fi) => Ok(fi),
                None => st.build_field(&field.index, field, f),
            })
            .collect();
        self.indexes = built.into_iter().collect::<Result<_>>()?;
        Ok(())
    }
}
