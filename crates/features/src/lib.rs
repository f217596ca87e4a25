//! # features
//!
//! Turns image files into vectors: decoding (with EXIF orientation and guards
//! against hostile files), preprocessing, and extractors behind one trait —
//! HSV color histogram, texture (LBP + Gabor), perceptual hashes, and an
//! EfficientNet-Lite CNN embedding run in pure Rust with candle.
//!
//! This crate knows nothing about storage.

#![warn(missing_docs)]

pub mod color;
pub mod decode;
pub mod error;
pub mod extractor;
pub mod metrics;
pub mod phash;
pub mod pipeline;
pub mod preprocess;
pub mod registry;
pub mod texture;

pub use decode::{decode_bytes, is_image_path, load_image, DecodeLimits, DecodedImage};
pub use error::{FeatureError, Result};
pub use extractor::{DistanceKind, Embedding, FeatureExtractor, Features, Tag};
pub use metrics::{leave_one_out, query_vs_gallery, RetrievalMetrics};
pub use pipeline::{
    extract_bytes, extract_image, extract_inputs, extract_many, extract_path, ImageInput, ImageRecord, Progress,
};
pub use registry::{build_extractor, build_extractors, ExtractorOptions, DEFAULT_FEATURES};
pub mod cnn;
pub mod head;
pub mod train;
