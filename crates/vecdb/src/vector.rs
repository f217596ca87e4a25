//! Owned and borrowed vectors, single and batched.

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What one vector component is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Element {
    /// Dense 32-bit floats; `dim` counts floats.
    F32,
    /// Packed bits (8 per byte, little-endian bit order); `dim` counts bits.
    Bit,
}

impl Element {
    /// Bytes one vector of `dim` components occupies.
    pub fn bytes_per_vector(self, dim: usize) -> usize {
        match self {
            // Saturating: a dimension read from a damaged file must not overflow (a size this
            // large then matches no file and is reported as corruption).
            Element::F32 => dim.saturating_mul(4),
            Element::Bit => dim.div_ceil(8),
        }
    }
}

/// An owned vector: dense floats or packed bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vector {
    /// Dense `f32` components.
    Dense(Vec<f32>),
    /// Packed bits, 8 per byte, least significant bit first.
    Binary(Vec<u8>),
}

/// A borrowed vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VectorRef<'a> {
    /// Dense `f32` components.
    Dense(&'a [f32]),
    /// Packed bits.
    Binary(&'a [u8]),
}

/// A borrowed batch of vectors stored row-major; the row length comes from the index's dimension.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VectorsRef<'a> {
    /// `n × dim` floats.
    Dense(&'a [f32]),
    /// `n × ceil(dim/8)` bytes.
    Binary(&'a [u8]),
}

impl Vector {
    /// Borrow this vector.
    pub fn as_ref(&self) -> VectorRef<'_> {
        match self {
            Vector::Dense(v) => VectorRef::Dense(v),
            Vector::Binary(v) => VectorRef::Binary(v),
        }
    }
    /// The element kind.
    pub fn element(&self) -> Element {
        match self {
            Vector::Dense(_) => Element::F32,
            Vector::Binary(_) => Element::Bit,
        }
    }
}

impl<'a> VectorRef<'a> {
    /// Copy into an owned vector.
    pub fn to_owned(self) -> Vector {
        match self {
            VectorRef::Dense(v) => Vector::Dense(v.to_vec()),
            VectorRef::Binary(v) => Vector::Binary(v.to_vec()),
        }
    }
    /// The element kind.
    pub fn element(self) -> Element {
        match self {
            VectorRef::Dense(_) => Element::F32,
            VectorRef::Binary(_) => Element::Bit,
        }
    }
    /// Check that this vector has `dim` components of `element` kind and (for floats) only finite values.
    pub fn validate(self, element: Element, dim: usize) -> Result<(), Error> {
        match (self, element) {
            (VectorRef::Dense(v), Element::F32) => {
                if v.len() != dim {
                    return Err(Error::DimensionMismatch { expected: dim, got: v.len() });
                }
                if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                    return Err(Error::InvalidVector(format!("component {i} is not finite ({})", v[i])));
                }
                Ok(())
            }
            (VectorRef::Binary(v), Element::Bit) => {
                let want = element.bytes_per_vector(dim);
                if v.len() != want {
                    return Err(Error::DimensionMismatch { expected: dim, got: v.len() * 8 });
                }
                Ok(())
            }
            (_, e) => Err(Error::InvalidVector(format!("expected a {e:?} vector"))),
        }
    }
}

impl<'a> VectorsRef<'a> {
    /// Number of rows given the row length in components (`dim`).
    pub fn rows(self, dim: usize) -> usize {
        match self {
            VectorsRef::Dense(d) => d.len() / dim.max(1),
            VectorsRef::Binary(d) => d.len() / Element::Bit.bytes_per_vector(dim).max(1),
        }
    }
    /// Number of rows of dimension `dim`, or an error when the data is not whole rows.
    pub fn whole_rows(self, dim: usize) -> crate::Result<usize> {
        let (len, per_row) = match self {
            VectorsRef::Dense(d) => (d.len(), dim),
            VectorsRef::Binary(d) => (d.len(), Element::Bit.bytes_per_vector(dim)),
        };
        if per_row == 0 || len % per_row != 0 {
            return Err(crate::Error::InvalidArgument(format!(
                "a batch of {len} values is not whole rows of {per_row} (dimension {dim})"
            )));
        }
        Ok(len / per_row)
    }
    /// Row `i`, given the row length in components (`dim`).
    pub fn row(self, dim: usize, i: usize) -> VectorRef<'a> {
        match self {
            VectorsRef::Dense(d) => VectorRef::Dense(&d[i * dim..(i + 1) * dim]),
            VectorsRef::Binary(d) => {
                let b = Element::Bit.bytes_per_vector(dim);
                VectorRef::Binary(&d[i * b..(i + 1) * b])
            }
        }
    }
}
