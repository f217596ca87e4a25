//! Building an index from a factory string and loading a saved one.
//!
//! Factory strings follow FAISS's index factory: comma-separated stages, e.g.
//! `Flat`, `HNSW32`, `PCA128,HNSW32`, `IVF1024,PQ32,Refine`.

use std::path::Path;

use crate::error::{Error, Result};
use crate::index::flat::FlatIndex;
use crate::index::VectorIndex;
use crate::metric::Metric;

/// Build an empty index from a factory string.
pub fn build_index(spec: &str, dim: usize, metric: Metric) -> Result<Box<dyn VectorIndex>> {
    match spec.trim() {
        "Flat" | "flat" => Ok(Box::new(FlatIndex::new(dim, metric))),
        other => Err(Error::InvalidIndexSpec { spec: other.to_string(), reason: "unknown index kind".into() }),
    }
}

/// Load an index previously written by [`VectorIndex::save`] into `dir`.
pub fn load_index(dir: &Path) -> Result<Box<dyn VectorIndex>> {
    Ok(Box::new(FlatIndex::load(dir)?))
}
