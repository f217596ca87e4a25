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
use crate::index::common::{
    dense_batch, dense_distance, dense_query, dense_sample, read_meta, read_pod, require_dense, rerank_depth,
    sort_neighbors, write_meta, write_pod, DenseStore, Rng, TopK,
};
use crate::index::{IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// Vectors needed to estimate the centering mean for `l2`.
pub const LSH_MIN_TRAIN: usize = 1000;
const SEED: u64 = 0x5137_4a5b;

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

    fn encode(&self, center: &[f32], x: &[f32], out: &mut [u64]) {
        let c: Vec<f32> = x.iter().zip(center).map(|(a, m)| a - m).collect();
        out.iter_mut().for_each(|w| *w = 0);
        for (b, plane) in self.planes.chunks_exact(self.dim).enumerate() {
            if distance::dot(plane, &c) > 0.0 {
                out[b / 64] |= 1 << (b % 64);
            }
        }
    }

    /// Compute sketches for store slots `from..` (index trained).
    fn encode_from(&mut self, from: usize) {
        let Some(center) = self.center.clone() else {
            return;
        };
        let w = self.words();
        let new: Vec<u64> = (from..self.store.slots())
            .into_par_iter()
            .flat_map_iter(|s| {
                let mut code = vec![0u64; w];
                self.encode(&center, self.store.vector(s as u32), &mut code);
                code
            })
            .collect();
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
            return Err(Error::Corrupt {
                path: dir.join("planes.f32"),
                reason: "projection size does not match".into(),
            });
        }
        ix.planes = planes;
        if meta.trained {
            let center: Vec<f32> = read_pod(&dir.join("center.f32"))?;
            let codes: Vec<u64> = read_pod(&dir.join("codes.u64"))?;
            if center.len() != meta.dim || codes.len() != ix.store.slots() * ix.words() {
                return Err(Error::Corrupt { path: dir.to_path_buf(), reason: "sketch sizes do not match".into() });
            }
            ix.center = Some(center);
            ix.codes = codes;
        }
        Ok(ix)
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
            let mut top = TopK::new(k);
            self.store.scan_into(self.metric, q, filter, &mut top);
            return Ok(top.into_sorted());
        };
        let rerank = rerank_depth(params, k);
        let w = self.words();
        let mut qcode = vec![0u64; w];
        self.encode(center, q, &mut qcode);
        // Hamming distance of every live, accepted sketch; u16::MAX marks skipped slots.
        let n = self.store.slots();
        let mut ham = vec![u16::MAX; n];
        let mut hist = vec![0usize; self.bits + 1];
        for (s, code) in self.codes.chunks_exact(w).enumerate() {
            if !self.store.is_alive(s as u32) || filter.is_some_and(|f| !f(self.store.id(s as u32))) {
                continue;
            }
            let h: u32 = code.iter().zip(&qcode).map(|(a, b)| (a ^ b).count_ones()).sum();
            ham[s] = h as u16;
            hist[h as usize] += 1;
        }
        // Smallest cutoff whose cumulative count reaches `rerank`.
        let mut cum = 0;
        let mut cutoff = self.bits;
        for (h, &c) in hist.iter().enumerate() {
            cum += c;
            if cum >= rerank {
                cutoff = h;
                break;
            }
        }
        let below: usize = hist[..cutoff].iter().sum();
        let mut at_cutoff = rerank.saturating_sub(below);
        let mut top = TopK::new(k);
        for (s, &h) in ham.iter().enumerate() {
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
        Ok(top.into_sorted())
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
        let mut out = Vec::new();
        self.store.range_into(self.metric, q, radius, filter, &mut out);
        sort_neighbors(&mut out);
        Ok(out)
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
