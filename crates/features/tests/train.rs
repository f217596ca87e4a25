//! Acceptance test of `features::train` on real images: emoji grouped by their Unicode category.
//!
//! A few hundred emoji from `data/emoji/64` are labelled with their category from
//! `data/emoji/emoji.json`, embedded once with the frozen EfficientNet-Lite0 CNN, and split into
//! train / validation / held-out test *by base emoji* (every emoji sharing a first code point — gender
//! and other variants of one person, say — lands in one split, and skin-tone variants are left out), so
//! near-duplicates cannot leak from training into evaluation. A linear head is trained on the training
//! split with early stopping on validation mAP; the test then measures leave-one-out mAP on the held-out
//! split for the raw CNN embedding and for the head, and asserts the head is better.
//!
//! The model is fetched into `$LIKENESS_MODEL_DIR` (default `models` in the test data directory);
//! images come from `$LIKENESS_TEST_DATA` (default `<workspace>/data`). Setting `LIKENESS_EMBEDDING_CACHE=FILE`
//! keeps the CNN vectors between runs (for tuning; off by default so the CNN is really exercised).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use features::decode::DecodeLimits;
use features::pipeline::extract_many;
use features::registry::{build_extractor, ExtractorOptions};
use features::train::{evaluate, train, EmbeddingCache, LabelledSet, LossKind, TrainConfig};
use features::{Embedding, FeatureExtractor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use testdata::model_dir;

/// Categories used (all but "Component", which has 5 emoji).
const CATEGORIES: &[&str] = &[
    "Smileys & Emotion",
    "People & Body",
    "Animals & Nature",
    "Food & Drink",
    "Travel & Places",
    "Activities",
    "Objects",
    "Symbols",
    "Flags",
];
/// Images per category (whole base-emoji groups are taken until this many).
const PER_CATEGORY: usize = 40;
const SEED: u64 = 2024;

fn data_dir() -> PathBuf {
    testdata::data_dir_with("emoji/emoji.json")
}

/// Which split an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Split {
    Train,
    Val,
    Test,
}

/// The labelled emoji: (file, category, split), deterministic for [`SEED`].
fn emoji_dataset() -> Vec<(PathBuf, String, Split)> {
    let dir = data_dir().join("emoji");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("emoji.json")).expect("read emoji.json"))
            .expect("parse emoji.json");
    // category -> base code point -> files
    let mut groups: BTreeMap<&str, BTreeMap<String, Vec<PathBuf>>> = BTreeMap::new();
    for e in json.as_array().expect("emoji.json is an array") {
        let (Some(cat), Some(image), Some(unified)) =
            (e["category"].as_str(), e["image"].as_str(), e["unified"].as_str())
        else {
            continue;
        };
        let Some(cat) = CATEGORIES.iter().find(|c| **c == cat) else {
            continue;
        };
        let path = dir.join("64").join(image);
        if !path.is_file() {
            continue;
        }
        let base = unified.split('-').next().unwrap_or(unified).to_string();
        groups.entry(cat).or_default().entry(base).or_default().push(path);
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(SEED);
    let mut out = Vec::new();
    for (cat, by_base) in groups {
        let mut bases: Vec<Vec<PathBuf>> = by_base.into_values().collect();
        bases.shuffle(&mut rng);
        // Whole groups, up to PER_CATEGORY images, dealt to the split furthest below its share.
        let shares = [(Split::Train, 0.5), (Split::Val, 0.2), (Split::Test, 0.3)];
        let mut counts = [0usize; 3];
        let mut taken = 0;
        for files in bases {
            if taken + files.len() > PER_CATEGORY {
                continue;
            }
            taken += files.len();
            let k = (0..3)
                .max_by(|&a, &b| {
                    let deficit = |i: usize| shares[i].1 * taken as f64 - counts[i] as f64;
                    deficit(a).total_cmp(&deficit(b)).then(b.cmp(&a))
                })
                .unwrap_or(0);
            counts[k] += files.len();
            out.extend(files.into_iter().map(|f| (f, cat.to_string(), shares[k].0)));
        }
    }
    out
}

/// CNN embeddings of `paths`, in order (from `$LIKENESS_EMBEDDING_CACHE` when set and fresh).
fn embed(paths: &[PathBuf]) -> Vec<Vec<f32>> {
    let cache_file = std::env::var_os("LIKENESS_EMBEDDING_CACHE").map(PathBuf::from);
    let mut cache = match &cache_file {
        Some(f) => EmbeddingCache::open(f, "cnn").expect("open embedding cache"),
        None => EmbeddingCache::new("cnn"),
    };
    let key = |p: &Path| {
        let m = std::fs::metadata(p).expect("stat");
        let mtime = m
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        (m.len(), mtime)
    };
    let missing: Vec<PathBuf> = paths
        .iter()
        .filter(|p| {
            let (s, t) = key(p);
            cache.get(p, s, t).is_none()
        })
        .cloned()
        .collect();
    if !missing.is_empty() {
        let opts = ExtractorOptions { model_dir: Some(model_dir()), ..Default::default() };
        let cnn: Box<dyn FeatureExtractor> = build_extractor("cnn", &opts)
            .unwrap_or_else(|e| panic!("cannot load the CNN from {}: {e}", model_dir().display()));
        let results = extract_many(&missing, std::slice::from_ref(&cnn), &DecodeLimits::default(), &|_| {});
        for (p, r) in missing.iter().zip(results) {
            let rec = r.unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let Embedding::Dense(v) = rec.features["cnn"].vector.clone() else { panic!("CNN vectors are dense") };
            let (s, t) = key(p);
            cache.insert(p, s, t, v).expect("cache insert");
        }
        if let Some(f) = &cache_file {
            cache.save(f).expect("save embedding cache");
        }
    }
    paths
        .iter()
        .map(|p| {
            let (s, t) = key(p);
            cache.get(p, s, t).expect("embedded").to_vec()
        })
        .collect()
}

#[test]
fn head_beats_the_raw_cnn_on_held_out_emoji() {
    let data = emoji_dataset();
    let paths: Vec<PathBuf> = data.iter().map(|d| d.0.clone()).collect();
    let vectors = embed(&paths);
    let mut sets: BTreeMap<Split, LabelledSet> = BTreeMap::new();
    for ((_, label, split), v) in data.iter().zip(vectors) {
        let s = sets.entry(*split).or_default();
        s.vectors.push(v);
        s.labels.push(label.clone());
    }
    let (tr, va, te) = (&sets[&Split::Train], &sets[&Split::Val], &sets[&Split::Test]);
    assert_eq!(te.class_counts().len(), CATEGORIES.len(), "every category is in the held-out split");
    // No base emoji is in two splits.
    let base = |p: &Path| p.file_stem().unwrap().to_string_lossy().split('-').next().unwrap().to_string();
    let mut split_of: BTreeMap<(String, String), Split> = BTreeMap::new();
    for (p, label, split) in &data {
        assert_eq!(*split_of.entry((label.clone(), base(p))).or_insert(*split), *split, "{} leaks", p.display());
    }

    let cfg = TrainConfig {
        out_dim: 128,
        hidden: 0,
        loss: LossKind::Ms,
        epochs: 40,
        patience: 8,
        seed: SEED,
        ..Default::default()
    };
    let outcome = train(tr, va, &cfg, &mut |e| {
        eprintln!("epoch {:>2} loss {:.4} val mAP {:.4} P@10 {:.4}", e.epoch, e.train_loss, e.val.map, e.val.p_at_10)
    })
    .expect("training runs");
    let raw = evaluate(None, te).unwrap();
    let head = evaluate(Some(&outcome.head), te).unwrap();
    eprintln!(
        "emoji categories: {} train / {} val / {} held-out images, {} labels; best epoch {}",
        tr.len(),
        va.len(),
        te.len(),
        te.class_counts().len(),
        outcome.best_epoch
    );
    eprintln!("validation mAP: raw CNN {:.4}, head {:.4}", outcome.baseline_val.map, outcome.best_val.map);
    eprintln!(
        "held-out   mAP: raw CNN {:.4}, head {:.4} (P@10 {:.4} -> {:.4})",
        raw.map, head.map, raw.p_at_10, head.p_at_10
    );
    assert_eq!(raw.queries, te.len());
    assert!(head.map > raw.map, "held-out mAP: head {:.4} does not beat the raw CNN {:.4}", head.map, raw.map);

    // The saved artifact reproduces the numbers through the extractor-facing API.
    let dir = tempfile::tempdir().unwrap();
    let (st, _) = outcome.save(&dir.path().join("emoji-head"), "cnn").unwrap();
    let loaded = features::head::ProjectionHead::load(&st).unwrap();
    assert_eq!(evaluate(Some(&loaded), te).unwrap(), head);
    assert_eq!(loaded.info().unwrap().metrics["val_map"], outcome.best_val.map);
}
