//! `likeness index DIR... --db DB`: embed every image under the folders into a collection.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use vecdb::Database;

use crate::catalog::{self, DEFAULT_COLLECTION};
use crate::indexer::{index_roots, IndexOptions, IndexProgress, IndexReport};
use crate::walk::canonical_dir;

/// Arguments of `likeness index`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folders to index (recursively). With an ImageFolder layout (`root/<label>/<file>`),
    /// the first sub-folder becomes the image's label.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Database directory (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Comma-separated features to compute: cnn, cnn-lite2, color, texture, phash, dhash.
    /// Default: cnn,color,phash for a new collection; the collection's own features for an existing one.
    #[arg(long)]
    pub features: Option<String>,
    /// Collection name.
    #[arg(long, default_value = DEFAULT_COLLECTION)]
    pub collection: String,
    /// Index for new collections: one vecdb factory spec for the dense features (e.g. HNSW32,
    /// HNSW16,SQ8, IVF256,SQ8; hashes stay Flat unless it is HNSW<M>[,efC<n>]), or per feature,
    /// `cnn=HNSW32;color=Flat`. Change it later with `likeness db set-index`.
    #[arg(long, default_value = "Flat")]
    pub index: String,
    /// Remove records of files under these folders that no longer exist.
    #[arg(long)]
    pub prune: bool,
    /// Files embedded per durable batch.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Run `likeness index`.
pub fn run(args: &Args) -> Result<()> {
    let roots = args.dirs.iter().map(|d| canonical_dir(d)).collect::<Result<Vec<_>>>()?;
    let db = Database::open(&args.db)?;
    let (coll, extractors) = open_or_create(&db, &args.collection, args.features.as_deref(), &args.index, &args.model)?;
    let mut opts = IndexOptions { prune: args.prune, chunk: args.batch, ..Default::default() };
    if let Ok(dbdir) = db.path().canonicalize() {
        opts.exclude.push(dbdir);
    }

    let stop = Arc::new(AtomicBool::new(false));
    install_interrupt_handler(stop.clone());
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {bar:40} {pos}/{len} images  {per_sec}  eta {eta}  {msg}")
            .expect("static template"),
    );
    let on_progress = |p: IndexProgress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        if p.failed > 0 {
            bar.set_message(format!("{} failed", p.failed));
        }
    };
    let report = index_roots(&coll, &extractors, &roots, &opts, &on_progress, &stop)?;
    bar.finish_and_clear();
    print_report(&report, &args.collection, &args.db, args.json)?;
    if report.interrupted {
        // A requested stop (Ctrl-C, SIGTERM from `docker stop` or systemd) that ended cleanly:
        // what is stored is saved as segments and the exit status is 0, as for `serve`. The
        // report says `"interrupted": true`.
        coll.checkpoint()?;
        eprintln!("likeness: interrupted: every batch stored so far is kept; run the same command again to resume");
    }
    Ok(())
}

/// A collection and the extractors of its features.
pub type OpenedCollection = (Arc<vecdb::Collection>, Vec<Box<dyn features::FeatureExtractor>>);

/// Open the collection (using its own features) or create it with `features` (default cnn,color,phash).
pub fn open_or_create(
    db: &Database,
    name: &str,
    features: Option<&str>,
    index: &str,
    model: &crate::model_args::ModelArgs,
) -> Result<OpenedCollection> {
    if db.collection_names().iter().any(|n| n == name) {
        let coll = db.collection(name)?;
        let have = catalog::field_names(&coll);
        if let Some(f) = features {
            // Heads given by path must be the ones installed (a retrained head needs a new name).
            let mut want = crate::heads::install(db.path(), &catalog::parse_feature_list(f)?)?;
            let mut sorted_have = have.clone();
            want.sort();
            sorted_have.sort();
            if want != sorted_have {
                bail!(
                    "collection '{name}' was created with features {}; index with those (omit --features) \
                     or use another --collection",
                    have.join(",")
                );
            }
        }
        let extractors = catalog::build_extractors(&have, model, Some(db.path()))?;
        Ok((coll, extractors))
    } else {
        let names = match features {
            Some(f) => catalog::parse_feature_list(f)?,
            None => features::registry::DEFAULT_FEATURES.iter().map(|s| s.to_string()).collect(),
        };
        let names = crate::heads::install(db.path(), &names)?;
        let extractors = catalog::build_extractors(&names, model, Some(db.path()))?;
        let coll = db.create_collection(name, catalog::schema_for(&extractors, index)?)?;
        Ok((coll, extractors))
    }
}

fn print_report(r: &IndexReport, collection: &str, db: &std::path::Path, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!(
        "indexed {} new, {} changed, {} unchanged, {} pruned, {} failed of {} images in {:.1} s ({:.1} images/s) \
         into collection '{collection}' of {}",
        r.added,
        r.updated,
        r.unchanged,
        r.pruned,
        r.failed.len(),
        r.found,
        r.seconds,
        r.images_per_second,
        db.display()
    );
    if !r.failed.is_empty() {
        println!("failed files:");
        for f in &r.failed {
            println!("  {}: {}", f.path.display(), f.reason);
        }
    }
    Ok(())
}

/// First Ctrl-C or SIGTERM: finish the batch in flight, then stop. Second one: quit at once
/// (acknowledged batches are durable either way).
pub fn install_interrupt_handler(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            let sig = crate::signals::shutdown_requested().await;
            stop.store(true, Ordering::SeqCst);
            eprintln!("\n{sig}: storing the batch in flight, then stopping (Ctrl-C again to quit now)");
            crate::signals::shutdown_requested().await;
            std::process::exit(130);
        });
    });
}
