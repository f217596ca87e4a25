//! What training produced: the per-epoch reports and the chosen head with the description saved beside it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{TrainConfig, TrainResult};
use crate::head::{now_rfc3339, HeadInfo, ProjectionHead, HEAD_FORMAT_VERSION};
use crate::metrics::RetrievalMetrics;

/// What one epoch did, passed to the per-epoch callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    pub train_loss: f64,
    /// Validation metrics after the epoch.
    pub val: RetrievalMetrics,
    /// Whether this epoch is the best so far (its head is kept).
    pub improved: bool,
    /// Seconds the epoch took (training and validation).
    pub seconds: f64,
}

/// The result of [`train`](super::train()).
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    /// The head of the best epoch.
    pub head: ProjectionHead,
    /// Which epoch that was (from 1).
    pub best_epoch: usize,
    /// Its validation metrics.
    pub best_val: RetrievalMetrics,
    /// Validation metrics of the raw input embeddings (no head), for comparison.
    pub baseline_val: RetrievalMetrics,
    /// Every epoch run, in order.
    pub history: Vec<EpochReport>,
    /// Hash of the data trained on ([`data_hash`](super::data_hash)).
    pub data_hash: String,
    /// The settings used.
    pub config: TrainConfig,
}

impl TrainOutcome {
    /// The description saved beside the head; `base` names the base extractor (e.g. `"cnn"`).
    pub fn info(&self, base: &str) -> HeadInfo {
        let mut metrics = BTreeMap::new();
        for (k, v) in [
            ("val_map", self.best_val.map),
            ("val_p_at_1", self.best_val.p_at_1),
            ("val_p_at_10", self.best_val.p_at_10),
            ("val_recall_at_10", self.best_val.recall_at_10),
            ("val_raw_map", self.baseline_val.map),
            ("val_raw_p_at_10", self.baseline_val.p_at_10),
            ("best_epoch", self.best_epoch as f64),
            ("epochs_run", self.history.len() as f64),
        ] {
            metrics.insert(k.to_string(), v);
        }
        let training = serde_json::to_value(&self.config)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| o.into_iter().collect())
            .unwrap_or_default();
        HeadInfo {
            version: HEAD_FORMAT_VERSION,
            in_dim: self.head.in_dim(),
            out_dim: self.head.out_dim(),
            hidden: self.head.hidden(),
            metric: "cosine".into(),
            base: base.into(),
            data_hash: self.data_hash.clone(),
            seed: self.config.seed,
            metrics,
            training,
            created: now_rfc3339(),
        }
    }

    /// Save the best head as `<path>.safetensors` + `<path>.json`; returns both paths.
    pub fn save(&self, path: &Path, base: &str) -> TrainResult<(PathBuf, PathBuf)> {
        Ok(self.head.save(path, &self.info(base))?)
    }
}
