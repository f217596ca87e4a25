//! `likeness train`: fine-tune a projection head on labelled folders.
//!
//! The frozen CNN embeds every image once (vectors are cached on disk, keyed by path, size and
//! modification time); a small head (linear or 2-layer MLP) is then trained on those vectors with a
//! metric-learning loss ([`features::train`]), validated each epoch with the same leave-one-out
//! retrieval metrics as `likeness eval`, and the best epoch's head is saved as `OUT.safetensors` +
//! `OUT.json`. Use it with `--features cnn+head:OUT`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use features::decode::DecodeLimits;
use features::pipeline::extract_many;
use features::registry::build_extractor;
use features::train::{stratified_split, train, EmbeddingCache, EpochReport, LabelledSet, LossKind, TrainConfig};
use features::{DistanceKind, Embedding, RetrievalMetrics};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::walk::{canonical_dir, find_images, FoundFile};

/// Arguments of `likeness train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// ImageFolder tree `ROOT/<label>/<image>`, split into training and validation images per label
    /// (stratified, with --seed).
    #[arg(required_unless_present = "train", conflicts_with_all = ["train", "val"])]
    pub root: Option<PathBuf>,
    /// Training tree, with --val, instead of ROOT.
    #[arg(long, requires = "val")]
    pub train: Option<PathBuf>,
    /// Validation tree, with --train.
    #[arg(long, requires = "train")]
    pub val: Option<PathBuf>,
    /// Where to save the head: writes OUT.safetensors and OUT.json.
    #[arg(long)]
    pub out: PathBuf,
    /// Output dimension of the head.
    #[arg(long, default_value_t = 128)]
    pub dim: usize,
    /// Hidden width of a 2-layer MLP head; 0 for a linear head.
    #[arg(long, default_value_t = 0)]
    pub hidden: usize,
    /// Loss: `ms` (multi-similarity) or `triplet` (semi-hard mining).
    #[arg(long, default_value = "ms", value_parser = ["ms", "triplet"])]
    pub loss: String,
    /// Maximum number of epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Batch size.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Seed for the split, the initialisation and the batch order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of each label's images held out for validation when ROOT is given.
    #[arg(long, default_value_t = 0.2)]
    pub val_fraction: f64,
    /// Stop after this many epochs without a better validation mAP.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Base extractor whose embeddings the head transforms.
    #[arg(long, default_value = "cnn", value_parser = ["cnn", "cnn-lite2"])]
    pub base: String,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
    /// Embedding cache file. Default: `.likeness-embeddings-BASE.safetensors` beside OUT.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Do not read or write the embedding cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Print a JSON report instead of progress and text.
    #[arg(long)]
    pub json: bool,
}

/// Where the images came from and how many were used.
#[derive(Debug, Serialize)]
struct DataSummary {
    train_images: usize,
    val_images: usize,
    labels: usize,
    cached: usize,
    computed: usize,
    cache_file: Option<PathBuf>,
    skipped: Vec<(PathBuf, String)>,
}

/// The JSON report.
#[derive(Debug, Serialize)]
struct TrainReport {
    safetensors: PathBuf,
    json: PathBuf,
    feature: String,
    data: DataSummary,
    config: TrainConfig,
    baseline_val: RetrievalMetrics,
    best_val: RetrievalMetrics,
    best_epoch: usize,
    history: Vec<EpochReport>,
}

/// Run `likeness train`.
pub fn run(args: &TrainArgs) -> Result<()> {
    let cfg = TrainConfig {
        out_dim: args.dim,
        hidden: args.hidden,
        loss: args.loss.parse::<LossKind>()?,
        lr: args.lr,
        epochs: args.epochs,
        batch_size: args.batch,
        seed: args.seed,
        patience: args.patience,
        ..TrainConfig::default()
    };
    if args.dim == 0 {
        bail!("--dim must be positive");
    }

    // 1. The labelled files, checked before anything slow happens.
    let (train_files, val_files, mut skipped) = match (&args.root, &args.train, &args.val) {
        (Some(root), _, _) => {
            if !(args.val_fraction > 0.0 && args.val_fraction < 1.0) {
                bail!("--val-fraction must be between 0 and 1 (exclusive), got {}", args.val_fraction);
            }
            let (files, skipped) = labelled_files(root)?;
            check_tree(root, &files)?;
            let labels: Vec<String> = files.iter().map(|f| f.1.clone()).collect();
            let (tr, va) = stratified_split(&labels, args.val_fraction, args.seed);
            if va.is_empty() {
                bail!(
                    "{}: no label has 3 or more images, so none can spare one for validation; add images or give --train and --val trees",
                    root.display()
                );
            }
            let pick = |idx: &[usize]| idx.iter().map(|&i| files[i].clone()).collect::<Vec<_>>();
            (pick(&tr), pick(&va), skipped)
        }
        (None, Some(tr), Some(va)) => {
            let (train_files, mut skipped) = labelled_files(tr)?;
            check_tree(tr, &train_files)?;
            let (val_files, s2) = labelled_files(va)?;
            skipped.extend(s2);
            let known: BTreeSet<&str> = train_files.iter().map(|f| f.1.as_str()).collect();
            let unknown: BTreeSet<&str> =
                val_files.iter().map(|f| f.1.as_str()).filter(|l| !known.contains(l)).collect();
            if !unknown.is_empty() && !args.json {
                eprintln!(
                    "note: validation labels not in the training tree: {}",
                    unknown.into_iter().collect::<Vec<_>>().join(", ")
                );
            }
            (train_files, val_files, skipped)
        }
        _ => bail!("give an ImageFolder ROOT, or both --train DIR and --val DIR"),
    };

    // 2. Backbone embeddings, from the cache when the file is unchanged.
    let cache_file = if args.no_cache {
        None
    } else {
        Some(args.cache.clone().unwrap_or_else(|| default_cache(&args.out, &args.base)))
    };
    let mut cache = match &cache_file {
        Some(f) => EmbeddingCache::open(f, &args.base)?,
        None => EmbeddingCache::new(&args.base),
    };
    let all: Vec<&(FoundFile, String)> = train_files.iter().chain(&val_files).collect();
    let mut seen = BTreeSet::new();
    let missing: Vec<&FoundFile> = all
        .iter()
        .map(|(f, _)| f)
        .filter(|f| cache.get(&f.path, f.size, f.mtime_ns).is_none() && seen.insert(&f.path))
        .collect();
    let cached = all.len() - missing.len();
    let paths: Vec<PathBuf> = missing.iter().map(|f| f.path.clone()).collect();
    let mut failed: BTreeMap<PathBuf, String> = BTreeMap::new();
    if !paths.is_empty() {
        let extractor = build_extractor(&args.base, &args.model.extractor_options()).with_context(|| {
            format!("cannot load the {} extractor (fetch the model with `likeness model fetch`)", args.base)
        })?;
        if extractor.distance() != DistanceKind::Cosine {
            bail!("base extractor {} does not give cosine embeddings", args.base);
        }
        let bar = bar(args.json, paths.len(), "{bar:40} {pos}/{len} images  {per_sec}  eta {eta}");
        if !args.json {
            say(&bar, format!("embedding {} images with {} ({} cached)", paths.len(), args.base, cached));
        }
        let results = extract_many(&paths, std::slice::from_ref(&extractor), &DecodeLimits::default(), &|p| {
            bar.set_position(p.done as u64)
        });
        bar.finish_and_clear();
        for (f, r) in missing.iter().zip(results) {
            let vector = r.map_err(|e| e.to_string()).and_then(|rec| {
                match rec.features.get(extractor.name()).map(|x| &x.vector) {
                    Some(Embedding::Dense(v)) => Ok(v.clone()),
                    _ => Err(format!("{} gave no dense vector", args.base)),
                }
            });
            match vector {
                Ok(v) => cache.insert(&f.path, f.size, f.mtime_ns, v)?,
                Err(why) => {
                    failed.insert(f.path.clone(), why);
                }
            }
        }
        if let Some(file) = &cache_file {
            cache.save(file)?;
        }
    }
    skipped.extend(failed.iter().map(|(p, w)| (p.clone(), w.clone())));
    let set = |files: &[(FoundFile, String)]| {
        let mut s = LabelledSet::default();
        for (f, label) in files {
            if let Some(v) = cache.get(&f.path, f.size, f.mtime_ns) {
                s.vectors.push(v.to_vec());
                s.labels.push(label.clone());
            }
        }
        s
    };
    let (train_set, val_set) = (set(&train_files), set(&val_files));

    // 3. Training, one progress line per epoch.
    let bar = bar(args.json, cfg.epochs, "{bar:30} epoch {pos}/{len}  {msg}");
    if !args.json {
        say(
            &bar,
            format!(
                "training a {} head {}→{}{} with {} loss on {} images ({} labels), validating on {}",
                if cfg.hidden == 0 { "linear" } else { "2-layer MLP" },
                train_set.dim(),
                if cfg.hidden == 0 { String::new() } else { format!("{}→", cfg.hidden) },
                cfg.out_dim,
                cfg.loss,
                train_set.len(),
                train_set.class_counts().len(),
                val_set.len()
            ),
        );
    }
    let outcome = train(&train_set, &val_set, &cfg, &mut |e: &EpochReport| {
        bar.set_position(e.epoch as u64);
        bar.set_message(format!("val mAP {:.4}", e.val.map));
        if !args.json {
            say(
                &bar,
                format!(
                    "epoch {:>3}  loss {:.4}  val mAP {:.4}  P@10 {:.4}  {:.1}s{}",
                    e.epoch,
                    e.train_loss,
                    e.val.map,
                    e.val.p_at_10,
                    e.seconds,
                    if e.improved { "  *" } else { "" }
                ),
            );
        }
    })?;
    bar.finish_and_clear();
    let (st, js) = outcome.save(&args.out, &args.base)?;
    let feature = format!("{}+head:{}", args.base, args.out.display());

    let data = DataSummary {
        train_images: train_set.len(),
        val_images: val_set.len(),
        labels: train_set.class_counts().len(),
        cached,
        computed: paths.len() - failed.len(),
        cache_file,
        skipped,
    };
    if args.json {
        let report = TrainReport {
            safetensors: st,
            json: js,
            feature,
            data,
            config: outcome.config.clone(),
            baseline_val: outcome.baseline_val,
            best_val: outcome.best_val,
            best_epoch: outcome.best_epoch,
            history: outcome.history,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let (b, h) = (&outcome.baseline_val, &outcome.best_val);
    let rows = [(format!("raw {}", args.base), b), (format!("head (best epoch {})", outcome.best_epoch), h)];
    println!("{:<28} {:>6}  {:>6}  {:>6}", format!("validation ({} queries)", h.queries), "mAP", "P@1", "P@10");
    for (name, m) in rows {
        println!("  {name:<26} {:.4}  {:.4}  {:.4}", m.map, m.p_at_1, m.p_at_10);
    }
    println!("saved {} and {}", st.display(), js.display());
    println!("use it with --features {feature}");
    if !data.skipped.is_empty() {
        println!("skipped {} files:", data.skipped.len());
        for (p, why) in &data.skipped {
            println!("  {}: {why}", p.display());
        }
    }
    Ok(())
}

/// Print a line above the progress bar (also when stderr is not a terminal and the bar is hidden).
fn say(bar: &ProgressBar, line: String) {
    bar.suspend(|| println!("{line}"));
}

/// A progress bar, hidden for JSON output.
fn bar(hidden: bool, len: usize, template: &str) -> ProgressBar {
    if hidden {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(ProgressStyle::with_template(template).expect("static template"));
    bar
}

/// The default cache file: `.likeness-embeddings-BASE.safetensors` in OUT's folder.
fn default_cache(out: &Path, base: &str) -> PathBuf {
    let dir = out.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    dir.join(format!(".likeness-embeddings-{base}.safetensors"))
}

/// Image files with their labels.
type Labelled = Vec<(FoundFile, String)>;
/// Files skipped, with the reason.
type Skipped = Vec<(PathBuf, String)>;

/// The labelled image files of an ImageFolder tree, with the files that were skipped and why.
fn labelled_files(dir: &Path) -> Result<(Labelled, Skipped)> {
    let root = canonical_dir(dir)?;
    let (found, mut skipped) = find_images(std::slice::from_ref(&root), &[]);
    let mut files = Vec::new();
    for f in found {
        match f.label.clone() {
            Some(l) => files.push((f, l)),
            None => skipped.push((f.path, "not in a label folder".into())),
        }
    }
    Ok((files, skipped))
}

/// A training tree needs two labels and at least two images per label.
fn check_tree(dir: &Path, files: &[(FoundFile, String)]) -> Result<()> {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, l) in files {
        *counts.entry(l.as_str()).or_default() += 1;
    }
    if counts.len() < 2 {
        bail!(
            "{}: found {} label folder(s) with images{}; training needs at least two (an ImageFolder tree DIR/<label>/<image>)",
            dir.display(),
            counts.len(),
            if counts.is_empty() { String::new() } else { format!(" ({})", counts.keys().copied().collect::<Vec<_>>().join(", ")) }
        );
    }
    let tiny: Vec<String> = counts.iter().filter(|(_, &n)| n < 2).map(|(l, n)| format!("{l} ({n})")).collect();
    if !tiny.is_empty() {
        bail!("{}: every label needs at least 2 images, but these have fewer: {}", dir.display(), tiny.join(", "));
    }
    Ok(())
}
