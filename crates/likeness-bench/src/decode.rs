//! `likeness-bench decode`: what reduced-size JPEG decoding (DCT domain, 1/2 to 1/8) gains and
//! costs on a folder of images: decode time per image, full against reduced to what the CNN
//! needs (one thread, one image at a time), and the cosine distance between the CNN embeddings
//! of the two decodes (its distribution over the images).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;
use features::cnn::{CnnExtractor, CnnVariant};
use features::pipeline::{decode_size, extract_image};
use features::{is_image_path, load_image_sized, DecodeLimits, DecodeSize, Embedding, FeatureExtractor};

/// Arguments of `likeness-bench decode`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders of images (searched recursively).
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Skip the embeddings (decode times only).
    #[arg(long)]
    no_embed: bool,
    #[command(flatten)]
    model: likeness::model_args::ModelArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

fn dense(e: &Embedding) -> &[f32] {
    match e {
        Embedding::Dense(v) => v,
        Embedding::Binary(_) => &[],
    }
}

/// Run the benchmark.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let mut paths: Vec<PathBuf> = args
        .dirs
        .iter()
        .flat_map(|d| walkdir::WalkDir::new(d).into_iter().filter_map(|e| e.ok()).map(|e| e.into_path()))
        .filter(|p| p.is_file() && is_image_path(p))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no images under {:?}", args.dirs);
    }
    let cnn: Vec<Box<dyn FeatureExtractor>> = vec![Box::new(
        CnnExtractor::load(CnnVariant::Lite0, args.model.model_dir.as_deref())?.with_device(args.model.device)?,
    )];
    let reduced_size = decode_size(&cnn);
    let limits = DecodeLimits { time_budget: std::time::Duration::ZERO, ..Default::default() };
    let (mut full_s, mut reduced_s) = (0.0, 0.0);
    let mut dists = Vec::new();
    for p in &paths {
        let t = Instant::now();
        let full = load_image_sized(p, &limits, DecodeSize::Full)?;
        let full_one = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let reduced = load_image_sized(p, &limits, reduced_size)?;
        let reduced_one = t.elapsed().as_secs_f64();
        (full_s, reduced_s) = (full_s + full_one, reduced_s + reduced_one);
        if !args.json {
            println!(
                "{}: {}×{} → {}×{}: {:.1} → {:.1} ms",
                p.display(),
                full.width,
                full.height,
                reduced.image.width(),
                reduced.image.height(),
                1e3 * full_one,
                1e3 * reduced_one
            );
        }
        if !args.no_embed {
            let a = extract_image(full.image, p, &cnn)?;
            let b = extract_image(reduced.image, p, &cnn)?;
            let (a, b) = (dense(&a["cnn"].vector), dense(&b["cnn"].vector));
            dists.push(1.0 - a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum::<f64>());
        }
    }
    dists.sort_by(f64::total_cmp);
    let n = paths.len() as f64;
    let q = |f: f64| if dists.is_empty() { f64::NAN } else { dists[((dists.len() - 1) as f64 * f).round() as usize] };
    let mean = if dists.is_empty() { f64::NAN } else { dists.iter().sum::<f64>() / dists.len() as f64 };
    if args.json {
        let doc = serde_json::json!({
            "images": paths.len(),
            "full_decode_ms": 1e3 * full_s / n,
            "reduced_decode_ms": 1e3 * reduced_s / n,
            "speedup": full_s / reduced_s,
            "cosine_distance": {"min": q(0.0), "median": q(0.5), "p90": q(0.9), "max": q(1.0), "mean": mean},
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{} images: full decode {:.1} ms/image, reduced {:.1} ms/image ({:.2}×, one thread)",
            paths.len(),
            1e3 * full_s / n,
            1e3 * reduced_s / n,
            full_s / reduced_s
        );
        println!(
            "cnn cosine distance reduced vs full decode: min {:.5} median {:.5} p90 {:.5} max {:.5} mean {mean:.5}",
            q(0.0),
            q(0.5),
            q(0.9),
            q(1.0)
        );
    }
    Ok(())
}
