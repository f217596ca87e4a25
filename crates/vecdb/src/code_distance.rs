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
//! On x86-64 the unsigned kernels use AVX-512 VNNI where present (64 codes per `vpdpbusd`,
//! no widening), else AVX-512BW+VL (32 codes per step, widened to 16-bit lanes and summed with
//! `vpmaddwd`), else AVX2, else the scalar loop. Rows up to 33,000 codes cannot overflow the
//! 32-bit sums (`33,000 · 255² < 2³¹`).
//!
//! Per-dimension scalar quantizers (`IVF…,SQ8`, `SQ8`) compare a float query with codes
//! instead (asymmetric distance); their kernels widen the codes to f32 and use FMA:
//!
//! | function | value |
//! |---|---|
//! | [`sq_l2_sq`] | `Σ (a − s·c)²` (the query with the codec's minimum already subtracted) |
//! | [`sq_dot`] | `Σ a·c` (the query already multiplied by the codec's step) |
//!
//! AVX-512 (16 codes per FMA, 32 per step) or AVX2+FMA (8 per FMA), else scalar; the float
//! sums differ from the scalar references only by rounding.

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

/// `Σ (a_j − s_j·c_j)²`: squared L2 between a float row and an 8-bit code decoded with
/// per-dimension steps `s` (the codec's minimum is subtracted from `a` beforehand).
#[inline]
pub fn sq_l2_sq(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    debug_assert!(a.len() == c.len() && s.len() == c.len());
    let n = a.len().min(s.len()).min(c.len());
    imp::sq_l2_sq(&a[..n], &s[..n], &c[..n])
}

/// `Σ a_j·c_j`: inner product of a float row and an 8-bit code.
#[inline]
pub fn sq_dot(a: &[f32], c: &[u8]) -> f32 {
    debug_assert_eq!(a.len(), c.len());
    let n = a.len().min(c.len());
    imp::sq_dot(&a[..n], &c[..n])
}

/// Portable reference for [`sq_l2_sq`].
pub fn sq_l2_sq_scalar(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
    a.iter().zip(s).zip(c).map(|((&a, &s), &c)| (a - s * c as f32).powi(2)).sum()
}

/// Portable reference for [`sq_dot`].
pub fn sq_dot_scalar(a: &[f32], c: &[u8]) -> f32 {
    a.iter().zip(c).map(|(&a, &c)| a * c as f32).sum()
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
    pub(super) fn kernel_512<const L2: bool, const SIGNED: bool>(a: &[u8], b: &[u8]) -> i32 {
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

    /// Whether the AVX-512 level also has VNNI (`vpdpbusd`: 64 byte products per instruction).
    fn has_vnni() -> bool {
        static VNNI: OnceLock<bool> = OnceLock::new();
        *VNNI.get_or_init(|| is_x86_feature_detected!("avx512vnni"))
    }

    /// Unsigned codes with VNNI, 64 per step. `vpdpbusd` multiplies unsigned by signed bytes,
    /// so: `L2`: `d = |a − b|` (0..=255) and `d² = d·(d & 0x7f) − d·(d & 0x80 as i8)`;
    /// otherwise `a·b = a·(b − 128) + 128·Σa`, where `b − 128` is `b ^ 0x80` read as `i8` and
    /// `Σa` comes from `vpsadbw`. Half the instructions of the 16-bit widening kernel, and no
    /// widening shuffles (which all queue on one port).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
    pub(super) fn vnni_512<const L2: bool>(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len();
        let (mut acc, mut acc2) = (_mm512_setzero_si512(), _mm512_setzero_si512());
        let (flip, low7, zero) = (_mm512_set1_epi8(-128), _mm512_set1_epi8(0x7f), _mm512_setzero_si512());
        let mut i = 0;
        while i < n {
            let take = (n - i).min(64);
            let mask: __mmask64 = if take == 64 { u64::MAX } else { (1u64 << take) - 1 };
            // SAFETY: masked loads touch only indices < n, which both rows hold.
            let (x, y) = unsafe {
                (
                    _mm512_maskz_loadu_epi8(mask, a.as_ptr().add(i) as *const i8),
                    _mm512_maskz_loadu_epi8(mask, b.as_ptr().add(i) as *const i8),
                )
            };
            if L2 {
                let d = _mm512_sub_epi8(_mm512_max_epu8(x, y), _mm512_min_epu8(x, y));
                acc = _mm512_dpbusd_epi32(acc, d, _mm512_and_si512(d, low7));
                acc2 = _mm512_dpbusd_epi32(acc2, d, _mm512_andnot_si512(low7, d));
            } else {
                acc = _mm512_dpbusd_epi32(acc, x, _mm512_xor_si512(y, flip));
                acc2 = _mm512_add_epi64(acc2, _mm512_sad_epu8(x, zero));
            }
            i += 64;
        }
        if L2 {
            (_mm512_reduce_add_epi32(acc) as i64 - _mm512_reduce_add_epi32(acc2) as i64) as u32
        } else {
            (_mm512_reduce_add_epi32(acc) as i64 + 128 * _mm512_reduce_add_epi64(acc2)) as u32
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn kernel_256<const L2: bool, const SIGNED: bool>(a: &[u8], b: &[u8]) -> i32 {
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

    /// Whether the float kernels may use AVX2 + FMA (the AVX-512 level implies both).
    fn has_fma() -> bool {
        static FMA: OnceLock<bool> = OnceLock::new();
        *FMA.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }

    /// `L2`: `Σ (a − s·c)²`, else `Σ a·c` (`s` unused).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
    pub(super) fn sq_512<const L2: bool>(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
        #[target_feature(enable = "avx512f")]
        #[inline]
        fn term<const L2: bool>(a: __m512, s: __m512, c: __m512, acc: __m512) -> __m512 {
            if L2 {
                let d = _mm512_fnmadd_ps(s, c, a);
                _mm512_fmadd_ps(d, d, acc)
            } else {
                _mm512_fmadd_ps(a, c, acc)
            }
        }
        let n = a.len();
        let (pa, ps, pc) = (a.as_ptr(), s.as_ptr(), c.as_ptr());
        let (mut acc0, mut acc1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        // SAFETY: every full load reads indices < n, which all three rows hold; the masked
        // loads of the tail touch only indices < n.
        unsafe {
            while i + 32 <= n {
                let c0 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(i) as *const __m128i)));
                let c1 = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(pc.add(i + 16) as *const __m128i)));
                let (s0, s1) = if L2 {
                    (_mm512_loadu_ps(ps.add(i)), _mm512_loadu_ps(ps.add(i + 16)))
                } else {
                    (_mm512_setzero_ps(), _mm512_setzero_ps())
                };
                acc0 = term::<L2>(_mm512_loadu_ps(pa.add(i)), s0, c0, acc0);
                acc1 = term::<L2>(_mm512_loadu_ps(pa.add(i + 16)), s1, c1, acc1);
                i += 32;
            }
            while i < n {
                let take = (n - i).min(16);
                let m: __mmask16 = if take == 16 { u16::MAX } else { ((1u32 << take) - 1) as u16 };
                let cv = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, pc.add(i) as *const i8)));
                let sv = if L2 { _mm512_maskz_loadu_ps(m, ps.add(i)) } else { _mm512_setzero_ps() };
                acc0 = term::<L2>(_mm512_maskz_loadu_ps(m, pa.add(i)), sv, cv, acc0);
                i += 16;
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1))
    }

    /// The AVX2 + FMA version of [`sq_512`], 8 codes per FMA, scalar tail.
    #[target_feature(enable = "avx2,fma")]
    pub(super) fn sq_256<const L2: bool>(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
        #[target_feature(enable = "avx2,fma")]
        #[inline]
        fn term<const L2: bool>(a: __m256, s: __m256, c: __m256, acc: __m256) -> __m256 {
            if L2 {
                let d = _mm256_fnmadd_ps(s, c, a);
                _mm256_fmadd_ps(d, d, acc)
            } else {
                _mm256_fmadd_ps(a, c, acc)
            }
        }
        let n = a.len();
        let (pa, ps, pc) = (a.as_ptr(), s.as_ptr(), c.as_ptr());
        let (mut acc0, mut acc1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        // SAFETY: every load reads indices < n (i + 16 <= n), which all three rows hold.
        unsafe {
            while i + 16 <= n {
                let c0 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i) as *const __m128i)));
                let c1 = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(pc.add(i + 8) as *const __m128i)));
                let (s0, s1) = if L2 {
                    (_mm256_loadu_ps(ps.add(i)), _mm256_loadu_ps(ps.add(i + 8)))
                } else {
                    (_mm256_setzero_ps(), _mm256_setzero_ps())
                };
                acc0 = term::<L2>(_mm256_loadu_ps(pa.add(i)), s0, c0, acc0);
                acc1 = term::<L2>(_mm256_loadu_ps(pa.add(i + 8)), s1, c1, acc1);
                i += 16;
            }
        }
        let mut lanes = [0f32; 8];
        // SAFETY: `lanes` holds exactly 8 floats.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), _mm256_add_ps(acc0, acc1)) };
        let tail =
            if L2 { super::sq_l2_sq_scalar(&a[i..], &s[i..], &c[i..]) } else { super::sq_dot_scalar(&a[i..], &c[i..]) };
        lanes.iter().sum::<f32>() + tail
    }

    pub(super) fn sq_l2_sq(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
        match level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { sq_512::<true>(a, s, c) },
            Level::Avx2 | Level::Scalar if has_fma() => unsafe { sq_256::<true>(a, s, c) },
            _ => super::sq_l2_sq_scalar(a, s, c),
        }
    }

    pub(super) fn sq_dot(a: &[f32], c: &[u8]) -> f32 {
        match level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { sq_512::<false>(a, &[], c) },
            Level::Avx2 | Level::Scalar if has_fma() => unsafe { sq_256::<false>(a, &[], c) },
            _ => super::sq_dot_scalar(a, c),
        }
    }

    pub(super) fn l2_sq_u8(a: &[u8], b: &[u8]) -> u32 {
        match level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 if has_vnni() => unsafe { vnni_512::<true>(a, b) },
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
            Level::Avx512 if has_vnni() => unsafe { vnni_512::<false>(a, b) },
            Level::Avx512 => unsafe { kernel_512::<false, false>(a, b) as u32 },
            Level::Avx2 => unsafe { kernel_256::<false, false>(a, b) as u32 },
            Level::Scalar => super::dot_u8_scalar(a, b),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub(super) fn sq_l2_sq(a: &[f32], s: &[f32], c: &[u8]) -> f32 {
        super::sq_l2_sq_scalar(a, s, c)
    }
    pub(super) fn sq_dot(a: &[f32], c: &[u8]) -> f32 {
        super::sq_dot_scalar(a, c)
    }
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

    fn floats(n: usize, seed: u64) -> Vec<f32> {
        bytes(n, seed).into_iter().map(|b| b as f32 / 64.0 - 2.0).collect()
    }

    #[test]
    fn float_code_kernels_match_scalar_references_on_every_length() {
        for n in [0usize, 1, 7, 8, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 100, 784, 1280, 1283] {
            let (a, s, c) = (floats(n, 3 * n as u64 + 1), floats(n, 3 * n as u64 + 2), bytes(n, 3 * n as u64 + 3));
            let (l2, l2_ref) = (sq_l2_sq(&a, &s, &c), sq_l2_sq_scalar(&a, &s, &c));
            assert!((l2 - l2_ref).abs() <= 1e-5 * l2_ref.abs().max(1.0), "l2 n={n}: {l2} vs {l2_ref}");
            let (d, d_ref) = (sq_dot(&a, &c), sq_dot_scalar(&a, &c));
            let mag: f32 = a.iter().zip(&c).map(|(&x, &y)| (x * y as f32).abs()).sum();
            assert!((d - d_ref).abs() <= 1e-5 * mag.max(1.0), "dot n={n}: {d} vs {d_ref}");
        }
        // Exact on small integers, where no rounding happens in any order.
        let (a, s, c) = (vec![3.0f32; 100], vec![1.0f32; 100], vec![1u8; 100]);
        assert_eq!(sq_l2_sq(&a, &s, &c), 400.0);
        assert_eq!(sq_dot(&a, &c), 300.0);
    }

    /// The AVX2 kernels, which dispatch only picks on CPUs without AVX-512, run here too
    /// whenever this CPU has AVX2 (+FMA).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_match_scalar_references() {
        if !(is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")) {
            eprintln!("no AVX2+FMA on this CPU: nothing to check");
            return;
        }
        for n in [0usize, 1, 7, 8, 15, 16, 17, 33, 100, 784, 1283] {
            let (x, y) = (bytes(n, 5 * n as u64 + 1), bytes(n, 5 * n as u64 + 2));
            // SAFETY: AVX2 and FMA are present (checked above).
            unsafe {
                assert_eq!(imp::kernel_256::<true, false>(&x, &y) as u32, l2_sq_u8_scalar(&x, &y), "l2 n={n}");
                assert_eq!(imp::kernel_256::<false, true>(&x, &y), dot_i8_scalar(&x, &y), "dot_i8 n={n}");
                assert_eq!(imp::kernel_256::<false, false>(&x, &y) as u32, dot_u8_scalar(&x, &y), "dot_u8 n={n}");
            }
            let (a, s) = (floats(n, 5 * n as u64 + 3), floats(n, 5 * n as u64 + 4));
            // SAFETY: as above.
            let (l2, d) = unsafe { (imp::sq_256::<true>(&a, &s, &x), imp::sq_256::<false>(&a, &[], &x)) };
            let l2_ref = sq_l2_sq_scalar(&a, &s, &x);
            assert!((l2 - l2_ref).abs() <= 1e-5 * l2_ref.max(1.0), "sq l2 n={n}: {l2} vs {l2_ref}");
            let d_ref = sq_dot_scalar(&a, &x);
            let mag: f32 = a.iter().zip(&x).map(|(&p, &q)| (p * q as f32).abs()).sum();
            assert!((d - d_ref).abs() <= 1e-5 * mag.max(1.0), "sq dot n={n}: {d} vs {d_ref}");
        }
    }

    /// Both AVX-512 kernels (16-bit widening, and VNNI where dispatch prefers it) against the
    /// scalar references, whichever of them this CPU has.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_kernels_match_scalar_references() {
        if !(is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")) {
            eprintln!("no AVX-512BW on this CPU: nothing to check");
            return;
        }
        let vnni = is_x86_feature_detected!("avx512vnni");
        for n in [0usize, 1, 7, 31, 32, 33, 63, 64, 65, 127, 128, 129, 784, 1280, 1283, 4096] {
            let (x, y) = (bytes(n, 7 * n as u64 + 1), bytes(n, 7 * n as u64 + 2));
            let (l2, dot) = (l2_sq_u8_scalar(&x, &y), dot_u8_scalar(&x, &y));
            // SAFETY: AVX-512F/BW/VL (and VNNI where used) are present (checked above).
            unsafe {
                assert_eq!(imp::kernel_512::<true, false>(&x, &y) as u32, l2, "l2 n={n}");
                assert_eq!(imp::kernel_512::<false, false>(&x, &y) as u32, dot, "dot_u8 n={n}");
                if vnni {
                    assert_eq!(imp::vnni_512::<true>(&x, &y), l2, "vnni l2 n={n}");
                    assert_eq!(imp::vnni_512::<false>(&x, &y), dot, "vnni dot_u8 n={n}");
                }
            }
        }
        if vnni {
            let (lo, hi) = (vec![0u8; 4096], vec![255u8; 4096]);
            // SAFETY: as above.
            unsafe {
                assert_eq!(imp::vnni_512::<true>(&lo, &hi), 4096 * 255 * 255);
                assert_eq!(imp::vnni_512::<false>(&hi, &hi), 4096 * 255 * 255);
            }
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
