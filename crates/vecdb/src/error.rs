//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `vecdb`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O error, with the path it concerned.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content failed a check (checksum, magic, length).
    #[error("corrupt data in {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// A collection directory holds data files but no MANIFEST: it is refused rather than
    /// opened empty (its records are still in the files; a repair rebuilds the manifest).
    #[error(
        "collection directory {dir} holds data files ({files}) but no MANIFEST: refusing to open it as empty; \
         nothing was changed. A repair rebuilds the MANIFEST from the segments it can verify \
         (`likeness db repair <db>`, or vecdb::repair::repair_collection)"
    )]
    MissingManifest {
        /// The collection directory.
        dir: PathBuf,
        /// The data files found in it, comma-separated.
        files: String,
    },
    /// A write failed earlier (WAL append/fsync, checkpoint): the collection refuses writes
    /// until it is reopened, which recovers from the log.
    #[error("collection '{collection}' is read-only after an earlier write failure ({reason}); reopen it to recover")]
    Poisoned {
        /// The collection.
        collection: String,
        /// The failure that poisoned it.
        reason: String,
    },
    /// A write (or checkpoint, compaction, index change) on a handle opened read-only.
    #[error("collection '{0}' is open read-only (Database::open_read_only): writes go through the writer process")]
    ReadOnly(String),
    /// One failure reported to every writer of a group commit, with its source kept.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
    /// Another process holds the database lock.
    #[error("database {0} is locked by another process")]
    Locked(PathBuf),
    /// A vector had the wrong number of components.
    #[error("wrong dimension: expected {expected}, got {got}")]
    DimensionMismatch {
        /// The collection's dimension.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// A vector contained NaN/inf or was of the wrong kind.
    #[error("invalid vector: {0}")]
    InvalidVector(String),
    /// `insert` of an id that already exists.
    #[error("duplicate id {0}")]
    DuplicateId(u64),
    /// No record with this id.
    #[error("no record with id {0}")]
    NotFound(u64),
    /// No collection of this name.
    #[error("unknown collection '{0}'")]
    UnknownCollection(String),
    /// A collection of this name exists already.
    #[error("collection '{0}' already exists")]
    CollectionExists(String),
    /// The collection has no vector field of this name.
    #[error("unknown vector field '{0}'")]
    UnknownField(String),
    /// A metadata filter could not be parsed or applied.
    #[error("invalid filter: {0}")]
    InvalidFilter(String),
    /// An index factory string or parameter is wrong.
    #[error("invalid index spec '{spec}': {reason}")]
    InvalidIndexSpec {
        /// The spec as given.
        spec: String,
        /// What was wrong.
        reason: String,
    },
    /// The index needs training before vectors can be added.
    #[error("index is not trained: {0}")]
    NotTrained(String),
    /// Any other invalid argument.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// Metadata could not be (de)serialized.
    #[error("metadata error: {0}")]
    Metadata(String),
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wrap an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
