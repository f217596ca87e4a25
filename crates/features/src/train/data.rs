//! Labelled embedding sets: validation of their shape, the tensor the loop trains on, the hash that
//! identifies them, and the per-label train / validation split.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use super::{TrainError, TrainResult};

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

    pub(super) fn check(&self, set: &'static str) -> TrainResult<()> {
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

    pub(super) fn tensor(&self) -> TrainResult<Tensor> {
        let flat: Vec<f32> = self.vectors.iter().flatten().copied().collect();
        Ok(Tensor::from_vec(flat, (self.len(), self.dim()), &Device::Cpu)?)
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
