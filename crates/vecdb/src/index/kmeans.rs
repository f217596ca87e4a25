//! Lloyd's k-means (L2), parallel with rayon: the coarse quantizer of IVF and the
//! sub-quantizer codebooks of PQ.

use rayon::prelude::*;

use crate::distance;
use crate::index::common::Rng;

/// At most this many training points per centroid are used (FAISS uses the same cap).
pub(crate) const MAX_POINTS_PER_CENTROID: usize = 256;

/// Index and squared L2 distance of the centroid nearest to `v`.
#[inline]
pub(crate) fn nearest(centroids: &[f32], dim: usize, v: &[f32]) -> (u32, f32) {
    let mut best = (0u32, f32::INFINITY);
    if dim <= 16 {
        // PQ sub-spaces: short rows, an inlined loop beats a kernel call per row.
        for (i, c) in centroids.chunks_exact(dim).enumerate() {
            let d: f32 = c.iter().zip(v).map(|(a, b)| (a - b) * (a - b)).sum();
            if d < best.1 {
                best = (i as u32, d);
            }
        }
        return best;
    }
    let mut out = vec![0f32; centroids.len() / dim];
    distance::l2_sq_many(v, centroids, &mut out);
    for (i, &d) in out.iter().enumerate() {
        if d < best.1 {
            best = (i as u32, d);
        }
    }
    best
}

/// Nearest centroid of every row of `data`, in parallel.
pub(crate) fn assign(data: &[f32], dim: usize, centroids: &[f32]) -> Vec<(u32, f32)> {
    data.par_chunks_exact(dim).map(|v| nearest(centroids, dim, v)).collect()
}

/// Train `k` centroids on the rows of `data` (row-major, `dim` wide) with `iters` Lloyd iterations.
///
/// Uses at most `k × 256` points (a random subsample), initializes on random distinct points,
/// and re-seeds empty clusters by splitting the largest one. With fewer rows than `k`, rows are repeated.
pub(crate) fn train(data: &[f32], dim: usize, k: usize, iters: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    let mut rng = Rng::new(seed);
    if n == 0 || k == 0 {
        return vec![0.0; k * dim];
    }
    let sample: Vec<f32>;
    let data = if n > k * MAX_POINTS_PER_CENTROID {
        let idx = rng.sample_indices(n, k * MAX_POINTS_PER_CENTROID);
        sample = idx.iter().flat_map(|&i| data[i * dim..(i + 1) * dim].iter().copied()).collect();
        &sample[..]
    } else {
        data
    };
    let n = data.len() / dim;
    let mut centroids = Vec::with_capacity(k * dim);
    let init = rng.sample_indices(n, k.min(n));
    for j in 0..k {
        let i = init[j % init.len()];
        centroids.extend_from_slice(&data[i * dim..(i + 1) * dim]);
    }
    if n <= k {
        return centroids;
    }
    for _ in 0..iters {
        let assignment = assign(data, dim, &centroids);
        // Sum per cluster in parallel chunks, then reduce.
        let (sums, counts) = data
            .par_chunks_exact(dim)
            .zip(assignment.par_iter())
            .fold(
                || (vec![0f64; k * dim], vec![0usize; k]),
                |(mut s, mut c), (v, &(a, _))| {
                    let a = a as usize;
                    c[a] += 1;
                    for (acc, x) in s[a * dim..(a + 1) * dim].iter_mut().zip(v) {
                        *acc += *x as f64;
                    }
                    (s, c)
                },
            )
            .reduce(
                || (vec![0f64; k * dim], vec![0usize; k]),
                |(mut s1, mut c1), (s2, c2)| {
                    s1.iter_mut().zip(&s2).for_each(|(a, b)| *a += b);
                    c1.iter_mut().zip(&c2).for_each(|(a, b)| *a += b);
                    (s1, c1)
                },
            );
        let mut counts = counts;
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..dim {
                    centroids[c * dim + j] = (sums[c * dim + j] / counts[c] as f64) as f32;
                }
            }
        }
        // Empty clusters: split the largest cluster (copy its centroid, perturb both symmetrically).
        for c in 0..k {
            if counts[c] > 0 {
                continue;
            }
            let big = (0..k).max_by_key(|&i| counts[i]).unwrap_or(0);
            for j in 0..dim {
                let v = centroids[big * dim + j];
                let eps = (v.abs() + 1e-3) * 1e-3 * if rng.below(2) == 0 { 1.0 } else { -1.0 };
                centroids[c * dim + j] = v + eps;
                centroids[big * dim + j] = v - eps;
            }
            counts[c] = counts[big] / 2;
            counts[big] -= counts[c];
        }
    }
    centroids
}
