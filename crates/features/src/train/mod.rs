//! Training a [`ProjectionHead`](crate::head::ProjectionHead) with a metric-learning loss on cached embeddings.
//!
//! The data are embeddings of a frozen base extractor (the CNN) with one label per vector. Each epoch
//! visits every training vector once in class-balanced batches (groups of `per_class` vectors of one
//! label, so every batch has positives), minimises either the multi-similarity loss (with its pair miner)
//! or the batch triplet loss with semi-hard negative mining, using AdamW through candle's autograd on the
//! CPU, then measures leave-one-out retrieval on the validation set with the same code as `likeness eval`
//! ([`crate::metrics::leave_one_out`]). Training stops early when validation mAP has not improved for
//! `patience` epochs; the head of the best epoch is returned. Everything is deterministic for a seed.
//!
//! One job per module: `data` (the labelled sets, their hash and the per-label split), `config` (the
//! settings), `sampling` (class-balanced batches), `loss` (multi-similarity and triplet losses), `fit`
//! (the loop and its leave-one-out evaluation), `outcome` (what a run returns and saves) and `cache`
//! (backbone embeddings kept on disk between runs).

mod cache;
mod config;
mod data;
mod fit;
mod loss;
mod outcome;
mod sampling;

pub use cache::EmbeddingCache;
pub use config::{LossKind, TrainConfig};
pub use data::{data_hash, stratified_split, LabelledSet};
pub use fit::{evaluate, train};
pub use outcome::{EpochReport, TrainOutcome};

use crate::error::FeatureError;

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A set has no vectors.
    #[error("the {set} set is empty")]
    Empty {
        /// `train` or `validation`.
        set: &'static str,
    },
    /// Vectors and labels differ in number.
    #[error("the {set} set has {vectors} vectors but {labels} labels")]
    LabelCount {
        /// `train` or `validation`.
        set: &'static str,
        /// Number of vectors.
        vectors: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A vector has another dimension than the first one.
    #[error("the {set} set: vector {index} has {found} values, expected {expected}")]
    Dimension {
        /// `train` or `validation`.
        set: &'static str,
        /// Index of the vector.
        index: usize,
        /// Dimension of the first vector.
        expected: usize,
        /// Its dimension.
        found: usize,
    },
    /// A vector contains NaN or infinity.
    #[error("the {set} set: vector {index} has non-finite values")]
    NonFinite {
        /// `train` or `validation`.
        set: &'static str,
        /// Index of the vector.
        index: usize,
    },
    /// Fewer than two distinct labels: nothing to learn.
    #[error("the {set} set has {found} label(s); metric learning needs at least two")]
    TooFewLabels {
        /// `train` or `validation`.
        set: &'static str,
        /// Distinct labels found.
        found: usize,
    },
    /// A training class has a single vector, so it has no positive pair.
    #[error("the {set} set: class {label:?} has {count} vector(s); every class needs at least 2")]
    TinyClass {
        /// `train` or `validation`.
        set: &'static str,
        /// The label.
        label: String,
        /// How many vectors it has.
        count: usize,
    },
    /// No validation class has two vectors, so no validation query has a relevant answer.
    #[error("the validation set has no class with at least 2 vectors; no query could be scored")]
    NoValidationPairs,
    /// A configuration value is out of range.
    #[error("invalid training setting: {0}")]
    Config(String),
    /// A tensor or head operation failed.
    #[error(transparent)]
    Feature(#[from] FeatureError),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Feature(FeatureError::from(e))
    }
}

/// Shorthand for results in this module.
pub type TrainResult<T> = std::result::Result<T, TrainError>;
