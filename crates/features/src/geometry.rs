//! Plane geometry for local-feature verification: a 2-D affine transform, its least-squares
//! fit, and a RANSAC fit that finds the transform most point matches agree on (the inliers)
//! among matches that are mostly wrong.
//!
//! Everything is deterministic: RANSAC draws its samples from a fixed-seed generator, so the
//! same matches give the same fit and the same inlier count.

/// A point in pixels, x to the right and y down.
pub type Pt = (f32, f32);

/// `x' = a·x + b·y + c`, `y' = d·x + e·y + f`, stored as `[a, b, c, d, e, f]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine(pub [f64; 6]);

impl Affine {
    /// The identity.
    pub const IDENTITY: Affine = Affine([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]);

    /// Where `p` goes.
    pub fn apply(&self, p: Pt) -> Pt {
        let [a, b, c, d, e, f] = self.0;
        let (x, y) = (p.0 as f64, p.1 as f64);
        ((a * x + b * y + c) as f32, (d * x + e * y + f) as f32)
    }

    /// The determinant of the linear part: the factor by which areas scale (negative for a
    /// mirror image).
    pub fn det(&self) -> f64 {
        self.0[0] * self.0[4] - self.0[1] * self.0[3]
    }

    /// The singular values of the linear part, largest first: the most and least a length is
    /// stretched.
    pub fn stretches(&self) -> (f64, f64) {
        let [a, b, _, d, e, _] = self.0;
        // For M = [[a, b], [d, e]]: s1² + s2² = |M|_F², s1 · s2 = |det M|.
        let f = a * a + b * b + d * d + e * e;
        let det = self.det().abs();
        let root = (f * f - 4.0 * det * det).max(0.0).sqrt();
        (((f + root) / 2.0).sqrt(), ((f - root) / 2.0).max(0.0).sqrt())
    }

    /// The transform taking three points exactly onto three others; `None` when the source
    /// points are (nearly) on one line.
    pub fn from_three(from: [Pt; 3], to: [Pt; 3]) -> Option<Affine> {
        let m = |i: usize| [from[i].0 as f64, from[i].1 as f64, 1.0];
        let rows = [m(0), m(1), m(2)];
        let xs = [to[0].0 as f64, to[1].0 as f64, to[2].0 as f64];
        let ys = [to[0].1 as f64, to[1].1 as f64, to[2].1 as f64];
        let abc = solve3(rows, xs)?;
        let def = solve3(rows, ys)?;
        Some(Affine([abc[0], abc[1], abc[2], def[0], def[1], def[2]]))
    }

    /// The least-squares transform taking `from[i]` towards `to[i]` (at least three pairs not
    /// on one line, else `None`).
    pub fn least_squares(pairs: &[(Pt, Pt)]) -> Option<Affine> {
        if pairs.len() < 3 {
            return None;
        }
        // Centre the points for a well-conditioned normal matrix.
        let n = pairs.len() as f64;
        let (mut mx, mut my) = (0.0, 0.0);
        for (p, _) in pairs {
            mx += p.0 as f64;
            my += p.1 as f64;
        }
        let (mx, my) = (mx / n, my / n);
        let mut ata = [[0.0f64; 3]; 3];
        let (mut atx, mut aty) = ([0.0f64; 3], [0.0f64; 3]);
        for (p, q) in pairs {
            let r = [p.0 as f64 - mx, p.1 as f64 - my, 1.0];
            for i in 0..3 {
                for j in 0..3 {
                    ata[i][j] += r[i] * r[j];
                }
                atx[i] += r[i] * q.0 as f64;
                aty[i] += r[i] * q.1 as f64;
            }
        }
        let abc = solve3(ata, atx)?;
        let def = solve3(ata, aty)?;
        // Undo the centring: x' = a(x - mx) + b(y - my) + c.
        Some(Affine([
            abc[0],
            abc[1],
            abc[2] - abc[0] * mx - abc[1] * my,
            def[0],
            def[1],
            def[2] - def[0] * mx - def[1] * my,
        ]))
    }
}

/// Solve the 3×3 system `m · x = v` by Cramer's rule; `None` when `m` is (nearly) singular.
fn solve3(m: [[f64; 3]; 3], v: [f64; 3]) -> Option<[f64; 3]> {
    let det3 = |m: [[f64; 3]; 3]| {
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
            + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    };
    let d = det3(m);
    let scale: f64 = m.iter().flatten().map(|x| x.abs()).fold(0.0, f64::max);
    if !d.is_finite() || d.abs() <= 1e-9 * scale.powi(3).max(1e-300) {
        return None;
    }
    let mut out = [0.0; 3];
    for (col, o) in out.iter_mut().enumerate() {
        let mut mc = m;
        for row in 0..3 {
            mc[row][col] = v[row];
        }
        *o = det3(mc) / d;
    }
    Some(out)
}

/// Settings of [`ransac_affine`].
#[derive(Debug, Clone, PartialEq)]
pub struct RansacParams {
    /// A match is an inlier when the transform puts its first point within this many pixels
    /// of its second.
    pub tolerance: f32,
    /// Most hypotheses tried (fewer when a good one makes more pointless).
    pub max_iterations: usize,
    /// Transforms that scale lengths by less than this in some direction, or more than its
    /// inverse, are rejected as implausible (as are mirror images).
    pub min_scale: f64,
    /// Largest ratio of the longest to the shortest stretch (1 = similarity; a perspective
    /// view needs a little more). Collapsing transforms, which make many wrong matches agree,
    /// are rejected by this and `min_scale`.
    pub max_anisotropy: f64,
    /// Seed of the sample generator.
    pub seed: u64,
}

impl Default for RansacParams {
    fn default() -> Self {
        RansacParams {
            tolerance: 8.0,
            max_iterations: 1500,
            min_scale: 1.0 / 8.0,
            max_anisotropy: 3.0,
            seed: 0x5eed_1234,
        }
    }
}

/// The outcome of [`ransac_affine`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fit {
    /// The transform (refitted by least squares on the inliers).
    pub transform: Affine,
    /// Indices of the matches it explains, ascending.
    pub inliers: Vec<usize>,
}

/// SplitMix64: a tiny deterministic generator for RANSAC's samples.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn inliers_of(t: &Affine, pairs: &[(Pt, Pt)], tol2: f32) -> Vec<usize> {
    pairs
        .iter()
        .enumerate()
        .filter(|(_, (p, q))| {
            let r = t.apply(*p);
            let (dx, dy) = (r.0 - q.0, r.1 - q.1);
            dx * dx + dy * dy <= tol2
        })
        .map(|(i, _)| i)
        .collect()
}

fn plausible(t: &Affine, params: &RansacParams) -> bool {
    let (hi, lo) = t.stretches();
    t.det() > 0.0
        && hi.is_finite()
        && lo >= params.min_scale
        && hi <= 1.0 / params.min_scale
        && hi <= params.max_anisotropy * lo
}

/// Fit an affine transform to point matches `(from, to)` of which many may be wrong: the
/// transform of three random matches that the most matches agree with, refitted on those.
/// `None` with fewer than three matches or when no plausible transform explains at least three.
pub fn ransac_affine(pairs: &[(Pt, Pt)], params: &RansacParams) -> Option<Fit> {
    let n = pairs.len();
    if n < 3 {
        return None;
    }
    let tol2 = params.tolerance * params.tolerance;
    let mut rng = SplitMix(params.seed);
    let mut best: Vec<usize> = Vec::new();
    let mut needed = params.max_iterations;
    let mut it = 0;
    while it < needed.min(params.max_iterations) {
        it += 1;
        let i = rng.below(n);
        let j = rng.below(n);
        let k = rng.below(n);
        if i == j || j == k || i == k {
            continue;
        }
        let Some(t) = Affine::from_three([pairs[i].0, pairs[j].0, pairs[k].0], [pairs[i].1, pairs[j].1, pairs[k].1])
        else {
            continue;
        };
        if !plausible(&t, params) {
            continue;
        }
        let inl = inliers_of(&t, pairs, tol2);
        if inl.len() > best.len() {
            best = inl;
            // Hypotheses needed to draw an all-inlier sample with 99.9% confidence.
            let w = best.len() as f64 / n as f64;
            let p_good = w.powi(3);
            needed = if p_good >= 1.0 { 0 } else { ((1e-3f64).ln() / (1.0 - p_good).ln()).ceil().max(30.0) as usize };
        }
    }
    if best.len() < 3 {
        return None;
    }
    // Refit on the inliers, twice (the refit may gather a few more).
    let mut fit_inliers = best;
    let mut transform = None;
    for _ in 0..2 {
        let sub: Vec<(Pt, Pt)> = fit_inliers.iter().map(|&i| pairs[i]).collect();
        let Some(t) = Affine::least_squares(&sub).filter(|t| plausible(t, params)) else { break };
        let inl = inliers_of(&t, pairs, tol2);
        if inl.len() < fit_inliers.len() {
            break;
        }
        fit_inliers = inl;
        transform = Some(t);
    }
    let transform = match transform {
        Some(t) => t,
        None => {
            let sub: Vec<(Pt, Pt)> = fit_inliers.iter().map(|&i| pairs[i]).collect();
            Affine::least_squares(&sub).unwrap_or(Affine::IDENTITY)
        }
    };
    Some(Fit { transform, inliers: fit_inliers })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Matches of a grid under `t` with ±`noise` px of jitter, and `outliers` random pairs.
    fn matches(t: &Affine, noise: f32, outliers: usize) -> Vec<(Pt, Pt)> {
        let mut rng = SplitMix(7);
        let mut jitter = || (rng.next() % 2001) as f32 / 1000.0 * noise - noise;
        let mut out = Vec::new();
        for gy in 0..8 {
            for gx in 0..10 {
                let p = (20.0 + gx as f32 * 45.0, 15.0 + gy as f32 * 40.0);
                let q = t.apply(p);
                out.push((p, (q.0 + jitter(), q.1 + jitter())));
            }
        }
        let mut rng = SplitMix(99);
        for _ in 0..outliers {
            let mut r = || (rng.next() % 500) as f32;
            out.push(((r(), r()), (r(), r())));
        }
        out
    }

    fn rotation_scale(deg: f64, s: f64, tx: f64, ty: f64) -> Affine {
        let (sn, cs) = deg.to_radians().sin_cos();
        Affine([s * cs, -s * sn, tx, s * sn, s * cs, ty])
    }

    #[test]
    fn three_points_give_the_exact_transform_and_collinear_ones_none() {
        let t = Affine([1.2, -0.3, 5.0, 0.4, 0.9, -7.0]);
        let from = [(0.0, 0.0), (100.0, 10.0), (30.0, 80.0)];
        let got = Affine::from_three(from, from.map(|p| t.apply(p))).unwrap();
        for (a, b) in got.0.iter().zip(t.0) {
            assert!((a - b).abs() < 1e-4, "{got:?} vs {t:?}");
        }
        assert!(Affine::from_three([(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)], from).is_none());
        let (hi, lo) = rotation_scale(30.0, 0.5, 9.0, 9.0).stretches();
        assert!((hi - 0.5).abs() < 1e-9 && (lo - 0.5).abs() < 1e-9, "{hi} {lo}");
        let (hi, lo) = Affine([3.0, 0.0, 0.0, 0.0, 0.5, 0.0]).stretches();
        assert!((hi - 3.0).abs() < 1e-9 && (lo - 0.5).abs() < 1e-9, "{hi} {lo}");
    }

    #[test]
    fn ransac_recovers_a_rotation_from_noisy_matches_with_many_outliers() {
        // 30° turn, half size, shifted: 80 true matches with ±1.5 px noise, 160 wrong ones.
        let t = rotation_scale(30.0, 0.5, 200.0, 40.0);
        let pairs = matches(&t, 1.5, 160);
        let fit = ransac_affine(&pairs, &RansacParams { tolerance: 4.0, ..Default::default() }).unwrap();
        let true_inliers = fit.inliers.iter().filter(|&&i| i < 80).count();
        assert!(true_inliers >= 76, "found {true_inliers} of the 80 true matches");
        assert!(fit.inliers.len() - true_inliers <= 4, "{} outliers taken", fit.inliers.len() - true_inliers);
        for p in [(0.0, 0.0), (400.0, 300.0), (250.0, 100.0)] {
            let (a, b) = (fit.transform.apply(p), t.apply(p));
            assert!((a.0 - b.0).abs() < 2.0 && (a.1 - b.1).abs() < 2.0, "{p:?}: {a:?} vs {b:?}");
        }
        // Same matches, same answer.
        assert_eq!(ransac_affine(&pairs, &RansacParams { tolerance: 4.0, ..Default::default() }).unwrap(), fit);
    }

    #[test]
    fn ransac_finds_few_inliers_among_random_matches() {
        let pairs = matches(&Affine::IDENTITY, 0.0, 300)[80..].to_vec();
        let n = ransac_affine(&pairs, &RansacParams::default()).map_or(0, |f| f.inliers.len());
        assert!(n < 12, "{n} inliers among random matches");
        assert!(ransac_affine(&pairs[..2], &RansacParams::default()).is_none());
    }

    #[test]
    fn implausible_transforms_are_rejected() {
        // A mirror image: every match agrees, but a mirrored copy is not what we verify.
        let mirror = Affine([-1.0, 0.0, 500.0, 0.0, 1.0, 0.0]);
        let pairs = matches(&mirror, 0.0, 0);
        assert!(ransac_affine(&pairs, &RansacParams::default()).is_none());
        // Everything squeezed into a few pixels, or flattened onto a line: wrong matches that
        // land on one spot of the candidate agree with such transforms.
        for collapse in [Affine([0.01, 0.0, 100.0, 0.0, 0.01, 100.0]), Affine([1.0, 0.0, 0.0, 0.0, 0.05, 50.0])] {
            let pairs = matches(&collapse, 0.0, 0);
            assert!(ransac_affine(&pairs, &RansacParams::default()).is_none(), "{collapse:?}");
        }
    }
}
