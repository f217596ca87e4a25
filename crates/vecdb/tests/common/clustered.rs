//! Clustered test data for the approximate indexes: points around Gaussian centres in a
//! low-dimensional subspace, exact ground truth by brute force, and recall@k of an index
//! against it. Used by `tests/ann_indexes.rs` and the `index_sweep` bench.

use std::collections::HashSet;

use vecdb::index::build_index;
use vecdb::{Metric, Neighbor, SearchParams, VectorIndex, VectorRef, VectorsRef};

use super::rng::SplitMix64;

pub struct Data {
    pub dim: usize,
    pub base: Vec<f32>,
    pub queries: Vec<f32>,
}

impl Data {
    pub fn n(&self) -> usize {
        self.base.len() / self.dim
    }
    pub fn nq(&self) -> usize {
        self.queries.len() / self.dim
    }
    pub fn q(&self, i: usize) -> &[f32] {
        &self.queries[i * self.dim..(i + 1) * self.dim]
    }
    pub fn v(&self, i: usize) -> &[f32] {
        &self.base[i * self.dim..(i + 1) * self.dim]
    }
}

/// `n` base + `nq` query points around `clusters` Gaussian centers in a `latent`-dimensional
/// subspace mapped linearly into `dim` dimensions (plus a little isotropic noise).
pub fn clustered(n: usize, nq: usize, dim: usize, latent: usize, clusters: usize, seed: u64, unit: bool) -> Data {
    let mut g = SplitMix64(seed);
    let map: Vec<f32> = (0..latent * dim).map(|_| g.gauss() / (latent as f32).sqrt()).collect();
    let spread: f32 = std::env::var("ANN_SPREAD").ok().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let centers: Vec<f32> = (0..clusters * latent).map(|_| g.gauss()).collect();
    let point = |g: &mut SplitMix64| {
        let c = (g.next_u64() % clusters as u64) as usize;
        let z: Vec<f32> = (0..latent).map(|j| centers[c * latent + j] + g.gauss() * spread).collect();
        let mut x: Vec<f32> =
            (0..dim).map(|i| (0..latent).map(|j| z[j] * map[j * dim + i]).sum::<f32>() + g.gauss() * 0.01).collect();
        if unit {
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            x.iter_mut().for_each(|v| *v /= norm);
        }
        x
    };
    let base = (0..n).flat_map(|_| point(&mut g)).collect();
    let queries = (0..nq).flat_map(|_| point(&mut g)).collect();
    Data { dim, base, queries }
}

pub fn dist(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    metric.distance(VectorRef::Dense(a), VectorRef::Dense(b)).unwrap()
}

/// Exact top-k ids among `ids` (index = position in base) passing `keep`.
pub fn brute(d: &Data, metric: Metric, q: &[f32], k: usize, keep: &dyn Fn(u64) -> bool) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = (0..d.n())
        .filter(|&i| keep(i as u64))
        .map(|i| Neighbor { id: i as u64, distance: dist(metric, q, d.v(i)) })
        .collect();
    all.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    all.truncate(k);
    all
}

/// Build and fill an index; quantizers train themselves on the first batch when it is big enough.
pub fn build(spec: &str, d: &Data, metric: Metric) -> Box<dyn VectorIndex> {
    build_with(spec, d, metric, false)
}

/// Like [`build`], but train explicitly on the base set first (for sets smaller than the auto-train size).
pub fn build_trained(spec: &str, d: &Data, metric: Metric) -> Box<dyn VectorIndex> {
    build_with(spec, d, metric, true)
}

pub fn build_with(spec: &str, d: &Data, metric: Metric, train: bool) -> Box<dyn VectorIndex> {
    let mut ix = build_index(spec, d.dim, metric).unwrap_or_else(|e| panic!("{spec}: {e}"));
    if train {
        ix.train(VectorsRef::Dense(&d.base)).unwrap_or_else(|e| panic!("{spec}: train: {e}"));
        assert!(ix.is_trained(), "{spec}");
    }
    let ids: Vec<u64> = (0..d.n() as u64).collect();
    ix.add(&ids, VectorsRef::Dense(&d.base)).unwrap();
    assert_eq!(ix.len(), d.n(), "{spec}");
    ix
}

pub fn recall(ix: &dyn VectorIndex, d: &Data, metric: Metric, params: &SearchParams) -> f64 {
    let k = 10;
    let res = ix.search_batch(VectorsRef::Dense(&d.queries), k, params, None).unwrap();
    let mut hit = 0;
    for (i, r) in res.iter().enumerate() {
        assert_eq!(r.len(), k);
        let truth: HashSet<u64> = brute(d, metric, d.q(i), k, &|_| true).iter().map(|n| n.id).collect();
        hit += r.iter().filter(|n| truth.contains(&n.id)).count();
    }
    hit as f64 / (k * d.nq()) as f64
}

pub fn params(nprobe: Option<usize>, checks: Option<usize>, rerank: Option<usize>) -> SearchParams {
    SearchParams { nprobe, checks, rerank, ..Default::default() }
}
