//! `likeness demo`: fetch the model, index the sample photos, show a few searches, then serve.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vecdb::{Database, Query, SearchRequest};

use crate::catalog::{self, DEFAULT_COLLECTION};
use crate::image_meta::ImageMeta;
use crate::indexer::{index_roots, IndexOptions, IndexProgress};
use crate::walk::canonical_dir;

/// Arguments of `likeness demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of sample photos. Default: $LIKENESS_TEST_DATA/photos, else ./data/photos
    /// (filled by scripts/fetch-test-data.sh).
    #[arg(long)]
    pub photos: Option<PathBuf>,
    /// Database directory for the demo.
    #[arg(long, default_value = "data/demo-db")]
    pub db: PathBuf,
    /// Features to index.
    #[arg(long, default_value = "cnn,color,phash")]
    pub features: String,
    /// Address of the web page and API.
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: std::net::SocketAddr,
    /// Only index and search; do not start the server.
    #[arg(long)]
    pub no_serve: bool,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
}

fn default_photos() -> PathBuf {
    match std::env::var_os("LIKENESS_TEST_DATA") {
        Some(d) => PathBuf::from(d).join("photos"),
        None => PathBuf::from("data/photos"),
    }
}

/// Run `likeness demo`.
pub fn run(args: &Args) -> Result<()> {
    let photos = args.photos.clone().unwrap_or_else(default_photos);
    if !photos.is_dir() {
        bail!("sample photos not found at {}: run scripts/fetch-test-data.sh (or pass --photos DIR)", photos.display());
    }
    let root = canonical_dir(&photos)?;
    let names = catalog::parse_feature_list(&args.features)?;
    if names.iter().any(|n| n == "cnn") {
        println!("model: checking the EfficientNet-Lite0 weights (downloaded on first use)…");
        let path = features::cnn::fetch_model(features::cnn::CnnVariant::Lite0, args.model.model_dir.as_deref())?;
        println!("model: {}", path.display());
    }
    {
        let db = Database::open(&args.db)?;
        let (coll, extractors) = crate::index_cmd::open_or_create(
            &db,
            DEFAULT_COLLECTION,
            Some(&args.features),
            crate::index_policy::DEFAULT_INDEX,
            &args.model,
        )?;
        let bar = ProgressBar::new(0);
        bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}").expect("static template"));
        let progress = |p: IndexProgress| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
        };
        let mut opts = IndexOptions::default();
        opts.exclude.extend(db.path().canonicalize().ok());
        let report =
            index_roots(&coll, &extractors, std::slice::from_ref(&root), &opts, &progress, &AtomicBool::new(false))?;
        bar.finish_and_clear();
        println!(
            "indexed {} new, {} unchanged, {} failed of {} photos under {} in {:.1} s ({:.1} images/s)",
            report.added + report.updated,
            report.unchanged,
            report.failed.len(),
            report.found,
            root.display(),
            report.seconds,
            report.images_per_second
        );
        show_searches(&coll, &root)?;
    }
    if args.no_serve {
        println!("start the web page with: likeness serve --db {}", args.db.display());
        return Ok(());
    }
    let serve_args = crate::server::Args {
        addr: args.addr,
        api_key: None,
        roots: vec![root],
        features: args.features.clone(),
        model: args.model.clone(),
        ..crate::server::Args::with_db(args.db.clone())
    };
    println!("open http://{}/ in a browser (Ctrl-C stops the server)", args.addr);
    crate::server::run(&serve_args)
}

/// Print the top matches of a few well-known sample photos ("more like this").
fn show_searches(coll: &vecdb::Collection, root: &Path) -> Result<()> {
    let feature = catalog::choose_feature(coll, None)?;
    let wanted = ["chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg"];
    let mut queries: Vec<PathBuf> = wanted.iter().map(|w| root.join(w)).filter(|p| p.is_file()).collect();
    if queries.is_empty() {
        queries = crate::walk::find_images(&[root.to_path_buf()], &[]).0.into_iter().take(3).map(|f| f.path).collect();
    }
    for q in queries {
        let id = catalog::record_id(&q);
        if coll.get_metadata(id).is_none() {
            continue;
        }
        let hits = coll.search(&SearchRequest::new(feature.as_str(), Query::Id(id), 4))?;
        println!("\nmost like {} (by {feature}):", q.display());
        for h in hits {
            let m = ImageMeta::from_metadata(h.metadata.unwrap_or_default());
            let tags = m.tags.iter().take(2).map(String::as_str).collect::<Vec<_>>().join(", ");
            println!("  {:>8.4}  {}  {}", h.distance, m.path.as_deref().unwrap_or("?"), tags);
        }
    }
    Ok(())
}
