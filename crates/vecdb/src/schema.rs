//! Collection schemas and records: what a collection stores.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::Metadata;
use crate::index;
use crate::metric::Metric;
use crate::vector::Element;
use crate::vector::{Vector, VectorRef};

/// Largest dimension a vector field may have.
pub const MAX_DIM: usize = 65_536;

/// One named vector field of a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VectorField {
    /// Field name, e.g. `"cnn"`; letters, digits, `_`, `-`, `.` only.
    pub name: String,
    /// Number of components (floats, or bits for `hamming`).
    pub dim: usize,
    /// The metric searches on this field rank by; the element kind follows it
    /// (`hamming` = packed bits, everything else = `f32`).
    pub metric: Metric,
    /// Index factory spec, e.g. `"Flat"` or `"HNSW32"`.
    pub index: String,
}

impl VectorField {
    /// A field with the given name, dimension, metric and index spec.
    pub fn new(name: impl Into<String>, dim: usize, metric: Metric, index: impl Into<String>) -> Self {
        VectorField { name: name.into(), dim, metric, index: index.into() }
    }
    /// The element kind stored in this field.
    pub fn element(&self) -> Element {
        self.metric.element()
    }
    /// Bytes one vector of this field occupies on disk.
    pub fn bytes_per_vector(&self) -> usize {
        self.element().bytes_per_vector(self.dim)
    }
}

/// The fixed layout of a collection: its vector fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollectionSchema {
    /// The vector fields; every record carries one vector per field.
    pub fields: Vec<VectorField>,
}

impl CollectionSchema {
    /// A schema with one vector field.
    pub fn single(name: impl Into<String>, dim: usize, metric: Metric, index: impl Into<String>) -> Self {
        CollectionSchema { fields: vec![VectorField::new(name, dim, metric, index)] }
    }
    /// Position of field `name`, or [`Error::UnknownField`].
    pub fn field_index(&self, name: &str) -> Result<usize> {
        self.fields.iter().position(|f| f.name == name).ok_or_else(|| Error::UnknownField(name.to_string()))
    }
    /// Check a schema read from file `path` (MANIFEST, WAL header, segment info): at least one
    /// field, every dimension in `1..=MAX_DIM`, so that sizes computed from it cannot overflow.
    /// [`Error::Corrupt`] naming the file otherwise. (Names and index specs are checked when the
    /// collection is created; a stored spec is trusted, as an index built from it exists.)
    pub(crate) fn check_stored(&self, path: &std::path::Path) -> Result<()> {
        if self.fields.is_empty() {
            return Err(crate::fsutil::corrupt(path, "schema without vector fields"));
        }
        if let Some(f) = self.fields.iter().find(|f| f.dim == 0 || f.dim > MAX_DIM) {
            return Err(crate::fsutil::corrupt(
                path,
                format!("schema field '{}' has dimension {}, outside 1..={MAX_DIM}", f.name, f.dim),
            ));
        }
        Ok(())
    }

    /// Check names, dimensions and index specs.
    pub fn validate(&self) -> Result<()> {
        if self.fields.is_empty() {
            return Err(Error::InvalidArgument("a collection schema needs at least one vector field".into()));
        }
        let mut seen = HashSet::new();
        for f in &self.fields {
            check_name("vector field", &f.name)?;
            if !seen.insert(f.name.as_str()) {
                return Err(Error::InvalidArgument(format!("vector field '{}' appears twice in the schema", f.name)));
            }
            if f.dim == 0 || f.dim > MAX_DIM {
                return Err(Error::InvalidArgument(format!(
                    "vector field '{}': dimension {} is outside 1..={MAX_DIM}",
                    f.name, f.dim
                )));
            }
            // Building an empty index checks the spec against dim and metric.
            match crate::collection::AutoPolicy::parse(&f.index) {
                Some(policy) => {
                    policy?;
                }
                None => {
                    index::build_index(&f.index, f.dim, f.metric)?;
                }
            }
        }
        Ok(())
    }
}

/// Check a collection or field name: 1–64 characters of `[A-Za-z0-9_.-]`, not starting with `.`.
pub(crate) fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "{what} name '{name}' is invalid: use 1-64 characters of A-Z a-z 0-9 _ - . (not starting with '.')"
        )))
    }
}

/// One stored item: an id, one vector per schema field, and a JSON metadata document.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Record {
    /// Caller-chosen unique id.
    pub id: u64,
    /// One vector per field of the collection's schema, by field name.
    pub vectors: BTreeMap<String, Vector>,
    /// Metadata document (strings, numbers, bools, arrays).
    pub metadata: Metadata,
}

impl Record {
    /// A record with no vectors and empty metadata; add them with [`Record::with_vector`] and [`Record::with_metadata`].
    pub fn new(id: u64) -> Self {
        Record { id, ..Default::default() }
    }
    /// Add (or replace) the vector of `field`.
    pub fn with_vector(mut self, field: impl Into<String>, v: Vector) -> Self {
        self.vectors.insert(field.into(), v);
        self
    }
    /// Set the metadata document. A non-object JSON value is stored under the key `"value"`.
    pub fn with_metadata(mut self, meta: serde_json::Value) -> Self {
        self.metadata = match meta {
            serde_json::Value::Object(m) => m,
            other => {
                let mut m = Metadata::new();
                m.insert("value".into(), other);
                m
            }
        };
        self
    }
}

/// Validate `rec` against `schema` and return its vectors in schema order,
/// unit-normalized for cosine fields (moved out of the record, not copied).
pub(crate) fn prepare_vectors(schema: &CollectionSchema, rec: &mut Record) -> Result<Vec<Vector>> {
    for name in rec.vectors.keys() {
        if schema.field_index(name).is_err() {
            return Err(Error::UnknownField(format!("{name}' (record {})", rec.id)));
        }
    }
    let mut out = Vec::with_capacity(schema.fields.len());
    for f in &schema.fields {
        let v = rec
            .vectors
            .remove(&f.name)
            .ok_or_else(|| Error::InvalidArgument(format!("record {} has no vector for field '{}'", rec.id, f.name)))?;
        v.as_ref().validate(f.element(), f.dim).map_err(|e| with_context(e, rec.id, &f.name))?;
        out.push(match f.metric {
            Metric::Cosine => prepare_vector(f, v.as_ref()).map_err(|e| with_context(e, rec.id, &f.name))?,
            _ => v,
        });
    }
    Ok(out)
}

/// Validate one vector for field `f` and normalize it for cosine.
pub(crate) fn prepare_vector(f: &VectorField, v: VectorRef<'_>) -> Result<Vector> {
    v.validate(f.element(), f.dim)?;
    match (f.metric, v) {
        (Metric::Cosine, VectorRef::Dense(x)) => {
            let mut x = x.to_vec();
            let n = crate::distance::dot(&x, &x).sqrt();
            if !(n > 0.0 && n.is_finite()) {
                return Err(Error::InvalidVector("a zero (or overflowing) vector has no cosine direction".into()));
            }
            x.iter_mut().for_each(|c| *c /= n);
            Ok(Vector::Dense(x))
        }
        _ => Ok(v.to_owned()),
    }
}

fn with_context(e: Error, id: u64, field: &str) -> Error {
    match e {
        Error::InvalidVector(m) => Error::InvalidVector(format!("record {id}, field '{field}': {m}")),
        other => other,
    }
}
