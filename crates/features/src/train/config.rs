//! Training settings: the loss to minimise and the optimiser, batch and stopping parameters.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{TrainError, TrainResult};

/// Which metric-learning loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LossKind {
    /// Triplet loss over all anchor–positive pairs of a batch, each with its semi-hard negative
    /// (the closest negative farther than the positive; the farthest one when none is).
    Triplet,
    /// Multi-similarity loss (Wang et al. 2019) with its pair miner.
    Ms,
}

impl FromStr for LossKind {
    type Err = TrainError;
    fn from_str(s: &str) -> TrainResult<Self> {
        match s.to_ascii_lowercase().as_str() {
            "triplet" => Ok(LossKind::Triplet),
            "ms" | "multi-similarity" | "multisimilarity" => Ok(LossKind::Ms),
            other => Err(TrainError::Config(format!("unknown loss {other:?} (expected triplet or ms)"))),
        }
    }
}

impl fmt::Display for LossKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LossKind::Triplet => "triplet",
            LossKind::Ms => "ms",
        })
    }
}

/// Training settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Output dimension of the head.
    pub out_dim: usize,
    /// Hidden width of a 2-layer MLP head; 0 for a linear head.
    pub hidden: usize,
    /// The loss.
    pub loss: LossKind,
    /// AdamW learning rate.
    pub lr: f64,
    /// AdamW weight decay.
    pub weight_decay: f64,
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Batch size (vectors per step).
    pub batch_size: usize,
    /// Vectors of one class placed together in a batch.
    pub per_class: usize,
    /// Margin of the triplet loss, in cosine distance.
    pub margin: f32,
    /// Seed for initialisation and batch order.
    pub seed: u64,
    /// Stop after this many epochs without a better validation mAP.
    pub patience: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            out_dim: 128,
            hidden: 0,
            loss: LossKind::Ms,
            lr: 1e-3,
            weight_decay: 1e-4,
            epochs: 30,
            batch_size: 64,
            per_class: 4,
            margin: 0.1,
            seed: 42,
            patience: 5,
        }
    }
}

impl TrainConfig {
    pub(super) fn check(&self) -> TrainResult<()> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.out_dim == 0 {
            return bad("output dimension must be positive".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("learning rate must be positive, got {}", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(format!("weight decay must be >= 0, got {}", self.weight_decay));
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.per_class < 2 {
            return bad(format!("per-class group size must be at least 2, got {}", self.per_class));
        }
        if self.batch_size < 2 * self.per_class {
            return bad(format!(
                "batch size {} must hold at least two classes of {} vectors",
                self.batch_size, self.per_class
            ));
        }
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return bad(format!("margin must be >= 0, got {}", self.margin));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_kind_parses() {
        assert_eq!("ms".parse::<LossKind>().unwrap(), LossKind::Ms);
        assert_eq!("Triplet".parse::<LossKind>().unwrap(), LossKind::Triplet);
        assert!("hinge".parse::<LossKind>().is_err());
    }
}
