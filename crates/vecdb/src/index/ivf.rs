//! IVF: an inverted-file index. A k-means coarse quantizer cuts space into `nlist`
//! cells; each vector is stored in its cell's list, as raw floats (`IVFn,Flat`), as a
//! product-quantized code of its residual to the cell centroid (`IVFn,PQm`), or as an
//! 8-bit scalar-quantized code (`IVFn,SQ8`). A search probes the `nprobe` cells whose
//! centroids are closest to the query. `PQm` and `SQ8` alone are the same index with
//! one cell.
//!
//! Training: [`VectorIndex::train`] fits the quantizers; when vectors are added before
//! that, they wait in an exact "pending" buffer (searched by brute force) until there
//! are enough of them ([`IvfIndex::min_train_points`]), and the index then trains itself
//! on them, so inserting without ever calling `train` just works.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::distance;
use crate::error::{Error, Result};
use crate::fsutil::corrupt;
use crate::index::common::{
    dense_batch, dense_distance, dense_queries, dense_query, dense_sample, require_dense, row_products, DenseStore,
};
use crate::index::file::{read_meta, read_pod, write_meta, write_pod};
use crate::index::flat::with_threads;
use crate::index::kmeans;
use crate::index::pq::{ProductQuantizer, KSUB};
use crate::index::sq::{ScalarQuantizer, SqQuery};
use crate::index::topk::{sort_neighbors, TopK};
use crate::index::{search_each, IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// How vectors are stored inside the inverted lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum IvfCodec {
    /// Raw `f32` vectors (exact distances inside the probed cells).
    Flat,
    /// Product quantization of the residual with `m` one-byte sub-quantizer codes.
    Pq {
        /// Number of sub-quantizers (bytes per vector); must divide the dimension.
        m: usize,
    },
    /// 8-bit scalar quantization (one byte per component).
    Sq8,
}

/// Default number of cells probed when `SearchParams.nprobe` is not set.
pub const DEFAULT_NPROBE: usize = 16;

/// After adding this many rows at once, the lists are shrunk to fit (small adds keep the
/// slack, so that appending stays amortized O(1)).
const SHRINK_AFTER_ROWS: usize = 4096;

/// Batches at least this large rank the cells of all their queries with matrix products.
const BATCH_MIN_QUERIES: usize = 8;
/// Queries per coarse-quantizer matrix product: the centroid matrix (`nlist × dim` floats,
/// 3 MB for 1,024 × 784) is read once per block instead of once per query.
const BATCH_BLOCK: usize = 64;

const KMEANS_ITERS: usize = 10;
const SEED: u64 = 0x1f5_ea7c;

#[derive(Clone)]
enum Quant {
    Flat,
    Pq(ProductQuantizer),
    Sq(ScalarQuantizer),
}

/// Cells of one query, nearest first: `order[..sorted]` is sorted, the rest only follows it.
struct ProbeOrder {
    order: Vec<u32>,
    /// Query · centroid, per cell.
    qc: Vec<f32>,
    /// Ranking key per cell (squared distance, or −dot).
    key: Vec<f32>,
    sorted: usize,
}

impl ProbeOrder {
    /// Sort the cells after the first `sorted` ones too.
    fn sort_rest(&mut self) {
        self.order[self.sorted..].sort_unstable_by(by_key(&self.key));
        self.sorted = self.order.len();
    }
}

/// Order cells by `key`, ties by cell number.
fn by_key(key: &[f32]) -> impl Fn(&u32, &u32) -> std::cmp::Ordering + '_ {
    move |a, b| key[*a as usize].total_cmp(&key[*b as usize]).then(a.cmp(b))
}

#[derive(Clone)]
struct Trained {
    centroids: Vec<f32>,
    cnorm: Vec<f32>,
    quant: Quant,
}

#[derive(Default, Clone)]
struct InvList {
    ids: Vec<u64>,
    codes: Vec<u8>,
    /// Flat: the raw vectors; PQ: `‖c + r̂‖²` per vector (for L2 via inner-product tables).
    extra: Vec<f32>,
}

/// Per-query precomputation.
enum QueryCtx {
    Flat,
    Pq { lut: Vec<f32> },
    Sq(SqQuery),
}

/// The IVF index (see the module docs).
#[derive(Clone)]
pub struct IvfIndex {
    description: String,
    dim: usize,
    metric: Metric,
    nlist: usize,
    codec: IvfCodec,
    trained: Option<Trained>,
    lists: Vec<InvList>,
    loc: HashMap<u64, (u32, u32)>,
    pending: DenseStore,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    description: String,
    dim: usize,
    metric: Metric,
    nlist: usize,
    codec: IvfCodec,
    trained: bool,
}

/// Call `f(id, dist(i))` for every entry `i` of `list` the filter accepts.
#[inline(always)]
fn scan(list: &InvList, filter: Option<IdFilter<'_>>, f: &mut impl FnMut(u64, f32), dist: impl Fn(usize) -> f32) {
    match filter {
        None => list.ids.iter().enumerate().for_each(|(i, &id)| f(id, dist(i))),
        Some(flt) => list.ids.iter().enumerate().filter(|(_, &id)| flt(id)).for_each(|(i, &id)| f(id, dist(i))),
    }
}

fn swap_remove_chunk<T: Copy>(v: &mut Vec<T>, pos: usize, w: usize) {
    if w == 0 {
        return;
    }
    let last = v.len() / w - 1;
    if pos != last {
        let (a, b) = v.split_at_mut(last * w);
        a[pos * w..(pos + 1) * w].copy_from_slice(&b[..w]);
    }
    v.truncate(last * w);
}

impl IvfIndex {
    /// An untrained index with `nlist` cells and the given list codec; `description` is its factory string.
    pub fn new(description: &str, dim: usize, metric: Metric, nlist: usize, codec: IvfCodec) -> Result<Self> {
        require_dense(description, metric)?;
        let bad = |reason: String| Error::InvalidIndexSpec { spec: description.to_string(), reason };
        if dim == 0 {
            return Err(bad("dimension must be at least 1".into()));
        }
        if nlist == 0 || nlist > 1 << 20 {
            return Err(bad(format!("number of IVF cells must be in 1..=1048576, got {nlist}")));
        }
        if let IvfCodec::Pq { m } = codec {
            if m == 0 || !dim.is_multiple_of(m) {
                return Err(bad(format!("PQ{m}: the number of sub-quantizers must divide the dimension {dim}")));
            }
        }
        Ok(IvfIndex {
            description: description.to_string(),
            dim,
            metric,
            nlist,
            codec,
            trained: None,
            lists: vec![InvList::default(); nlist],
            loc: HashMap::new(),
            pending: DenseStore::new(dim),
        })
    }

    /// Vectors needed to train: 39 per cell (FAISS's minimum), at least 1,000, and 9,984
    /// (39 per codebook entry) for PQ. Below this, added vectors wait in the exact pending buffer.
    pub fn min_train_points(&self) -> usize {
        let base = (39 * self.nlist).max(1000);
        match self.codec {
            IvfCodec::Pq { .. } => base.max(39 * KSUB),
            _ => base,
        }
    }

    fn fit(&mut self, data: &[f32]) -> Result<()> {
        let n = data.len() / self.dim;
        let need = self.nlist.max(if matches!(self.codec, IvfCodec::Pq { .. }) { KSUB } else { 1 });
        if n < need {
            return Err(Error::InvalidArgument(format!(
                "{}: training needs at least {need} vectors, got {n}",
                self.description
            )));
        }
        let centroids = if self.nlist == 1 {
            let mut mean = vec![0f64; self.dim];
            for row in data.chunks_exact(self.dim) {
                mean.iter_mut().zip(row).for_each(|(m, x)| *m += *x as f64);
            }
            mean.iter().map(|m| (m / n as f64) as f32).collect()
        } else {
            kmeans::train(data, self.dim, self.nlist, KMEANS_ITERS, SEED)
        };
        let quant = match self.codec {
            IvfCodec::Flat => Quant::Flat,
            IvfCodec::Sq8 => Quant::Sq(ScalarQuantizer::train(data, self.dim)),
            IvfCodec::Pq { m } => {
                // Train the PQ on residuals of (a sample of) the training data.
                let cap = KSUB * kmeans::MAX_POINTS_PER_CENTROID;
                let step = n.div_ceil(cap).max(1);
                let rows: Vec<f32> = data.chunks_exact(self.dim).step_by(step).flatten().copied().collect();
                let cells = kmeans::assign(&rows, self.dim, &centroids);
                let residuals: Vec<f32> = rows
                    .par_chunks_exact(self.dim)
                    .zip(cells.par_iter())
                    .flat_map_iter(|(v, &(c, _))| {
                        let c = &centroids[c as usize * self.dim..(c as usize + 1) * self.dim];
                        v.iter().zip(c).map(|(x, y)| x - y).collect::<Vec<_>>()
                    })
                    .collect();
                Quant::Pq(ProductQuantizer::train(&residuals, self.dim, m, SEED))
            }
        };
        let cnorm = centroids.chunks_exact(self.dim).map(|c| distance::dot(c, c)).collect();
        self.trained = Some(Trained { centroids, cnorm, quant });
        Ok(())
    }

    /// Move everything from the pending buffer into the lists.
    fn flush_pending(&mut self) {
        let mut ids = Vec::with_capacity(self.pending.live());
        let mut data = Vec::with_capacity(self.pending.live() * self.dim);
        for (id, v) in self.pending.iter_live() {
            ids.push(id);
            data.extend_from_slice(v);
        }
        self.pending.clear();
        self.insert_encoded(&ids, &data);
        self.shrink_lists();
    }

    /// Give back the spare capacity the lists grew while a bulk load appended to them
    /// (doubling left them about a third empty on average).
    fn shrink_lists(&mut self) {
        for l in &mut self.lists {
            l.ids.shrink_to_fit();
            l.codes.shrink_to_fit();
            l.extra.shrink_to_fit();
        }
        self.loc.shrink_to_fit();
    }

    /// Encode and append vectors (index trained, ids not present).
    fn insert_encoded(&mut self, ids: &[u64], data: &[f32]) {
        let Some(t) = &self.trained else { return };
        let dim = self.dim;
        let cells = kmeans::assign(data, dim, &t.centroids);
        let encoded: Vec<(u32, Vec<u8>, Vec<f32>)> = data
            .par_chunks_exact(dim)
            .zip(cells.par_iter())
            .map(|(v, &(l, _))| {
                let c = &t.centroids[l as usize * dim..(l as usize + 1) * dim];
                match &t.quant {
                    Quant::Flat => (l, Vec::new(), v.to_vec()),
                    Quant::Sq(sq) => {
                        let mut code = vec![0u8; dim];
                        sq.encode(v, &mut code);
                        (l, code, Vec::new())
                    }
                    Quant::Pq(pq) => {
                        let r: Vec<f32> = v.iter().zip(c).map(|(x, y)| x - y).collect();
                        let mut code = vec![0u8; pq.m];
                        pq.encode(&r, &mut code);
                        let mut rec = vec![0f32; dim];
                        pq.decode(&code, &mut rec);
                        rec.iter_mut().zip(c).for_each(|(a, b)| *a += b);
                        let norm = distance::dot(&rec, &rec);
                        (l, code, vec![norm])
                    }
                }
            })
            .collect();
        for (&id, (l, code, extra)) in ids.iter().zip(encoded) {
            let list = &mut self.lists[l as usize];
            self.loc.insert(id, (l, list.ids.len() as u32));
            list.ids.push(id);
            list.codes.extend_from_slice(&code);
            list.extra.extend_from_slice(&extra);
        }
    }

    fn remove_one(&mut self, id: u64) -> bool {
        if self.pending.remove(id) {
            return true;
        }
        let Some((l, p)) = self.loc.remove(&id) else {
            return false;
        };
        let (cw, ew) = match self.codec {
            IvfCodec::Flat => (0, self.dim),
            IvfCodec::Pq { m } => (m, 1),
            IvfCodec::Sq8 => (self.dim, 0),
        };
        let list = &mut self.lists[l as usize];
        let p = p as usize;
        list.ids.swap_remove(p);
        swap_remove_chunk(&mut list.codes, p, cw);
        swap_remove_chunk(&mut list.extra, p, ew);
        if p < list.ids.len() {
            self.loc.insert(list.ids[p], (l, p as u32));
        }
        true
    }

    /// Cells in probe order with the query's inner product to each centroid. Only the first
    /// `first` cells are sorted (a full sort of 1,024 keys cost as much as scanning the lists);
    /// [`ProbeOrder::sort_rest`] orders the others when a filtered search needs more.
    fn probe_order(&self, t: &Trained, q: &[f32], first: usize) -> ProbeOrder {
        self.probe_order_from(t, q, Self::centroid_products(t, q), first)
    }

    /// The query's inner product with every centroid.
    fn centroid_products(t: &Trained, q: &[f32]) -> Vec<f32> {
        let mut qc = vec![0f32; t.cnorm.len()];
        distance::dot_many(q, &t.centroids, &mut qc);
        qc
    }

    /// [`IvfIndex::probe_order`] from the query's inner products with the centroids, `qc`.
    fn probe_order_from(&self, t: &Trained, q: &[f32], qc: Vec<f32>, first: usize) -> ProbeOrder {
        let qn = distance::dot(q, q);
        let key: Vec<f32> = match self.metric {
            Metric::Dot => qc.iter().map(|x| -x).collect(),
            _ => qc.iter().zip(&t.cnorm).map(|(d, cn)| qn - 2.0 * d + cn).collect(),
        };
        let mut order: Vec<u32> = (0..self.nlist as u32).collect();
        let first = first.clamp(1, order.len());
        if first < order.len() {
            order.select_nth_unstable_by(first - 1, by_key(&key));
        }
        order[..first].sort_unstable_by(by_key(&key));
        ProbeOrder { order, qc, key, sorted: first }
    }

    /// Top-`k` search of `q`, whose inner products with the centroids are `qc` (`None` before
    /// training).
    fn search_with(
        &self,
        q: &[f32],
        qc: Option<Vec<f32>>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let mut top = TopK::new(k);
        let metric = self.metric;
        self.pending.scan_from(0, filter, &mut top, |v| dense_distance(metric, q, v));
        if let (Some(t), Some(qc)) = (&self.trained, qc) {
            let nprobe = params.nprobe.unwrap_or(DEFAULT_NPROBE).clamp(1, self.nlist);
            let mut po = self.probe_order_from(t, q, qc, nprobe);
            let ctx = self.query_ctx(t, q);
            for i in 0..po.order.len() {
                // Past nprobe, keep probing only while fewer than k accepted results were found.
                if i >= nprobe && top.is_full() {
                    break;
                }
                if i == po.sorted {
                    po.sort_rest();
                }
                let l = po.order[i] as usize;
                self.scan_list(&ctx, q, l, po.qc[l], filter, |id, d| top.push(d, id));
            }
        }
        top.into_sorted()
    }

    fn query_ctx(&self, t: &Trained, q: &[f32]) -> QueryCtx {
        match &t.quant {
            Quant::Flat => QueryCtx::Flat,
            Quant::Pq(pq) => QueryCtx::Pq { lut: pq.dot_table(q) },
            Quant::Sq(sq) => match self.metric {
                Metric::L2 => QueryCtx::Sq(sq.l2_query(q)),
                _ => QueryCtx::Sq(sq.dot_query(q)),
            },
        }
    }

    /// Call `f(id, approximate distance)` for every accepted vector of list `l`.
    fn scan_list(
        &self,
        ctx: &QueryCtx,
        q: &[f32],
        l: usize,
        qc: f32,
        filter: Option<IdFilter<'_>>,
        mut f: impl FnMut(u64, f32),
    ) {
        let Some(t) = &self.trained else { return };
        let list = &self.lists[l];
        let qn = if self.metric == Metric::L2 { distance::dot(q, q) } else { 0.0 };
        let (dim, metric) = (self.dim, self.metric);
        // One specialised loop per codec and metric (the match is outside the hot loop).
        match (ctx, &t.quant) {
            (QueryCtx::Flat, _) => {
                scan(list, filter, &mut f, |i| dense_distance(metric, q, &list.extra[i * dim..(i + 1) * dim]))
            }
            (QueryCtx::Pq { lut }, Quant::Pq(pq)) => {
                let ip = |i: usize| qc + ProductQuantizer::adc(lut, &list.codes[i * pq.m..(i + 1) * pq.m]);
                match metric {
                    Metric::L2 => scan(list, filter, &mut f, |i| (qn - 2.0 * ip(i) + list.extra[i]).max(0.0).sqrt()),
                    Metric::Cosine => scan(list, filter, &mut f, |i| 1.0 - ip(i)),
                    _ => scan(list, filter, &mut f, |i| -ip(i)),
                }
            }
            (QueryCtx::Sq(sqq), Quant::Sq(sq)) => {
                let code = |i: usize| &list.codes[i * dim..(i + 1) * dim];
                match metric {
                    Metric::L2 => scan(list, filter, &mut f, |i| sq.l2_sq(sqq, code(i)).sqrt()),
                    Metric::Cosine => scan(list, filter, &mut f, |i| 1.0 - ScalarQuantizer::dot(sqq, code(i))),
                    _ => scan(list, filter, &mut f, |i| -ScalarQuantizer::dot(sqq, code(i))),
                }
            }
            _ => {}
        }
    }

    /// Read an index saved by [`VectorIndex::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let meta: Meta = read_meta(dir)?;
        let mut ix = IvfIndex::new(&meta.description, meta.dim, meta.metric, meta.nlist, meta.codec)?;
        ix.pending = DenseStore::load(dir, "pending", meta.dim)?;
        if !meta.trained {
            return Ok(ix);
        }
        let dim = meta.dim;
        let centroids: Vec<f32> = read_pod(&dir.join("centroids.f32"))?;
        if Some(centroids.len()) != meta.nlist.checked_mul(dim) {
            return Err(corrupt(&dir.join("centroids.f32"), "centroid count does not match nlist"));
        }
        let quant = match meta.codec {
            IvfCodec::Flat => Quant::Flat,
            IvfCodec::Sq8 => {
                let vmin: Vec<f32> = read_pod(&dir.join("sq_min.f32"))?;
                let scale: Vec<f32> = read_pod(&dir.join("sq_scale.f32"))?;
                if vmin.len() != dim || scale.len() != dim {
                    return Err(corrupt(&dir.join("sq_scale.f32"), "scalar quantizer size does not match dim"));
                }
                Quant::Sq(ScalarQuantizer { vmin, scale })
            }
            IvfCodec::Pq { m } => {
                let cb: Vec<f32> = read_pod(&dir.join("pq.f32"))?;
                let bad = || corrupt(&dir.join("pq.f32"), "bad PQ codebooks");
                Quant::Pq(ProductQuantizer::from_parts(dim, m, cb).ok_or_else(bad)?)
            }
        };
        let cnorm = centroids.chunks_exact(dim).map(|c| distance::dot(c, c)).collect();
        ix.trained = Some(Trained { centroids, cnorm, quant });
        let sizes: Vec<u64> = read_pod(&dir.join("sizes.u64"))?;
        let ids: Vec<u64> = read_pod(&dir.join("ids.u64"))?;
        let codes: Vec<u8> = read_pod(&dir.join("codes.u8"))?;
        let extra: Vec<f32> = read_pod(&dir.join("extra.f32"))?;
        let (cw, ew) = match meta.codec {
            IvfCodec::Flat => (0, dim),
            IvfCodec::Pq { m } => (m, 1),
            IvfCodec::Sq8 => (dim, 0),
        };
        // Checked: list sizes that wrap around to the number of ids would slice out of bounds.
        let total = sizes.iter().try_fold(0u64, |a, &s| a.checked_add(s));
        if sizes.len() != meta.nlist
            || total != Some(ids.len() as u64)
            || Some(codes.len()) != ids.len().checked_mul(cw)
            || Some(extra.len()) != ids.len().checked_mul(ew)
        {
            return Err(corrupt(&dir.join("sizes.u64"), "inverted list sizes do not match the stored ids and codes"));
        }
        let mut start = 0usize;
        for (l, &s) in sizes.iter().enumerate() {
            let s = s as usize;
            let list = &mut ix.lists[l];
            list.ids = ids[start..start + s].to_vec();
            list.codes = codes[start * cw..(start + s) * cw].to_vec();
            list.extra = extra[start * ew..(start + s) * ew].to_vec();
            for (p, &id) in list.ids.iter().enumerate() {
                ix.loc.insert(id, (l as u32, p as u32));
            }
            start += s;
        }
        Ok(ix)
    }
}

impl VectorIndex for IvfIndex {
    fn description(&self) -> String {
        self.description.clone()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn len(&self) -> usize {
        self.loc.len() + self.pending.live()
    }
    fn is_trained(&self) -> bool {
        self.trained.is_some()
    }
    fn train(&mut self, sample: VectorsRef<'_>) -> Result<()> {
        let sample = dense_sample(sample, self.dim)?;
        // Anything stored under an earlier training is decoded, then re-encoded (lossy for PQ/SQ8).
        let mut ids = Vec::with_capacity(self.loc.len());
        let mut data = Vec::with_capacity(self.loc.len() * self.dim);
        for &id in self.loc.keys() {
            if let Some(Vector::Dense(v)) = self.reconstruct(id) {
                ids.push(id);
                data.extend_from_slice(&v);
            }
        }
        self.fit(sample)?;
        for (id, v) in ids.iter().zip(data.chunks_exact(self.dim.max(1))) {
            self.pending.insert(*id, v);
        }
        self.loc.clear();
        self.lists = vec![InvList::default(); self.nlist];
        self.flush_pending();
        Ok(())
    }
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let data = dense_batch(ids, vectors, self.dim)?;
        for &id in ids {
            self.remove_one(id);
        }
        if self.trained.is_some() {
            // Later duplicates in one batch win, like repeated adds.
            let mut seen = HashMap::with_capacity(ids.len());
            for (i, &id) in ids.iter().enumerate() {
                seen.insert(id, i);
            }
            if seen.len() == ids.len() {
                self.insert_encoded(ids, data);
                if ids.len() >= SHRINK_AFTER_ROWS {
                    self.shrink_lists();
                }
            } else {
                let mut keep: Vec<usize> = seen.into_values().collect();
                keep.sort_unstable();
                let kid: Vec<u64> = keep.iter().map(|&i| ids[i]).collect();
                let kdata: Vec<f32> =
                    keep.iter().flat_map(|&i| data[i * self.dim..(i + 1) * self.dim].iter().copied()).collect();
                self.insert_encoded(&kid, &kdata);
            }
            return Ok(());
        }
        for (i, &id) in ids.iter().enumerate() {
            self.pending.insert(id, &data[i * self.dim..(i + 1) * self.dim]);
        }
        if self.pending.live() >= self.min_train_points() {
            self.pending.compact();
            let sample = self.pending.data().to_vec();
            self.fit(&sample)?;
            self.flush_pending();
        }
        Ok(())
    }
    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        Ok(ids.iter().filter(|&&id| self.remove_one(id)).count())
    }
    fn contains(&self, id: u64) -> bool {
        self.loc.contains_key(&id) || self.pending.contains(id)
    }
    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.dim)?;
        let qc = self.trained.as_ref().map(|t| Self::centroid_products(t, q));
        Ok(self.search_with(q, qc, k, params, filter))
    }
    fn search_batch(
        &self,
        queries: VectorsRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Vec<Neighbor>>> {
        let dim = self.dim;
        let q = dense_queries(queries, dim)?;
        let nq = q.len() / dim;
        let Some(t) = self.trained.as_ref().filter(|_| nq >= BATCH_MIN_QUERIES) else {
            return search_each(self, queries, k, params, filter);
        };
        let nlist = self.nlist;
        Ok(with_threads(params.threads, || {
            q.par_chunks(BATCH_BLOCK * dim)
                .flat_map_iter(|qb| {
                    let m = qb.len() / dim;
                    let mut ip = vec![0f32; m * nlist];
                    row_products(qb, &t.centroids, dim, &mut ip);
                    (0..m)
                        .map(|i| {
                            let qc = ip[i * nlist..(i + 1) * nlist].to_vec();
                            self.search_with(&qb[i * dim..(i + 1) * dim], Some(qc), k, params, filter)
                        })
                        .collect::<Vec<_>>()
                })
                .collect()
        }))
    }
    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.dim)?;
        let mut out = Vec::new();
        self.pending.range_into(self.metric, q, radius, filter, 0, &mut out);
        if let Some(t) = &self.trained {
            let nprobe = params.nprobe.unwrap_or(DEFAULT_NPROBE).clamp(1, self.nlist);
            let po = self.probe_order(t, q, nprobe);
            let ctx = self.query_ctx(t, q);
            for &l in &po.order[..nprobe] {
                self.scan_list(&ctx, q, l as usize, po.qc[l as usize], filter, |id, d| {
                    if d <= radius {
                        out.push(Neighbor { id, distance: d })
                    }
                });
            }
        }
        sort_neighbors(&mut out);
        Ok(out)
    }
    fn reconstruct(&self, id: u64) -> Option<Vector> {
        if let Some(v) = self.pending.get(id) {
            return Some(Vector::Dense(v.to_vec()));
        }
        let &(l, p) = self.loc.get(&id)?;
        let t = self.trained.as_ref()?;
        let (l, p, dim) = (l as usize, p as usize, self.dim);
        let list = &self.lists[l];
        let mut out = vec![0f32; dim];
        match &t.quant {
            Quant::Flat => out.copy_from_slice(&list.extra[p * dim..(p + 1) * dim]),
            Quant::Sq(sq) => sq.decode(&list.codes[p * dim..(p + 1) * dim], &mut out),
            Quant::Pq(pq) => {
                pq.decode(&list.codes[p * pq.m..(p + 1) * pq.m], &mut out);
                out.iter_mut().zip(&t.centroids[l * dim..(l + 1) * dim]).for_each(|(a, c)| *a += c);
            }
        }
        Some(Vector::Dense(out))
    }
    fn memory_bytes(&self) -> usize {
        let lists: usize =
            self.lists.iter().map(|l| l.ids.capacity() * 8 + l.codes.capacity() + l.extra.capacity() * 4).sum();
        let trained = self.trained.as_ref().map_or(0, |t| {
            t.centroids.len() * 4
                + t.cnorm.len() * 4
                + match &t.quant {
                    Quant::Flat => 0,
                    Quant::Pq(pq) => pq.memory_bytes(),
                    Quant::Sq(sq) => sq.memory_bytes(),
                }
        });
        lists + trained + self.loc.capacity() * 16 + self.pending.memory_bytes()
    }
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(self.clone()))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        write_meta(
            dir,
            &Meta {
                kind: "ivf".into(),
                description: self.description.clone(),
                dim: self.dim,
                metric: self.metric,
                nlist: self.nlist,
                codec: self.codec,
                trained: self.trained.is_some(),
            },
        )?;
        self.pending.save(dir, "pending")?;
        let Some(t) = &self.trained else {
            return Ok(());
        };
        write_pod(&dir.join("centroids.f32"), &t.centroids)?;
        match &t.quant {
            Quant::Flat => {}
            Quant::Pq(pq) => write_pod(&dir.join("pq.f32"), &pq.codebooks)?,
            Quant::Sq(sq) => {
                write_pod(&dir.join("sq_min.f32"), &sq.vmin)?;
                write_pod(&dir.join("sq_scale.f32"), &sq.scale)?;
            }
        }
        let sizes: Vec<u64> = self.lists.iter().map(|l| l.ids.len() as u64).collect();
        let ids: Vec<u64> = self.lists.iter().flat_map(|l| l.ids.iter().copied()).collect();
        let codes: Vec<u8> = self.lists.iter().flat_map(|l| l.codes.iter().copied()).collect();
        let extra: Vec<f32> = self.lists.iter().flat_map(|l| l.extra.iter().copied()).collect();
        write_pod(&dir.join("sizes.u64"), &sizes)?;
        write_pod(&dir.join("ids.u64"), &ids)?;
        write_pod(&dir.join("codes.u8"), &codes)?;
        write_pod(&dir.join("extra.f32"), &extra)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing (index_snapshot): inverted list sizes whose sum wraps around to the number of
    /// stored ids passed the size check, then sliced out of bounds. Now corrupt.
    #[test]
    fn list_sizes_that_overflow_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let mut ix = IvfIndex::new("IVF2,Flat", 4, Metric::L2, 2, IvfCodec::Flat).unwrap();
        let data: Vec<f32> = (0..1200).map(|i| (i * 7 % 13) as f32).collect();
        let ids: Vec<u64> = (0..300).collect();
        ix.train(VectorsRef::Dense(&data)).unwrap();
        ix.add(&ids, VectorsRef::Dense(&data)).unwrap();
        ix.save(dir.path()).unwrap();
        assert_eq!(IvfIndex::load(dir.path()).unwrap().len(), 300);
        write_pod(&dir.path().join("sizes.u64"), &[u64::MAX, 301]).unwrap();
        assert!(matches!(IvfIndex::load(dir.path()), Err(Error::Corrupt { .. })));
    }
}
