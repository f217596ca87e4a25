//! `LSH<b>`: sign-random-projection (SimHash) sketches of `b` bits, a Hamming scan
//! with popcount over all sketches, then exact re-ranking of the best
//! `SearchParams.rerank` candidates with the full vectors ("approximate candidates,
//! then exact").
//!
//! Bit `i` of a sketch is the sign of `wᵢ · (x − μ)` for a Gaussian random direction
//! `wᵢ`; two vectors at angle θ differ in each bit with probability θ/π. For `cosine`
//! and `dot`, μ = 0; for `l2` μ is the mean of the first 1,000 vectors (the index keeps
//! them in an exact buffer until then, or uses the sample given to `train`).

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::distance;
use crate::error::{Error, Result};
use crate::fsutil::corrupt;
use crate::index::common::{
    dense_batch, dense_distance, dense_queries, dense_query, dense_sample, require_dense, rerank_depth, row_products,
    DenseStore, Rng,
};
use crate::index::file::{read_meta, read_pod, write_meta, write_pod};
use crate::index::topk::TopK;
use crate::index::{IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// Vectors needed to estimate the centering mean for `l2`.
pub const LSH_MIN_TRAIN: usize = 1000;
const SEED: u64 = 0x5137_4a5b;
/// Rows per matrix product when sketching.
const SKETCH_BLOCK: usize = 64;
/// Sketches per block of the batched Hamming scan (128 KiB of 1,024-bit sketches: the block
/// stays in cache while every query of a group reads it).
const SCAN_BLOCK: usize = 1024;
/// Queries that share one pass over the sketches in a batched search.
const SCAN_GROUP: usize = 16;

/// The SimHash sketch index (see the module docs).
#[derive(Clone)]
pub struct LshIndex {
    dim: usize,
    bits: usize,
    metric: Metric,
    /// `bits × dim` Gaussian directions.
    planes: Vec<f32>,
    center: Option<Vec<f32>>,
    /// `words` u64 per store slot once trained (empty before).
    codes: Vec<u64>,
    store: DenseStore,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    dim: usize,
    bits: usize,
    metric: Metric,
    trained: bool,
}

/// One query's Hamming distances to the sketches: `ham[slot]` (`u16::MAX` for slots it may
/// not return) and a histogram of the distances it may return.
struct HammingScan {
    ham: Vec<u16>,
    hist: Vec<usize>,
}

impl HammingScan {
    fn new(bits: usize, slots: usize) -> Self {
        HammingScan { ham: vec![u16::MAX; slots], hist: vec![0; bits + 1] }
    }

    /// Record the distances `dist` of slots `first..` (those `accepted`).
    fn record(&mut self, first: usize, dist: &[f32], accepted: &[bool]) {
        let slots = first..first + dist.len();
        for ((h, &d), &ok) in self.ham[slots.clone()].iter_mut().zip(dist).zip(&accepted[slots]) {
            let d = d as u16;
            *h = if ok { d } else { u16::MAX };
            self.hist[d as usize] += ok as usize;
        }
    }
}

impl LshIndex {
    /// An index with `bits`-bit sketches (a multiple of 64, at most 4096).
    pub fn new(dim: usize, metric: Metric, bits: usize) -> Result<Self> {
        let spec = format!("LSH{bits}");
        require_dense(&spec, metric)?;
        if bits == 0 || !bits.is_multiple_of(64) || bits > 4096 {
            return Err(Error::InvalidIndexSpec {
                spec,
                reason: format!("sketch bits must be a positive multiple of 64 up to 4096, got {bits}"),
            });
        }
        if dim == 0 {
            return Err(Error::InvalidIndexSpec { spec, reason: "dimension must be at least 1".into() });
        }
        let mut rng = Rng::new(SEED ^ bits as u64);
        let planes = (0..bits * dim).map(|_| rng.gauss()).collect();
        let center = if metric == Metric::L2 { None } else { Some(vec![0.0; dim]) };
        Ok(LshIndex { dim, bits, metric, planes, center, codes: Vec::new(), store: DenseStore::new(dim) })
    }

    fn words(&self) -> usize {
        self.bits / 64
    }

    /// Sketches of `rows` (row-major, `dim` wide), `words()` u64 per row: one matrix product
    /// with the directions per block of [`SKETCH_BLOCK`] rows, blocks in parallel.
    ///
    /// The matrix product of a single row takes another code path (a different summation
    /// order), so a lone row is computed as a block of two: a query then gets the same bits
    /// alone as in a batch, and single and batched searches agree exactly.
    fn sketch_rows(&self, center: &[f32], rows: &[f32]) -> Vec<u64> {
        let (dim, bits, w) = (self.dim, self.bits, self.words());
        let n = rows.len() / dim;
        let mut out = vec![0u64; n * w];
        out.par_chunks_mut(SKETCH_BLOCK * w).enumerate().for_each(|(b, codes)| {
            let m = codes.len() / w;
            let first = b * SKETCH_BLOCK;
            let mut centered: Vec<f32> = rows[first * dim..(first + m) * dim]
                .chunks_exact(dim)
                .flat_map(|r| r.iter().zip(center).map(|(x, c)| x - c))
                .collect();
            if m == 1 {
                centered.extend_from_within(..dim);
            }
            let mut products = vec![0f32; centered.len() / dim * bits];
            row_products(&centered, &self.planes, dim, &mut products);
            for (code, p) in codes.chunks_exact_mut(w).zip(products.chunks_exact(bits)) {
                for (i, _) in p.iter().enumerate().filter(|(_, &x)| x > 0.0) {
                    code[i / 64] |= 1 << (i % 64);
                }
            }
        });
        out
    }

    /// Compute sketches for store slots `from..` (index trained).
    fn encode_from(&mut self, from: usize) {
        let Some(center) = self.center.as_deref() else {
            return;
        };
        let new = self.sketch_rows(center, &self.store.data()[from * self.dim..]);
        let w = self.words();
        self.codes.truncate(from * w);
        self.codes.extend_from_slice(&new);
    }

    fn set_center(&mut self, data: &[f32]) {
        let n = (data.len() / self.dim).max(1);
        let mut mean = vec![0f64; self.dim];
        for row in data.chunks_exact(self.dim) {
            mean.iter_mut().zip(row).for_each(|(m, x)| *m += *x as f64);
        }
        self.center = Some(mean.iter().map(|m| (m / n as f64) as f32).collect());
    }

    fn maybe_compact(&mut self) {
        if self.store.dead() > self.store.live().max(1024) {
            let w = self.words();
            let trained = self.codes.len() == self.store.slots() * w && self.center.is_some();
            let remap = self.store.compact();
            if trained {
                let mut codes = vec![0u64; self.store.slots() * w];
                for (old, &new) in remap.iter().enumerate() {
                    if new != u32::MAX {
                        codes[new as usize * w..(new as usize + 1) * w]
                            .copy_from_slice(&self.codes[old * w..(old + 1) * w]);
                    }
                }
                self.codes = codes;
            } else {
                self.codes.clear();
            }
        }
    }

    /// Read an index saved by [`VectorIndex::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        let meta: Meta = read_meta(dir)?;
        let mut ix = LshIndex::new(meta.dim, meta.metric, meta.bits)?;
        ix.store = DenseStore::load_slots(dir, "vectors", meta.dim)?;
        // The directions are saved too, so sketches never depend on this platform's libm.
        let planes: Vec<f32> = read_pod(&dir.join("planes.f32"))?;
        if planes.len() != meta.bits * meta.dim {
            return Err(corrupt(&dir.join("planes.f32"), "projection size does not match"));
        }
        ix.planes = planes;
        if meta.trained {
            let center: Vec<f32> = read_pod(&dir.join("center.f32"))?;
            let codes: Vec<u64> = read_pod(&dir.join("codes.u64"))?;
            if center.len() != meta.dim || codes.len() != ix.store.slots() * ix.words() {
                return Err(corrupt(&dir.join("codes.u64"), "sketch sizes do not match"));
            }
            ix.center = Some(center);
            ix.codes = codes;
        }
        Ok(ix)
    }

    /// Which store slots a search may return: alive and accepted by `filter`.
    fn accepted(&self, filter: Option<IdFilter<'_>>) -> Vec<bool> {
        (0..self.store.slots() as u32)
            .map(|s| self.store.is_alive(s) && filter.is_none_or(|f| f(self.store.id(s))))
            .collect()
    }

    /// The Hamming scans of the query sketches `qcodes` (`words()` u64 each) over every stored
    /// sketch, block by block ([`SCAN_BLOCK`] sketches), so that each block is read from memory
    /// once for all the queries; slots not `accepted` are left out.
    fn scan_group(&self, qcodes: &[u64], accepted: &[bool]) -> Vec<HammingScan> {
        let (w, slots) = (self.words(), self.store.slots());
        let codes: &[u8] = bytemuck::cast_slice(&self.codes);
        let mut scans: Vec<HammingScan> = (0..qcodes.len() / w).map(|_| HammingScan::new(self.bits, slots)).collect();
        let mut dist = vec![0f32; SCAN_BLOCK];
        for first in (0..slots).step_by(SCAN_BLOCK) {
            let m = SCAN_BLOCK.min(slots - first);
            let block = &codes[first * w * 8..(first + m) * w * 8];
            for (scan, qcode) in scans.iter_mut().zip(qcodes.chunks_exact(w)) {
                distance::hamming_many(bytemuck::cast_slice(qcode), block, &mut dist[..m]);
                scan.record(first, &dist[..m], accepted);
            }
        }
        scans
    }

    /// Exact distances for the `rerank` sketches nearest in Hamming distance (ties at the
    /// cutoff in slot order), best `k` returned.
    fn rerank_scan(&self, scan: &HammingScan, q: &[f32], k: usize, rerank: usize) -> Vec<Neighbor> {
        // Smallest cutoff whose cumulative count reaches `rerank`.
        let mut cum = 0;
        let mut cutoff = self.bits;
        for (h, &c) in scan.hist.iter().enumerate() {
            cum += c;
            if cum >= rerank {
                cutoff = h;
                break;
            }
        }
        let below: usize = scan.hist[..cutoff].iter().sum();
        let mut at_cutoff = rerank.saturating_sub(below);
        let mut top = TopK::new(k);
        for (s, &h) in scan.ham.iter().enumerate() {
            let h = h as usize;
            if h > cutoff {
                continue;
            }
            if h == cutoff {
                if at_cutoff == 0 {
                    continue;
                }
                at_cutoff -= 1;
            }
            top.push(dense_distance(self.metric, q, self.store.vector(s as u32)), self.store.id(s as u32));
        }
        top.into_sorted()
    }

    fn is_encoded(&self) -> bool {
        self.center.is_some() && self.codes.len() == self.store.slots() * self.words()
    }
}

impl VectorIndex for LshIndex {
    fn description(&self) -> String {
        format!("LSH{}", self.bits)
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn len(&self) -> usize {
        self.store.live()
    }
    fn is_trained(&self) -> bool {
        self.center.is_some()
    }
    fn train(&mut self, sample: VectorsRef<'_>) -> Result<()> {
        let data = dense_sample(sample, self.dim)?;
        if self.metric == Metric::L2 {
            if data.is_empty() {
                return Err(Error::InvalidArgument("LSH training needs at least one vector".into()));
            }
            self.set_center(data);
            self.encode_from(0);
        }
        Ok(())
    }
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let data = dense_batch(ids, vectors, self.dim)?;
        let from = self.store.slots();
        for (i, &id) in ids.iter().enumerate() {
            self.store.insert(id, &data[i * self.dim..(i + 1) * self.dim]);
        }
        if self.center.is_none() && self.store.live() >= LSH_MIN_TRAIN {
            self.store.compact();
            let sample = self.store.data().to_vec();
            self.set_center(&sample);
            self.encode_from(0);
        } else if self.center.is_some() {
            self.encode_from(from);
        }
        self.maybe_compact();
        Ok(())
    }
    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let n = ids.iter().filter(|&&id| self.store.remove(id)).count();
        self.maybe_compact();
        Ok(n)
    }
    fn contains(&self, id: u64) -> bool {
        self.store.contains(id)
    }
    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.dim)?;
        let (true, Some(center)) = (self.is_encoded(), &self.center) else {
            return Ok(self.store.search(self.metric, q, k, filter));
        };
        let scans = self.scan_group(&self.sketch_rows(center, q), &self.accepted(filter));
        Ok(self.rerank_scan(&scans[0], q, k, rerank_depth(params, k)))
    }
    /// Queries are sketched with matrix products, then groups of [`SCAN_GROUP`] queries scan
    /// the sketches together, block by block, so each block is read from memory once per
    /// group instead of once per query. Same results as [`VectorIndex::search`] per query.
    fn search_batch(
        &self,
        queries: VectorsRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Vec<Neighbor>>> {
        let (dim, w) = (self.dim, self.words());
        let qs = dense_queries(queries, dim)?;
        let (true, Some(center)) = (self.is_encoded(), &self.center) else {
            return crate::index::search_each(self, queries, k, params, filter);
        };
        let qcodes = self.sketch_rows(center, qs);
        let accepted = self.accepted(filter);
        let rerank = rerank_depth(params, k);
        let results: Vec<Vec<Vec<Neighbor>>> = qcodes
            .par_chunks(SCAN_GROUP * w)
            .zip(qs.par_chunks(SCAN_GROUP * dim))
            .map(|(group, group_q)| {
                let scans = self.scan_group(group, &accepted);
                scans
                    .iter()
                    .zip(group_q.chunks_exact(dim))
                    .map(|(scan, q)| self.rerank_scan(scan, q, k, rerank))
                    .collect()
            })
            .collect();
        Ok(results.into_iter().flatten().collect())
    }
    /// Exact: a scan of the full vectors (sketches cannot bound a radius).
    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        _params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.dim)?;
        Ok(self.store.range_search(self.metric, q, radius, filter))
    }
    fn reconstruct(&self, id: u64) -> Option<Vector> {
        self.store.get(id).map(|v| Vector::Dense(v.to_vec()))
    }
    fn memory_bytes(&self) -> usize {
        self.store.memory_bytes() + self.codes.capacity() * 8 + self.planes.len() * 4
    }
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(self.clone()))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        let trained = self.is_encoded();
        write_meta(dir, &Meta { kind: "lsh".into(), dim: self.dim, bits: self.bits, metric: self.metric, trained })?;
        self.store.save_slots(dir, "vectors")?;
        write_pod(&dir.join("planes.f32"), &self.planes)?;
        if let (true, Some(c)) = (trained, &self.center) {
            write_pod(&dir.join("center.f32"), c)?;
            write_pod(&dir.join("codes.u64"), &self.codes)?;
        }
        Ok(())
    }
}
