//! The JSON form of a search, as an HTTP API receives it: a query vector or a stored record's
//! id, `k` or a range `threshold`, a JSON filter and index knobs. [`SearchBody`] deserializes
//! it (unknown fields refused) and checks it against a collection, with error messages meant
//! for the client; the result is a [`SearchRequest`] for [`Collection::search`].
//!
//! ```rust
//! use vecdb::search_body::SearchBody;
//! use vecdb::{CollectionSchema, Database, Metric, Record, Vector};
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path()).unwrap();
//! let c = db.create_collection("c", CollectionSchema::single("v", 2, Metric::L2, "Flat")).unwrap();
//! c.insert(vec![Record::new(1).with_vector("v", Vector::Dense(vec![1.0, 2.0]))]).unwrap();
//! let body: SearchBody = serde_json::from_str(r#"{"vector": [1, 2], "k": 3}"#).unwrap();
//! let spec = body.spec("v".into()).unwrap();
//! let query = body.query(&c, &spec.feature).unwrap();
//! assert_eq!(c.search(&spec.request(query)).unwrap()[0].id, 1);
//! ```

use serde::Deserialize;
use serde_json::Value;

use crate::collection::Collection;
use crate::filter::Filter;
use crate::index::SearchParams;
use crate::metric::Metric;
use crate::schema::CollectionSchema;
use crate::search::{Query, SearchRequest};
use crate::vector::Vector;

/// Largest `k` a search may ask for (also the `k` of a range search that gives none).
pub const MAX_K: usize = 10_000;

/// Upper bound of every index knob a request may set (bounds the work one request can ask for).
pub const MAX_KNOB: usize = 100_000;

/// A search as a client sends it (JSON; unknown fields are an error).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// Query vector (floats; for hamming fields the packed bytes).
    pub vector: Option<Vec<f64>>,
    /// Search by a stored record.
    pub id: Option<Value>,
    /// Feature (vector field) to search.
    pub feature: Option<String>,
    /// Number of results.
    pub k: Option<usize>,
    /// Range search threshold.
    pub threshold: Option<f32>,
    /// JSON filter (see [`Filter::from_json`]).
    pub filter: Option<Value>,
    /// Include stored vectors in the hits.
    #[serde(default)]
    pub include_vectors: bool,
    /// Index knobs: HNSW candidate list.
    pub ef: Option<usize>,
    /// IVF lists probed.
    pub nprobe: Option<usize>,
    /// k-d forest leaf budget.
    pub checks: Option<usize>,
    /// Candidates re-ranked exactly (LSH, `…,Refine`).
    pub rerank: Option<usize>,
}

/// Why a [`SearchBody`] was refused.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// A bad value: the client's mistake (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// The filter did not parse ([`crate::Error::InvalidFilter`]).
    #[error(transparent)]
    Filter(#[from] crate::Error),
    /// The record to search by is not in the collection (HTTP 404).
    #[error("no record with id {id} in collection '{collection}'")]
    NoSuchRecord {
        /// The id asked for.
        id: u64,
        /// The collection searched.
        collection: String,
    },
}

/// The checked knobs of a [`SearchBody`], for one feature.
#[derive(Debug, Clone)]
pub struct SearchSpec {
    /// The vector field searched.
    pub feature: String,
    /// Results wanted (set: 10 by default, [`MAX_K`] for a range search).
    pub k: Option<usize>,
    /// Range search threshold.
    pub threshold: Option<f32>,
    /// The parsed filter.
    pub filter: Option<Filter>,
    /// Include stored vectors in the hits.
    pub include_vectors: bool,
    /// Index knobs.
    pub params: SearchParams,
}

impl SearchBody {
    /// Check `k`, `threshold`, `filter` and the index knobs for a search of `feature` (which
    /// the caller chose: the body's `feature`, or its own default).
    pub fn spec(&self, feature: String) -> Result<SearchSpec, BodyError> {
        if let Some(k) = self.k {
            if k == 0 || k > MAX_K {
                return Err(BodyError::Invalid(format!("k must be between 1 and {MAX_K}, got {k}")));
            }
        }
        if let Some(t) = self.threshold {
            if !t.is_finite() {
                return Err(BodyError::Invalid("threshold must be a finite number".into()));
            }
        }
        let filter = match &self.filter {
            None | Some(Value::Null) => None,
            Some(v) => Some(Filter::from_json(v)?),
        };
        let k = match (self.k, self.threshold) {
            (k, Some(_)) => Some(k.unwrap_or(MAX_K)),
            (k, None) => Some(k.unwrap_or(10)),
        };
        for (name, v) in [("ef", self.ef), ("nprobe", self.nprobe), ("checks", self.checks), ("rerank", self.rerank)] {
            if let Some(v) = v.filter(|&v| v == 0 || v > MAX_KNOB) {
                return Err(BodyError::Invalid(format!("{name} must be between 1 and {MAX_KNOB}, got {v}")));
            }
        }
        let params = SearchParams {
            ef: self.ef,
            nprobe: self.nprobe,
            checks: self.checks,
            rerank: self.rerank,
            ..Default::default()
        };
        Ok(SearchSpec { feature, k, threshold: self.threshold, filter, include_vectors: self.include_vectors, params })
    }

    /// The query: the `vector` (checked against `feature` of `c`'s schema) or the stored record
    /// `id` (which must exist); exactly one of them.
    pub fn query(&self, c: &Collection, feature: &str) -> Result<Query, BodyError> {
        match (&self.vector, &self.id) {
            (Some(_), Some(_)) => Err(BodyError::Invalid("give either 'vector' or 'id', not both".into())),
            (Some(v), None) => Ok(Query::Vector(query_vector(c.schema(), feature, v)?)),
            (None, Some(id)) => {
                let id = parse_id(id)?;
                if c.get_metadata(id).is_none() {
                    return Err(BodyError::NoSuchRecord { id, collection: c.name().to_string() });
                }
                Ok(Query::Id(id))
            }
            (None, None) => Err(BodyError::Invalid(
                "give 'vector' or 'id' (to search by an image, POST multipart to /search/image)".into(),
            )),
        }
    }
}

impl SearchSpec {
    /// The request for [`Collection::search`].
    pub fn request(self, query: Query) -> SearchRequest {
        let mut req = SearchRequest::new(self.feature, query, self.k.unwrap_or(10));
        req.k = self.k;
        req.threshold = self.threshold;
        req.filter = self.filter;
        req.include_vectors = self.include_vectors;
        req.params = self.params;
        req
    }
}

/// Parse an id given as a decimal string or a JSON number.
pub fn parse_id(v: &Value) -> Result<u64, BodyError> {
    match v {
        Value::String(s) => s.trim().parse().map_err(|_| BodyError::Invalid(format!("bad id '{s}'"))),
        Value::Number(n) => n.as_u64().ok_or_else(|| BodyError::Invalid(format!("bad id {n}"))),
        other => Err(BodyError::Invalid(format!("bad id {other} (expected a decimal string)"))),
    }
}

/// `v` as a query of field `feature` of `schema`: floats for dense fields, the packed bytes
/// (integers 0..=255) for hamming ones.
pub fn query_vector(schema: &CollectionSchema, feature: &str, v: &[f64]) -> Result<Vector, BodyError> {
    let field = schema
        .fields
        .iter()
        .find(|f| f.name == feature)
        .ok_or_else(|| BodyError::Invalid(format!("unknown feature '{feature}'")))?;
    if field.metric == Metric::Hamming {
        let bytes = v
            .iter()
            .map(|x| {
                if x.fract() == 0.0 && (0.0..=255.0).contains(x) {
                    Ok(*x as u8)
                } else {
                    Err(BodyError::Invalid(format!(
                        "feature '{feature}' holds bit vectors: give the packed bytes as integers 0..255 (got {x})"
                    )))
                }
            })
            .collect::<Result<Vec<u8>, BodyError>>()?;
        Ok(Vector::Binary(bytes))
    } else {
        Ok(Vector::Dense(v.iter().map(|x| *x as f32).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> SearchBody {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn knobs_are_checked_with_the_api_messages() {
        let e = body(r#"{"k": 0}"#).spec("v".into()).unwrap_err();
        assert_eq!(e.to_string(), "k must be between 1 and 10000, got 0");
        let e = body(r#"{"ef": 100001}"#).spec("v".into()).unwrap_err();
        assert_eq!(e.to_string(), "ef must be between 1 and 100000, got 100001");
        assert!(matches!(body(r#"{"filter": 3}"#).spec("v".into()), Err(BodyError::Filter(_))));
        assert_eq!(body(r#"{"threshold": 1.5}"#).spec("v".into()).unwrap().k, Some(MAX_K));
        assert_eq!(body("{}").spec("v".into()).unwrap().k, Some(10));
        assert!(serde_json::from_str::<SearchBody>(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn ids_and_bit_vectors() {
        assert_eq!(parse_id(&Value::String(" 42 ".into())).unwrap(), 42);
        assert_eq!(parse_id(&serde_json::json!(-1)).unwrap_err().to_string(), "bad id -1");
        let schema = CollectionSchema::single("b", 16, Metric::Hamming, "Flat");
        assert_eq!(query_vector(&schema, "b", &[1.0, 255.0]).unwrap(), Vector::Binary(vec![1, 255]));
        assert!(query_vector(&schema, "b", &[1.5]).is_err());
        assert_eq!(query_vector(&schema, "x", &[1.0]).unwrap_err().to_string(), "unknown feature 'x'");
    }
}
