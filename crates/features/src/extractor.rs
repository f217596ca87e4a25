//! The one interface every feature extractor implements.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A feature vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Embedding {
    /// Dense floats.
    Dense(Vec<f32>),
    /// Packed bits, 8 per byte, least significant bit first (for Hamming distance).
    Binary(Vec<u8>),
}

/// How an extractor's vectors are meant to be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DistanceKind {
    /// Euclidean.
    L2,
    /// Cosine (vectors are L2-normalized by the extractor).
    Cosine,
    /// Hamming on bit vectors.
    Hamming,
}

/// A predicted class label with its probability (e.g. ImageNet top-5 from the CNN).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    /// Class index.
    pub class: usize,
    /// Human-readable label.
    pub label: String,
    /// Probability in `[0, 1]`.
    pub prob: f32,
}

/// What an extractor produces for one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Features {
    /// The vector.
    pub vector: Embedding,
    /// Class predictions, empty for extractors that do not classify.
    pub tags: Vec<Tag>,
}

/// Turns a decoded, oriented RGB image into a vector. Each extractor does its own
/// resizing/cropping from the full-size image it is given.
pub trait FeatureExtractor: Send + Sync {
    /// Short name used in collections and the CLI: `cnn`, `color`, `texture`, `phash`, `dhash`.
    fn name(&self) -> &str;
    /// Vector length (floats, or bits for binary vectors); for an extractor of several vectors
    /// per image ([`FeatureExtractor::vectors_per_image`]), the length of each.
    fn dim(&self) -> usize;
    /// Vectors per image: 1, or more for regional descriptors, whose [`Features::vector`] holds
    /// them side by side (`vectors_per_image × dim` floats).
    fn vectors_per_image(&self) -> usize {
        1
    }
    /// How vectors should be compared.
    fn distance(&self) -> DistanceKind;
    /// Extract features of one image.
    fn extract(&self, image: &RgbImage) -> Result<Features>;
    /// Extract features of several images; extractors that batch (the CNN) override this.
    fn extract_batch(&self, images: &[RgbImage]) -> Result<Vec<Features>> {
        images.iter().map(|im| self.extract(im)).collect()
    }
    /// Preferred batch size for [`FeatureExtractor::extract_batch`].
    fn batch_size(&self) -> usize {
        1
    }

    /// The shorter side, in pixels, below which an input would change this extractor's output:
    /// the size it reduces every image to first. The pipeline decodes JPEGs at a reduced size
    /// as long as both sides stay at least twice the largest of its extractors' values. The default,
    /// `u32::MAX`, asks for all the pipeline keeps: its working image
    /// ([`crate::pipeline::WORKING_MAX_SHORTER_SIDE`]).
    fn min_input_side(&self) -> u32 {
        u32::MAX
    }
}
