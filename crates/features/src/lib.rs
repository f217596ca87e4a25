//! # features
//!
//! Turns image files into vectors: decoding (with EXIF orientation and guards
//! against hostile files), preprocessing, and extractors behind one trait —
//! HSV color histogram, texture (LBP + Gabor), perceptual hashes, and an
//! EfficientNet-Lite CNN embedding run in pure Rust with candle.
//!
//! This crate knows nothing about storage.
//!
//! Cargo feature `cnn` (on by default) builds the CNN, the projection heads, their training and
//! the extractor registry (all on candle); without it the crate decodes images and runs the
//! classic extractors only (the fuzz targets in `fuzz/` build it so, off candle).

#![warn(missing_docs)]

pub mod augment;
pub mod color;
pub mod decode;
pub mod error;
pub mod extractor;
pub mod frames;
pub mod geometry;
pub mod keypoints;
pub mod metrics;
pub mod phash;
pub mod pipeline;
pub mod preprocess;
#[cfg(feature = "cnn")]
pub mod registry;
pub mod scaled_jpeg;
pub mod texture;
pub mod verification;

pub use decode::{
    decode_bytes, decode_bytes_sized, is_image_path, load_image, load_image_sized, DecodeLimits, DecodeSize,
    DecodedImage,
};
pub use error::{FeatureError, Result};
pub use extractor::{DistanceKind, Embedding, FeatureExtractor, Features, Tag};
pub use metrics::{leave_one_out, query_vs_gallery, RetrievalMetrics};
pub use pipeline::{
    decode_size, extract_bytes, extract_image, extract_inputs, extract_inputs_with, extract_many, extract_path,
    ImageInput, ImageRecord, Progress,
};
#[cfg(feature = "cnn")]
pub use registry::{build_extractor, build_extractors, ExtractorOptions, DEFAULT_FEATURES};
#[cfg(feature = "cnn")]
pub mod cnn;
#[cfg(feature = "cnn")]
pub mod head;
#[cfg(feature = "cnn")]
pub mod train;
