//! Pieces shared by the approximate indexes (k-d forest, LSH, IVF, PCA, Refine):
//! a slot store of dense vectors keyed by id (with its exact top-k and range searches),
//! a small deterministic PRNG and input checks.

use std::collections::HashMap;
use std::path::Path;

use crate::distance;
use crate::error::{Error, Result};
use crate::fsutil::corrupt;
use crate::index::file::{read_pod, write_pod};
use crate::index::topk::{sort_neighbors, TopK};
use crate::index::{IdFilter, Neighbor, SearchParams};
use crate::metric::Metric;
use crate::vector::{VectorRef, VectorsRef};

/// Distance between two dense vectors in user units (see [`crate::metric`]).
#[inline]
pub(crate) fn dense_distance(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    match metric {
        Metric::L2 => distance::l2_sq(a, b).sqrt(),
        Metric::Cosine => 1.0 - distance::dot(a, b),
        Metric::Dot | Metric::Hamming => -distance::dot(a, b),
    }
}

/// Error unless `metric` works on dense floats (these indexes do not handle bit vectors).
pub(crate) fn require_dense(spec: &str, metric: Metric) -> Result<()> {
    if metric == Metric::Hamming {
        return Err(Error::InvalidIndexSpec {
            spec: spec.to_string(),
            reason: "this index works on float vectors (l2, cosine, dot); for hamming use Flat or HNSW".into(),
        });
    }
    Ok(())
}

/// Check a batch for `add`: dense, `ids.len()` rows of `dim` finite floats. Returns the flat data.
pub(crate) fn dense_batch<'a>(ids: &[u64], vectors: VectorsRef<'a>, dim: usize) -> Result<&'a [f32]> {
    let data = match vectors {
        VectorsRef::Dense(d) => d,
        VectorsRef::Binary(_) => return Err(Error::InvalidVector("expected dense float vectors, got bits".into())),
    };
    if data.len() != ids.len() * dim {
        return Err(Error::InvalidArgument(format!(
            "{} ids but {} floats (expected {} = ids × dim {dim})",
            ids.len(),
            data.len(),
            ids.len() * dim
        )));
    }
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(Error::InvalidVector(format!(
            "vector {} (id {}) component {} is not finite",
            i / dim.max(1),
            ids[i / dim.max(1)],
            i % dim.max(1)
        )));
    }
    Ok(data)
}

/// Check a training sample: dense rows of `dim` floats. Returns the flat data.
pub(crate) fn dense_sample<'a>(sample: VectorsRef<'a>, dim: usize) -> Result<&'a [f32]> {
    match sample {
        VectorsRef::Dense(d) if dim > 0 && d.len() % dim == 0 => {
            if d.iter().any(|x| !x.is_finite()) {
                return Err(Error::InvalidVector("training sample contains a non-finite value".into()));
            }
            Ok(d)
        }
        VectorsRef::Dense(d) => {
            Err(Error::InvalidArgument(format!("training sample of {} floats is not a multiple of dim {dim}", d.len())))
        }
        VectorsRef::Binary(_) => Err(Error::InvalidVector("expected dense float vectors, got bits".into())),
    }
}

/// Check a query: a dense vector of `dim` finite floats.
pub(crate) fn dense_query<'a>(query: VectorRef<'a>, dim: usize) -> Result<&'a [f32]> {
    match query {
        VectorRef::Dense(q) if q.len() == dim => {
            if q.iter().any(|x| !x.is_finite()) {
                return Err(Error::InvalidVector("query contains a non-finite value".into()));
            }
            Ok(q)
        }
        VectorRef::Dense(q) => Err(Error::DimensionMismatch { expected: dim, got: q.len() }),
        VectorRef::Binary(_) => Err(Error::InvalidVector("expected a dense float query, got bits".into())),
    }
}

/// Check a batch of queries for `search_batch`: dense, whole rows of `dim` finite floats.
/// Returns the flat data.
pub(crate) fn dense_queries<'a>(queries: VectorsRef<'a>, dim: usize) -> Result<&'a [f32]> {
    queries.whole_rows(dim)?;
    match queries {
        VectorsRef::Dense(q) if q.iter().any(|x| !x.is_finite()) => {
            Err(Error::InvalidVector("query contains a non-finite value".into()))
        }
        VectorsRef::Dense(q) => Ok(q),
        VectorsRef::Binary(_) => Err(Error::InvalidVector("expected dense float queries, got bits".into())),
    }
}

/// `out[i·n_b + j] = a_i · b_j` for the rows of `a` and `b` (row-major, `dim` wide): one
/// matrix product (faer) on the calling thread. `out` holds `rows(a) × rows(b)` floats.
pub(crate) fn row_products(a: &[f32], b: &[f32], dim: usize, out: &mut [f32]) {
    use faer::{Accum, MatMut, MatRef, Par};
    let (m, n) = (a.len() / dim, b.len() / dim);
    let lhs = MatRef::from_row_major_slice(&a[..m * dim], m, dim);
    let rhs = MatRef::from_row_major_slice(&b[..n * dim], n, dim).transpose();
    let dst = MatMut::from_row_major_slice_mut(&mut out[..m * n], m, n);
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
}

/// Candidates re-ranked exactly for a top-`k` search: `SearchParams.rerank` (default
/// `max(10·k, 100)`), never fewer than `k`.
pub(crate) fn rerank_depth(params: &SearchParams, k: usize) -> usize {
    params.rerank.unwrap_or_else(|| (k * 10).max(100)).max(k)
}

/// splitmix64: a small, fast, seedable generator (deterministic builds and tests).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 11) as u128 * n as u128) >> 53) as usize
    }
    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box–Muller).
    pub(crate) fn gauss(&mut self) -> f32 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }
    /// `m` distinct indexes out of `0..n` (all of them when `m >= n`), in random order.
    pub(crate) fn sample_indices(&mut self, n: usize, m: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..n).collect();
        let m = m.min(n);
        for i in 0..m {
            let j = i + self.below(n - i);
            idx.swap(i, j);
        }
        idx.truncate(m);
        idx
    }
}

/// Dense vectors in slots, keyed by caller id. Removal leaves a tombstone until [`DenseStore::compact`].
#[derive(Debug, Clone, Default)]
pub(crate) struct DenseStore {
    dim: usize,
    data: Vec<f32>,
    ids: Vec<u64>,
    alive: Vec<bool>,
    map: HashMap<u64, u32>,
}

impl DenseStore {
    pub(crate) fn new(dim: usize) -> Self {
        DenseStore { dim, ..Default::default() }
    }
    /// Append `v` under `id` (an older copy of `id` becomes a tombstone). Returns the slot.
    pub(crate) fn insert(&mut self, id: u64, v: &[f32]) -> u32 {
        debug_assert_eq!(v.len(), self.dim);
        self.remove(id);
        let slot = self.ids.len() as u32;
        self.data.extend_from_slice(v);
        self.ids.push(id);
        self.alive.push(true);
        self.map.insert(id, slot);
        slot
    }
    /// Make room for `n` more rows (a batch added at once then takes exactly its size).
    pub(crate) fn reserve(&mut self, n: usize) {
        self.data.reserve(n * self.dim);
        self.ids.reserve(n);
        self.alive.reserve(n);
        self.map.reserve(n);
    }
    /// Tombstone `id`; true when it was live.
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        match self.map.remove(&id) {
            Some(s) => {
                self.alive[s as usize] = false;
                true
            }
            None => false,
        }
    }
    pub(crate) fn contains(&self, id: u64) -> bool {
        self.map.contains_key(&id)
    }
    pub(crate) fn get(&self, id: u64) -> Option<&[f32]> {
        self.map.get(&id).map(|&s| self.vector(s))
    }
    #[inline]
    pub(crate) fn vector(&self, slot: u32) -> &[f32] {
        let s = slot as usize * self.dim;
        &self.data[s..s + self.dim]
    }
    #[inline]
    pub(crate) fn id(&self, slot: u32) -> u64 {
        self.ids[slot as usize]
    }
    #[inline]
    pub(crate) fn is_alive(&self, slot: u32) -> bool {
        self.alive[slot as usize]
    }
    /// Live vectors.
    pub(crate) fn live(&self) -> usize {
        self.map.len()
    }
    /// Slots including tombstones.
    pub(crate) fn slots(&self) -> usize {
        self.ids.len()
    }
    pub(crate) fn dead(&self) -> usize {
        self.slots() - self.live()
    }
    /// The raw row-major data of all slots (tombstones included).
    pub(crate) fn data(&self) -> &[f32] {
        &self.data
    }
    /// Live (id, vector) pairs in slot order.
    pub(crate) fn iter_live(&self) -> impl Iterator<Item = (u64, &[f32])> + '_ {
        (0..self.slots() as u32).filter(|&s| self.is_alive(s)).map(|s| (self.id(s), self.vector(s)))
    }
    /// Drop tombstones; returns the map old slot → new slot (`u32::MAX` for dropped ones).
    pub(crate) fn compact(&mut self) -> Vec<u32> {
        let mut remap = vec![u32::MAX; self.slots()];
        let mut data = Vec::with_capacity(self.live() * self.dim);
        let mut ids = Vec::with_capacity(self.live());
        for s in 0..self.slots() as u32 {
            if self.is_alive(s) {
                remap[s as usize] = ids.len() as u32;
                data.extend_from_slice(self.vector(s));
                ids.push(self.id(s));
            }
        }
        self.map = ids.iter().enumerate().map(|(i, &id)| (id, i as u32)).collect();
        self.alive = vec![true; ids.len()];
        self.data = data;
        self.ids = ids;
        remap
    }
    /// Empty the store.
    pub(crate) fn clear(&mut self) {
        *self = DenseStore::new(self.dim);
    }
    pub(crate) fn memory_bytes(&self) -> usize {
        self.data.capacity() * 4 + self.ids.capacity() * 8 + self.alive.capacity() + self.map.capacity() * 16
    }
    /// Live slots from `first` on whose ids `filter` accepts, as (slot, id).
    fn accepted_from<'a>(
        &'a self,
        first: usize,
        filter: Option<IdFilter<'a>>,
    ) -> impl Iterator<Item = (u32, u64)> + 'a {
        (first as u32..self.slots() as u32)
            .filter(move |&s| self.is_alive(s) && filter.is_none_or(|f| f(self.id(s))))
            .map(|s| (s, self.id(s)))
    }
    /// Offer the live vectors from slot `first` on that `filter` accepts to `top`, keyed by
    /// `key(vector)` (the exact distance, or an index's own ranking key).
    pub(crate) fn scan_from(
        &self,
        first: usize,
        filter: Option<IdFilter<'_>>,
        top: &mut TopK,
        key: impl Fn(&[f32]) -> f32,
    ) {
        for (s, id) in self.accepted_from(first, filter) {
            top.push(key(self.vector(s)), id);
        }
    }
    /// Exact top-`k` of the live, accepted vectors, closest first.
    pub(crate) fn search(&self, metric: Metric, q: &[f32], k: usize, filter: Option<IdFilter<'_>>) -> Vec<Neighbor> {
        let mut top = TopK::new(k);
        self.scan_from(0, filter, &mut top, |v| dense_distance(metric, q, v));
        top.into_sorted()
    }
    /// Exact range search over the live, accepted vectors from slot `first` on, appended to
    /// `out` unsorted (for indexes that add hits of their own before sorting).
    pub(crate) fn range_into(
        &self,
        metric: Metric,
        q: &[f32],
        radius: f32,
        filter: Option<IdFilter<'_>>,
        first: usize,
        out: &mut Vec<Neighbor>,
    ) {
        for (s, id) in self.accepted_from(first, filter) {
            let d = dense_distance(metric, q, self.vector(s));
            if d <= radius {
                out.push(Neighbor { id, distance: d });
            }
        }
    }
    /// Every live, accepted vector within `radius` (inclusive), closest first: the exact
    /// range search of the indexes whose codes cannot bound a radius.
    pub(crate) fn range_search(
        &self,
        metric: Metric,
        q: &[f32],
        radius: f32,
        filter: Option<IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let mut out = Vec::new();
        self.range_into(metric, q, radius, filter, 0, &mut out);
        sort_neighbors(&mut out);
        out
    }
    /// Save live vectors as `<name>.ids` and `<name>.f32` in `dir`.
    pub(crate) fn save(&self, dir: &Path, name: &str) -> Result<()> {
        let mut ids = Vec::with_capacity(self.live());
        let mut data = Vec::with_capacity(self.live() * self.dim);
        for (id, v) in self.iter_live() {
            ids.push(id);
            data.extend_from_slice(v);
        }
        write_pod(&dir.join(format!("{name}.ids")), &ids)?;
        write_pod(&dir.join(format!("{name}.f32")), &data)
    }
    /// Save every slot, tombstones included (slot numbers stay valid), as `<name>.ids`, `<name>.f32`, `<name>.alive`.
    pub(crate) fn save_slots(&self, dir: &Path, name: &str) -> Result<()> {
        let alive: Vec<u8> = self.alive.iter().map(|&a| a as u8).collect();
        write_pod(&dir.join(format!("{name}.ids")), &self.ids)?;
        write_pod(&dir.join(format!("{name}.f32")), &self.data)?;
        write_pod(&dir.join(format!("{name}.alive")), &alive)
    }
    /// Read what [`DenseStore::save_slots`] wrote.
    pub(crate) fn load_slots(dir: &Path, name: &str, dim: usize) -> Result<Self> {
        let ids: Vec<u64> = read_pod(&dir.join(format!("{name}.ids")))?;
        let data: Vec<f32> = read_pod(&dir.join(format!("{name}.f32")))?;
        let alive: Vec<u8> = read_pod(&dir.join(format!("{name}.alive")))?;
        if data.len() != ids.len() * dim || alive.len() != ids.len() {
            return Err(corrupt(
                &dir.join(format!("{name}.f32")),
                format!("{} floats and {} flags for {} ids of dim {dim}", data.len(), alive.len(), ids.len()),
            ));
        }
        let alive: Vec<bool> = alive.iter().map(|&a| a != 0).collect();
        let map = ids.iter().enumerate().filter(|(i, _)| alive[*i]).map(|(i, &id)| (id, i as u32)).collect();
        Ok(DenseStore { dim, data, ids, alive, map })
    }
    /// Read what [`DenseStore::save`] wrote.
    pub(crate) fn load(dir: &Path, name: &str, dim: usize) -> Result<Self> {
        let ids: Vec<u64> = read_pod(&dir.join(format!("{name}.ids")))?;
        let data: Vec<f32> = read_pod(&dir.join(format!("{name}.f32")))?;
        if data.len() != ids.len() * dim {
            return Err(corrupt(
                &dir.join(format!("{name}.f32")),
                format!("{} floats for {} ids of dim {dim}", data.len(), ids.len()),
            ));
        }
        let mut s = DenseStore::new(dim);
        for (i, &id) in ids.iter().enumerate() {
            s.insert(id, &data[i * dim..(i + 1) * dim]);
        }
        Ok(s)
    }
}

/// Exact distances of `cands` (ids present in `store`) to `q`, best `k` kept.
pub(crate) fn rerank(store: &DenseStore, metric: Metric, q: &[f32], cands: &[u64], k: usize) -> Vec<Neighbor> {
    // The candidates' rows are scattered: ask for all of them before the first distance, so
    // the loads overlap instead of waiting one row at a time.
    let rows: Vec<(u64, &[f32])> = cands.iter().filter_map(|&id| Some((id, store.get(id)?))).collect();
    for (_, v) in &rows {
        distance::prefetch_lines(v.as_ptr() as *const u8, (4 * v.len()).div_ceil(64));
    }
    let mut top = TopK::new(k);
    for (id, v) in rows {
        top.push(dense_distance(metric, q, v), id);
    }
    top.into_sorted()
}
