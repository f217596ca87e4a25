//! # likeness-py
//!
//! The Python package `likeness` (module `likeness._likeness`, re-exported by
//! `python/likeness/__init__.py`): the vector database ([`database`], [`collection`],
//! [`search`]), the image embedder ([`embedder`]) with numpy in and out, and the CLI's
//! `index`, `search` and `dedup` as functions ([`app`]).
//!
//! Heavy work (search, insert, embedding, index builds, close) runs without the GIL and
//! every entry point is guarded: errors become the exception hierarchy of
//! `likeness/_errors.py` and Rust panics become `likeness.Error` ([`errors`]).
//!
//! Build and install: `bash scripts/python.sh` (a venv, maturin, the wheel, pytest).

use pyo3::prelude::*;

pub mod app;
pub mod arrays;
pub mod collection;
pub mod database;
pub mod embedder;
pub mod errors;
pub mod metadata;
pub mod search;

/// The native part of the `likeness` package (import `likeness`, not this).
#[pymodule]
fn _likeness(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("NO_ID", search::NO_ID)?;
    m.add("DEFAULT_FEATURES", features::DEFAULT_FEATURES.to_vec())?;
    m.add_class::<database::PyDatabase>()?;
    m.add_class::<database::PyVectorField>()?;
    m.add_class::<collection::PyCollection>()?;
    m.add_class::<collection::PyRecord>()?;
    m.add_class::<collection::RecordIter>()?;
    m.add_class::<search::SearchResults>()?;
    m.add_class::<embedder::PyEmbedder>()?;
    m.add_class::<embedder::Embeddings>()?;
    m.add_function(wrap_pyfunction!(app::index_folder, m)?)?;
    m.add_function(wrap_pyfunction!(app::search_images, m)?)?;
    m.add_function(wrap_pyfunction!(app::dedup, m)?)?;
    Ok(())
}
