//! Distance metrics and element kinds.
//!
//! Every distance reported by this crate is "smaller is closer":
//!
//! | metric    | distance reported                    | range      |
//! |-----------|--------------------------------------|------------|
//! | `l2`      | Euclidean distance (not squared)     | `[0, ∞)`   |
//! | `cosine`  | `1 − cos(a, b)`                      | `[0, 2]`   |
//! | `dot`     | `−(a · b)` (score = `a · b`)         | `(−∞, ∞)`  |
//! | `hamming` | number of differing bits             | `[0, bits]`|
//!
//! For `cosine` the collection stores unit-normalized vectors, so indexes may
//! compute it as `1 − a · b`.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::distance;
use crate::error::Error;
use crate::vector::{Element, VectorRef};

/// How two vectors are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Euclidean distance.
    L2,
    /// Cosine distance `1 − cos`.
    Cosine,
    /// Negated inner product.
    Dot,
    /// Hamming distance on bit vectors.
    Hamming,
}

impl Metric {
    /// All metrics, for iteration in tests and help texts.
    pub const ALL: [Metric; 4] = [Metric::L2, Metric::Cosine, Metric::Dot, Metric::Hamming];

    /// The element kind this metric works on.
    pub fn element(self) -> Element {
        match self {
            Metric::Hamming => Element::Bit,
            _ => Element::F32,
        }
    }

    /// `d` clamped to this metric's range (see the module docs): float rounding can put an
    /// identical vector at a cosine distance of −1e-7 or an opposite one just past 2.
    pub fn clamp_distance(self, d: f32) -> f32 {
        match self {
            Metric::L2 => d.max(0.0),
            Metric::Cosine => d.clamp(0.0, 2.0),
            Metric::Dot | Metric::Hamming => d,
        }
    }

    /// Reference distance between two vectors of the same kind (see module docs).
    ///
    /// Returns an error when the kinds or lengths do not match the metric.
    pub fn distance(self, a: VectorRef<'_>, b: VectorRef<'_>) -> Result<f32, Error> {
        match (self, a, b) {
            (Metric::Hamming, VectorRef::Binary(x), VectorRef::Binary(y)) if x.len() == y.len() => {
                Ok(distance::hamming(x, y) as f32)
            }
            (Metric::L2, VectorRef::Dense(x), VectorRef::Dense(y)) if x.len() == y.len() => {
                Ok(distance::l2_sq(x, y).sqrt())
            }
            (Metric::Cosine, VectorRef::Dense(x), VectorRef::Dense(y)) if x.len() == y.len() => {
                Ok(1.0 - distance::dot(x, y))
            }
            (Metric::Dot, VectorRef::Dense(x), VectorRef::Dense(y)) if x.len() == y.len() => Ok(-distance::dot(x, y)),
            _ => Err(Error::InvalidVector(format!("vectors do not match metric {self} (kinds or lengths differ)"))),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::L2 => "l2",
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::Hamming => "hamming",
        })
    }
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.to_ascii_lowercase().as_str() {
            "l2" | "euclidean" => Ok(Metric::L2),
            "cosine" | "cos" => Ok(Metric::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Metric::Dot),
            "hamming" => Ok(Metric::Hamming),
            other => {
                Err(Error::InvalidArgument(format!("unknown metric '{other}' (expected l2, cosine, dot or hamming)")))
            }
        }
    }
}
