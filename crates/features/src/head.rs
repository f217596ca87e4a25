//! Learned projection heads on top of the CNN embedding (stub: replaced by the real implementation).

use std::path::Path;

use crate::error::{FeatureError, Result};

/// A trained projection head (linear or 2-layer MLP) mapping CNN embeddings to a smaller metric space.
pub struct ProjectionHead {
    /// Output dimension.
    pub out_dim: usize,
}

impl ProjectionHead {
    /// Load a head saved by training (`.safetensors` + `.json` beside it).
    pub fn load(path: &Path) -> Result<Self> {
        Err(FeatureError::InvalidArgument(format!("cannot load head {}: not implemented yet", path.display())))
    }
    /// Project one embedding; output is L2-normalized.
    pub fn apply(&self, _embedding: &[f32]) -> Result<Vec<f32>> {
        Err(FeatureError::InvalidArgument("not implemented yet".into()))
    }
}

/// A feature extractor that runs a base extractor (the CNN) and then a projection head.
pub struct HeadExtractor {
    base: Box<dyn crate::extractor::FeatureExtractor>,
    head: ProjectionHead,
}

impl HeadExtractor {
    /// Wrap `base` (whose vectors must match the head's input dimension) with `head`.
    pub fn new(base: Box<dyn crate::extractor::FeatureExtractor>, head: ProjectionHead) -> Self {
        HeadExtractor { base, head }
    }
}

impl crate::extractor::FeatureExtractor for HeadExtractor {
    fn name(&self) -> &str {
        "cnn+head"
    }
    fn dim(&self) -> usize {
        self.head.out_dim
    }
    fn distance(&self) -> crate::extractor::DistanceKind {
        crate::extractor::DistanceKind::Cosine
    }
    fn extract(&self, image: &image::RgbImage) -> Result<crate::extractor::Features> {
        let mut f = self.base.extract(image)?;
        if let crate::extractor::Embedding::Dense(v) = &f.vector {
            f.vector = crate::extractor::Embedding::Dense(self.head.apply(v)?);
        }
        Ok(f)
    }
}
