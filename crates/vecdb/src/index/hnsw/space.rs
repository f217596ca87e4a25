//! Distance "spaces": how the graph code reads a stored row and compares two rows.
//!
//! Internally every space ranks by an *internal* distance, smaller is closer, chosen to be
//! as cheap as possible: squared L2 for `l2`, `−a·b` for `cosine` and `dot`, differing bits
//! for `hamming`. [`crate::index::hnsw`] converts to user units only for the final results.
//! The `Sq8*` spaces compare 8-bit codes ([`super::sq8`]) with integer kernels and scale the
//! sum back to the same internal units.

use std::borrow::Cow;

use super::in_place::InPlaceRows;
use super::sq8::Sq8Codec;
use crate::code_distance;
use crate::distance;
use crate::vector::VectorRef;

/// Stored rows plus the internal distance between two rows.
pub(crate) trait Space: Sync {
    /// One row: `[f32]` or packed `[u8]` bits.
    type Row: ?Sized + ToOwned;
    /// Row `i` of the storage.
    fn row(&self, i: u32) -> &Self::Row;
    /// Internal distance between two rows.
    fn dist(&self, a: &Self::Row, b: &Self::Row) -> f32;
    /// Hint the CPU to start loading row `i` into cache.
    fn prefetch(&self, i: u32);
    /// The query as a row (borrowed, or encoded for code spaces), or `None` when its kind
    /// or dimension does not match.
    fn query<'q>(&self, v: VectorRef<'q>) -> Option<Cow<'q, Self::Row>>;
}

/// Cache lines of a float row prefetched ahead of a distance computation; the hardware
/// streamer follows on for the rest of a long row. (Measured on Fashion-MNIST, 49-line
/// rows: prefetching whole rows was 3–8% slower than 8 lines. Code rows are prefetched
/// whole, which made `HNSW16,SQ8` 35–45% faster there.)
const PREFETCH_LINES: usize = 8;

#[inline(always)]
fn prefetch_bytes(base: *const u8, offset: usize, len: usize) {
    distance::prefetch_lines(base.wrapping_add(offset), len.div_ceil(64).min(PREFETCH_LINES));
}

/// Dense rows ranked by squared Euclidean distance.
pub(crate) struct L2Space<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

/// Dense rows ranked by negated inner product (cosine on unit vectors, and dot).
pub(crate) struct IpSpace<'a> {
    pub data: &'a [f32],
    pub dim: usize,
}

/// Packed bit rows ranked by Hamming distance.
pub(crate) struct BitSpace<'a> {
    pub data: &'a [u8],
    pub bytes: usize,
}

/// A dense query of `dim` floats as a row, borrowed (`None` for another kind or dimension).
fn dense_query(v: VectorRef<'_>, dim: usize) -> Option<Cow<'_, [f32]>> {
    match v {
        VectorRef::Dense(x) if x.len() == dim => Some(Cow::Borrowed(x)),
        _ => None,
    }
}

macro_rules! dense_space {
    ($t:ident, |$a:ident, $b:ident| $d:expr) => {
        impl Space for $t<'_> {
            type Row = [f32];
            #[inline(always)]
            fn row(&self, i: u32) -> &[f32] {
                let s = i as usize * self.dim;
                &self.data[s..s + self.dim]
            }
            #[inline(always)]
            fn dist(&self, $a: &[f32], $b: &[f32]) -> f32 {
                $d
            }
            #[inline(always)]
            fn prefetch(&self, i: u32) {
                prefetch_bytes(self.data.as_ptr() as *const u8, i as usize * self.dim * 4, self.dim * 4)
            }
            fn query<'q>(&self, v: VectorRef<'q>) -> Option<Cow<'q, [f32]>> {
                dense_query(v, self.dim)
            }
        }
    };
}

dense_space!(L2Space, |a, b| distance::l2_sq(a, b));
dense_space!(IpSpace, |a, b| -distance::dot(a, b));

/// Dense rows read in place ([`InPlaceRows`]) ranked by squared Euclidean distance.
pub(crate) struct InPlaceL2Space<'a> {
    pub rows: &'a InPlaceRows,
    pub dim: usize,
}

/// Dense rows read in place ranked by negated inner product.
pub(crate) struct InPlaceIpSpace<'a> {
    pub rows: &'a InPlaceRows,
    pub dim: usize,
}

macro_rules! in_place_space {
    ($t:ident, |$a:ident, $b:ident| $d:expr) => {
        impl Space for $t<'_> {
            type Row = [f32];
            #[inline(always)]
            fn row(&self, i: u32) -> &[f32] {
                self.rows.row(i)
            }
            #[inline(always)]
            fn dist(&self, $a: &[f32], $b: &[f32]) -> f32 {
                $d
            }
            #[inline(always)]
            fn prefetch(&self, i: u32) {
                if let Some(p) = self.rows.fast_addr(i) {
                    prefetch_bytes(p as *const u8, 0, self.dim * 4)
                }
            }
            fn query<'q>(&self, v: VectorRef<'q>) -> Option<Cow<'q, [f32]>> {
                dense_query(v, self.dim)
            }
        }
    };
}

in_place_space!(InPlaceL2Space, |a, b| distance::l2_sq(a, b));
in_place_space!(InPlaceIpSpace, |a, b| -distance::dot(a, b));

impl Space for BitSpace<'_> {
    type Row = [u8];
    #[inline(always)]
    fn row(&self, i: u32) -> &[u8] {
        let s = i as usize * self.bytes;
        &self.data[s..s + self.bytes]
    }
    #[inline(always)]
    fn dist(&self, a: &[u8], b: &[u8]) -> f32 {
        distance::hamming(a, b) as f32
    }
    #[inline(always)]
    fn prefetch(&self, i: u32) {
        prefetch_bytes(self.data.as_ptr(), i as usize * self.bytes, self.bytes)
    }
    fn query<'q>(&self, v: VectorRef<'q>) -> Option<Cow<'q, [u8]>> {
        match v {
            VectorRef::Binary(x) if x.len() == self.bytes => Some(Cow::Borrowed(x)),
            _ => None,
        }
    }
}

/// 8-bit unsigned codes ranked by `step² · Σ (a − b)²` (squared L2).
pub(crate) struct Sq8L2Space<'a> {
    pub data: &'a [u8],
    pub dim: usize,
    pub codec: &'a Sq8Codec,
}

/// 8-bit signed codes ranked by `−step² · Σ a·b` (negated inner product).
pub(crate) struct Sq8IpSpace<'a> {
    pub data: &'a [u8],
    pub dim: usize,
    pub codec: &'a Sq8Codec,
}

/// 8-bit unsigned codes (non-negative data) ranked by `−step² · Σ a·b`.
pub(crate) struct Sq8UIpSpace<'a> {
    pub data: &'a [u8],
    pub dim: usize,
    pub codec: &'a Sq8Codec,
}

macro_rules! code_space {
    ($t:ident, |$a:ident, $b:ident| $d:expr) => {
        impl Space for $t<'_> {
            type Row = [u8];
            #[inline(always)]
            fn row(&self, i: u32) -> &[u8] {
                let s = i as usize * self.dim;
                &self.data[s..s + self.dim]
            }
            #[inline(always)]
            fn dist(&self, $a: &[u8], $b: &[u8]) -> f32 {
                self.codec.scale() * ($d) as f32
            }
            #[inline(always)]
            fn prefetch(&self, i: u32) {
                // Code rows are short (a byte per component): ask for all of them.
                let row = self.data.as_ptr().wrapping_add(i as usize * self.dim);
                distance::prefetch_lines(row, self.dim.div_ceil(64))
            }
            fn query<'q>(&self, v: VectorRef<'q>) -> Option<Cow<'q, [u8]>> {
                match v {
                    VectorRef::Dense(x) if x.len() == self.dim => {
                        let mut code = vec![0u8; self.dim];
                        self.codec.encode(x, &mut code);
                        Some(Cow::Owned(code))
                    }
                    _ => None,
                }
            }
        }
    };
}

code_space!(Sq8L2Space, |a, b| code_distance::l2_sq_u8(a, b));
code_space!(Sq8IpSpace, |a, b| -code_distance::dot_i8(a, b));
code_space!(Sq8UIpSpace, |a, b| -(code_distance::dot_u8(a, b) as f32));
