//! Pieces shared by the approximate indexes (k-d forest, LSH, IVF, PCA, Refine):
//! a slot store of dense vectors keyed by id, a bounded top-k collector, a small
//! deterministic PRNG, input checks and binary/JSON file helpers.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::io::{Read, Write};
use std::path::Path;

use bytemuck::Pod;

use crate::distance;
use crate::error::{Error, Result};
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

#[derive(Debug, Clone, Copy)]
struct Entry {
    d: f32,
    id: u64,
}
impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        self.d.total_cmp(&o.d).then(self.id.cmp(&o.id))
    }
}

/// Keeps the `k` smallest (distance, id) pairs seen.
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK { k, heap: BinaryHeap::with_capacity(k + 1) }
    }
    /// Offer a candidate.
    #[inline]
    pub(crate) fn push(&mut self, d: f32, id: u64) {
        if self.k == 0 {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Entry { d, id });
        } else if d < self.worst() {
            self.heap.pop();
            self.heap.push(Entry { d, id });
        }
    }
    /// Distance a candidate must beat to enter (infinity until full).
    #[inline]
    pub(crate) fn worst(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |e| e.d)
        }
    }
    pub(crate) fn is_full(&self) -> bool {
        self.heap.len() >= self.k
    }
    /// The kept pairs, closest first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec().into_iter().map(|e| Neighbor { id: e.id, distance: e.d }).collect()
    }
}

/// Sort neighbors closest first (ties by id) — for range search results.
pub(crate) fn sort_neighbors(v: &mut [Neighbor]) {
    v.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
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
    /// Exact top-k over live, accepted vectors into `top`.
    pub(crate) fn scan_into(&self, metric: Metric, q: &[f32], filter: Option<IdFilter<'_>>, top: &mut TopK) {
        for s in 0..self.slots() as u32 {
            if !self.is_alive(s) {
                continue;
            }
            let id = self.id(s);
            if filter.is_some_and(|f| !f(id)) {
                continue;
            }
            top.push(dense_distance(metric, q, self.vector(s)), id);
        }
    }
    /// Exact range search over live, accepted vectors, appended to `out` (unsorted).
    pub(crate) fn range_into(
        &self,
        metric: Metric,
        q: &[f32],
        radius: f32,
        filter: Option<IdFilter<'_>>,
        out: &mut Vec<Neighbor>,
    ) {
        for s in 0..self.slots() as u32 {
            if !self.is_alive(s) {
                continue;
            }
            let id = self.id(s);
            if filter.is_some_and(|f| !f(id)) {
                continue;
            }
            let d = dense_distance(metric, q, self.vector(s));
            if d <= radius {
                out.push(Neighbor { id, distance: d });
            }
        }
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
            return Err(Error::Corrupt {
                path: dir.join(format!("{name}.f32")),
                reason: format!("{} floats and {} flags for {} ids of dim {dim}", data.len(), alive.len(), ids.len()),
            });
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
            return Err(Error::Corrupt {
                path: dir.join(format!("{name}.f32")),
                reason: format!("{} floats for {} ids of dim {dim}", data.len(), ids.len()),
            });
        }
        let mut s = DenseStore::new(dim);
        for (i, &id) in ids.iter().enumerate() {
            s.insert(id, &data[i * dim..(i + 1) * dim]);
        }
        Ok(s)
    }
}

const MAGIC: &[u8; 8] = b"VDBANN01";

/// Write a slice of plain values: magic, element size, count, CRC32, bytes (written to a temp file, then renamed).
pub(crate) fn write_pod<T: Pod>(path: &Path, values: &[T]) -> Result<()> {
    let bytes: &[u8] = bytemuck::cast_slice(values);
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let mut header = Vec::with_capacity(28);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&(std::mem::size_of::<T>() as u32).to_le_bytes());
    header.extend_from_slice(&(values.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    f.write_all(&header).and_then(|_| f.write_all(bytes)).and_then(|_| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// Read a file written by [`write_pod`], checking magic, element size, length and checksum.
pub(crate) fn read_pod<T: Pod>(path: &Path) -> Result<Vec<T>> {
    let corrupt = |reason: String| Error::Corrupt { path: path.to_path_buf(), reason };
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut header = [0u8; 24];
    f.read_exact(&mut header).map_err(|_| corrupt("file shorter than its header".into()))?;
    if &header[..8] != MAGIC {
        return Err(corrupt("bad magic".into()));
    }
    let size = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default()) as usize;
    let count = u64::from_le_bytes(header[12..20].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(header[20..24].try_into().unwrap_or_default());
    if size != std::mem::size_of::<T>() {
        return Err(corrupt(format!("element size {size}, expected {}", std::mem::size_of::<T>())));
    }
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len() as usize;
    if len != 24 + count * size {
        return Err(corrupt(format!("length {len}, header says {}", 24 + count * size)));
    }
    let mut out = vec![T::zeroed(); count];
    f.read_exact(bytemuck::cast_slice_mut(&mut out)).map_err(|e| Error::io(path, e))?;
    if crc32fast::hash(bytemuck::cast_slice(&out)) != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    Ok(out)
}

/// Write `dir/index.json` (creating `dir`).
pub(crate) fn write_meta<M: serde::Serialize>(dir: &Path, meta: &M) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join("index.json");
    let text = serde_json::to_vec_pretty(meta)
        .map_err(|e| Error::InvalidArgument(format!("cannot serialize index metadata: {e}")))?;
    let tmp = dir.join("index.json.tmp");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
}

/// Read `dir/index.json` into `M`.
pub(crate) fn read_meta<M: serde::de::DeserializeOwned>(dir: &Path) -> Result<M> {
    let path = dir.join("index.json");
    let text = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&text).map_err(|e| Error::Corrupt { path, reason: format!("bad index.json: {e}") })
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
