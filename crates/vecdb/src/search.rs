//! Search requests and results.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::filter::{Filter, Metadata};
use crate::index::SearchParams;
use crate::metric::Metric;
use crate::vector::Vector;

/// What to search for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Query {
    /// A query vector (normalized by the collection for cosine fields).
    Vector(Vector),
    /// "More like this": the stored vector of this record; the record itself is excluded from the results.
    Id(u64),
}

/// One search on one vector field of a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchRequest {
    /// The vector field to search.
    pub field: String,
    /// The query.
    pub query: Query,
    /// Top-k; with `threshold` too: at most `k` hits within the threshold.
    pub k: Option<usize>,
    /// Range search: every hit with `distance <= threshold`.
    pub threshold: Option<f32>,
    /// Metadata filter, applied during the search.
    pub filter: Option<Filter>,
    /// Index knobs (ef, nprobe, …).
    pub params: SearchParams,
    /// Return each hit's vectors.
    pub include_vectors: bool,
    /// Return each hit's metadata.
    pub include_metadata: bool,
}

impl SearchRequest {
    /// Top-`k` search with defaults: no threshold, no filter, metadata included, vectors not.
    pub fn new(field: impl Into<String>, query: Query, k: usize) -> Self {
        SearchRequest {
            field: field.into(),
            query,
            k: Some(k),
            threshold: None,
            filter: None,
            params: SearchParams::default(),
            include_vectors: false,
            include_metadata: true,
        }
    }
    /// Range search: every record within `threshold`, no `k` limit.
    pub fn range(field: impl Into<String>, query: Query, threshold: f32) -> Self {
        SearchRequest { k: None, threshold: Some(threshold), ..SearchRequest::new(field, query, 0) }
    }
    /// Set the distance threshold.
    pub fn with_threshold(mut self, threshold: f32) -> Self {
        self.threshold = Some(threshold);
        self
    }
    /// Set the metadata filter.
    pub fn with_filter(mut self, filter: Filter) -> Self {
        self.filter = Some(filter);
        self
    }
    /// Set the index knobs.
    pub fn with_params(mut self, params: SearchParams) -> Self {
        self.params = params;
        self
    }
    /// Ask for (or not) each hit's vectors.
    pub fn with_vectors(mut self, yes: bool) -> Self {
        self.include_vectors = yes;
        self
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Record id.
    pub id: u64,
    /// Distance to the query (smaller is closer; see [`crate::metric`]).
    pub distance: f32,
    /// The record's metadata, when requested.
    pub metadata: Option<Metadata>,
    /// The record's vectors by field, when requested.
    pub vectors: Option<BTreeMap<String, Vector>>,
}

/// Per-field figures in [`CollectionStats`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldStats {
    /// Field name.
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// Metric.
    pub metric: Metric,
    /// The index's own description (e.g. `"Flat"`, `"HNSW32"`).
    pub index: String,
    /// Memory the index holds, in bytes (for a `Flat` field: only the memtable's vectors, the
    /// stored rows are searched in place).
    pub memory_bytes: usize,
    /// Bytes of this field's vector columns in the segment files.
    pub disk_bytes: u64,
    /// Bytes of those columns resident in memory now (page cache the kernel can drop and
    /// re-read; `mincore`).
    pub resident_bytes: u64,
    /// Bytes this field holds on the heap: its index plus the memtable's vectors of the field.
    pub heap_bytes: u64,
    /// Where the index came from when the collection was opened (or last rebuilt).
    pub origin: IndexOrigin,
    /// For a field whose spec is `Auto`: what serves it and why (size, threshold, memory budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// A background index build in progress on this field (`Auto`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<IndexBuild>,
}

/// Progress of a background index build (an `Auto` field past its threshold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexBuild {
    /// The spec being built, e.g. `"HNSW32"`.
    pub spec: String,
    /// Records added so far...
    pub done: usize,
    /// ...of the records the build started from (writes since are added at the end).
    pub total: usize,
    /// Seconds since the build started.
    pub seconds: f64,
}

/// How a field's index came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum IndexOrigin {
    /// Built from the stored records: a new collection, a `Flat` index, a rebuild (`set_index`,
    /// compaction since the snapshot) or no usable snapshot.
    Built,
    /// Loaded from the snapshot saved at the last clean close or explicit checkpoint, then
    /// brought up to date by adding `caught_up` records written since.
    Snapshot {
        /// Records added to the loaded snapshot (new or replaced since it was saved).
        caught_up: usize,
    },
}

impl FieldStats {
    /// Bytes on disk, resident and on the heap per live record (`count` of the collection), in
    /// that order; zeros for an empty collection.
    pub fn per_vector(&self, count: usize) -> (f64, f64, f64) {
        if count == 0 {
            return (0.0, 0.0, 0.0);
        }
        let n = count as f64;
        (self.disk_bytes as f64 / n, self.resident_bytes as f64 / n, self.heap_bytes as f64 / n)
    }
}

/// Figures about a collection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionStats {
    /// Live records.
    pub count: usize,
    /// Dead rows still on disk (deleted or replaced), reclaimed by `compact`.
    pub deleted: usize,
    /// Bytes of all files of the collection.
    pub disk_bytes: u64,
    /// Number of segment files.
    pub segments: usize,
    /// Bytes in the write-ahead log.
    pub wal_bytes: u64,
    /// Heap bytes of the per-record bookkeeping shared by the fields: the segments' dead-row
    /// bitsets (no id → row map: ids are found in the mapped, sorted id columns) and the
    /// memtable's entries.
    pub records_heap_bytes: u64,
    /// Per vector field.
    pub fields: Vec<FieldStats>,
}
