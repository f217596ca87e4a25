//! The index interface every search structure implements, after FAISS's:
//! add, remove, search, range_search, reconstruct, save/load.
//!
//! Indexes hold their own copy of the vectors they need and key them by the
//! caller's `u64` ids — except a float HNSW graph a storage engine asks to read its
//! rows in place ([`hnsw::HnswIndex::read_rows_in_place`]; vecdb's collections do). Distances follow [`crate::metric`]: smaller is closer,
//! in user-facing units (Euclidean, not squared, for `l2`). For `cosine`, callers
//! pass unit-normalized vectors.

use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

pub mod flat;
pub mod hnsw;
pub mod registry;

mod common;
pub mod file;
pub mod ivf;
pub mod kdforest;
mod kmeans;
pub mod lsh;
pub mod multi;
pub mod pca;
mod pq;
pub mod refine;
mod sq;
pub(crate) mod topk;

pub use hnsw::Verify;
pub use registry::{build_field_index, build_index, load_index, open_index};

/// One search result.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbor {
    /// The record id.
    pub id: u64,
    /// Distance to the query (smaller is closer).
    pub distance: f32,
}

/// Per-query knobs; each index reads the ones it understands and ignores the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchParams {
    /// HNSW: size of the dynamic candidate list (default: index setting).
    pub ef: Option<usize>,
    /// IVF: number of inverted lists probed.
    pub nprobe: Option<usize>,
    /// k-d forest: maximum leaf points checked.
    pub checks: Option<usize>,
    /// Sketch/IVF-PQ: number of candidates re-ranked with full vectors.
    pub rerank: Option<usize>,
    /// Run-time thread hint for batch search (None = all cores).
    pub threads: Option<usize>,
}

/// A predicate on record ids, applied *during* the search: an index only returns ids it accepts.
pub type IdFilter<'a> = &'a (dyn Fn(u64) -> bool + Sync);

/// [`VectorIndex::search`] for every row of `queries`, in parallel: the batch search of indexes
/// that have no faster one (and the fallback of those that do).
pub(crate) fn search_each<I: VectorIndex + ?Sized>(
    index: &I,
    queries: VectorsRef<'_>,
    k: usize,
    params: &SearchParams,
    filter: Option<IdFilter<'_>>,
) -> Result<Vec<Vec<Neighbor>>> {
    let dim = index.dim();
    let n = queries.whole_rows(dim)?;
    (0..n).into_par_iter().map(|i| index.search(queries.row(dim, i), k, params, filter)).collect()
}

/// A vector index: the one interface exact and approximate indexes share.
pub trait VectorIndex: Send + Sync {
    /// Factory description of this index, e.g. `"Flat"` or `"PCA128,HNSW32"`.
    fn description(&self) -> String;
    /// Number of components (floats, or bits for binary vectors).
    fn dim(&self) -> usize;
    /// The metric results are ranked by.
    fn metric(&self) -> Metric;
    /// Number of live (not removed) vectors.
    fn len(&self) -> usize;
    /// True when no live vectors are stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// True when the index can accept vectors (quantizers and PCA need [`VectorIndex::train`] first).
    fn is_trained(&self) -> bool {
        true
    }
    /// Fit the index's learned parts (k-means, codebooks, PCA) on a sample. A no-op for most indexes.
    fn train(&mut self, _sample: VectorsRef<'_>) -> Result<()> {
        Ok(())
    }
    /// Add vectors with their ids; `vectors` holds `ids.len()` rows. An id already present is replaced.
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()>;
    /// Remove ids; returns how many were present. Removed ids are never returned by a search.
    fn remove(&mut self, ids: &[u64]) -> Result<usize>;
    /// True when `id` is stored and live.
    fn contains(&self, id: u64) -> bool;
    /// The `k` nearest accepted vectors, closest first.
    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>>;
    /// Every accepted vector within `radius` (inclusive), closest first.
    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>>;
    /// Many queries at once (`queries` holds rows of [`VectorIndex::dim`]); runs in parallel.
    fn search_batch(
        &self,
        queries: VectorsRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Vec<Neighbor>>> {
        search_each(self, queries, k, params, filter)
    }
    /// The stored vector for `id` (approximate for lossy indexes), or `None`.
    fn reconstruct(&self, id: u64) -> Option<Vector>;
    /// Bytes of memory held, for reports (vectors, graph, codes).
    fn memory_bytes(&self) -> usize;
    /// Write the index into directory `dir` (created if missing); [`load_index`] reads it back.
    fn save(&self, dir: &Path) -> Result<()>;
    /// The HNSW graph this index is, for a storage engine that lets it read rows in place
    /// ([`hnsw::HnswIndex::read_rows_in_place`]); `None` for every other index.
    fn as_hnsw_mut(&mut self) -> Option<&mut hnsw::HnswIndex> {
        None
    }
    /// [`VectorIndex::as_hnsw_mut`], to read.
    fn as_hnsw(&self) -> Option<&hnsw::HnswIndex> {
        None
    }
    /// A deep copy (FAISS's `clone_index`), or `None` when the index cannot make one. Every
    /// built-in index can; a collection saves such copies of its indexes so that writers wait
    /// for the copy, not for the disk.
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        None
    }
}
