//! Errors of the bindings and their Python exceptions.
//!
//! The exception classes live in `likeness/_errors.py` (so that they can derive from two bases,
//! e.g. `DimensionError(likeness.Error, ValueError)`); [`BindError`] is the `Send` error the
//! work done without the GIL returns, turned into the right class once the GIL is held again.
//! [`guarded`] runs such work and turns a Rust panic into `likeness.Error`: no panic reaches
//! Python.

use std::panic::{catch_unwind, AssertUnwindSafe};

use features::FeatureError;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyType;

/// The Python exception classes of `likeness._errors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// `likeness.Error`.
    Base,
    /// `likeness.LockedError`.
    Locked,
    /// `likeness.InvalidArgumentError` (a `ValueError`).
    InvalidArgument,
    /// `likeness.DimensionError` (a `ValueError`).
    Dimension,
    /// `likeness.NotFoundError` (a `LookupError`).
    NotFound,
    /// `likeness.FilterError` (a `ValueError`).
    Filter,
    /// `likeness.ImageError`.
    Image,
}

impl ErrorClass {
    fn class_name(self) -> &'static str {
        match self {
            ErrorClass::Base => "Error",
            ErrorClass::Locked => "LockedError",
            ErrorClass::InvalidArgument => "InvalidArgumentError",
            ErrorClass::Dimension => "DimensionError",
            ErrorClass::NotFound => "NotFoundError",
            ErrorClass::Filter => "FilterError",
            ErrorClass::Image => "ImageError",
        }
    }

    /// A Python exception of this class with message `msg`.
    pub fn err(self, msg: impl Into<String>) -> PyErr {
        let msg = msg.into();
        Python::attach(|py| match exception_type(py, self) {
            Ok(ty) => PyErr::from_type(ty, msg),
            Err(import_failed) => import_failed,
        })
    }
}

fn exception_type(py: Python<'_>, class: ErrorClass) -> PyResult<Bound<'_, PyType>> {
    let module = py.import("likeness._errors")?;
    Ok(module.getattr(class.class_name())?.cast_into::<PyType>()?)
}

/// What can go wrong in work done without the GIL.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// From the vector database.
    #[error(transparent)]
    Db(#[from] vecdb::Error),
    /// From image decoding or feature extraction.
    #[error(transparent)]
    Feature(#[from] FeatureError),
    /// A Rust panic, caught before it reached Python.
    #[error("internal error (a bug in likeness, please report it): {0}")]
    Panic(String),
    /// An error of a given class with its message (argument checks).
    #[error("{1}")]
    Class(ErrorClass, String),
}

impl BindError {
    /// The Python exception class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            BindError::Db(e) => db_class(e),
            BindError::Feature(e) => feature_class(e),
            BindError::Panic(_) => ErrorClass::Base,
            BindError::Class(c, _) => *c,
        }
    }
}

impl From<BindError> for PyErr {
    fn from(e: BindError) -> PyErr {
        e.class().err(e.to_string())
    }
}

/// The Python class of a vecdb error.
pub(crate) fn db_class(e: &vecdb::Error) -> ErrorClass {
    use vecdb::Error as E;
    match e {
        E::Locked(_) => ErrorClass::Locked,
        E::DimensionMismatch { .. } => ErrorClass::Dimension,
        E::NotFound(_) | E::UnknownCollection(_) | E::UnknownField(_) => ErrorClass::NotFound,
        E::InvalidFilter(_) => ErrorClass::Filter,
        E::InvalidVector(_)
        | E::DuplicateId(_)
        | E::CollectionExists(_)
        | E::InvalidIndexSpec { .. }
        | E::NotTrained(_)
        | E::InvalidArgument(_) => ErrorClass::InvalidArgument,
        E::Shared(inner) => db_class(inner),
        E::Io { .. }
        | E::Corrupt { .. }
        | E::MissingManifest { .. }
        | E::Poisoned { .. }
        | E::ReadOnly(_)
        | E::Metadata(_) => ErrorClass::Base,
    }
}

/// The Python class of a features error: anything about one image is an `ImageError`.
pub(crate) fn feature_class(e: &FeatureError) -> ErrorClass {
    match e {
        FeatureError::InvalidArgument(_) => ErrorClass::InvalidArgument,
        FeatureError::ModelMissing(_)
        | FeatureError::ModelFetch(_)
        | FeatureError::ModelFormat(_)
        | FeatureError::Device(_)
        | FeatureError::Inference(_) => ErrorClass::Base,
        _ => ErrorClass::Image,
    }
}

/// Run `f`, turning a panic into [`BindError::Panic`].
pub fn guarded<T>(f: impl FnOnce() -> Result<T, BindError>) -> Result<T, BindError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(BindError::Panic(msg))
    })
}

/// Run `f` without the GIL (other Python threads go on meanwhile), guarded against panics.
pub fn without_gil<T: Send>(py: Python<'_>, f: impl FnOnce() -> Result<T, BindError> + Send) -> PyResult<T> {
    py.detach(|| guarded(f)).map_err(PyErr::from)
}

/// A `TypeError` with this message.
pub fn type_error(msg: impl Into<String>) -> PyErr {
    PyTypeError::new_err(msg.into())
}

/// Shorthand for `ErrorClass::X.err(msg)`.
pub fn class_err(class: ErrorClass, msg: impl Into<String>) -> PyErr {
    class.err(msg)
}
