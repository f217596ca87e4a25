//! `…,Refine`: keeps the full vectors next to any inner index, asks the inner index for
//! `SearchParams.rerank` candidates and re-ranks them with exact distances
//! (FAISS's `IndexRefineFlat`).

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::index::common::{dense_batch, dense_queries, dense_query, require_dense, rerank, rerank_depth, DenseStore};
use crate::index::file::{read_meta, write_meta};
use crate::index::{load_index, IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// Exact re-ranking in front of an approximate index.
pub struct RefineIndex {
    dim: usize,
    metric: Metric,
    inner: Box<dyn VectorIndex>,
    store: DenseStore,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    dim: usize,
    metric: Metric,
}

impl RefineIndex {
    /// Wrap `inner` (which must be empty); vectors added from now on are kept in full too.
    pub fn new(inner: Box<dyn VectorIndex>) -> Result<Self> {
        let (dim, metric) = (inner.dim(), inner.metric());
        require_dense(&format!("{},Refine", inner.description()), metric)?;
        Ok(RefineIndex { dim, metric, inner, store: DenseStore::new(dim) })
    }
    /// Read an index saved by [`VectorIndex::save`] (the inner index lives in `dir/inner`).
    pub fn load(dir: &Path) -> Result<Self> {
        let meta: Meta = read_meta(dir)?;
        let inner = load_index(&dir.join("inner"))?;
        let store = DenseStore::load(dir, "vectors", meta.dim)?;
        Ok(RefineIndex { dim: meta.dim, metric: meta.metric, inner, store })
    }
}

impl VectorIndex for RefineIndex {
    fn description(&self) -> String {
        format!("{},Refine", self.inner.description())
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
        self.inner.is_trained()
    }
    fn train(&mut self, sample: VectorsRef<'_>) -> Result<()> {
        self.inner.train(sample)
    }
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let data = dense_batch(ids, vectors, self.dim)?;
        self.inner.add(ids, vectors)?;
        self.store.reserve(ids.len());
        for (i, &id) in ids.iter().enumerate() {
            self.store.insert(id, &data[i * self.dim..(i + 1) * self.dim]);
        }
        if self.store.dead() > self.store.live().max(1024) {
            self.store.compact();
        }
        Ok(())
    }
    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        self.inner.remove(ids)?;
        let n = ids.iter().filter(|&&id| self.store.remove(id)).count();
        if self.store.dead() > self.store.live().max(1024) {
            self.store.compact();
        }
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
        let r = rerank_depth(params, k);
        let cands: Vec<u64> = self.inner.search(query, r, params, filter)?.iter().map(|n| n.id).collect();
        Ok(rerank(&self.store, self.metric, q, &cands, k))
    }
    /// The inner index's batched search (e.g. IVF's matrix-product cell ranking) for the
    /// candidates, then the exact re-rank per query.
    fn search_batch(
        &self,
        queries: VectorsRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Vec<Neighbor>>> {
        let q = dense_queries(queries, self.dim)?;
        let r = rerank_depth(params, k);
        let found = self.inner.search_batch(queries, r, params, filter)?;
        let dim = self.dim;
        Ok(found
            .into_par_iter()
            .enumerate()
            .map(|(i, cands)| {
                let ids: Vec<u64> = cands.iter().map(|n| n.id).collect();
                rerank(&self.store, self.metric, &q[i * dim..(i + 1) * dim], &ids, k)
            })
            .collect())
    }
    /// Exact: a scan of the full vectors (approximate codes cannot bound a radius).
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
        self.inner.memory_bytes() + self.store.memory_bytes()
    }
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(RefineIndex {
            dim: self.dim,
            metric: self.metric,
            inner: self.inner.clone_index()?,
            store: self.store.clone(),
        }))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        write_meta(dir, &Meta { kind: "refine".into(), dim: self.dim, metric: self.metric })?;
        self.store.save(dir, "vectors")?;
        self.inner.save(&dir.join("inner"))
    }
}
