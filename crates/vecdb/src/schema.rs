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
    /// Vectors each record holds in this field: above 1 it is a *multi-vector* field (an
    /// image's regional descriptors, say). A record's vector is then `vectors_per_record × dim`
    /// floats side by side, a query may hold one or more vectors of `dim`, and a search scores
    /// each record by its best pair (the smallest distance between a query vector and one of
    /// the record's vectors), returning records. Float metrics only.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub vectors_per_record: usize,
}

fn one() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl VectorField {
    /// A field with the given name, dimension, metric and index spec.
    pub fn new(name: impl Into<String>, dim: usize, metric: Metric, index: impl Into<String>) -> Self {
        VectorField { name: name.into(), dim, metric, index: index.into(), vectors_per_record: 1 }
    }
    /// This field holding `n` vectors per record (a multi-vector field when `n > 1`).
    pub fn with_vectors_per_record(mut self, n: usize) -> Self {
        self.vectors_per_record = n;
        self
    }
    /// True when records hold several vectors in this field.
    pub fn is_multi(&self) -> bool {
        self.vectors_per_record > 1
    }
    /// Distance from query `q` (one vector, or several for a multi-vector field) to a record's
    /// vector `row` of this field: the metric's, or the best pair's for several vectors.
    pub fn distance(&self, q: VectorRef<'_>, row: VectorRef<'_>) -> Result<f32> {
        match (q, row) {
            (VectorRef::Dense(q), VectorRef::Dense(r)) if self.is_multi() || q.len() != r.len() => {
                let d = self.dim.max(1);
                let mut best = f32::INFINITY;
                for qv in q.chunks_exact(d) {
                    for rv in r.chunks_exact(d) {
                        best = best.min(self.metric.distance(VectorRef::Dense(qv), VectorRef::Dense(rv))?);
                    }
                }
                Ok(best)
            }
            _ => self.metric.distance(q, row),
        }
    }
    /// Components of one record's row: `vectors_per_record × dim`.
    pub fn row_dim(&self) -> usize {
        self.dim.saturating_mul(self.vectors_per_record.max(1))
    }
    /// The element kind stored in this field.
    pub fn element(&self) -> Element {
        self.metric.element()
    }
    /// Bytes one record's vector (all of its vectors, for a multi-vector field) occupies on disk.
    pub fn bytes_per_vector(&self) -> usize {
        self.element().bytes_per_vector(self.dim).saturating_mul(self.vectors_per_record.max(1))
    }
}

impl VectorField {
    /// Error unless `vectors_per_record` is in `1..=`[`index::multi::MAX_VECTORS_PER_RECORD`]
    /// and, above 1, the metric is a float one.
    fn check_multi(&self) -> Result<()> {
        let n = self.vectors_per_record;
        if n == 0 || n > index::multi::MAX_VECTORS_PER_RECORD {
            return Err(Error::InvalidArgument(format!(
                "vector field '{}': {n} vectors per record is outside 1..={}",
                self.name,
                index::multi::MAX_VECTORS_PER_RECORD
            )));
        }
        if n > 1 && self.element() != Element::F32 {
            return Err(Error::InvalidArgument(format!(
                "vector field '{}': a multi-vector field needs a float metric (l2, cosine, dot), not {}",
                self.name, self.metric
            )));
        }
        Ok(())
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
        if let Some(f) = self.fields.iter().find(|f| f.check_multi().is_err()) {
            return Err(crate::fsutil::corrupt(
                path,
                format!("schema field '{}' holds {} vectors per record", f.name, f.vectors_per_record),
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
            f.check_multi()?;
            // Building an empty index checks the spec against dim and metric.
            match crate::collection::AutoPolicy::parse(&f.index) {
                Some(policy) => {
                    policy?;
                }
                None => {
                    index::build_field_index(&f.index, f)?;
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
        v.as_ref().validate(f.element(), f.row_dim()).map_err(|e| with_context(e, rec.id, &f.name))?;
        out.push(match f.metric {
            Metric::Cosine => normalize_rows(v.as_ref(), f.dim).map_err(|e| with_context(e, rec.id, &f.name))?,
            _ => v,
        });
    }
    Ok(out)
}

/// Validate a query vector for field `f` and normalize it for cosine. A multi-vector field
/// takes one or more vectors of `f.dim` side by side (up to
/// [`index::multi::MAX_QUERY_VECTORS`]), each normalized on its own.
pub(crate) fn prepare_vector(f: &VectorField, v: VectorRef<'_>) -> Result<Vector> {
    match (f.is_multi(), v) {
        (true, VectorRef::Dense(x)) if !x.is_empty() && x.len() % f.dim == 0 => {
            let q = x.len() / f.dim;
            if q > index::multi::MAX_QUERY_VECTORS {
                return Err(Error::InvalidVector(format!(
                    "a query of field '{}' holds {q} vectors; at most {} are allowed",
                    f.name,
                    index::multi::MAX_QUERY_VECTORS
                )));
            }
            v.validate(f.element(), x.len())?
        }
        _ => v.validate(f.element(), f.dim)?,
    }
    match f.metric {
        Metric::Cosine => normalize_rows(v, f.dim),
        _ => Ok(v.to_owned()),
    }
}

/// `v` (whole rows of `dim` floats) with every row scaled to unit length; bits unchanged.
fn normalize_rows(v: VectorRef<'_>, dim: usize) -> Result<Vector> {
    match v {
        VectorRef::Dense(x) => {
            let several = x.len() > dim;
            let mut x = x.to_vec();
            for (i, row) in x.chunks_mut(dim.max(1)).enumerate() {
                let n = crate::distance::dot(row, row).sqrt();
                if !(n > 0.0 && n.is_finite()) {
                    let which = if several { format!(" (vector {i} of the row)") } else { String::new() };
                    return Err(Error::InvalidVector(format!(
                        "a zero (or overflowing) vector has no cosine direction{which}"
                    )));
                }
                row.iter_mut().for_each(|c| *c /= n);
            }
            Ok(Vector::Dense(x))
        }
        other => Ok(other.to_owned()),
    }
}

fn with_context(e: Error, id: u64, field: &str) -> Error {
    match e {
        Error::InvalidVector(m) => Error::InvalidVector(format!("record {id}, field '{field}': {m}")),
        other => other,
    }
}
