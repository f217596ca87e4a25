//! Integer distance kernels on 8-bit codes.
//!
//! Quantized indexes (HNSW over `SQ8` codes) compare rows of bytes instead of floats: a
//! quarter of the memory traffic, and the sums are exact integers, so every kernel returns
//! the same value as its scalar reference whatever the SIMD level.
//!
//! | function | codes | value |
//! |---|---|---|
//! | [`l2_sq_u8`] | unsigned (`0..=255`) | `Σ (a − b)²` |
//! | [`dot_i8`] | signed (`−127..=127`, stored as `u8` bit patterns) | `Σ a·b` |
//! | [`dot_u8`] | unsigned (`0..=255`) | `Σ a·b` |
//!
//! On x86-64 they use AVX-512BW+VL (32 codes per step, widened to 16-bit lanes and summed with
//! `vpmaddwd`), else AVX2, else the scalar loop. Rows up to 33,000 codes cannot overflow the
//! 32-bit sums (`33,000 · 255² < 2³¹`).

/// Squared Euclidean distance between two rows of unsigned 8-bit codes.
#[inline]
pub fn l2_sq_u8(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    imp::l2_sq_u8(&a[..n], &b[..n])
}

/// Inner product of two rows of signed 8-bit codes (`i8` values stored as their bit patterns).
#[inline]
pub fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    imp::dot_i8(&a[..n], &b[..n])
}

/// Inner product of two rows of unsigned 8-bit codes.
#[inline]
pub fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    imp::dot_u8(&a[..n], &b[..n])
}

/// Portable reference for [`l2_sq_u8`].
pub fn l2_sq_u8_scalar(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| (x as i32 - y as i32).pow(2) as u32).sum()
}

/// Portable reference for [`dot_i8`].
pub fn dot_i8_scalar(a: &[u8], b: &[u8]) -> i32 {
    a.iter().zip(b).map(|(&x, &y)| x as i8 as i32 * y as i8 as i32).sum()
}

/// Portable reference for [`dot_u8`].
pub fn dot_u8_scalar(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(&x, &y)| x as u32 * y as u32).sum()
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    #[derive(Clone, Copy, PartialEq)]
    enum Level {
        Avx512,
        Avx2,
        Scalar,
    }

    fn level() -> Level {
        static LEVEL: OnceLock<Level> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vl")
            {
                Level::Avx512
            } else if is_x86_feature_detected!("avx2") {
                Level::Avx2
            } else {
                Level::Scalar
            }
        })
    }

    /// `SIGNED`: sign-extend (i8 codes) instead of zero-extend; `L2`: square the difference
    /// instead of multiplying the two rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    fn kernel_512<const L2: bool, const SIGNED: bool>(a: &[u8], b: &[u8]) -> i32 {
        let n = a.len();
        let mut acc = _mm512_setzero_si512();
        let mut i = 0;
        while i < n {
            let take = (n - i).min(32);
            let mask: __mmask32 = if take == 32 { u32::MAX } else { (1u32 << take) - 1 };
            // SAFETY: masked loads touch only indices < n, which both rows hold.
            let (x, y) = unsafe {
                (
                    _mm256_maskz_loadu_epi8(mask, a.as_ptr().add(i) as *const i8),
                    _mm256_maskz_loadu_epi8(mask, b.as_ptr().add(i) as *const i8),
                )
            };
            let (x, y) = if SIGNED {
                (_mm512_cvtepi8_epi16(x), _mm512_cvtepi8_epi16(y))
            } else {
                (_mm512_cvtepu8_epi16(x), _mm512_cvtepu8_epi16(y))
            };
            let p = if L2 {
                let d = _mm512_sub_epi16(x, y);
                _mm512_madd_epi16(d, d)
            } else {
                _mm512_madd_epi16(x, y)
            };
            acc = _mm512_add_epi32(acc, p);
            i += 32;
        }
        _mm512_reduce_add_epi32(acc)
    }

    #[target_feature(enable = "avx2")]
    fn kernel_256<const L2: bool, const SIGNED: bool>(a: &[u8], b: &[u8]) -> i32 {
        let n = a.len();
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i + 16 <= n {
            // SAFETY: 16 bytes from i are in bounds (i + 16 <= n).
            let (x, y) = unsafe {
                (
                    _mm_loadu_si128(a.as_ptr().add(i) as *const __m128i),
                    _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i),
                )
            };
            let (x, y) = if SIGNED {
                (_mm256_cvtepi8_epi16(x), _mm256_cvtepi8_epi16(y))
            } else {
                (_mm256_cvtepu8_epi16(x), _mm256_cvtepu8_epi16(y))
            };
            let p = if L2 {
                let d = _mm256_sub_epi16(x, y);
                _mm256_madd_epi16(d, d)
            } else {
                _mm256_madd_epi16(x, y)
            };
            acc = _mm256_add_epi32(acc, p);
            i += 16;
        }
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` holds exactly 32 bytes.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
        let tail = if L2 {
            super::l2_sq_u8_scalar(&a[i..], &b[i..]) as i32
        } else if SIGNED {
            super::dot_i8_scalar(&a[i..], &b[i..])
        } else {
            super::dot_u8_scalar(&a[i..], &b[i..]) as i32
        };
        lanes.iter().sum::<i32>() + tail
    }

    pub(super) fn l2_sq_u8(a: &[u8], b: &[u8]) -> u32 {
        match level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { kernel_512::<true, false>(a, b) as u32 },
            Level::Avx2 => unsafe { kernel_256::<true, false>(a, b) as u32 },
            Level::Scalar => super::l2_sq_u8_scalar(a, b),
        }
    }

    pub(super) fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
        match level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { kernel_512::<false, true>(a, b) },
            Level::Avx2 => unsafe { kernel_256::<false, true>(a, b) },
            Level::Scalar => super::dot_i8_scalar(a, b),
        }
    }

    pub(super) fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
        // 255 · 255 · 2 fits the signed 32-bit lanes of `vpmaddwd`.
        match level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { kernel_512::<false, false>(a, b) as u32 },
            Level::Avx2 => unsafe { kernel_256::<false, false>(a, b) as u32 },
            Level::Scalar => super::dot_u8_scalar(a, b),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub(super) fn l2_sq_u8(a: &[u8], b: &[u8]) -> u32 {
        super::l2_sq_u8_scalar(a, b)
    }
    pub(super) fn dot_i8(a: &[u8], b: &[u8]) -> i32 {
        super::dot_i8_scalar(a, b)
    }
    pub(super) fn dot_u8(a: &[u8], b: &[u8]) -> u32 {
        super::dot_u8_scalar(a, b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 56) as u8
            })
            .collect()
    }

    #[test]
    fn kernels_equal_scalar_references_on_every_length() {
        for n in [0usize, 1, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 784, 1280, 1283] {
            let (a, b) = (bytes(n, 2 * n as u64 + 1), bytes(n, 2 * n as u64 + 2));
            assert_eq!(l2_sq_u8(&a, &b), l2_sq_u8_scalar(&a, &b), "l2 n={n}");
            assert_eq!(dot_i8(&a, &b), dot_i8_scalar(&a, &b), "dot n={n}");
            assert_eq!(dot_u8(&a, &b), dot_u8_scalar(&a, &b), "dot_u8 n={n}");
        }
    }

    #[test]
    fn extremes_do_not_overflow() {
        let (lo, hi) = (vec![0u8; 4096], vec![255u8; 4096]);
        assert_eq!(l2_sq_u8(&lo, &hi), 4096 * 255 * 255);
        assert_eq!(dot_u8(&hi, &hi), 4096 * 255 * 255);
        let (p, m) = (vec![127u8; 4096], vec![0x81u8; 4096]); // 127 and −127
        assert_eq!(dot_i8(&p, &m), -4096 * 127 * 127);
        assert_eq!(dot_i8(&m, &m), 4096 * 127 * 127);
    }
}
