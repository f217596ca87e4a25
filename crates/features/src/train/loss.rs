//! Metric-learning losses on a batch of L2-normalized embeddings: multi-similarity with its pair miner,
//! and the triplet loss with semi-hard negatives.

use candle_core::{Device, Tensor};

use super::{LossKind, TrainConfig, TrainResult};

/// The loss of one batch of L2-normalized embeddings `emb [b, d]`, or `None` when the batch has no usable
/// pair (nothing to learn from it).
pub(super) fn batch_loss(emb: &Tensor, labels: &[usize], cfg: &TrainConfig) -> TrainResult<Option<Tensor>> {
    let sim = emb.matmul(&emb.t()?)?;
    let s = sim.detach().to_vec2::<f32>()?;
    match cfg.loss {
        LossKind::Ms => multi_similarity(&sim, &s, labels),
        LossKind::Triplet => triplet_semi_hard(&sim, &s, labels, cfg.margin),
    }
}

/// Multi-similarity loss with its miner (pytorch-metric-learning defaults: α = 2, β = 50, λ = 0.5, ε = 0.1).
fn multi_similarity(sim: &Tensor, s: &[Vec<f32>], labels: &[usize]) -> TrainResult<Option<Tensor>> {
    const ALPHA: f64 = 2.0;
    const BETA: f64 = 50.0;
    const BASE: f64 = 0.5;
    const EPS: f32 = 0.1;
    let b = labels.len();
    let mut pos = vec![0f32; b * b];
    let mut neg = vec![0f32; b * b];
    let mut anchors = 0usize;
    for i in 0..b {
        let mut min_pos = f32::INFINITY;
        let mut max_neg = f32::NEG_INFINITY;
        for j in 0..b {
            if j == i {
                continue;
            }
            if labels[j] == labels[i] {
                min_pos = min_pos.min(s[i][j]);
            } else {
                max_neg = max_neg.max(s[i][j]);
            }
        }
        if !min_pos.is_finite() || !max_neg.is_finite() {
            continue;
        }
        let mut used = false;
        for j in 0..b {
            if j == i {
                continue;
            }
            if labels[j] == labels[i] {
                if s[i][j] - EPS < max_neg {
                    pos[i * b + j] = 1.0;
                    used = true;
                }
            } else if s[i][j] + EPS > min_pos {
                neg[i * b + j] = 1.0;
                used = true;
            }
        }
        anchors += usize::from(used);
    }
    if anchors == 0 {
        return Ok(None);
    }
    let pos = Tensor::from_vec(pos, (b, b), &Device::Cpu)?;
    let neg = Tensor::from_vec(neg, (b, b), &Device::Cpu)?;
    // (1/α) log(1 + Σ_pos exp(-α (s - λ))) + (1/β) log(1 + Σ_neg exp(β (s - λ))), averaged over anchors.
    let pos_term = ((sim.affine(-ALPHA, ALPHA * BASE)?.exp()? * pos)?.sum_keepdim(1)? + 1.0)?.log()? / ALPHA;
    let neg_term = ((sim.affine(BETA, -BETA * BASE)?.exp()? * neg)?.sum_keepdim(1)? + 1.0)?.log()? / BETA;
    Ok(Some(((pos_term? + neg_term?)?.sum_all()? / anchors as f64)?))
}

/// Triplet loss over every anchor–positive pair with its semi-hard negative, on cosine distance `1 - s`:
/// mean of `max(0, d(a,p) - d(a,n) + margin)`.
fn triplet_semi_hard(sim: &Tensor, s: &[Vec<f32>], labels: &[usize], margin: f32) -> TrainResult<Option<Tensor>> {
    let b = labels.len();
    let (mut ap, mut an) = (Vec::new(), Vec::new());
    for a in 0..b {
        for p in 0..b {
            if p == a || labels[p] != labels[a] {
                continue;
            }
            let d_ap = 1.0 - s[a][p];
            // Semi-hard: the closest negative farther than the positive; else the farthest negative.
            let mut semi: Option<(f32, usize)> = None;
            let mut far: Option<(f32, usize)> = None;
            for n in 0..b {
                if labels[n] == labels[a] {
                    continue;
                }
                let d_an = 1.0 - s[a][n];
                if d_an > d_ap && semi.is_none_or(|(d, _)| d_an < d) {
                    semi = Some((d_an, n));
                }
                if far.is_none_or(|(d, _)| d_an > d) {
                    far = Some((d_an, n));
                }
            }
            if let Some((_, n)) = semi.or(far) {
                ap.push((a * b + p) as u32);
                an.push((a * b + n) as u32);
            }
        }
    }
    if ap.is_empty() {
        return Ok(None);
    }
    let flat = sim.flatten_all()?;
    let n = ap.len();
    let s_ap = flat.index_select(&Tensor::from_vec(ap, n, &Device::Cpu)?, 0)?;
    let s_an = flat.index_select(&Tensor::from_vec(an, n, &Device::Cpu)?, 0)?;
    // d_ap - d_an + margin = s_an - s_ap + margin
    let hinge = ((s_an - s_ap)? + f64::from(margin))?.relu()?;
    Ok(Some(hinge.mean_all()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_are_lower_for_separated_classes() {
        // Two classes; embeddings either well separated or mixed.
        let labels = [0usize, 0, 1, 1];
        let sep = Tensor::from_vec(vec![1f32, 0., 0.99, 0.141, 0., 1., 0.141, 0.99], (4, 2), &Device::Cpu).unwrap();
        let mix = Tensor::from_vec(vec![1f32, 0., 0., 1., 0.99, 0.141, 0.141, 0.99], (4, 2), &Device::Cpu).unwrap();
        for loss in [LossKind::Ms, LossKind::Triplet] {
            let cfg = TrainConfig { loss, ..TrainConfig::default() };
            let l = |e: &Tensor| {
                let e = crate::head::l2_normalize_rows(e).unwrap();
                batch_loss(&e, &labels, &cfg).unwrap().map_or(0.0, |t| t.to_scalar::<f32>().unwrap())
            };
            assert!(l(&mix) > l(&sep), "{loss}: mixed {} vs separated {}", l(&mix), l(&sep));
        }
    }
}
