//! Exact (brute-force) search.

use std::path::Path;

use crate::error::{Error, Result};
use crate::index::{IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// Exact index: scans every vector.
pub struct FlatIndex {
    dim: usize,
    metric: Metric,
}

impl FlatIndex {
    /// An empty index.
    pub fn new(dim: usize, metric: Metric) -> Self {
        FlatIndex { dim, metric }
    }
    /// Read an index saved in `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        Err(Error::InvalidArgument(format!("not implemented yet: {}", dir.display())))
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
        0
    }
    fn add(&mut self, _ids: &[u64], _vectors: VectorsRef<'_>) -> Result<()> {
        todo!()
    }
    fn remove(&mut self, _ids: &[u64]) -> Result<usize> {
        todo!()
    }
    fn contains(&self, _id: u64) -> bool {
        todo!()
    }
    fn search(&self, _q: VectorRef<'_>, _k: usize, _p: &SearchParams, _f: Option<IdFilter<'_>>) -> Result<Vec<Neighbor>> {
        todo!()
    }
    fn range_search(&self, _q: VectorRef<'_>, _r: f32, _p: &SearchParams, _f: Option<IdFilter<'_>>) -> Result<Vec<Neighbor>> {
        todo!()
    }
    fn reconstruct(&self, _id: u64) -> Option<Vector> {
        todo!()
    }
    fn memory_bytes(&self) -> usize {
        0
    }
    fn save(&self, _dir: &Path) -> Result<()> {
        todo!()
    }
}
