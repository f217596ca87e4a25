//! `likeness eval LABELLED_DIR`: leave-one-out retrieval quality of each feature on an
//! ImageFolder tree (`root/<label>/<image>`), so a user can see which features suit their images.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Result};
use features::decode::DecodeLimits;
use features::metrics::{leave_one_out, RetrievalMetrics};
use features::pipeline::extract_many;
use features::Embedding;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::catalog;
use crate::walk::{canonical_dir, find_images};

/// Arguments of `likeness eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Labelled folder: one sub-folder per label.
    pub dir: PathBuf,
    /// Comma-separated features to evaluate.
    #[arg(long, default_value = "cnn,color,texture,phash")]
    pub features: String,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One feature's scores.
#[derive(Debug, Serialize)]
pub struct FeatureScore {
    /// Feature name.
    pub feature: String,
    /// Vector length.
    pub dim: usize,
    /// Distance used.
    pub distance: String,
    /// Retrieval metrics.
    #[serde(flatten)]
    pub metrics: RetrievalMetrics,
}

/// The whole evaluation.
#[derive(Debug, Serialize)]
pub struct EvalReport {
    /// Images evaluated (labelled and decodable).
    pub images: usize,
    /// Number of labels.
    pub labels: usize,
    /// Precision a random ranking would get on this tree (expected share of same-label items).
    pub chance_precision: f64,
    /// Files skipped: unlabelled or undecodable, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
    /// Scores per feature.
    pub features: Vec<FeatureScore>,
}

/// Run `likeness eval`.
pub fn run(args: &Args) -> Result<()> {
    let root = canonical_dir(&args.dir)?;
    let names = catalog::parse_feature_list(&args.features)?;
    let extractors = catalog::build_extractors(&names, &args.model, None)?;
    let (found, walk_errors) = find_images(std::slice::from_ref(&root), &[]);
    let mut skipped: Vec<(PathBuf, String)> = walk_errors;
    let mut files = Vec::new();
    for f in found {
        match f.label {
            Some(l) => files.push((f.path, l)),
            None => skipped.push((f.path, "not in a label folder".into())),
        }
    }
    if files.len() < 2 {
        bail!(
            "{} holds {} labelled images; eval needs an ImageFolder tree (DIR/<label>/<image>)",
            root.display(),
            files.len()
        );
    }
    let paths: Vec<PathBuf> = files.iter().map(|f| f.0.clone()).collect();
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(paths.len() as u64) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  eta {eta}").expect("static template"),
    );
    let results = extract_many(&paths, &extractors, &DecodeLimits::default(), &|p| bar.set_position(p.done as u64));
    bar.finish_and_clear();

    let mut labels = Vec::new();
    let mut vectors: BTreeMap<String, Vec<Embedding>> = BTreeMap::new();
    for ((path, label), r) in files.into_iter().zip(results) {
        match r {
            Ok(rec) => {
                labels.push(label);
                for (name, f) in rec.features {
                    vectors.entry(name).or_default().push(f.vector);
                }
            }
            Err(e) => skipped.push((path, e.to_string())),
        }
    }
    let mut per_label: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &labels {
        *per_label.entry(l.as_str()).or_default() += 1;
    }
    let n = labels.len() as f64;
    let chance = if n > 1.0 {
        per_label.values().map(|&c| c as f64 * (c as f64 - 1.0)).sum::<f64>() / (n * (n - 1.0))
    } else {
        0.0
    };
    let mut scores = Vec::new();
    for ex in &extractors {
        let v = vectors.remove(ex.name()).unwrap_or_default();
        let metrics = leave_one_out(&v, &labels, ex.distance());
        scores.push(FeatureScore {
            feature: ex.name().to_string(),
            dim: ex.dim(),
            distance: catalog::metric_for(ex.distance()).to_string(),
            metrics,
        });
    }
    let report = EvalReport {
        images: labels.len(),
        labels: per_label.len(),
        chance_precision: chance,
        skipped,
        features: scores,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "{} images, {} labels, leave-one-out retrieval (chance precision {:.3})",
        report.images, report.labels, report.chance_precision
    );
    println!(
        "{:<10} {:>5} {:<8} {:>6} {:>6} {:>6} {:>6} {:>6} {:>8}",
        "feature", "dim", "metric", "mAP", "P@1", "P@5", "P@10", "R@10", "queries"
    );
    for s in &report.features {
        let m = &s.metrics;
        println!(
            "{:<10} {:>5} {:<8} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>6.3} {:>8}",
            s.feature, s.dim, s.distance, m.map, m.p_at_1, m.p_at_5, m.p_at_10, m.recall_at_10, m.queries
        );
    }
    if !report.skipped.is_empty() {
        println!("skipped {} files:", report.skipped.len());
        for (p, why) in &report.skipped {
            println!("  {}: {why}", p.display());
        }
    }
    Ok(())
}
