//! Exact (brute-force) search.
//!
//! [`FlatIndex`] keeps every vector in one contiguous row-major buffer (floats, or
//! packed bytes for Hamming) with the ids alongside; removal swaps the last row
//! into the freed slot, so the buffer never has holes. A search scans all rows
//! with the SIMD kernels of [`crate::distance`], in blocks, keeping a bounded
//! top-k; large scans are split across rayon workers. Batched searches on dense
//! vectors go through a blocked matrix multiply (`faer`):
//! `‖q − x‖² = ‖q‖² + ‖x‖² − 2 q·x`, after which the best candidates of each
//! query are re-scored with the exact kernel, so reported distances are the
//! same as a single search's.
//!
//! Results are ordered by distance and then by id, so equal distances come back
//! in a deterministic order. The metadata filter is consulted during the scan,
//! only for rows that would enter the current top-k.
//!
//! ```
//! use vecdb::index::flat::FlatIndex;
//! use vecdb::{Metric, SearchParams, VectorIndex, VectorRef, VectorsRef};
//!
//! let mut index = FlatIndex::new(2, Metric::L2);
//! index.add(&[10, 11, 12], VectorsRef::Dense(&[0.0, 0.0, 3.0, 4.0, 1.0, 0.0])).unwrap();
//! let hits = index.search(VectorRef::Dense(&[0.0, 0.0]), 2, &SearchParams::default(), None).unwrap();
//! assert_eq!(hits.iter().map(|h| h.id).collect::<Vec<_>>(), vec![10, 12]);
//! assert_eq!(hits[1].distance, 1.0);
//! // Filters apply during the search: k results even when most ids are rejected.
//! let odd = |id: u64| id % 2 == 1;
//! let hits = index.search(VectorRef::Dense(&[0.0, 0.0]), 2, &SearchParams::default(), Some(&odd)).unwrap();
//! assert_eq!(hits.len(), 1);
//! assert_eq!((hits[0].id, hits[0].distance), (11, 5.0));
//! ```

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::distance;
use crate::error::{Error, Result};
use crate::fsutil::{corrupt, create_dir};
use crate::index::common::row_products;
use crate::index::file::{read_meta, read_pod, write_meta, write_pod, META_FILE};
use crate::index::topk::{sort_neighbors, TopK};
use crate::index::{IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::Element;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// Rows scored per kernel call; the scratch buffer of distances has this many entries.
const BLOCK_ROWS: usize = 1024;
/// Below this many stored components (floats or bytes) a single search stays on one thread.
const PARALLEL_MIN_COMPONENTS: usize = 1 << 19;
/// Data rows per tile of the batched matrix multiply: a multiple of the 96-row
/// AVX-512 micro-kernel of `faer`, small enough for the packed tile to stay in L2.
const GEMM_DATA_ROWS: usize = 192;
/// Most queries per tile of the batched matrix multiply (one block for a batch of
/// 1000 on one thread: the data tile is packed once per block, so fewer is slower).
const GEMM_QUERY_ROWS: usize = 1024;
/// Batches with fewer queries than this are run as independent single searches.
const GEMM_MIN_QUERIES: usize = 8;

/// Exact index: scans every vector.
#[derive(Clone)]
pub struct FlatIndex {
    dim: usize,
    metric: Metric,
    /// Storage units per row: `dim` floats, or `ceil(dim / 8)` bytes for bit vectors.
    row: usize,
    /// Dense rows (`len × dim`), empty for Hamming.
    floats: Vec<f32>,
    /// Packed bit rows (`len × row`), empty for dense metrics.
    bits: Vec<u8>,
    /// `‖x‖²` per row for L2 (used by the batched matrix multiply); empty otherwise.
    sq_norms: Vec<f32>,
    /// The id of each row.
    ids: Vec<u64>,
    /// id → row.
    slots: HashMap<u64, usize>,
}

/// What `index.json` holds for a flat index.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    kind: String,
    version: u32,
    dim: usize,
    metric: Metric,
    count: usize,
}

/// Version of the flat index files (2: every file checksummed by its footer, see [`crate::index::file`]).
const VERSION: u32 = 2;
const IDS_FILE: &str = "ids.bin";
const VECTORS_FILE: &str = "vectors.bin";

impl FlatIndex {
    /// An empty index for vectors of `dim` components (bits for [`Metric::Hamming`]).
    pub fn new(dim: usize, metric: Metric) -> Self {
        FlatIndex {
            dim,
            metric,
            row: match metric.element() {
                Element::F32 => dim,
                Element::Bit => dim.div_ceil(8),
            },
            floats: Vec::new(),
            bits: Vec::new(),
            sq_norms: Vec::new(),
            ids: Vec::new(),
            slots: HashMap::new(),
        }
    }

    /// Read an index saved in `dir` by [`VectorIndex::save`].
    ///
    /// Errors: [`Error::Io`] when a file is missing or unreadable, [`Error::Corrupt`]
    /// naming the file when `index.json` is not a flat manifest or a file fails its footer
    /// check ([`crate::index::file`]) or holds the wrong number of values.
    pub fn load(dir: &Path) -> Result<Self> {
        let m: Manifest = read_meta(dir)?;
        let mpath = dir.join(META_FILE);
        if m.kind != "flat" {
            return Err(corrupt(&mpath, format!("index kind is '{}', expected 'flat'", m.kind)));
        }
        if m.version != VERSION {
            return Err(corrupt(&mpath, format!("unsupported flat index version {}", m.version)));
        }
        let mut index = FlatIndex::new(m.dim, m.metric);

        let ipath = dir.join(IDS_FILE);
        index.ids = read_pod(&ipath)?;
        if index.ids.len() != m.count {
            return Err(corrupt(&ipath, format!("{} ids, index.json says {}", index.ids.len(), m.count)));
        }
        let vpath = dir.join(VECTORS_FILE);
        let want = m.count * index.row;
        let got = if m.metric.element() == Element::F32 {
            index.floats = read_pod(&vpath)?;
            if let Some(i) = index.floats.iter().position(|x| !x.is_finite()) {
                return Err(corrupt(&vpath, format!("component {i} is not finite")));
            }
            index.floats.len()
        } else {
            index.bits = read_pod(&vpath)?;
            index.bits.len()
        };
        if got != want {
            return Err(corrupt(&vpath, format!("{got} components, expected {want} for {} rows", m.count)));
        }

        index.slots.reserve(m.count);
        for (slot, &id) in index.ids.iter().enumerate() {
            if index.slots.insert(id, slot).is_some() {
                return Err(corrupt(&ipath, format!("id {id} appears twice")));
            }
        }
        if index.metric == Metric::L2 {
            index.sq_norms = index.floats.chunks_exact(index.dim.max(1)).map(|r| distance::dot(r, r)).collect();
            index.sq_norms.truncate(index.ids.len());
        }
        Ok(index)
    }

    /// The ids in storage order (for scans and tests).
    pub fn ids(&self) -> &[u64] {
        &self.ids
    }

    /// Check that `q` is a valid query for this index.
    fn check_query(&self, q: VectorRef<'_>) -> Result<()> {
        q.validate(self.metric.element(), self.dim)
    }

    /// The rows as a [`FlatRows`] view.
    fn view(&self) -> FlatRows<'_> {
        FlatRows {
            dim: self.dim,
            metric: self.metric,
            per_row: 1,
            row: self.row,
            floats: &self.floats,
            bits: &self.bits,
            sq_norms: (self.metric == Metric::L2).then_some(&self.sq_norms[..]),
            ids: &self.ids,
        }
    }

    fn search_impl(
        &self,
        q: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let accept = |_: usize, id: u64| filter.is_none_or(|f| f(id));
        self.view().topk(q, k, params, &accept).into_sorted()
    }

    /// Batched search through matrix multiplication (dense metrics only).
    fn search_batch_gemm(
        &self,
        queries: &[f32],
        k: usize,
        threads: Option<usize>,
        filter: Option<IdFilter<'_>>,
    ) -> Vec<Vec<Neighbor>> {
        let accept = |_: usize, id: u64| filter.is_none_or(|f| f(id));
        let margin = gemm_margin(k);
        let tops = self.view().gemm_tops(queries, k + margin, threads, &accept);
        let dim = self.dim;
        with_threads(threads, || {
            tops.into_par_iter()
                .enumerate()
                .map(|(i, top)| {
                    let q = &queries[i * dim..(i + 1) * dim];
                    let cands: Vec<(u64, &[f32])> = top
                        .into_sorted()
                        .into_iter()
                        .map(|c| (c.id, &self.floats[self.slots[&c.id] * dim..][..dim]))
                        .collect();
                    rescore(self.metric, q, &cands, k)
                })
                .collect()
        })
    }

    /// Validate a batch of rows and return how many rows it holds.
    fn check_rows(&self, vectors: VectorsRef<'_>, expected: Option<usize>) -> Result<usize> {
        let (len, unit_ok) = match (vectors, self.metric.element()) {
            (VectorsRef::Dense(d), Element::F32) => (d.len(), true),
            (VectorsRef::Binary(d), Element::Bit) => (d.len(), true),
            _ => (0, false),
        };
        if !unit_ok {
            return Err(Error::InvalidVector(format!(
                "expected {} vectors for metric {}",
                if self.metric.element() == Element::F32 { "dense f32" } else { "binary" },
                self.metric
            )));
        }
        if self.row == 0 {
            return Err(Error::InvalidArgument("index dimension is 0".into()));
        }
        if len % self.row != 0 {
            return Err(Error::InvalidArgument(format!(
                "batch of {len} components is not a whole number of rows of {} (dimension {})",
                self.row, self.dim
            )));
        }
        let rows = len / self.row;
        if let Some(want) = expected {
            if rows != want {
                return Err(Error::InvalidArgument(format!("{want} ids but {rows} vectors")));
            }
        }
        for i in 0..rows {
            vectors.row(self.dim, i).validate(self.metric.element(), self.dim).map_err(|e| match e {
                Error::InvalidVector(m) => Error::InvalidVector(format!("row {i}: {m}")),
                other => other,
            })?;
        }
        Ok(rows)
    }
}

impl VectorIndex for FlatIndex {
    fn description(&self) -> String {
        "Flat".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        self.check_rows(vectors, Some(ids.len()))?;
        let row = self.row;
        for (i, &id) in ids.iter().enumerate() {
            let slot = match self.slots.get(&id) {
                Some(&slot) => slot,
                None => {
                    let slot = self.ids.len();
                    self.ids.push(id);
                    self.slots.insert(id, slot);
                    match vectors {
                        VectorsRef::Dense(_) => self.floats.resize((slot + 1) * row, 0.0),
                        VectorsRef::Binary(_) => self.bits.resize((slot + 1) * row, 0),
                    }
                    if self.metric == Metric::L2 {
                        self.sq_norms.push(0.0);
                    }
                    slot
                }
            };
            match vectors {
                VectorsRef::Dense(d) => {
                    let src = &d[i * row..(i + 1) * row];
                    self.floats[slot * row..(slot + 1) * row].copy_from_slice(src);
                    if self.metric == Metric::L2 {
                        self.sq_norms[slot] = distance::dot(src, src);
                    }
                }
                VectorsRef::Binary(d) => {
                    self.bits[slot * row..(slot + 1) * row].copy_from_slice(&d[i * row..(i + 1) * row]);
                }
            }
        }
        Ok(())
    }

    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let row = self.row;
        let mut removed = 0;
        for id in ids {
            let Some(slot) = self.slots.remove(id) else {
                continue;
            };
            removed += 1;
            let last = self.ids.len() - 1;
            if slot != last {
                let moved = self.ids[last];
                self.ids[slot] = moved;
                self.slots.insert(moved, slot);
                if self.metric.element() == Element::F32 {
                    self.floats.copy_within(last * row..(last + 1) * row, slot * row);
                } else {
                    self.bits.copy_within(last * row..(last + 1) * row, slot * row);
                }
                if self.metric == Metric::L2 {
                    self.sq_norms[slot] = self.sq_norms[last];
                }
            }
            self.ids.truncate(last);
            match self.metric.element() {
                Element::F32 => self.floats.truncate(last * row),
                Element::Bit => self.bits.truncate(last * row),
            }
            self.sq_norms.truncate(if self.metric == Metric::L2 { last } else { 0 });
        }
        Ok(removed)
    }

    fn contains(&self, id: u64) -> bool {
        self.slots.contains_key(&id)
    }

    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        self.check_query(query)?;
        Ok(self.search_impl(query, k, params, filter))
    }

    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        self.check_query(query)?;
        if radius.is_nan() {
            return Err(Error::InvalidArgument("range search radius is NaN".into()));
        }
        let accept = |_: usize, id: u64| filter.is_none_or(|f| f(id));
        let mut hits = self.view().range(query, radius, params, &accept);
        sort_neighbors(&mut hits);
        Ok(hits)
    }

    fn search_batch(
        &self,
        queries: VectorsRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Vec<Neighbor>>> {
        let nq = self.check_rows(queries, None)?;
        if k == 0 || self.ids.is_empty() {
            return Ok(vec![Vec::new(); nq]);
        }
        match queries {
            VectorsRef::Dense(q) if nq >= GEMM_MIN_QUERIES && self.metric != Metric::Hamming => {
                Ok(self.search_batch_gemm(q, k, params.threads, filter))
            }
            _ => {
                // Parallel over queries; each query scans sequentially.
                let single = SearchParams { threads: Some(1), ..params.clone() };
                Ok(with_threads(params.threads, || {
                    (0..nq)
                        .into_par_iter()
                        .map(|i| self.search_impl(queries.row(self.dim, i), k, &single, filter))
                        .collect()
                }))
            }
        }
    }

    fn reconstruct(&self, id: u64) -> Option<Vector> {
        let slot = *self.slots.get(&id)?;
        let r = slot * self.row..(slot + 1) * self.row;
        Some(match self.metric.element() {
            Element::F32 => Vector::Dense(self.floats[r].to_vec()),
            Element::Bit => Vector::Binary(self.bits[r].to_vec()),
        })
    }

    fn memory_bytes(&self) -> usize {
        self.floats.capacity() * 4
            + self.bits.capacity()
            + self.sq_norms.capacity() * 4
            + self.ids.capacity() * 8
            // hashbrown: key + value + one control byte per bucket
            + self.slots.capacity() * (8 + 8 + 1)
    }

    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(self.clone()))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        write_pod(&dir.join(IDS_FILE), &self.ids)?;
        match self.metric.element() {
            Element::F32 => write_pod(&dir.join(VECTORS_FILE), &self.floats)?,
            Element::Bit => write_pod(&dir.join(VECTORS_FILE), &self.bits)?,
        }
        let manifest = Manifest {
            kind: "flat".into(),
            version: VERSION,
            dim: self.dim,
            metric: self.metric,
            count: self.ids.len(),
        };
        // The manifest goes last: a directory without it is not a complete index.
        write_meta(dir, &manifest)
    }
}

/// Candidates re-scored exactly per query after a batched (GEMM) pass: absorbs the rounding of
/// the expanded L2 formula.
pub(crate) fn gemm_margin(k: usize) -> usize {
    (k / 2).max(16)
}

/// Exact distances of `cands` (id, stored vector) to `q`, best `k` in result order.
pub(crate) fn rescore(metric: Metric, q: &[f32], cands: &[(u64, &[f32])], k: usize) -> Vec<Neighbor> {
    let mut exact: Vec<Neighbor> =
        cands.iter().map(|&(id, x)| Neighbor { id, distance: exact_distance(metric, q, x) }).collect();
    sort_neighbors(&mut exact);
    exact.truncate(k);
    exact
}

/// The user-unit distance between two dense vectors (same arithmetic as a scan).
pub(crate) fn exact_distance(metric: Metric, q: &[f32], x: &[f32]) -> f32 {
    match metric {
        Metric::L2 => distance::l2_sq(q, x).sqrt(),
        Metric::Cosine => 1.0 - distance::dot(q, x),
        _ => -distance::dot(q, x),
    }
}

/// Which rows of a [`FlatRows`] scan may be returned: called with the row number and its id,
/// only for rows that would enter the result.
pub(crate) type RowFilter<'a> = &'a (dyn Fn(usize, u64) -> bool + Sync);

/// Rows scanned in place: a borrowed row-major block of vectors (a [`FlatIndex`]'s buffer or a
/// memory-mapped segment column) with the id of each row. The scans of [`FlatIndex`] and of a
/// collection's stored rows are these.
#[derive(Clone, Copy)]
pub(crate) struct FlatRows<'a> {
    dim: usize,
    metric: Metric,
    /// Vectors per row (a multi-vector field's rows hold several, side by side).
    per_row: usize,
    /// Storage units per row: `per_row × dim` floats, or `ceil(dim / 8)` bytes for bit vectors.
    row: usize,
    floats: &'a [f32],
    bits: &'a [u8],
    /// `‖x‖²` per row for L2 when known (else computed per tile by the batched search).
    sq_norms: Option<&'a [f32]>,
    ids: &'a [u64],
}

impl<'a> FlatRows<'a> {
    /// A view of `column` (`ids.len()` rows of `dim` components of `metric`'s element).
    pub(crate) fn new(dim: usize, metric: Metric, column: VectorsRef<'a>, ids: &'a [u64]) -> Self {
        let (floats, bits, row): (&[f32], &[u8], usize) = match column {
            VectorsRef::Dense(d) => (d, &[], dim),
            VectorsRef::Binary(b) => (&[], b, dim.div_ceil(8)),
        };
        FlatRows { dim, metric, per_row: 1, row, floats, bits, sq_norms: None, ids }
    }

    /// The same rows read as `n` float vectors of `dim` each (a multi-vector field's column):
    /// a row then scores as its best vector against the best query vector (queries may hold
    /// several vectors of `dim` too).
    pub(crate) fn with_vectors_per_row(mut self, n: usize) -> Self {
        if n > 1 && self.bits.is_empty() {
            self.per_row = n;
            self.row = n * self.dim;
        }
        self
    }

    /// Score rows `[start, end)` against `q` in user units into `out` (`end - start` entries).
    /// With several vectors per row or in the query, a row's score is its best pair's.
    fn score_rows(&self, q: VectorRef<'_>, start: usize, end: usize, out: &mut [f32]) {
        let out = &mut out[..end - start];
        match q {
            VectorRef::Dense(q) if self.per_row == 1 && q.len() == self.dim => {
                dense_scores(self.metric, q, &self.floats[start * self.row..end * self.row], out);
            }
            VectorRef::Dense(q) => {
                let rows = &self.floats[start * self.row..end * self.row];
                let mut each = vec![0.0f32; (end - start) * self.per_row];
                out.fill(f32::INFINITY);
                for qv in q.chunks_exact(self.dim.max(1)) {
                    dense_scores(self.metric, qv, rows, &mut each);
                    for (o, vs) in out.iter_mut().zip(each.chunks_exact(self.per_row)) {
                        *o = vs.iter().fold(*o, |a, &b| a.min(b));
                    }
                }
            }
            VectorRef::Binary(q) => {
                distance::hamming_many(q, &self.bits[start * self.row..end * self.row], out);
            }
        }
    }

    /// Top-k over rows `[start, end)`.
    fn scan_topk(&self, q: VectorRef<'_>, start: usize, end: usize, top: &mut TopK, accept: RowFilter<'_>) {
        let mut buf = vec![0.0f32; BLOCK_ROWS.min(end - start)];
        let mut s = start;
        while s < end {
            let e = (s + BLOCK_ROWS).min(end);
            self.score_rows(q, s, e, &mut buf);
            for (j, &d) in buf[..e - s].iter().enumerate() {
                let id = self.ids[s + j];
                if top.accepts(d, id) && accept(s + j, id) {
                    top.insert(d, id);
                }
            }
            s = e;
        }
    }

    /// Every accepted row of `[start, end)` within `radius`.
    fn scan_range(
        &self,
        q: VectorRef<'_>,
        start: usize,
        end: usize,
        radius: f32,
        accept: RowFilter<'_>,
    ) -> Vec<Neighbor> {
        let mut hits = Vec::new();
        let mut buf = vec![0.0f32; BLOCK_ROWS.min(end - start)];
        let mut s = start;
        while s < end {
            let e = (s + BLOCK_ROWS).min(end);
            self.score_rows(q, s, e, &mut buf);
            for (j, &d) in buf[..e - s].iter().enumerate() {
                let id = self.ids[s + j];
                if d <= radius && accept(s + j, id) {
                    hits.push(Neighbor { id, distance: d });
                }
            }
            s = e;
        }
        hits
    }

    /// Split `0..len` into chunks for a parallel scan, or `None` to stay on this thread.
    fn parallel_chunks(&self, params: &SearchParams) -> Option<Vec<(usize, usize)>> {
        let n = self.ids.len();
        let threads = params.threads.unwrap_or_else(rayon::current_num_threads).max(1);
        if threads == 1 || n * self.row < PARALLEL_MIN_COMPONENTS {
            return None;
        }
        let parts = threads * 4;
        let size = n.div_ceil(parts).max(BLOCK_ROWS);
        Some((0..n).step_by(size).map(|s| (s, (s + size).min(n))).collect())
    }

    /// The best `k` accepted rows for `q` (split across threads for large views).
    pub(crate) fn topk(&self, q: VectorRef<'_>, k: usize, params: &SearchParams, accept: RowFilter<'_>) -> TopK {
        let n = self.ids.len();
        if k == 0 || n == 0 {
            return TopK::new(k);
        }
        match self.parallel_chunks(params) {
            None => {
                let mut top = TopK::new(k);
                self.scan_topk(q, 0, n, &mut top, accept);
                top
            }
            Some(chunks) => with_threads(params.threads, || {
                chunks
                    .into_par_iter()
                    .map(|(s, e)| {
                        let mut top = TopK::new(k);
                        self.scan_topk(q, s, e, &mut top, accept);
                        top
                    })
                    .reduce(|| TopK::new(k), TopK::merge)
            }),
        }
    }

    /// Every accepted row within `radius` of `q`, unsorted.
    pub(crate) fn range(
        &self,
        q: VectorRef<'_>,
        radius: f32,
        params: &SearchParams,
        accept: RowFilter<'_>,
    ) -> Vec<Neighbor> {
        let n = self.ids.len();
        match self.parallel_chunks(params) {
            None => self.scan_range(q, 0, n, radius, accept),
            Some(chunks) => with_threads(params.threads, || {
                chunks.into_par_iter().flat_map_iter(|(s, e)| self.scan_range(q, s, e, radius, accept)).collect()
            }),
        }
    }

    /// The best `candidates` accepted rows of every query (rows of `queries`) by the batched
    /// matrix multiply's ranking value (not a distance: re-score them, see [`rescore`]).
    pub(crate) fn gemm_tops(
        &self,
        queries: &[f32],
        candidates: usize,
        threads: Option<usize>,
        accept: RowFilter<'_>,
    ) -> Vec<TopK> {
        let dim = self.dim;
        let nq = queries.len() / dim.max(1);
        let t = threads.unwrap_or_else(rayon::current_num_threads).max(1);
        // Enough query blocks to keep every thread busy, each small enough to stay cache friendly.
        let bq = nq.div_ceil(t).clamp(1, GEMM_QUERY_ROWS);
        with_threads(threads, || {
            queries.par_chunks(bq * dim).flat_map_iter(|qb| self.gemm_block(qb, candidates, accept)).collect()
        })
    }

    /// One block of queries against all rows.
    fn gemm_block(&self, qb: &[f32], candidates: usize, accept: RowFilter<'_>) -> Vec<TopK> {
        let dim = self.dim;
        let m = qb.len() / dim;
        let n = self.ids.len();
        let mut tops: Vec<TopK> = (0..m).map(|_| TopK::new(candidates)).collect();
        let mut ip = vec![0.0f32; m * GEMM_DATA_ROWS.min(n)];
        let mut cands: Vec<u32> = Vec::with_capacity(GEMM_DATA_ROWS.min(n));
        let mut tile_norms: Vec<f32> = Vec::new();
        let mut s = 0;
        while s < n {
            let e = (s + GEMM_DATA_ROWS).min(n);
            let w = e - s;
            let data = &self.floats[s * dim..e * dim];
            row_products(qb, data, dim, &mut ip[..m * w]);
            let norms: &[f32] = match (self.metric, self.sq_norms) {
                (Metric::L2, Some(all)) => &all[s..e],
                (Metric::L2, None) => {
                    tile_norms.clear();
                    tile_norms.extend(data.chunks_exact(dim).map(|r| distance::dot(r, r)));
                    &tile_norms
                }
                _ => &[],
            };
            let ids = &self.ids[s..e];
            let at = |j: usize, id: u64| accept(s + j, id);
            for (i, top) in tops.iter_mut().enumerate() {
                let row = &ip[i * w..(i + 1) * w];
                match self.metric {
                    // ‖x‖² − 2 q·x ranks like ‖q − x‖² (‖q‖² is constant per query).
                    Metric::L2 => select_tile(top, row, Some(norms), ids, &at, &mut cands, |j, p| norms[j] - 2.0 * p),
                    // `0.0 - p`, not `-p`: a zero product must rank as +0.0 whatever its sign, or
                    // the total order would split exact ties (e.g. a zero query) before the re-rank.
                    _ => select_tile(top, row, None, ids, &at, &mut cands, |_, p| 0.0 - p),
                }
            }
            s = e;
        }
        tops
    }
}

/// Distances in user units from `q` to every `q.len()`-float row of `rows`, into `out`.
fn dense_scores(metric: Metric, q: &[f32], rows: &[f32], out: &mut [f32]) {
    match metric {
        Metric::L2 => {
            distance::l2_sq_many(q, rows, out);
            out.iter_mut().for_each(|d| *d = d.sqrt());
        }
        Metric::Cosine => {
            distance::dot_many(q, rows, out);
            out.iter_mut().for_each(|d| *d = 1.0 - *d);
        }
        Metric::Dot | Metric::Hamming => {
            distance::dot_many(q, rows, out);
            out.iter_mut().for_each(|d| *d = -*d);
        }
    }
}

/// Offer the scores of one GEMM output row (`row[j]` for data row `j` of the tile)
/// to `top`, with `score(j, p)` turning the inner product into the ranking value.
///
/// A SIMD pass ([`distance::gemm_candidates`]) first drops the values greater than
/// the worst kept one, which can never enter the heap; the survivors take exactly
/// the per-row path ([`TopK::accepts`], filter, insert) in order, so the result is the
/// same as offering every value.
#[inline(always)]
fn select_tile(
    top: &mut TopK,
    row: &[f32],
    norms: Option<&[f32]>,
    ids: &[u64],
    accept: &impl Fn(usize, u64) -> bool,
    cands: &mut Vec<u32>,
    score: impl Fn(usize, f32) -> f32,
) {
    distance::gemm_candidates(norms, row, top.worst(), cands);
    for &j in cands.iter() {
        let j = j as usize;
        let d = score(j, row[j]);
        let id = ids[j];
        if top.accepts(d, id) && accept(j, id) {
            top.insert(d, id);
        }
    }
}

/// Run `f` on a rayon pool of `threads` workers (cached per size), or on the
/// current pool when `threads` is `None`.
///
/// Indexes use this to honour [`SearchParams::threads`].
pub fn with_threads<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    let Some(t) = threads.filter(|&t| t > 0) else {
        return f();
    };
    if rayon::current_thread_index().is_some() && rayon::current_num_threads() == t {
        return f();
    }
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pool = {
        let mut pools = POOLS.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
        match pools.get(&t) {
            Some(p) => Some(p.clone()),
            None => match rayon::ThreadPoolBuilder::new()
                .num_threads(t)
                .thread_name(move |i| format!("vecdb-{t}-{i}"))
                .build()
            {
                Ok(p) => {
                    let p = Arc::new(p);
                    pools.insert(t, p.clone());
                    Some(p)
                }
                Err(_) => None,
            },
        }
    };
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
