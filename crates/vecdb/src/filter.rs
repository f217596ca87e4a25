//! Metadata filters, applied during search.
//!
//! A filter is evaluated against a record's metadata document. On an array field
//! (e.g. `tags`), `Eq`/`In`/`Prefix` match when any element matches.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// A record's metadata document.
pub type Metadata = serde_json::Map<String, Value>;

/// A condition on metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Filter {
    /// `field == value`.
    Eq(String, Value),
    /// `field` equals one of the values.
    In(String, Vec<Value>),
    /// Numeric range; each bound optional, inclusive unless `*_exclusive`.
    Range {
        /// The field.
        field: String,
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
        /// Lower bound excluded.
        min_exclusive: bool,
        /// Upper bound excluded.
        max_exclusive: bool,
    },
    /// String field starts with the prefix.
    Prefix(String, String),
    /// All must match.
    And(Vec<Filter>),
    /// Any must match.
    Or(Vec<Filter>),
    /// Must not match.
    Not(Box<Filter>),
}

impl Filter {
    /// True when `meta` satisfies the filter.
    pub fn matches(&self, _meta: &Metadata) -> bool {
        todo!("filter evaluation")
    }
    /// Parse the JSON form used by the HTTP API, e.g.
    /// `{"label": "cat"}`, `{"label": {"in": ["cat","dog"]}}`, `{"width": {"gte": 100, "lt": 500}}`,
    /// `{"path": {"prefix": "/photos/"}}`, `{"and": [...]}`, `{"or": [...]}`, `{"not": {...}}`.
    /// Several keys in one object are ANDed.
    pub fn from_json(_v: &Value) -> Result<Filter> {
        Err(Error::InvalidFilter("not implemented yet".into()))
    }
    /// Parse the CLI form: `label=cat`, `label!=cat`, `label in cat,dog`, `width>=100`, `width<500`,
    /// `path^=/photos/`; several expressions joined with ` and `.
    pub fn parse(_expr: &str) -> Result<Filter> {
        Err(Error::InvalidFilter("not implemented yet".into()))
    }
}
