//! The training loop: AdamW on the head's parameters over class-balanced batches, validation after every
//! epoch, early stopping, and the leave-one-out evaluation it chooses the epoch by.

use std::collections::HashMap;
use std::time::Instant;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::SeedableRng;

use super::loss::batch_loss;
use super::sampling::class_balanced_batches;
use super::{data_hash, EpochReport, LabelledSet, TrainConfig, TrainError, TrainOutcome, TrainResult};
use crate::extractor::{DistanceKind, Embedding};
use crate::head::ProjectionHead;
use crate::metrics::{leave_one_out, RetrievalMetrics};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::LossKind;

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
}
