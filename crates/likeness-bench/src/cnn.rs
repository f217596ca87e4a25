//! `likeness-bench cnn`: CNN embedding throughput (images/s) of our candle implementation
//! against PyTorch running the same EfficientNet-Lite weights (`bench/cnn_torch.py`), on the
//! same preprocessed batches, with the same thread count, in one run.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use features::cnn::{model_paths, CnnExtractor, CnnVariant, ComputeDevice};
use features::{is_image_path, load_image, DecodeLimits, FeatureExtractor};
use image::RgbImage;

/// Arguments of `likeness-bench cnn`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Threads for both implementations (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Images per timed pass (photos are cycled to reach it).
    #[arg(long, default_value_t = 64)]
    images: usize,
    /// Timed passes over the images (after one warm-up batch).
    #[arg(long, default_value_t = 2)]
    passes: usize,
    /// Network: lite0 or lite2.
    #[arg(long, default_value = "lite0")]
    variant: CnnVariant,
    #[command(flatten)]
    model: likeness::model_args::ModelArgs,
    /// Folder of photos (default: $LIKENESS_TEST_DATA/photos, else <repo>/data/photos).
    #[arg(long)]
    photos: Option<PathBuf>,
    /// Python interpreter with torch (default: $LIKENESS_PYTHON, else python3, /usr/bin/python3).
    #[arg(long)]
    python: Option<String>,
    /// Print one JSON object instead of text (`torch_images_per_s` null and `torch_skipped` set
    /// when PyTorch is not run).
    #[arg(long)]
    json: bool,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn photos_dir(args: &Args) -> PathBuf {
    args.photos.clone().unwrap_or_else(|| {
        std::env::var_os("LIKENESS_TEST_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("data"))
            .join("photos")
    })
}

fn torch_script() -> anyhow::Result<PathBuf> {
    [workspace().join("bench/cnn_torch.py"), PathBuf::from("bench/cnn_torch.py")]
        .into_iter()
        .find(|p| p.is_file())
        .context("bench/cnn_torch.py not found (run from the repository)")
}

/// A Python with torch, or the reasons none was found.
fn find_python(args: &Args) -> Result<String, String> {
    let mut candidates: Vec<String> = args.python.iter().cloned().collect();
    candidates.extend(std::env::var("LIKENESS_PYTHON").ok().filter(|p| !p.is_empty()));
    candidates.extend(["python3".to_string(), "/usr/bin/python3".to_string()]);
    let mut why = Vec::new();
    for py in candidates {
        match Command::new(&py).args(["-c", "import torch"]).output() {
            Ok(o) if o.status.success() => return Ok(py),
            Ok(_) => why.push(format!("{py}: no torch module")),
            Err(e) => why.push(format!("{py}: {e}")),
        }
    }
    Err(why.join("; "))
}

/// Decode the photos and prepare `n` network-sized crops (cycling through the photos).
fn crops(m: &CnnExtractor, dir: &Path, n: usize) -> anyhow::Result<(Vec<RgbImage>, Vec<RgbImage>)> {
    let mut paths: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .map(|e| e.into_path())
        .filter(|p| p.is_file() && is_image_path(p))
        .collect();
    paths.sort();
    if paths.is_empty() {
        bail!("no photos in {} (run scripts/fetch-test-data.sh or pass --photos)", dir.display());
    }
    let limits = DecodeLimits::default();
    let mut full = Vec::new();
    for p in &paths {
        match load_image(p, &limits) {
            Ok(d) => full.push(d.image),
            Err(e) => eprintln!("skipping {e}"),
        }
    }
    if full.is_empty() {
        bail!("no decodable photos in {}", dir.display());
    }
    let prepared = full.iter().map(|im| m.prepare(im)).collect::<Result<Vec<_>, _>>()?;
    let crops = (0..n).map(|i| prepared[i % prepared.len()].clone()).collect();
    let originals = (0..n.min(full.len())).map(|i| full[i].clone()).collect();
    Ok((crops, originals))
}

/// Run the benchmark.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    // candle's matmul reads RAYON_NUM_THREADS; our kernels use the global rayon pool.
    std::env::set_var("RAYON_NUM_THREADS", threads.to_string());
    let _ = rayon::ThreadPoolBuilder::new().num_threads(threads).build_global();
    if args.batch == 0 || args.images == 0 || args.passes == 0 {
        bail!("--batch, --images and --passes must be positive");
    }

    let m = CnnExtractor::load(args.variant, args.model.model_dir.as_deref())?.with_device(args.model.device)?;
    let size = args.variant.input_size();
    let dir = photos_dir(args);
    let (crops, originals) = crops(&m, &dir, args.images)?;

    // Ours: the network on prepared crops.
    m.run_crops(&crops[..args.batch.min(crops.len())])?;
    let t0 = Instant::now();
    for _ in 0..args.passes {
        for chunk in crops.chunks(args.batch) {
            m.run_crops(chunk)?;
        }
    }
    let ours_s = t0.elapsed().as_secs_f64();
    let total = (args.images * args.passes) as f64;
    let ours = total / ours_s;

    // Ours end to end from decoded full-size photos (resize + crop + network), for reference.
    let t0 = Instant::now();
    m.extract_batch(&originals)?;
    let e2e = originals.len() as f64 / t0.elapsed().as_secs_f64();

    if !args.json {
        println!(
            "likeness-bench cnn: EfficientNet-{} ({size} px), batch {}, {} threads, {} images × {} passes",
            args.variant.as_str(),
            args.batch,
            threads,
            args.images,
            args.passes
        );
        let how = match m.device() {
            ComputeDevice::Cpu => "candle, fused kernels".to_string(),
            d => format!("candle on {d}"),
        };
        println!("  {:<30} {ours:8.1} images/s  ({:.1} ms/image)", format!("ours ({how})"), 1000.0 / ours);
        println!(
            "  ours incl. resize+crop         {e2e:8.1} images/s  ({} full-size photos from {})",
            originals.len(),
            dir.display()
        );
    }

    let torch = torch_bench(args, &crops, threads)?;
    if args.json {
        let (t, skipped) = match &torch {
            Ok(t) => (Some(t), None),
            Err(why) => (None, Some(why)),
        };
        let doc = serde_json::json!({
            "variant": args.variant.as_str(),
            "input_size": size,
            "batch": args.batch,
            "threads": threads,
            "images": args.images,
            "passes": args.passes,
            "device": m.device().to_string(),
            "photos": dir,
            "e2e_photos": originals.len(),
            "ours_images_per_s": ours,
            "ours_ms_per_image": 1000.0 / ours,
            "ours_e2e_images_per_s": e2e,
            "torch_images_per_s": t.map(|t| t.images_per_s),
            "torch_version": t.map(|t| t.version.as_str()),
            "torch_threads": t.map(|t| &t.threads),
            "torch_skipped": skipped,
            "speedup": t.map(|t| ours / t.images_per_s),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    match torch {
        Err(why) => println!("  pytorch                        skipped: {why}"),
        Ok(t) => {
            println!(
                "  pytorch {} ({} threads)   {:8.1} images/s  ({:.1} ms/image)",
                t.version,
                t.threads,
                t.images_per_s,
                1000.0 / t.images_per_s
            );
            println!("  speed-up ours / pytorch        {:8.2}×", ours / t.images_per_s);
        }
    }
    Ok(())
}

/// What `cnn_torch.py bench` measured.
struct TorchResult {
    images_per_s: f64,
    /// torch's version string ("?" when the script did not say).
    version: String,
    /// The thread count the script reports (as it printed it).
    threads: serde_json::Value,
}

/// Time PyTorch on the same crops: `Ok(Err(reason))` when it is skipped (no Python with torch,
/// no checkpoint), an error when the script fails.
fn torch_bench(args: &Args, crops: &[RgbImage], threads: usize) -> anyhow::Result<Result<TorchResult, String>> {
    let size = args.variant.input_size();
    let python = match find_python(args) {
        Ok(p) => p,
        Err(why) => return Ok(Err(format!("no Python with torch ({why})"))),
    };
    let (pth, _) = model_paths(args.variant, args.model.model_dir.as_deref());
    if !pth.is_file() {
        return Ok(Err(format!("{} missing (run `likeness model fetch`)", pth.display())));
    }
    let raw = std::env::temp_dir().join(format!("likeness-bench-cnn-{}.raw", std::process::id()));
    let bytes: Vec<u8> = crops.iter().flat_map(|c| c.as_raw().iter().copied()).collect();
    std::fs::write(&raw, bytes).with_context(|| format!("writing {}", raw.display()))?;
    let out = Command::new(&python)
        .arg(torch_script()?)
        .args(["bench", "--variant", args.variant.as_str()])
        .arg("--weights")
        .arg(&pth)
        .arg("--raw")
        .arg(&raw)
        .args(["--n", &args.images.to_string(), "--size", &size.to_string()])
        .args(["--batch", &args.batch.to_string(), "--threads", &threads.to_string()])
        .args(["--iters", &args.passes.to_string()])
        .output();
    let _ = std::fs::remove_file(&raw);
    let out = out.with_context(|| format!("running {python}"))?;
    if !out.status.success() {
        bail!("cnn_torch.py failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("cnn_torch.py output")?;
    let images_per_s = v["images_per_s"].as_f64().context("no images_per_s in cnn_torch.py output")?;
    Ok(Ok(TorchResult {
        images_per_s,
        version: v["torch"].as_str().unwrap_or("?").to_string(),
        threads: v["threads"].clone(),
    }))
}
