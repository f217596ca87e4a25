//! # features
//!
//! Turns image files into vectors: decoding (with EXIF orientation and guards
//! against hostile files), preprocessing, and extractors behind one trait —
//! HSV color histogram, texture (LBP + Gabor), perceptual hashes, and an
//! EfficientNet-Lite CNN embedding run in pure Rust with candle.
//!
//! This crate knows nothing about storage.

#![warn(missing_docs)]

pub mod error;
pub mod extractor;

pub use error::{FeatureError, Result};
pub use extractor::{DistanceKind, Embedding, FeatureExtractor, Features, Tag};
pub mod cnn;
pub mod head;
