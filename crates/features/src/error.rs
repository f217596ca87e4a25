//! Typed errors; every one that concerns a file names it.

use std::path::PathBuf;

/// Everything that can go wrong turning an image file into vectors.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// The file could not be read.
    #[error("{path}: cannot read file: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("{path}: empty file")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The file is larger than the configured limit.
    #[error("{path}: file is {size} bytes, over the limit of {limit}")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The image's declared size is over the pixel limit (decompression bomb guard).
    #[error("{path}: image is {width}×{height} pixels, over the limit of {limit} pixels")]
    TooManyPixels {
        /// The file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The pixel limit.
        limit: u64,
    },
    /// The content is not an image format we decode.
    #[error("{path}: not a supported image ({reason})")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The decoder failed (truncated, bad checksum, corrupt data).
    #[error("{path}: cannot decode image: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's message.
        reason: String,
    },
    /// Decoding took longer than the time budget.
    #[error("{path}: decoding took over {budget_ms} ms")]
    DecodeTimeout {
        /// The file.
        path: PathBuf,
        /// The budget.
        budget_ms: u64,
    },
    /// The image is too small to extract features from.
    #[error("{path}: image is {width}×{height}, too small")]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// An extractor failed on one image of a batch (pipeline); names the file and the extractor.
    #[error("{path}: extractor {extractor} failed: {reason}")]
    Extract {
        /// The file.
        path: PathBuf,
        /// The extractor's name.
        extractor: String,
        /// What went wrong.
        reason: String,
    },
    /// The CNN model files are missing; the message says how to fetch them.
    #[error("model not found: {0}")]
    ModelMissing(String),
    /// Downloading or verifying the model failed.
    #[error("model fetch failed: {0}")]
    ModelFetch(String),
    /// The model file could not be parsed or has unexpected tensors.
    #[error("model format error: {0}")]
    ModelFormat(String),
    /// The compute device asked for is not available (no CUDA in this build, no such GPU).
    #[error("compute device: {0}")]
    Device(String),
    /// A tensor operation failed.
    #[error("inference error: {0}")]
    Inference(String),
    /// Any other invalid argument or configuration.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = FeatureError> = std::result::Result<T, E>;

#[cfg(feature = "cnn")]
impl From<candle_core::Error> for FeatureError {
    fn from(e: candle_core::Error) -> Self {
        FeatureError::Inference(e.to_string())
    }
}

impl FeatureError {
    /// The file this error concerns, when there is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            FeatureError::Io { path, .. }
            | FeatureError::Empty { path }
            | FeatureError::FileTooLarge { path, .. }
            | FeatureError::TooManyPixels { path, .. }
            | FeatureError::UnsupportedFormat { path, .. }
            | FeatureError::Decode { path, .. }
            | FeatureError::DecodeTimeout { path, .. }
            | FeatureError::TooSmall { path, .. }
            | FeatureError::Extract { path, .. } => Some(path),
            _ => None,
        }
    }
}
