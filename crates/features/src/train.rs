//! Training a [`ProjectionHead`] with a metric-learning loss on cached embeddings.
//!
//! The data are embeddings of a frozen base extractor (the CNN) with one label per vector. Each epoch
//! visits every training vector once in class-balanced batches (groups of `per_class` vectors of one
//! label, so every batch has positives), minimises either the multi-similarity loss (with its pair miner)
//! or the batch triplet loss with semi-hard negative mining, using AdamW through candle's autograd on the
//! CPU, then measures leave-one-out retrieval on the validation set with the same code as `likeness eval`
//! ([`crate::metrics::leave_one_out`]). Training stops early when validation mAP has not improved for
//! `patience` epochs; the head of the best epoch is returned. Everything is deterministic for a seed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::FeatureError;
use crate::extractor::{DistanceKind, Embedding};
use crate::head::{now_rfc3339, HeadInfo, ProjectionHead, HEAD_FORMAT_VERSION};
use crate::metrics::{leave_one_out, RetrievalMetrics};

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A set has no vectors.
    #[error("the {set} set is empty")]
    Empty {
        /// `train` or `validation`.
        set: &'static str,
    },
    /// Vectors and labels differ in number.
    #[error("the {set} set has {vectors} vectors but {labels} labels")]
    LabelCount {
        /// `train` or `validation`.
        set: &'static str,
        /// Number of vectors.
        vectors: usize,
        /// Number of labels.
        labels: usize,
    },
    /// A vector has another dimension than the first one.
    #[error("the {set} set: vector {index} has {found} values, expected {expected}")]
    Dimension {
        /// `train` or `validation`.
        set: &'static str,
        /// Index of the vector.
        index: usize,
        /// Dimension of the first vector.
        expected: usize,
        /// Its dimension.
        found: usize,
    },
    /// A vector contains NaN or infinity.
    #[error("the {set} set: vector {index} has non-finite values")]
    NonFinite {
        /// `train` or `validation`.
        set: &'static str,
        /// Index of the vector.
        index: usize,
    },
    /// Fewer than two distinct labels: nothing to learn.
    #[error("the {set} set has {found} label(s); metric learning needs at least two")]
    TooFewLabels {
        /// `train` or `validation`.
        set: &'static str,
        /// Distinct labels found.
        found: usize,
    },
    /// A training class has a single vector, so it has no positive pair.
    #[error("the {set} set: class {label:?} has {count} vector(s); every class needs at least 2")]
    TinyClass {
        /// `train` or `validation`.
        set: &'static str,
        /// The label.
        label: String,
        /// How many vectors it has.
        count: usize,
    },
    /// No validation class has two vectors, so no validation query has a relevant answer.
    #[error("the validation set has no class with at least 2 vectors; no query could be scored")]
    NoValidationPairs,
    /// A configuration value is out of range.
    #[error("invalid training setting: {0}")]
    Config(String),
    /// A tensor or head operation failed.
    #[error(transparent)]
    Feature(#[from] FeatureError),
}

impl From<candle_core::Error> for TrainError {
    fn from(e: candle_core::Error) -> Self {
        TrainError::Feature(FeatureError::from(e))
    }
}

/// Shorthand for results in this module.
pub type TrainResult<T> = std::result::Result<T, TrainError>;

/// Embeddings with one label each.
#[derive(Debug, Clone, Default)]
pub struct LabelledSet {
    /// Dense vectors, all of one dimension.
    pub vectors: Vec<Vec<f32>>,
    /// One label per vector.
    pub labels: Vec<String>,
}

impl LabelledSet {
    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }
    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }
    /// Vector dimension (0 when empty).
    pub fn dim(&self) -> usize {
        self.vectors.first().map_or(0, Vec::len)
    }
    /// Number of vectors per label, sorted by label.
    pub fn class_counts(&self) -> BTreeMap<&str, usize> {
        let mut m = BTreeMap::new();
        for l in &self.labels {
            *m.entry(l.as_str()).or_insert(0) += 1;
        }
        m
    }

    fn check(&self, set: &'static str) -> TrainResult<()> {
        if self.is_empty() {
            return Err(TrainError::Empty { set });
        }
        if self.vectors.len() != self.labels.len() {
            return Err(TrainError::LabelCount { set, vectors: self.vectors.len(), labels: self.labels.len() });
        }
        let dim = self.dim();
        for (index, v) in self.vectors.iter().enumerate() {
            if v.len() != dim {
                return Err(TrainError::Dimension { set, index, expected: dim, found: v.len() });
            }
            if v.iter().any(|x| !x.is_finite()) {
                return Err(TrainError::NonFinite { set, index });
            }
        }
        Ok(())
    }

    fn tensor(&self) -> TrainResult<Tensor> {
        let flat: Vec<f32> = self.vectors.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (self.len(), self.dim()), &Device::Cpu)?)
    }
}

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
    fn check(&self) -> TrainResult<()> {
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

/// The result of [`train`].
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
    /// Hash of the data trained on ([`data_hash`]).
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

/// sha256 (hex) over the labels and vector bytes of the training and validation sets, in order.
pub fn data_hash(train: &LabelledSet, val: &LabelledSet) -> String {
    let mut h = Sha256::new();
    for (tag, set) in [(b"train", train), (b"valid", val)] {
        h.update(tag);
        h.update((set.len() as u64).to_le_bytes());
        for (v, l) in set.vectors.iter().zip(&set.labels) {
            h.update((l.len() as u64).to_le_bytes());
            h.update(l.as_bytes());
            for x in v {
                h.update(x.to_le_bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Leave-one-out retrieval metrics of `set` under cosine distance, after `head` when given (the raw
/// vectors otherwise). The same code as `likeness eval`.
pub fn evaluate(head: Option<&ProjectionHead>, set: &LabelledSet) -> TrainResult<RetrievalMetrics> {
    let vectors: Vec<Embedding> = match head {
        Some(h) => h.apply_batch(&set.vectors)?.into_iter().map(Embedding::Dense).collect(),
        None => set.vectors.iter().cloned().map(Embedding::Dense).collect(),
    };
    Ok(leave_one_out(&vectors, &set.labels, DistanceKind::Cosine))
}

/// Train a head on `train`, choosing the epoch by leave-one-out mAP on `val`. `on_epoch` is called after
/// every epoch.
pub fn train(
    train: &LabelledSet,
    val: &LabelledSet,
    cfg: &TrainConfig,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> TrainResult<TrainOutcome> {
    cfg.check()?;
    train.check("train")?;
    val.check("validation")?;
    if val.dim() != train.dim() {
        return Err(TrainError::Dimension { set: "validation", index: 0, expected: train.dim(), found: val.dim() });
    }
    let counts = train.class_counts();
    if counts.len() < 2 {
        return Err(TrainError::TooFewLabels { set: "train", found: counts.len() });
    }
    if let Some((label, &count)) = counts.iter().find(|(_, &c)| c < 2) {
        return Err(TrainError::TinyClass { set: "train", label: label.to_string(), count });
    }
    if val.class_counts().values().all(|&c| c < 2) {
        return Err(TrainError::NoValidationPairs);
    }

    // Integer class ids, in label order (deterministic).
    let class_of: HashMap<&str, usize> = counts.keys().enumerate().map(|(i, l)| (*l, i)).collect();
    let y: Vec<usize> = train.labels.iter().map(|l| class_of[l.as_str()]).collect();
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); counts.len()];
    for (i, &c) in y.iter().enumerate() {
        members[c].push(i);
    }

    let x_train = train.tensor()?;
    let init = ProjectionHead::init(train.dim(), cfg.hidden, cfg.out_dim, cfg.seed ^ 0x9e37_79b9_7f4a_7c15)?;
    // Training variables; the head is rebuilt on their tensors so gradients reach them.
    let mut names: Vec<String> = init.tensors().keys().cloned().collect();
    names.sort();
    let init_tensors = init.tensors();
    let vars: Vec<Var> = names.iter().map(|n| Var::from_tensor(&init_tensors[n])).collect::<Result<_, _>>()?;
    let live: HashMap<String, Tensor> = names.iter().cloned().zip(vars.iter().map(|v| v.as_tensor().clone())).collect();
    let head = ProjectionHead::from_tensors(&live)?;
    let mut opt =
        AdamW::new(vars.clone(), ParamsAdamW { lr: cfg.lr, weight_decay: cfg.weight_decay, ..ParamsAdamW::default() })?;

    let baseline_val = evaluate(None, val)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut best: Option<(usize, RetrievalMetrics, ProjectionHead)> = None;
    let mut history = Vec::new();
    let mut since_best = 0;
    for epoch in 1..=cfg.epochs {
        let started = Instant::now();
        let batches = class_balanced_batches(&members, cfg.per_class, cfg.batch_size, &mut rng);
        let (mut loss_sum, mut steps) = (0.0f64, 0usize);
        for batch in &batches {
            let labels: Vec<usize> = batch.iter().map(|&i| y[i]).collect();
            let idx = Tensor::from_vec(batch.iter().map(|&i| i as u32).collect::<Vec<_>>(), batch.len(), &Device::Cpu)?;
            let emb = head.forward_normalized(&x_train.index_select(&idx, 0)?)?;
            let Some(loss) = batch_loss(&emb, &labels, cfg)? else {
                continue;
            };
            loss_sum += f64::from(loss.to_scalar::<f32>()?);
            steps += 1;
            opt.backward_step(&loss)?;
        }
        let val_metrics = evaluate(Some(&head), val)?;
        let improved = best.as_ref().is_none_or(|(_, m, _)| val_metrics.map > m.map);
        if improved {
            best = Some((epoch, val_metrics, head.detached_copy()?));
            since_best = 0;
        } else {
            since_best += 1;
        }
        let report = EpochReport {
            epoch,
            train_loss: if steps > 0 { loss_sum / steps as f64 } else { 0.0 },
            val: val_metrics,
            improved,
            seconds: started.elapsed().as_secs_f64(),
        };
        on_epoch(&report);
        history.push(report);
        if since_best >= cfg.patience.max(1) {
            break;
        }
    }
    let (best_epoch, best_val, head) = best.expect("at least one epoch ran");
    Ok(TrainOutcome {
        head,
        best_epoch,
        best_val,
        baseline_val,
        history,
        data_hash: data_hash(train, val),
        config: cfg.clone(),
    })
}

/// One epoch's batches: each class's members shuffled and cut into groups of `per_class` (a last single
/// member joins the previous group), groups shuffled and packed into batches of about `batch_size`.
/// Every vector appears once per epoch, and every group brings positive pairs.
fn class_balanced_batches(
    members: &[Vec<usize>],
    per_class: usize,
    batch_size: usize,
    rng: &mut rand_chacha::ChaCha8Rng,
) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for m in members {
        let mut m = m.clone();
        m.shuffle(rng);
        let mut chunks: Vec<Vec<usize>> = m.chunks(per_class).map(<[usize]>::to_vec).collect();
        if chunks.len() > 1 && chunks.last().is_some_and(|c| c.len() < 2) {
            let last = chunks.pop().unwrap_or_default();
            if let Some(prev) = chunks.last_mut() {
                prev.extend(last);
            }
        }
        groups.extend(chunks);
    }
    groups.shuffle(rng);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut cur: Vec<usize> = Vec::new();
    for g in groups {
        if !cur.is_empty() && cur.len() + g.len() > batch_size {
            batches.push(std::mem::take(&mut cur));
        }
        cur.extend(g);
    }
    if !cur.is_empty() {
        // A last batch of one class has no negatives: fold it into the previous batch.
        match batches.last_mut() {
            Some(prev) if cur.len() < batch_size / 2 => prev.extend(cur),
            _ => batches.push(cur),
        }
    }
    batches
}

/// The loss of one batch of L2-normalized embeddings `emb [b, d]`, or `None` when the batch has no usable
/// pair (nothing to learn from it).
fn batch_loss(emb: &Tensor, labels: &[usize], cfg: &TrainConfig) -> TrainResult<Option<Tensor>> {
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

/// Split indices `0..labels.len()` into (train, validation) per label, deterministically for `seed`:
/// each label with `n >= 3` items sends `round(n * val_fraction)` of them (at least 1, at most `n - 2`,
/// so training keeps a positive pair) to validation; smaller labels stay in training. Both lists are
/// sorted.
pub fn stratified_split(labels: &[String], val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_label: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, l) in labels.iter().enumerate() {
        by_label.entry(l.as_str()).or_default().push(i);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for (_, mut idx) in by_label {
        idx.shuffle(&mut rng);
        let n = idx.len();
        let k =
            if n >= 3 && val_fraction > 0.0 { ((n as f64 * val_fraction).round() as usize).clamp(1, n - 2) } else { 0 };
        va.extend_from_slice(&idx[..k]);
        tr.extend_from_slice(&idx[k..]);
    }
    tr.sort_unstable();
    va.sort_unstable();
    (tr, va)
}

/// Backbone embeddings of image files kept on disk between runs, so that training epochs (and later
/// runs on the same tree) do not recompute them. Entries are keyed by file path, size and modification
/// time, so an edited file is recomputed. One cache file holds one base extractor's vectors; it is a
/// safetensors file with a `vectors [n, dim]` tensor and the keys as JSON metadata.
#[derive(Debug, Clone, Default)]
pub struct EmbeddingCache {
    base: String,
    dim: usize,
    entries: HashMap<(String, u64, u64), Vec<f32>>,
}

const CACHE_FORMAT: &str = "likeness-embedding-cache-v1";

impl EmbeddingCache {
    /// An empty cache for vectors of extractor `base`.
    pub fn new(base: &str) -> Self {
        EmbeddingCache { base: base.to_string(), dim: 0, entries: HashMap::new() }
    }

    /// Read `file`; a missing file gives an empty cache, and so does one written for another base
    /// extractor or in another format (it will be overwritten on [`EmbeddingCache::save`]). A file that
    /// exists but cannot be parsed is an error naming it.
    pub fn open(file: &Path, base: &str) -> Result<Self, FeatureError> {
        let bytes = match std::fs::read(file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::new(base)),
            Err(source) => return Err(FeatureError::Io { path: file.to_path_buf(), source }),
        };
        let bad = |why: String| FeatureError::ModelFormat(format!("{}: not an embedding cache: {why}", file.display()));
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = meta.metadata().clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(CACHE_FORMAT)
            || meta.get("base").map(String::as_str) != Some(base)
        {
            return Ok(Self::new(base));
        }
        let keys: Vec<(String, u64, u64)> =
            serde_json::from_str(meta.get("keys").map_or("", String::as_str)).map_err(|e| bad(format!("keys: {e}")))?;
        let t = st.tensor("vectors").map_err(|e| bad(e.to_string()))?;
        if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 2 || t.shape()[0] != keys.len() {
            return Err(bad(format!("vectors tensor is {:?} {:?} for {} keys", t.dtype(), t.shape(), keys.len())));
        }
        let dim = t.shape()[1];
        let floats: Vec<f32> = t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let entries = keys.into_iter().zip(floats.chunks(dim.max(1)).map(<[f32]>::to_vec)).collect();
        Ok(EmbeddingCache { base: base.to_string(), dim, entries })
    }

    /// The cached vector of `path` if its size and modification time still match.
    pub fn get(&self, path: &Path, size: u64, mtime_ns: u64) -> Option<&[f32]> {
        self.entries.get(&(path.to_string_lossy().into_owned(), size, mtime_ns)).map(Vec::as_slice)
    }

    /// Remember `vector` for `path` (replacing any older entry of the same file).
    pub fn insert(&mut self, path: &Path, size: u64, mtime_ns: u64, vector: Vec<f32>) -> Result<(), FeatureError> {
        if self.dim == 0 {
            self.dim = vector.len();
        }
        if vector.len() != self.dim || vector.is_empty() {
            return Err(FeatureError::InvalidArgument(format!(
                "embedding cache holds {}-d vectors, {} gave {}",
                self.dim,
                path.display(),
                vector.len()
            )));
        }
        let name = path.to_string_lossy().into_owned();
        self.entries.retain(|(p, _, _), _| *p != name);
        self.entries.insert((name, size, mtime_ns), vector);
        Ok(())
    }

    /// Number of cached vectors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Write the cache to `file` (through a temporary file and a rename, so a crash leaves the old one).
    pub fn save(&self, file: &Path) -> Result<(), FeatureError> {
        let mut keys: Vec<&(String, u64, u64)> = self.entries.keys().collect();
        keys.sort();
        let mut data = Vec::with_capacity(keys.len() * self.dim * 4);
        for k in &keys {
            data.extend(self.entries[*k].iter().flat_map(|x| x.to_le_bytes()));
        }
        let meta = HashMap::from([
            ("format".to_string(), CACHE_FORMAT.to_string()),
            ("base".to_string(), self.base.clone()),
            ("keys".to_string(), serde_json::to_string(&keys).unwrap_or_default()),
        ]);
        let fail = |why: String| {
            FeatureError::InvalidArgument(format!("{}: cannot write embedding cache: {why}", file.display()))
        };
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![keys.len(), self.dim], &data)
            .map_err(|e| fail(e.to_string()))?;
        let bytes = safetensors::serialize([("vectors", view)], Some(meta)).map_err(|e| fail(e.to_string()))?;
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| FeatureError::Io { path: dir.to_path_buf(), source })?;
        }
        let mut tmp = file.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        std::fs::write(&tmp, bytes).map_err(|source| FeatureError::Io { path: tmp.clone(), source })?;
        std::fs::rename(&tmp, file).map_err(|source| FeatureError::Io { path: file.to_path_buf(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_vector_once_with_positives() {
        let members: Vec<Vec<usize>> =
            vec![(0..7).collect(), (7..10).collect(), (10..12).collect(), (12..30).collect()];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let batches = class_balanced_batches(&members, 4, 16, &mut rng);
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..30).collect::<Vec<_>>());
        let class = |i: usize| members.iter().position(|m| m.contains(&i)).unwrap();
        for b in &batches {
            assert!(b.len() <= 16 + 8, "batch of {}", b.len());
            // Every member of a batch has a positive in it.
            for &i in b {
                assert!(b.iter().any(|&j| j != i && class(j) == class(i)), "{i} alone in {b:?}");
            }
        }
    }

    /// Classes separated only in a weak 8-d subspace, buried under strong per-sample noise in 56 other
    /// dimensions: raw cosine retrieval is poor; a linear projection that drops the noise is good.
    fn synthetic(seed: u64, per_class: usize) -> LabelledSet {
        use rand::RngExt;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut centres = rand_chacha::ChaCha8Rng::seed_from_u64(1234);
        let classes: Vec<Vec<f32>> =
            (0..6).map(|_| (0..8).map(|_| centres.random_range(-1.0f32..1.0)).collect()).collect();
        let mut set = LabelledSet::default();
        for (c, centre) in classes.iter().enumerate() {
            for _ in 0..per_class {
                let mut v: Vec<f32> = centre.iter().map(|m| m + rng.random_range(-0.25f32..0.25)).collect();
                v.extend((0..56).map(|_| rng.random_range(-2.0f32..2.0)));
                set.vectors.push(v);
                set.labels.push(format!("class{c}"));
            }
        }
        set
    }

    fn quick(loss: LossKind, hidden: usize, seed: u64) -> TrainConfig {
        TrainConfig {
            out_dim: 16,
            hidden,
            loss,
            epochs: 25,
            batch_size: 32,
            lr: 5e-3,
            seed,
            patience: 25,
            ..Default::default()
        }
    }

    #[test]
    fn learns_the_projection_and_generalises_to_held_out_data() {
        let (tr, va, te) = (synthetic(1, 30), synthetic(2, 10), synthetic(3, 15));
        for (loss, hidden) in [(LossKind::Ms, 0), (LossKind::Triplet, 0), (LossKind::Ms, 32)] {
            let out = train(&tr, &va, &quick(loss, hidden, 5), &mut |_| {}).unwrap();
            let raw = evaluate(None, &te).unwrap();
            let learned = evaluate(Some(&out.head), &te).unwrap();
            eprintln!("{loss}/{hidden}: held-out mAP raw {:.3} -> head {:.3}", raw.map, learned.map);
            assert!(
                learned.map > raw.map + 0.2,
                "{loss}/{hidden}: held-out mAP {:.3} vs raw {:.3}",
                learned.map,
                raw.map
            );
            let first = out.history[0].train_loss;
            let last = out.history.last().unwrap().train_loss;
            assert!(last < first, "{loss}/{hidden}: loss {first} -> {last}");
            assert_eq!(out.best_val.map, out.history[out.best_epoch - 1].val.map);
            assert!(out.history.iter().all(|e| e.val.map <= out.best_val.map));
        }
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let (tr, va) = (synthetic(1, 12), synthetic(2, 6));
        let cfg = TrainConfig { epochs: 4, ..quick(LossKind::Ms, 0, 9) };
        let a = train(&tr, &va, &cfg, &mut |_| {}).unwrap();
        let b = train(&tr, &va, &cfg, &mut |_| {}).unwrap();
        let c = train(&tr, &va, &TrainConfig { seed: 10, ..cfg.clone() }, &mut |_| {}).unwrap();
        let losses = |o: &TrainOutcome| o.history.iter().map(|e| e.train_loss).collect::<Vec<_>>();
        assert_eq!(losses(&a), losses(&b));
        assert_eq!(a.head.apply_batch(&va.vectors).unwrap(), b.head.apply_batch(&va.vectors).unwrap());
        assert_ne!(a.head.apply_batch(&va.vectors).unwrap(), c.head.apply_batch(&va.vectors).unwrap());
        assert_eq!(a.data_hash, b.data_hash);
        assert_ne!(a.data_hash, data_hash(&va, &tr));
    }

    #[test]
    fn early_stopping_and_callback() {
        let (tr, va) = (synthetic(1, 12), synthetic(2, 6));
        let cfg = TrainConfig { epochs: 200, patience: 2, lr: 5e-2, ..quick(LossKind::Ms, 0, 1) };
        let mut seen = Vec::new();
        let out = train(&tr, &va, &cfg, &mut |e| seen.push(e.epoch)).unwrap();
        assert!(out.history.len() < 200, "never stopped");
        assert_eq!(seen, (1..=out.history.len()).collect::<Vec<_>>());
        assert_eq!(out.history.len(), out.best_epoch + 2);
    }

    #[test]
    fn saved_head_reloads_with_its_metrics() {
        let (tr, va) = (synthetic(1, 10), synthetic(2, 5));
        let out = train(&tr, &va, &TrainConfig { epochs: 3, ..quick(LossKind::Triplet, 8, 2) }, &mut |_| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (st, js) = out.save(&dir.path().join("h"), "cnn").unwrap();
        let loaded = ProjectionHead::load(&js).unwrap();
        assert_eq!(loaded.apply_batch(&va.vectors).unwrap(), out.head.apply_batch(&va.vectors).unwrap());
        let info = loaded.info().unwrap();
        assert_eq!((info.in_dim, info.hidden, info.out_dim), (64, 8, 16));
        assert_eq!(info.metrics["val_map"], out.best_val.map);
        assert_eq!(info.data_hash, out.data_hash);
        assert_eq!(info.training["loss"], "triplet");
        assert!(st.exists());
    }

    #[test]
    fn bad_data_is_a_clear_error() {
        let va = synthetic(2, 4);
        let one_label = LabelledSet { vectors: vec![vec![1.0, 0.0]; 3], labels: vec!["a".into(); 3] };
        let err = train(&one_label, &one_label, &TrainConfig::default(), &mut |_| {}).unwrap_err();
        assert!(matches!(err, TrainError::TooFewLabels { found: 1, .. }), "{err}");
        let mut tiny = synthetic(1, 4);
        tiny.vectors.push(vec![0.5; 64]);
        tiny.labels.push("lonely".into());
        let err = train(&tiny, &va, &TrainConfig::default(), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("\"lonely\" has 1 vector"), "{err}");
        let mut ragged = synthetic(1, 4);
        ragged.vectors[3].pop();
        let err = train(&ragged, &va, &TrainConfig::default(), &mut |_| {}).unwrap_err();
        assert!(matches!(err, TrainError::Dimension { index: 3, .. }), "{err}");
        let mut nan = synthetic(1, 4);
        nan.vectors[2][0] = f32::NAN;
        assert!(matches!(train(&nan, &va, &TrainConfig::default(), &mut |_| {}), Err(TrainError::NonFinite { .. })));
        let singles = LabelledSet { vectors: va.vectors[..2].to_vec(), labels: vec!["x".into(), "y".into()] };
        let err = train(&synthetic(1, 4), &singles, &TrainConfig::default(), &mut |_| {}).unwrap_err();
        assert!(matches!(err, TrainError::NoValidationPairs), "{err}");
        let err = train(&synthetic(1, 4), &va, &TrainConfig { batch_size: 3, ..Default::default() }, &mut |_| {});
        assert!(matches!(err, Err(TrainError::Config(_))));
    }

    #[test]
    fn embedding_cache_round_trip_and_invalidation() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c/emb.safetensors");
        let mut c = EmbeddingCache::open(&file, "cnn").unwrap();
        assert!(c.is_empty());
        c.insert(Path::new("/a.png"), 10, 5, vec![1.0, 2.0, 3.0]).unwrap();
        c.insert(Path::new("/b.png"), 11, 6, vec![4.0, 5.0, 6.0]).unwrap();
        assert!(c.insert(Path::new("/c.png"), 1, 1, vec![1.0]).is_err());
        c.save(&file).unwrap();
        let mut r = EmbeddingCache::open(&file, "cnn").unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.get(Path::new("/b.png"), 11, 6), Some(&[4.0f32, 5.0, 6.0][..]));
        assert_eq!(r.get(Path::new("/b.png"), 11, 7), None, "a touched file is recomputed");
        r.insert(Path::new("/b.png"), 11, 7, vec![0.0; 3]).unwrap();
        assert_eq!(r.len(), 2, "the stale entry is replaced");
        assert!(EmbeddingCache::open(&file, "cnn-lite2").unwrap().is_empty(), "another base starts empty");
        std::fs::write(&file, b"garbage").unwrap();
        let err = EmbeddingCache::open(&file, "cnn").unwrap_err();
        assert!(err.to_string().contains("emb.safetensors"), "{err}");
    }

    #[test]
    fn stratified_split_is_per_label_and_seeded() {
        let labels: Vec<String> =
            [("a", 10), ("b", 5), ("c", 2)].iter().flat_map(|(l, n)| vec![l.to_string(); *n]).collect();
        let (tr, va) = stratified_split(&labels, 0.2, 7);
        assert_eq!(tr.len() + va.len(), 17);
        let count = |idx: &[usize], l: &str| idx.iter().filter(|&&i| labels[i] == l).count();
        assert_eq!((count(&va, "a"), count(&va, "b"), count(&va, "c")), (2, 1, 0));
        assert_eq!(stratified_split(&labels, 0.2, 7), (tr.clone(), va.clone()));
        assert_ne!(stratified_split(&labels, 0.2, 8).1, va);
        assert!(tr.iter().all(|i| !va.contains(i)));
    }

    #[test]
    fn loss_kind_parses() {
        assert_eq!("ms".parse::<LossKind>().unwrap(), LossKind::Ms);
        assert_eq!("Triplet".parse::<LossKind>().unwrap(), LossKind::Triplet);
        assert!("hinge".parse::<LossKind>().is_err());
    }

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
