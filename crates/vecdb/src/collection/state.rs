//! The in-memory view readers share: where each live record's vectors and metadata are, the
//! memtable of records not yet in a segment, and one index per field, with the operations the
//! writer applies to it (after the WAL made them durable) and the exact scans used while an
//! index is not ready.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use super::auto::{AutoPolicy, Choice};
use super::background::BuildTrack;
use super::rows::{intersect, SegRows};
use crate::error::{Error, Result};
use crate::filter::{Filter, Metadata};
use crate::index::flat::{gemm_margin, rescore, with_threads, FlatRows};
use crate::index::topk::{sort_neighbors, TopK};
use crate::index::{build_field_index, IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::manifest::Manifest;
use crate::metric::Metric;
use crate::schema::{CollectionSchema, VectorField};
use crate::search::{Hit, IndexOrigin, SearchRequest};
use crate::segment::{segment_file_name, Segment};
use crate::vector::{Element, Vector, VectorRef, VectorsRef};
use crate::wal::{PutRec, WalOp};

/// Rows per `VectorIndex::add` call when (re)building an index.
const BUILD_CHUNK: usize = 16_384;
/// Most vectors used to train an index that needs training.
const TRAIN_SAMPLE: usize = 100_000;
/// Batches with fewer queries than this on a stored field are run as independent searches.
const GEMM_MIN_QUERIES: usize = 8;
/// A re-ranked search (8-bit graph, full vectors from the mapping) re-scores this many
/// candidates per result asked for...
pub(super) const RERANK_FACTOR: usize = 4;
/// ...and at least this many.
pub(super) const RERANK_MIN: usize = 40;

/// Where a live record's vectors are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Loc {
    /// In the memtable (written to the WAL, not yet to a segment).
    Mem,
    /// Segment slot, row.
    Seg(u32, u32),
}

/// A record in the memtable: its vectors (one per field) and metadata.
pub(super) struct MemRec {
    pub(super) vectors: Vec<Vector>,
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
    /// True for a `Flat` field: searches scan the stored rows in place (segment columns, mapped)
    /// and `index` holds only the memtable's vectors.
    pub(super) stored: bool,
    /// The factory spec `index` was built from (for an `Auto` field: the one the policy chose).
    pub(super) spec: String,
    /// True when searches re-rank the index's candidates exactly with the stored vectors (an
    /// `Auto` field past its memory budget, served by 8-bit codes).
    pub(super) rerank: bool,
    /// An `Auto` field: the live count when a background graph build last failed (it is tried
    /// again once the collection has doubled).
    pub(super) build_failed_at: Option<usize>,
}

impl FieldIndex {
    /// A field index built here, searched as its spec says.
    pub(super) fn built(index: Box<dyn VectorIndex>, spec: &str, ready: bool, tried_at: usize, stored: bool) -> Self {
        FieldIndex {
            index,
            ready,
            tried_at,
            origin: IndexOrigin::Built,
            stored,
            spec: spec.trim().to_string(),
            rerank: false,
            build_failed_at: None,
        }
    }
}

/// The in-memory view readers share.
///
/// A live record is in the memtable or in exactly one segment row that is not dead; the
/// memtable's ids and the segments' live rows never overlap (a write to an id kills its
/// segment row). There is no map from id to row: [`State::loc`] looks in the memtable, then
/// binary-searches the segments' sorted id columns newest first (see `rows.rs`).
pub(super) struct State {
    pub(super) segments: Vec<Arc<Segment>>,
    /// Per segment (same order), which of its rows are dead.
    pub(super) rows: Vec<SegRows>,
    pub(super) memtable: HashMap<u64, MemRec>,
    /// Ids deleted since the last checkpoint (written into the next segment).
    pub(super) tombstones: Vec<u64>,
    /// Live records whose vectors are in a segment.
    pub(super) seg_live: usize,
    pub(super) indexes: Vec<FieldIndex>,
    /// Graph builds running in the background for `Auto` fields (see `background.rs`); every
    /// write tells them which ids it touched.
    pub(super) builds: Vec<Arc<BuildTrack>>,
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
    /// Where live record `id` is.
    pub(super) fn loc(&self, id: u64) -> Option<Loc> {
        if self.memtable.contains_key(&id) {
            return Some(Loc::Mem);
        }
        self.seg_loc(id).map(|(s, r)| Loc::Seg(s as u32, r as u32))
    }

    /// True when `id` is a live record.
    pub(super) fn contains(&self, id: u64) -> bool {
        self.loc(id).is_some()
    }

    /// Number of live records.
    pub(super) fn len(&self) -> usize {
        self.seg_live + self.memtable.len()
    }

    /// The live segment row of `id` (segment, row): its newest row, unless that one is dead
    /// (a newer row of the same id always kills the older ones, so only the newest can live).
    fn seg_loc(&self, id: u64) -> Option<(usize, usize)> {
        for si in (0..self.segments.len()).rev() {
            if let Some(row) = self.rows[si].find(&self.segments[si], id) {
                return (!self.rows[si].is_dead(row)).then_some((si, row));
            }
        }
        None
    }

    /// True when row `row` of segment `si` is live.
    #[inline]
    pub(super) fn is_live_row(&self, si: usize, row: usize) -> bool {
        !self.rows[si].is_dead(row)
    }

    /// Mark row `row` of segment `si` dead (replaced or deleted).
    fn kill(&mut self, si: usize, row: usize) {
        if self.rows[si].kill(row, self.segments[si].rows()) {
            self.seg_live -= 1;
        }
    }

    /// Every live id, unordered.
    pub(super) fn live_ids(&self) -> Vec<u64> {
        let mut ids = Vec::with_capacity(self.len());
        for (si, seg) in self.segments.iter().enumerate() {
            let rows = &self.rows[si];
            ids.extend(seg.ids().iter().enumerate().filter(|(r, _)| !rows.is_dead(*r)).map(|(_, &id)| id));
        }
        ids.extend(self.memtable.keys().copied());
        ids
    }

    pub(super) fn vector(&self, id: u64, f: usize) -> Option<VectorRef<'_>> {
        match self.loc(id)? {
            Loc::Mem => self.memtable.get(&id).map(|m| m.vectors[f].as_ref()),
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
            let rows = &self.rows[si];
            for (row, &id) in seg.ids().iter().enumerate() {
                if !rows.is_dead(row) {
                    cb(id, seg.vector(f, row));
                }
            }
        }
        for (&id, m) in &self.memtable {
            cb(id, m.vectors[f].as_ref());
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
        self.touch(recs.iter().map(|r| r.id));
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
            if !self.memtable.contains_key(&r.id) {
                if let Some((si, row)) = self.seg_loc(r.id) {
                    self.kill(si, row);
                }
            }
            self.memtable.insert(r.id, MemRec { vectors: r.vectors, meta: r.metadata });
        }
    }

    /// Delete ids (from the indexes too when `update_index`); returns how many were live.
    pub(super) fn delete(&mut self, ids: &[u64], update_index: bool) -> usize {
        self.touch(ids.iter().copied());
        let mut n = 0;
        for &id in ids {
            if self.memtable.remove(&id).is_some() {
                n += 1;
            } else if let Some((si, row)) = self.seg_loc(id) {
                self.kill(si, row);
                n += 1;
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

    /// Tell the background builds that records `ids` were written or deleted.
    fn touch(&self, ids: impl Iterator<Item = u64> + Clone) {
        for b in &self.builds {
            b.touched.lock().extend(ids.clone());
        }
    }

    /// Build a fresh index of `spec` for field `f` from the stored vectors. An `Auto` spec gets
    /// exact search over the stored rows here; its graph is built in the background.
    pub(super) fn build_field(&self, spec: &str, field: &VectorField, f: usize) -> Result<FieldIndex> {
        let auto = AutoPolicy::parse(spec).transpose()?.is_some();
        let mut index = build_field_index(if auto { "Flat" } else { spec }, field)?;
        let n = self.len();
        if auto || is_stored_spec(spec) {
            self.add_live_since(field, f, self.segments.len(), index.as_mut())?;
            return Ok(FieldIndex::built(index, "Flat", true, n, true));
        }
        let not_ready = |index| Ok(FieldIndex::built(index, spec, false, n, false));
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
        if super::in_place::prefer_in_place(index.as_mut()) {
            // A float graph reads the segments' rows where they are mapped (no copy).
            let h = index.as_hnsw_mut().expect("an in-place index is a graph");
            if let Err(e) = self.add_live_in_place(f, h, BUILD_CHUNK) {
                tracing::warn!(field = %field.name, spec, error = %e, "index build failed; exact search meanwhile");
                return not_ready(index);
            }
            return Ok(FieldIndex::built(index, spec, true, n, false));
        }
        if let Err(e) = self.add_live_since(field, f, 0, index.as_mut()) {
            tracing::warn!(field = %field.name, spec, error = %e, "index build failed; exact search meanwhile");
            return not_ready(index);
        }
        Ok(FieldIndex::built(index, spec, true, n, false))
    }

    /// Refill the memtable part of every stored (`Flat`) field's index from the memtable (after
    /// the memtable moved into a segment).
    pub(super) fn reset_stored(&mut self, schema: &CollectionSchema) {
        for (f, field) in schema.fields.iter().enumerate() {
            if !self.indexes.get(f).is_some_and(|fi| fi.stored) {
                continue;
            }
            let mut index = match build_field_index("Flat", field) {
                Ok(index) => index,
                Err(e) => {
                    tracing::warn!(field = %field.name, error = %e, "memtable index failed; exact search meanwhile");
                    self.indexes[f].ready = false;
                    continue;
                }
            };
            match self.add_live_since(field, f, self.segments.len(), index.as_mut()) {
                Ok(_) => self.indexes[f].index = index,
                Err(e) => {
                    tracing::warn!(field = %field.name, error = %e, "memtable index failed; exact search meanwhile");
                    self.indexes[f].ready = false;
                }
            }
        }
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
        let n = self.len();
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
    pub(super) fn hits(
        &self,
        neighbors: Vec<Neighbor>,
        schema: &CollectionSchema,
        req: &SearchRequest,
    ) -> Result<Vec<Hit>> {
        let metric = schema.field_index(&req.field).ok().map(|f| schema.fields[f].metric);
        let mut out = Vec::with_capacity(neighbors.len());
        for n in neighbors {
            if !self.contains(n.id) {
                continue;
            }
            let metadata = match req.include_metadata {
                true => self.metadata(n.id).transpose()?,
                false => None,
            };
            out.push(Hit {
                id: n.id,
                distance: metric.map_or(n.distance, |m| m.clamp_distance(n.distance)),
                metadata,
                vectors: if req.include_vectors { self.vectors_map(n.id, schema) } else { None },
            });
        }
        Ok(out)
    }

    /// Heap bytes of the per-record bookkeeping: the segments' dead-row bitsets (and row orders
    /// of unsorted old segments) and the memtable's entries (not the contents of their metadata
    /// maps).
    pub(super) fn records_heap_bytes(&self) -> usize {
        let mem = std::mem::size_of::<(u64, MemRec)>() + 1;
        self.rows.iter().map(SegRows::heap_bytes).sum::<usize>() + self.memtable.capacity() * mem
    }

    /// The metadata of live record `id` (parsed from its segment for a record stored there).
    pub(super) fn metadata(&self, id: u64) -> Option<Result<Metadata>> {
        Some(match self.loc(id)? {
            Loc::Mem => Ok(self.memtable.get(&id)?.meta.clone()),
            Loc::Seg(s, r) => self.segments[s as usize].metadata(r as usize),
        })
    }

    /// True when live record `id`'s metadata matches `flt`. A sealed record's metadata is parsed
    /// from the mapping: a search calls this only for rows that would enter its result, so a
    /// filter costs a few thousand parses per query instead of every record's metadata kept
    /// decoded on the heap (hundreds of bytes per record even for one key).
    pub(super) fn matches(&self, id: u64, flt: &Filter) -> Result<bool> {
        match self.loc(id) {
            Some(Loc::Mem) => Ok(self.memtable.get(&id).is_some_and(|m| flt.matches(&m.meta))),
            Some(Loc::Seg(s, r)) => Ok(flt.matches(&self.segments[s as usize].metadata(r as usize)?)),
            None => Ok(false),
        }
    }

    /// Field `f`'s column of segment `si`, to scan in place.
    fn seg_rows<'a>(&'a self, si: usize, f: usize, field: &VectorField) -> FlatRows<'a> {
        let seg = &self.segments[si];
        FlatRows::new(field.dim, field.metric, seg.column(f), seg.ids()).with_vectors_per_row(field.vectors_per_record)
    }

    /// Search field `f` (`q` prepared for it): through its index, or by scanning the stored rows
    /// in place for a `Flat` field or one whose index is not ready.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn search_field(
        &self,
        field: &VectorField,
        f: usize,
        q: VectorRef<'_>,
        k: Option<usize>,
        threshold: Option<f32>,
        params: &SearchParams,
        pred: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let fi = &self.indexes[f];
        if !fi.ready || fi.stored {
            return self.scan_stored(field, f, q, k, threshold, params, pred);
        }
        if fi.rerank {
            return self.search_reranked(field, f, q, k, threshold, params, pred);
        }
        Ok(match (k, threshold) {
            (None, None) => return Err(Error::InvalidArgument("a search needs k, a threshold, or both".into())),
            (Some(0), _) => Vec::new(),
            (Some(k), None) => fi.index.search(q, k, params, pred)?,
            (Some(k), Some(t)) => {
                let mut v = fi.index.search(q, k, params, pred)?;
                v.retain(|n| n.distance <= t);
                v
            }
            (None, Some(t)) => fi.index.range_search(q, t, params, pred)?,
        })
    }

    /// Search through an index of compact codes, then re-rank its candidates exactly with the
    /// stored vectors (read from the mapped columns): [`RERANK_FACTOR`] × k candidates (at least
    /// [`RERANK_MIN`]), the graph's beam widened to match. A range search takes the index's
    /// candidates within the radius and keeps those whose exact distance is within it.
    #[allow(clippy::too_many_arguments)]
    fn search_reranked(
        &self,
        field: &VectorField,
        f: usize,
        q: VectorRef<'_>,
        k: Option<usize>,
        threshold: Option<f32>,
        params: &SearchParams,
        pred: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let index = &self.indexes[f].index;
        let cands = match k {
            None => match threshold {
                Some(t) => index.range_search(q, t, params, pred)?,
                None => return Err(Error::InvalidArgument("a search needs k, a threshold, or both".into())),
            },
            Some(0) => return Ok(Vec::new()),
            Some(k) => {
                let want = (k * RERANK_FACTOR).max(RERANK_MIN);
                let ef = params.ef.unwrap_or(crate::index::hnsw::DEFAULT_EF_SEARCH).max(want);
                index.search(q, want, &SearchParams { ef: Some(ef), ..params.clone() }, pred)?
            }
        };
        let mut out = Vec::with_capacity(cands.len());
        for c in cands {
            if let Some(v) = self.vector(c.id, f) {
                let d = field.distance(q, v)?;
                if threshold.is_none_or(|t| d <= t) {
                    out.push(Neighbor { id: c.id, distance: d });
                }
            }
        }
        sort_neighbors(&mut out);
        if let Some(k) = k {
            out.truncate(k);
        }
        Ok(out)
    }

    /// Exact search over the stored rows: every segment's column scanned in place (rows that are
    /// not live skipped), plus the memtable (through a stored field's memtable index, else one
    /// by one).
    #[allow(clippy::too_many_arguments)]
    fn scan_stored(
        &self,
        field: &VectorField,
        f: usize,
        q: VectorRef<'_>,
        k: Option<usize>,
        threshold: Option<f32>,
        params: &SearchParams,
        pred: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        if k.is_none() && threshold.is_none() {
            return Err(Error::InvalidArgument("a search needs k, a threshold, or both".into()));
        }
        if k == Some(0) {
            return Ok(Vec::new());
        }
        let within = |d: f32| threshold.is_none_or(|t| d <= t);
        let mut out: Vec<Neighbor> = Vec::new();
        for si in 0..self.segments.len() {
            let rows = self.seg_rows(si, f, field);
            let live = &self.rows[si];
            let accept = |row: usize, id: u64| !live.is_dead(row) && pred.is_none_or(|p| p(id));
            match (k, threshold) {
                (Some(k), _) => out
                    .extend(rows.topk(q, k, params, &accept).into_sorted().into_iter().filter(|n| within(n.distance))),
                (None, Some(t)) => out.extend(rows.range(q, t, params, &accept)),
                (None, None) => unreachable!("checked above"),
            }
        }
        let fi = &self.indexes[f];
        if fi.ready && fi.stored {
            match (k, threshold) {
                (Some(k), _) => {
                    out.extend(fi.index.search(q, k, params, pred)?.into_iter().filter(|n| within(n.distance)))
                }
                (None, Some(t)) => out.extend(fi.index.range_search(q, t, params, pred)?),
                (None, None) => unreachable!("checked above"),
            }
        } else {
            for (&id, m) in &self.memtable {
                if pred.is_some_and(|p| !p(id)) {
                    continue;
                }
                let d = field.distance(q, m.vectors[f].as_ref())?;
                if within(d) {
                    out.push(Neighbor { id, distance: d });
                }
            }
        }
        sort_neighbors(&mut out);
        if let Some(k) = k {
            out.truncate(k);
        }
        Ok(out)
    }

    /// Top-`k` of many queries on a stored (`Flat`) field: per segment column, a batched matrix
    /// multiply picks candidates that are then re-scored exactly, merged with the memtable's
    /// results. `None` when the batch does not suit that path (the caller searches one by one).
    pub(super) fn search_batch_stored(
        &self,
        field: &VectorField,
        f: usize,
        queries: VectorsRef<'_>,
        k: usize,
        params: &SearchParams,
    ) -> Result<Option<Vec<Vec<Neighbor>>>> {
        let fi = &self.indexes[f];
        let VectorsRef::Dense(qs) = queries else { return Ok(None) };
        let dim = field.dim;
        let nq = qs.len() / dim.max(1);
        if !(fi.ready && fi.stored)
            || nq < GEMM_MIN_QUERIES
            || field.metric == Metric::Hamming
            || field.is_multi()
            || k == 0
        {
            return Ok(None);
        }
        let cands = k + gemm_margin(k);
        let mut tops: Vec<TopK> = (0..nq).map(|_| TopK::new(cands)).collect();
        for si in 0..self.segments.len() {
            let rows = self.seg_rows(si, f, field);
            let live = &self.rows[si];
            let accept = |row: usize, _id: u64| !live.is_dead(row);
            let seg_tops = rows.gemm_tops(qs, cands, params.threads, &accept);
            tops = tops.into_iter().zip(seg_tops).map(|(a, b)| a.merge(b)).collect();
        }
        let mem = fi.index.search_batch(queries, k, params, None)?;
        let out = with_threads(params.threads, || {
            tops.into_par_iter()
                .zip(mem)
                .enumerate()
                .map(|(i, (top, mem))| {
                    let q = &qs[i * dim..(i + 1) * dim];
                    let cands: Vec<(u64, &[f32])> = top
                        .into_sorted()
                        .into_iter()
                        .filter_map(|c| match self.vector(c.id, f)? {
                            VectorRef::Dense(x) => Some((c.id, x)),
                            VectorRef::Binary(_) => None,
                        })
                        .collect();
                    let mut best = rescore(field.metric, q, &cands, k);
                    best.extend(mem);
                    sort_neighbors(&mut best);
                    best.truncate(k);
                    best
                })
                .collect()
        });
        Ok(Some(out))
    }
}

impl State {
    /// A state with no records and no indexes.
    pub(super) fn empty() -> State {
        State {
            segments: Vec::new(),
            rows: Vec::new(),
            memtable: HashMap::new(),
            tombstones: Vec::new(),
            seg_live: 0,
            indexes: Vec::new(),
            builds: Vec::new(),
        }
    }

    /// The state of the segments `manifest` lists in `dir`, each verified, applied oldest first
    /// (no WAL, no indexes yet).
    pub(super) fn load_segments(dir: &Path, manifest: &Manifest) -> Result<State> {
        let mut st = State::empty();
        // Segments are mapped and checked in parallel.
        let segs: Vec<Segment> = manifest
            .segments
            .par_iter()
            .map(|&seq| Segment::open(&dir.join(segment_file_name(seq)), seq, &manifest.schema))
            .collect::<Result<_>>()?;
        for seg in segs {
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
        let new_rows = SegRows::new(&seg);
        let mut gone = Vec::new();
        for &t in seg.tombstones() {
            if new_rows.find(&seg, t).is_some() {
                continue; // deleted, then written again: the row below wins
            }
            if self.memtable.remove(&t).is_some() {
                gone.push(t);
            } else if let Some((si, row)) = self.seg_loc(t) {
                self.kill(si, row);
                gone.push(t);
            }
        }
        // The new rows replace the older rows of the same ids.
        for si in 0..self.segments.len() {
            let mut replaced = Vec::new();
            intersect(new_rows.sorted(&seg), self.rows[si].sorted(&self.segments[si]), |_, old| replaced.push(old));
            for row in replaced {
                self.kill(si, row);
            }
        }
        let mut changed = Vec::new();
        if update_index || !self.memtable.is_empty() {
            for (row, &id) in seg.ids().iter().enumerate() {
                let unchanged = update_index
                    && self
                        .memtable
                        .get(&id)
                        .is_some_and(|m| m.vectors.iter().enumerate().all(|(f, v)| v.as_ref() == seg.vector(f, row)));
                self.memtable.remove(&id);
                if update_index && !unchanged {
                    changed.push(row);
                }
            }
        }
        self.seg_live += seg.rows();
        if update_index {
            self.touch(gone.iter().copied().chain(changed.iter().map(|&r| seg.ids()[r])));
            if !self.memtable.is_empty() {
                tracing::warn!(
                    left = self.memtable.len(),
                    "a checkpoint segment did not cover the follower's memtable"
                );
            }
            self.remove_from_indexes(&gone);
            let ids: Vec<u64> = changed.iter().map(|&r| seg.ids()[r]).collect();
            for (f, field) in schema.fields.iter().enumerate() {
                if self.indexes[f].stored {
                    continue; // the segment's column is searched in place
                }
                let mut buf = Buf::new(field.element());
                for &r in &changed {
                    buf.push(seg.vector(f, r));
                }
                self.add_to_index(f, field, &ids, &buf);
            }
        }
        self.tombstones.clear();
        self.rows.push(new_rows);
        self.segments.push(seg);
        if update_index {
            self.reset_stored(schema);
            self.relocate_in_place();
        }
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
            .map(|(f, field)| {
                if is_stored_spec(&field.index) {
                    return st.build_field(&field.index, field, f);
                }
                match AutoPolicy::parse(&field.index).transpose()? {
                    // An `Auto` field past its threshold loads the graph it saved (whichever of
                    // the policy's graphs that was); anything else starts exact and the graph
                    // is built in the background.
                    Some(policy) => Ok(match policy.choose(field, st.len()).0 {
                        Choice::Exact => None,
                        Choice::Graph { .. } => st.load_auto_snapshot(dir, field, f, manifest, read_only),
                    }
                    .map_or_else(|| st.build_field(&field.index, field, f), Ok)?),
                    None => match st.load_snapshot(dir, field, f, &field.index, manifest, read_only) {
                        Some(fi) => Ok(fi),
                        None => st.build_field(&field.index, field, f),
                    },
                }
            })
            .collect();
        self.indexes = built.into_iter().collect::<Result<_>>()?;
        // A snapshot's catch-up copied the rows of newer segments: point them at their segments
        // (nothing to move, and no pass over the graph at open, when nothing was caught up).
        if self.indexes.iter().any(|fi| matches!(fi.origin, IndexOrigin::Snapshot { caught_up } if caught_up > 0)) {
            self.relocate_in_place();
        }
        Ok(())
    }
}

/// True for the spec of an index that searches the stored rows in place (`Flat`).
pub(super) fn is_stored_spec(spec: &str) -> bool {
    matches!(spec.trim(), "Flat" | "flat")
}
