//! Lloyd's k-means (L2), parallel with rayon: the coarse quantizer of IVF and the
//! sub-quantizer codebooks of PQ.

use rayon::prelude::*;

use crate::distance;
use crate::index::common::{row_products, Rng};

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

/// Rows per matrix product in [`assign`].
const ASSIGN_BLOCK: usize = 256;
/// Below this many centroids (or under 4 dimensions) rows are assigned one at a time.
const ASSIGN_GEMM_MIN_CENTROIDS: usize = 32;

/// Nearest centroid of every row of `data` (index and squared L2 distance), in parallel.
///
/// With 32 or more centroids (IVF cells, PQ's 256-entry codebooks) of 4 or more dimensions,
/// blocks of rows are compared with all centroids through one matrix product (`‖x‖² − 2 x·c + ‖c‖²`), as FAISS does with BLAS:
/// the centroid matrix is read once per block instead of once per row. Near-ties may resolve
/// differently from [`nearest`] by rounding, which k-means and IVF do not mind.
pub(crate) fn assign(data: &[f32], dim: usize, centroids: &[f32]) -> Vec<(u32, f32)> {
    let k = centroids.len() / dim.max(1);
    if dim < 4 || k < ASSIGN_GEMM_MIN_CENTROIDS {
        return data.par_chunks_exact(dim).map(|v| nearest(centroids, dim, v)).collect();
    }
    let cnorm: Vec<f32> = centroids.chunks_exact(dim).map(|c| distance::dot(c, c)).collect();
    data.par_chunks(ASSIGN_BLOCK * dim)
        .flat_map_iter(|block| {
            let m = block.len() / dim;
            let mut ip = vec![0f32; m * k];
            row_products(block, centroids, dim, &mut ip);
            let cnorm = &cnorm;
            (0..m)
                .map(|i| {
                    let row = &ip[i * k..(i + 1) * k];
                    let mut best = (0u32, f32::INFINITY);
                    for (j, (&p, &cn)) in row.iter().zip(cnorm).enumerate() {
                        let d = cn - 2.0 * p;
                        if d < best.1 {
                            best = (j as u32, d);
                        }
                    }
                    let x = &block[i * dim..(i + 1) * dim];
                    (best.0, (best.1 + distance::dot(x, x)).max(0.0))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Train `k` centroids on the rows of `data` (row-major, `dim` wide) with `iters` Lloyd iterations
/// (assignments by [`assign`]).
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
        // Group the rows by cluster (in row order), then average each cluster in parallel: every
        // sum runs in a fixed order, so a seeded run gives the same centroids on any thread count.
        let mut counts = vec![0usize; k];
        for &(a, _) in &assignment {
            counts[a as usize] += 1;
        }
        let mut starts = vec![0usize; k + 1];
        for c in 0..k {
            starts[c + 1] = starts[c] + counts[c];
        }
        let mut members = vec![0u32; n];
        let mut next = starts.clone();
        for (i, &(a, _)) in assignment.iter().enumerate() {
            members[next[a as usize]] = i as u32;
            next[a as usize] += 1;
        }
        centroids.par_chunks_exact_mut(dim).enumerate().for_each(|(c, centroid)| {
            let rows = &members[starts[c]..starts[c + 1]];
            if rows.is_empty() {
                return;
            }
            let mut sum = vec![0f64; dim];
            for &i in rows {
                let v = &data[i as usize * dim..(i as usize + 1) * dim];
                sum.iter_mut().zip(v).for_each(|(acc, x)| *acc += *x as f64);
            }
            let inv = rows.len() as f64;
            centroid.iter_mut().zip(&sum).for_each(|(out, s)| *out = (s / inv) as f32);
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut r = Rng::new(seed);
        (0..n * dim).map(|_| r.below(2001) as f32 / 1000.0 - 1.0).collect()
    }

    /// The matrix-product assignment picks a centroid at the exact minimum distance (up to
    /// rounding) and reports that distance, for every row, at both sides of the GEMM threshold.
    #[test]
    fn gemm_assignment_matches_the_exact_nearest_centroid() {
        for (dim, k) in [(48, 40), (784, 64), (17, 300), (48, 8), (8, 256), (14, 256), (2, 256)] {
            let (x, c) = (data(700, dim, dim as u64), data(k, dim, 7 + k as u64));
            let got = assign(&x, dim, &c);
            assert_eq!(got.len(), 700);
            for (i, (v, &(j, d))) in x.chunks_exact(dim).zip(&got).enumerate() {
                let (_, best) = nearest(&c, dim, v);
                let mine = distance::l2_sq(v, &c[j as usize * dim..(j as usize + 1) * dim]);
                let tol = 1e-4 * best.max(1.0);
                assert!(mine - best <= tol, "dim {dim} k {k} row {i}: picked {mine}, nearest is {best}");
                assert!((d - mine).abs() <= tol, "dim {dim} k {k} row {i}: reported {d}, actual {mine}");
            }
        }
    }
}
