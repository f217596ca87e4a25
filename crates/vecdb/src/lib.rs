//! # vecdb
//!
//! An embedded vector database: a database is a directory of named collections;
//! a collection stores records (`u64` id, one or more named vectors, a JSON
//! metadata document) durably (write-ahead log + memory-mapped segments) and
//! answers top-k, range and batch searches through a [`index::VectorIndex`],
//! with metadata filters applied during the search.
//!
//! This crate knows nothing about images.

#![warn(missing_docs)]

pub mod check;
pub mod code_distance;
pub mod collection;
pub mod db;
pub mod distance;
pub mod error;
pub mod filter;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod index;
pub mod metric;
pub mod repair;
pub mod schema;
pub mod search;
pub mod search_body;
pub mod vector;

mod filter_parse;
mod fsutil;
mod hugepages;
mod lock;
mod manifest;
mod resident;
mod segment;
mod wal;

pub use collection::Collection;
pub use db::Database;
pub use error::{Error, Result};
pub use filter::{Filter, Metadata};
pub use index::{IdFilter, Neighbor, SearchParams, VectorIndex};
pub use metric::Metric;
pub use schema::{CollectionSchema, Record, VectorField};
pub use search::{CollectionStats, FieldStats, Hit, IndexBuild, IndexOrigin, Query, SearchRequest};
pub use vector::{Element, Vector, VectorRef, VectorsRef};
