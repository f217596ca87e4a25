//! Distance kernels on raw slices.
//!
//! These are the hot loops of every index. The signatures are stable; the bodies
//! dispatch to SIMD implementations at run time:
//!
//! | target   | f32 L2 / dot                         | Hamming                                   |
//! |----------|--------------------------------------|-------------------------------------------|
//! | x86-64   | AVX-512F, else AVX2+FMA, else scalar | AVX-512 VPOPCNTDQ (≥ 64 bytes), else `popcnt` on 64-bit words |
//! | aarch64  | NEON/SVE through `simsimd`           | NEON/SVE through `simsimd`                |
//! | other    | scalar                               | scalar                                    |
//!
//! The `*_many` functions compute one query against many rows stored contiguously
//! (row-major); they use exactly the same arithmetic per row as the single-pair
//! functions, so `l2_sq_many(q, rows, out)[i] == l2_sq(q, row_i)` bit for bit.
//! Exact indexes rely on this to agree with [`crate::metric::Metric::distance`].
//!
//! Slices of different lengths are compared on their common prefix (like `zip`).

/// Squared Euclidean distance.
#[inline]
pub fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    imp::l2_sq(&a[..n], &b[..n])
}

/// Inner product.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    imp::dot(&a[..n], &b[..n])
}

/// Number of differing bits.
#[inline]
pub fn hamming(a: &[u8], b: &[u8]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    imp::hamming(&a[..n], &b[..n])
}

/// Hint the CPU to start loading `lines` cache lines (64 bytes each) from `ptr` on.
/// A hint only: it never faults, whatever the address.
#[inline(always)]
pub fn prefetch_lines(ptr: *const u8, lines: usize) {
    #[cfg(target_arch = "x86_64")]
    for l in 0..lines {
        // SAFETY: prefetching never faults, even on an invalid address.
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                ptr.wrapping_add(l * 64) as *const i8
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, lines);
}

/// Scale `v` to unit L2 norm in place; a zero vector is left as it is.
pub fn normalize(v: &mut [f32]) {
    let n = dot(v, v).sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Squared Euclidean distance from `query` to every row of `rows` (row-major,
/// `query.len()` floats per row), written to `out` (one value per row).
///
/// Computes `min(out.len(), rows.len() / query.len())` rows; each value equals
/// [`l2_sq`] of that row exactly.
pub fn l2_sq_many(query: &[f32], rows: &[f32], out: &mut [f32]) {
    if query.is_empty() {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let n = out.len().min(rows.len() / query.len());
    imp::l2_sq_many(query, &rows[..n * query.len()], &mut out[..n]);
}

/// Inner product of `query` with every row of `rows` (row-major, `query.len()`
/// floats per row), written to `out`; each value equals [`dot`] of that row exactly.
pub fn dot_many(query: &[f32], rows: &[f32], out: &mut [f32]) {
    if query.is_empty() {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let n = out.len().min(rows.len() / query.len());
    imp::dot_many(query, &rows[..n * query.len()], &mut out[..n]);
}

/// Hamming distance from `query` to every row of `rows` (row-major,
/// `query.len()` bytes per row), written to `out` as `f32` bit counts.
pub fn hamming_many(query: &[u8], rows: &[u8], out: &mut [f32]) {
    if query.is_empty() {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    let n = out.len().min(rows.len() / query.len());
    imp::hamming_many(query, &rows[..n * query.len()], &mut out[..n]);
}

/// Positions `j` of `ip` whose ranking value — `norms[j] − 2·ip[j]` when `norms`
/// is given (L2), `−ip[j]` otherwise — is *not* greater than `bound` (NaN values
/// included), appended in increasing order to `out` after clearing it.
///
/// Used by the batched exact search to skip, with one SIMD compare, the outputs
/// of a matrix-multiply tile that cannot enter a query's top-k. The values are
/// computed with the same (unfused) arithmetic as the scalar expressions.
pub fn gemm_candidates(norms: Option<&[f32]>, ip: &[f32], bound: f32, out: &mut Vec<u32>) {
    out.clear();
    if let Some(n) = norms {
        debug_assert!(n.len() >= ip.len());
    }
    #[cfg(target_arch = "x86_64")]
    if imp::gemm_candidates(norms, ip, bound, out) {
        return;
    }
    gemm_candidates_scalar(norms, ip, bound, out);
}

/// Portable [`gemm_candidates`].
fn gemm_candidates_scalar(norms: Option<&[f32]>, ip: &[f32], bound: f32, out: &mut Vec<u32>) {
    match norms {
        Some(n) => {
            for (j, (&x, &p)) in n.iter().zip(ip).enumerate() {
                if (x - 2.0 * p).partial_cmp(&bound) != Some(std::cmp::Ordering::Greater) {
                    out.push(j as u32);
                }
            }
        }
        None => {
            for (j, &p) in ip.iter().enumerate() {
                if (0.0 - p).partial_cmp(&bound) != Some(std::cmp::Ordering::Greater) {
                    out.push(j as u32);
                }
            }
        }
    }
}

/// Name of the kernel family selected on this CPU, e.g. `"avx512"`, for reports.
pub fn simd_level() -> &'static str {
    imp::level()
}

/// Portable reference: squared Euclidean distance, summed left to right.
pub fn l2_sq_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Portable reference: inner product, summed left to right.
pub fn dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Portable reference: number of differing bits.
pub fn hamming_scalar(a: &[u8], b: &[u8]) -> u32 {
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Hamming distance over 64-bit words; compiled inside `popcnt` contexts.
#[inline(always)]
fn hamming_words(a: &[u8], b: &[u8]) -> u32 {
    let mut total = 0u32;
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        let x = u64::from_le_bytes(x.try_into().unwrap_or([0; 8]));
        let y = u64::from_le_bytes(y.try_into().unwrap_or([0; 8]));
        total += (x ^ y).count_ones();
    }
    for (x, y) in ra.iter().zip(rb) {
        total += (x ^ y).count_ones();
    }
    total
}

#[cfg(target_arch = "x86_64")]
mod imp {
    //! x86-64 kernels: AVX-512F, AVX2+FMA, scalar; selected once per call.
    use std::arch::x86_64::*;
    use std::sync::OnceLock;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    enum Level {
        Avx512,
        Avx2,
        Scalar,
    }

    fn float_level() -> Level {
        static L: OnceLock<Level> = OnceLock::new();
        *L.get_or_init(|| {
            if std::env::var_os("VECDB_NO_SIMD").is_some() {
                Level::Scalar
            } else if is_x86_feature_detected!("avx512f") {
                Level::Avx512
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                Level::Avx2
            } else {
                Level::Scalar
            }
        })
    }

    fn has_popcnt() -> bool {
        static P: OnceLock<bool> = OnceLock::new();
        *P.get_or_init(|| is_x86_feature_detected!("popcnt"))
    }

    fn has_vpopcnt() -> bool {
        static P: OnceLock<bool> = OnceLock::new();
        *P.get_or_init(|| {
            std::env::var_os("VECDB_NO_SIMD").is_none()
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vpopcntdq")
        })
    }

    pub(super) fn level() -> &'static str {
        match float_level() {
            Level::Avx512 => "avx512",
            Level::Avx2 => "avx2+fma",
            Level::Scalar => "scalar",
        }
    }

    // ---------- AVX-512 ----------

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn l2_sq_512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut acc2 = _mm512_setzero_ps();
        let mut acc3 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads indices < n, which both slices hold.
        unsafe {
            while i + 64 <= n {
                let d0 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                let d1 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)));
                let d2 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 32)), _mm512_loadu_ps(pb.add(i + 32)));
                let d3 = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i + 48)), _mm512_loadu_ps(pb.add(i + 48)));
                acc0 = _mm512_fmadd_ps(d0, d0, acc0);
                acc1 = _mm512_fmadd_ps(d1, d1, acc1);
                acc2 = _mm512_fmadd_ps(d2, d2, acc2);
                acc3 = _mm512_fmadd_ps(d3, d3, acc3);
                i += 64;
            }
            while i + 16 <= n {
                let d = _mm512_sub_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)));
                acc0 = _mm512_fmadd_ps(d, d, acc0);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
                let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)));
                acc1 = _mm512_fmadd_ps(d, d, acc1);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)))
    }

    #[target_feature(enable = "avx512f")]
    #[inline]
    fn dot_512(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm512_setzero_ps();
        let mut acc1 = _mm512_setzero_ps();
        let mut acc2 = _mm512_setzero_ps();
        let mut acc3 = _mm512_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads indices < n, which both slices hold.
        unsafe {
            while i + 64 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 16)), _mm512_loadu_ps(pb.add(i + 16)), acc1);
                acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 32)), _mm512_loadu_ps(pb.add(i + 32)), acc2);
                acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i + 48)), _mm512_loadu_ps(pb.add(i + 48)), acc3);
                i += 64;
            }
            while i + 16 <= n {
                acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(pa.add(i)), _mm512_loadu_ps(pb.add(i)), acc0);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
                acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, pa.add(i)), _mm512_maskz_loadu_ps(m, pb.add(i)), acc1);
            }
        }
        _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)))
    }

    /// Two rows at once, sharing the query loads. Each row goes through exactly the
    /// operations of [`l2_sq_512`] / [`dot_512`] (same accumulators, same order),
    /// so the results are bitwise identical to the single-row kernels.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn pair_512<const L2: bool>(q: &[f32], r0: &[f32], r1: &[f32]) -> (f32, f32) {
        let n = q.len().min(r0.len()).min(r1.len());
        let (pq, p0, p1) = (q.as_ptr(), r0.as_ptr(), r1.as_ptr());
        let z = _mm512_setzero_ps();
        let (mut a0, mut a1, mut a2, mut a3) = (z, z, z, z);
        let (mut b0, mut b1, mut b2, mut b3) = (z, z, z, z);
        #[inline(always)]
        fn step<const L2: bool>(x: __m512, y: __m512, acc: __m512) -> __m512 {
            // SAFETY: only called inside avx512f functions.
            unsafe {
                if L2 {
                    let d = _mm512_sub_ps(x, y);
                    _mm512_fmadd_ps(d, d, acc)
                } else {
                    _mm512_fmadd_ps(x, y, acc)
                }
            }
        }
        let mut i = 0;
        // SAFETY: every load reads indices < n, which all three slices hold.
        unsafe {
            while i + 64 <= n {
                let q0 = _mm512_loadu_ps(pq.add(i));
                let q1 = _mm512_loadu_ps(pq.add(i + 16));
                let q2 = _mm512_loadu_ps(pq.add(i + 32));
                let q3 = _mm512_loadu_ps(pq.add(i + 48));
                a0 = step::<L2>(q0, _mm512_loadu_ps(p0.add(i)), a0);
                a1 = step::<L2>(q1, _mm512_loadu_ps(p0.add(i + 16)), a1);
                a2 = step::<L2>(q2, _mm512_loadu_ps(p0.add(i + 32)), a2);
                a3 = step::<L2>(q3, _mm512_loadu_ps(p0.add(i + 48)), a3);
                b0 = step::<L2>(q0, _mm512_loadu_ps(p1.add(i)), b0);
                b1 = step::<L2>(q1, _mm512_loadu_ps(p1.add(i + 16)), b1);
                b2 = step::<L2>(q2, _mm512_loadu_ps(p1.add(i + 32)), b2);
                b3 = step::<L2>(q3, _mm512_loadu_ps(p1.add(i + 48)), b3);
                i += 64;
            }
            while i + 16 <= n {
                let qv = _mm512_loadu_ps(pq.add(i));
                a0 = step::<L2>(qv, _mm512_loadu_ps(p0.add(i)), a0);
                b0 = step::<L2>(qv, _mm512_loadu_ps(p1.add(i)), b0);
                i += 16;
            }
            if i < n {
                let m: __mmask16 = ((1u32 << (n - i)) - 1) as u16;
                let qv = _mm512_maskz_loadu_ps(m, pq.add(i));
                a1 = step::<L2>(qv, _mm512_maskz_loadu_ps(m, p0.add(i)), a1);
                b1 = step::<L2>(qv, _mm512_maskz_loadu_ps(m, p1.add(i)), b1);
            }
        }
        (
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))),
            _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(b0, b1), _mm512_add_ps(b2, b3))),
        )
    }

    #[target_feature(enable = "avx512f")]
    fn many_512<const L2: bool>(q: &[f32], rows: &[f32], out: &mut [f32]) {
        let d = q.len();
        let mut pairs = out.chunks_exact_mut(2);
        let mut rp = rows.chunks_exact(2 * d);
        for (o, r) in (&mut pairs).zip(&mut rp) {
            let (x, y) = pair_512::<L2>(q, &r[..d], &r[d..]);
            o[0] = x;
            o[1] = y;
        }
        if let ([o], r) = (pairs.into_remainder(), rp.remainder()) {
            *o = if L2 { l2_sq_512(q, &r[..d]) } else { dot_512(q, &r[..d]) };
        }
    }

    #[target_feature(enable = "avx512f")]
    fn l2_sq_many_512(q: &[f32], rows: &[f32], out: &mut [f32]) {
        many_512::<true>(q, rows, out)
    }

    #[target_feature(enable = "avx512f")]
    fn dot_many_512(q: &[f32], rows: &[f32], out: &mut [f32]) {
        many_512::<false>(q, rows, out)
    }

    // ---------- AVX2 + FMA ----------

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn hsum256(v: __m256) -> f32 {
        let lo = _mm256_castps256_ps128(v);
        let hi = _mm256_extractf128_ps::<1>(v);
        let s = _mm_add_ps(lo, hi);
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
        _mm_cvtss_f32(s)
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn l2_sq_256(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads indices < n, which both slices hold.
        unsafe {
            while i + 32 <= n {
                let d0 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                let d1 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)));
                let d2 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)));
                let d3 = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)));
                acc0 = _mm256_fmadd_ps(d0, d0, acc0);
                acc1 = _mm256_fmadd_ps(d1, d1, acc1);
                acc2 = _mm256_fmadd_ps(d2, d2, acc2);
                acc3 = _mm256_fmadd_ps(d3, d3, acc3);
                i += 32;
            }
            while i + 8 <= n {
                let d = _mm256_sub_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)));
                acc0 = _mm256_fmadd_ps(d, d, acc0);
                i += 8;
            }
        }
        let mut s = hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
        while i < n {
            let d = a[i] - b[i];
            s += d * d;
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    #[inline]
    fn dot_256(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc0 = _mm256_setzero_ps();
        let mut acc1 = _mm256_setzero_ps();
        let mut acc2 = _mm256_setzero_ps();
        let mut acc3 = _mm256_setzero_ps();
        let mut i = 0;
        // SAFETY: every load reads indices < n, which both slices hold.
        unsafe {
            while i + 32 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 8)), _mm256_loadu_ps(pb.add(i + 8)), acc1);
                acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 16)), _mm256_loadu_ps(pb.add(i + 16)), acc2);
                acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i + 24)), _mm256_loadu_ps(pb.add(i + 24)), acc3);
                i += 32;
            }
            while i + 8 <= n {
                acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), acc0);
                i += 8;
            }
        }
        let mut s = hsum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
        while i < n {
            s += a[i] * b[i];
            i += 1;
        }
        s
    }

    #[target_feature(enable = "avx2,fma")]
    fn l2_sq_many_256(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = l2_sq_256(q, r);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    fn dot_many_256(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = dot_256(q, r);
        }
    }

    // ---------- Hamming ----------

    #[target_feature(enable = "popcnt")]
    #[inline]
    fn hamming_popcnt(a: &[u8], b: &[u8]) -> u32 {
        super::hamming_words(a, b)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,popcnt")]
    #[inline]
    fn hamming_512(a: &[u8], b: &[u8]) -> u32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = _mm512_setzero_si512();
        let mut i = 0;
        // SAFETY: every load reads indices < n, which both slices hold.
        unsafe {
            while i + 64 <= n {
                let x = _mm512_xor_si512(
                    _mm512_loadu_si512(pa.add(i) as *const __m512i),
                    _mm512_loadu_si512(pb.add(i) as *const __m512i),
                );
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(x));
                i += 64;
            }
        }
        _mm512_reduce_add_epi64(acc) as u32 + super::hamming_words(&a[i..n], &b[i..n])
    }

    #[target_feature(enable = "popcnt")]
    fn hamming_many_popcnt(q: &[u8], rows: &[u8], out: &mut [f32]) {
        if q.len() == 8 {
            // 64-bit hashes (pHash, dHash): one popcount per row.
            let qw = u64::from_le_bytes(q.try_into().unwrap_or([0; 8]));
            for (o, r) in out.iter_mut().zip(rows.chunks_exact(8)) {
                let w = u64::from_le_bytes(r.try_into().unwrap_or([0; 8]));
                *o = (qw ^ w).count_ones() as f32;
            }
        } else {
            for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
                *o = super::hamming_words(q, r) as f32;
            }
        }
    }

    /// Rows whose length is a multiple of 64 bytes go eight at a time: one accumulator per
    /// row, then one transposing reduction for the eight sums instead of eight horizontal ones.
    #[target_feature(enable = "avx512f,avx512bw,avx512vpopcntdq,popcnt")]
    fn hamming_many_512(q: &[u8], rows: &[u8], out: &mut [f32]) {
        let len = q.len();
        let mut done = 0;
        if len.is_multiple_of(64) {
            let chunks = len / 64;
            let n = out.len().min(rows.len() / len);
            while done + 8 <= n {
                let mut acc = [_mm512_setzero_si512(); 8];
                // SAFETY: chunk c of row done + r ends at byte (done + r)·len + (c + 1)·64
                // ≤ n·len ≤ rows.len(), and q holds chunks·64 bytes.
                unsafe {
                    for c in 0..chunks {
                        let qv = _mm512_loadu_si512(q.as_ptr().add(c * 64) as *const _);
                        for (r, a) in acc.iter_mut().enumerate() {
                            let rv = _mm512_loadu_si512(rows.as_ptr().add((done + r) * len + c * 64) as *const _);
                            *a = _mm512_add_epi64(*a, _mm512_popcnt_epi64(_mm512_xor_si512(qv, rv)));
                        }
                    }
                }
                // Pairs of rows per 128-bit lane, then lanes folded twice: row r's sum lands in lane r.
                let pair =
                    |a: __m512i, b: __m512i| _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
                let fold = |a: __m512i, b: __m512i| {
                    _mm512_add_epi64(
                        _mm512_shuffle_i64x2::<0b10_00_10_00>(a, b),
                        _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b),
                    )
                };
                let t = [pair(acc[0], acc[1]), pair(acc[2], acc[3]), pair(acc[4], acc[5]), pair(acc[6], acc[7])];
                let sums = fold(fold(t[0], t[1]), fold(t[2], t[3]));
                let f = _mm256_cvtepi32_ps(_mm512_cvtepi64_epi32(sums));
                // SAFETY: done + 8 ≤ out.len().
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(done), f) };
                done += 8;
            }
        }
        for (o, r) in out[done..].iter_mut().zip(rows[done * len..].chunks_exact(len)) {
            *o = hamming_512(q, r) as f32;
        }
    }

    // ---------- dispatch ----------

    /// AVX-512 [`super::gemm_candidates`].
    #[target_feature(enable = "avx512f")]
    fn gemm_candidates_512(norms: Option<&[f32]>, ip: &[f32], bound: f32, out: &mut Vec<u32>) {
        let w = ip.len();
        let b = _mm512_set1_ps(bound);
        let two = _mm512_set1_ps(2.0);
        let mut j = 0;
        while j < w {
            let m: __mmask16 = if j + 16 <= w { 0xffff } else { ((1u32 << (w - j)) - 1) as u16 };
            // SAFETY: masked loads read only indices < w, which `ip` (and `norms`) hold.
            let d = unsafe {
                let p = _mm512_maskz_loadu_ps(m, ip.as_ptr().add(j));
                match norms {
                    Some(n) => _mm512_sub_ps(_mm512_maskz_loadu_ps(m, n.as_ptr().add(j)), _mm512_mul_ps(two, p)),
                    None => _mm512_sub_ps(_mm512_setzero_ps(), p),
                }
            };
            // Not greater than the bound, or unordered (NaN).
            let mut hit = (_mm512_cmp_ps_mask::<_CMP_NGT_UQ>(d, b) & m) as u32;
            while hit != 0 {
                out.push((j + hit.trailing_zeros() as usize) as u32);
                hit &= hit - 1;
            }
            j += 16;
        }
    }

    /// [`super::gemm_candidates`] with a SIMD kernel; `false` when none applies.
    pub(super) fn gemm_candidates(norms: Option<&[f32]>, ip: &[f32], bound: f32, out: &mut Vec<u32>) -> bool {
        if float_level() != Level::Avx512 || norms.is_some_and(|n| n.len() < ip.len()) {
            return false;
        }
        // SAFETY: the CPU supports the features (checked at run time).
        unsafe { gemm_candidates_512(norms, ip, bound, out) };
        true
    }

    pub(super) fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
        match float_level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { l2_sq_512(a, b) },
            Level::Avx2 => unsafe { l2_sq_256(a, b) },
            Level::Scalar => super::l2_sq_scalar(a, b),
        }
    }

    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        match float_level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { dot_512(a, b) },
            Level::Avx2 => unsafe { dot_256(a, b) },
            Level::Scalar => super::dot_scalar(a, b),
        }
    }

    pub(super) fn hamming(a: &[u8], b: &[u8]) -> u32 {
        if a.len() >= 64 && has_vpopcnt() {
            // SAFETY: the CPU supports the features (checked at run time).
            unsafe { hamming_512(a, b) }
        } else if has_popcnt() {
            // SAFETY: as above.
            unsafe { hamming_popcnt(a, b) }
        } else {
            super::hamming_words(a, b)
        }
    }

    pub(super) fn l2_sq_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
        match float_level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { l2_sq_many_512(q, rows, out) },
            Level::Avx2 => unsafe { l2_sq_many_256(q, rows, out) },
            Level::Scalar => {
                for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
                    *o = super::l2_sq_scalar(q, r);
                }
            }
        }
    }

    pub(super) fn dot_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
        match float_level() {
            // SAFETY: the CPU supports the features (checked at run time).
            Level::Avx512 => unsafe { dot_many_512(q, rows, out) },
            Level::Avx2 => unsafe { dot_many_256(q, rows, out) },
            Level::Scalar => {
                for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
                    *o = super::dot_scalar(q, r);
                }
            }
        }
    }

    pub(super) fn hamming_many(q: &[u8], rows: &[u8], out: &mut [f32]) {
        if q.len() >= 64 && has_vpopcnt() {
            // SAFETY: the CPU supports the features (checked at run time).
            unsafe { hamming_many_512(q, rows, out) }
        } else if has_popcnt() {
            // SAFETY: as above.
            unsafe { hamming_many_popcnt(q, rows, out) }
        } else {
            for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
                *o = super::hamming_words(q, r) as f32;
            }
        }
    }
}

#[cfg(target_arch = "aarch64")]
mod imp {
    //! aarch64 kernels: NEON/SVE through `simsimd` (which dispatches at run time).
    use simsimd::{BinarySimilarity, SpatialSimilarity};

    pub(super) fn level() -> &'static str {
        "simsimd (neon/sve)"
    }
    pub(super) fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
        <f32 as SpatialSimilarity>::sqeuclidean(a, b).map(|d| d as f32).unwrap_or_else(|| super::l2_sq_scalar(a, b))
    }
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        <f32 as SpatialSimilarity>::dot(a, b).map(|d| d as f32).unwrap_or_else(|| super::dot_scalar(a, b))
    }
    pub(super) fn hamming(a: &[u8], b: &[u8]) -> u32 {
        <u8 as BinarySimilarity>::hamming(a, b).map(|d| d as u32).unwrap_or_else(|| super::hamming_words(a, b))
    }
    pub(super) fn l2_sq_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = l2_sq(q, r);
        }
    }
    pub(super) fn dot_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = dot(q, r);
        }
    }
    pub(super) fn hamming_many(q: &[u8], rows: &[u8], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = hamming(q, r) as f32;
        }
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    //! Portable scalar kernels.
    pub(super) fn level() -> &'static str {
        "scalar"
    }
    pub(super) fn l2_sq(a: &[f32], b: &[f32]) -> f32 {
        super::l2_sq_scalar(a, b)
    }
    pub(super) fn dot(a: &[f32], b: &[f32]) -> f32 {
        super::dot_scalar(a, b)
    }
    pub(super) fn hamming(a: &[u8], b: &[u8]) -> u32 {
        super::hamming_words(a, b)
    }
    pub(super) fn l2_sq_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = l2_sq(q, r);
        }
    }
    pub(super) fn dot_many(q: &[f32], rows: &[f32], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = dot(q, r);
        }
    }
    pub(super) fn hamming_many(q: &[u8], rows: &[u8], out: &mut [f32]) {
        for (o, r) in out.iter_mut().zip(rows.chunks_exact(q.len())) {
            *o = hamming(q, r) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random floats in [-1, 1) (xorshift), no extra deps.
    fn floats(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        floats(n, seed).iter().map(|x| ((x + 1.0) * 127.9) as u8).collect()
    }

    fn close(a: f32, b: f32, scale: f32) -> bool {
        (a - b).abs() <= 1e-5 * scale.max(1.0)
    }

    const LENS: [usize; 18] = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 129, 784, 1283];

    #[test]
    fn gemm_candidates_match_scalar() {
        for (k, &n) in LENS.iter().enumerate() {
            let mut ip = floats(n, 3 * k as u64 + 1);
            let norms: Vec<f32> = floats(n, 3 * k as u64 + 2).iter().map(|x| x.abs()).collect();
            if n > 3 {
                ip[n / 2] = f32::NAN;
            }
            for bound in [-1.0f32, 0.0, 0.5, 2.0, f32::INFINITY, f32::NAN] {
                for nm in [Some(&norms[..]), None] {
                    let (mut fast, mut slow) = (Vec::new(), Vec::new());
                    gemm_candidates(nm, &ip, bound, &mut fast);
                    gemm_candidates_scalar(nm, &ip, bound, &mut slow);
                    assert_eq!(fast, slow, "n={n} bound={bound} norms={}", nm.is_some());
                }
            }
        }
    }

    #[test]
    fn l2_and_dot_match_scalar_on_odd_lengths() {
        for (k, &n) in LENS.iter().enumerate() {
            let a = floats(n, 2 * k as u64 + 1);
            let b = floats(n, 2 * k as u64 + 2);
            let (l, ls) = (l2_sq(&a, &b), l2_sq_scalar(&a, &b));
            assert!(close(l, ls, n as f32), "l2 n={n}: {l} vs {ls}");
            let (d, ds) = (dot(&a, &b), dot_scalar(&a, &b));
            assert!(close(d, ds, n as f32), "dot n={n}: {d} vs {ds}");
        }
    }

    #[test]
    fn integer_inputs_are_exact() {
        // Small integers: every partial sum is exactly representable, so any order gives the same result.
        for &n in &LENS {
            let a: Vec<f32> = (0..n).map(|i| ((i * 7 + 3) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 5 + 1) % 13) as f32 - 6.0).collect();
            assert_eq!(l2_sq(&a, &b), l2_sq_scalar(&a, &b), "n={n}");
            assert_eq!(dot(&a, &b), dot_scalar(&a, &b), "n={n}");
        }
    }

    #[test]
    fn hamming_matches_scalar_on_odd_lengths() {
        for (k, &n) in LENS.iter().enumerate() {
            let a = bytes(n, 100 + k as u64);
            let b = bytes(n, 200 + k as u64);
            assert_eq!(hamming(&a, &b), hamming_scalar(&a, &b), "n={n}");
        }
        let ones = vec![0xFFu8; 200];
        let zeros = vec![0u8; 200];
        assert_eq!(hamming(&ones, &zeros), 1600);
    }

    #[test]
    fn many_kernels_equal_single_kernels_bitwise() {
        for &dim in &[1usize, 5, 16, 17, 100, 784] {
            let q = floats(dim, dim as u64);
            let rows = floats(dim * 37, 7 + dim as u64);
            let mut out = vec![0.0; 37];
            l2_sq_many(&q, &rows, &mut out);
            for (i, r) in rows.chunks_exact(dim).enumerate() {
                assert_eq!(out[i].to_bits(), l2_sq(&q, r).to_bits());
            }
            dot_many(&q, &rows, &mut out);
            for (i, r) in rows.chunks_exact(dim).enumerate() {
                assert_eq!(out[i].to_bits(), dot(&q, r).to_bits());
            }
        }
        for &bytes_per in &[1usize, 3, 8, 9, 64, 65, 128, 160, 192] {
            let q = bytes(bytes_per, 1);
            let rows = bytes(bytes_per * 23, 2);
            let mut out = vec![0.0; 23];
            hamming_many(&q, &rows, &mut out);
            for (i, r) in rows.chunks_exact(bytes_per).enumerate() {
                assert_eq!(out[i], hamming_scalar(&q, r) as f32);
            }
        }
    }

    #[test]
    fn normalize_gives_unit_norm_and_keeps_zero() {
        let mut v = floats(33, 9);
        normalize(&mut v);
        assert!((dot(&v, &v) - 1.0).abs() < 1e-5);
        let mut z = vec![0.0f32; 5];
        normalize(&mut z);
        assert_eq!(z, vec![0.0; 5]);
    }
}
