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
    /// Index for new collections. Default `Auto`: exact search below 10,000 images, then an
    /// HNSW graph built in the background (an 8-bit one with exact re-ranking past
    /// --memory-budget); `Auto,threshold=N` moves the switch. Or pin one vecdb factory spec for
    /// the dense features (e.g. Flat, HNSW32, HNSW16,SQ8, IVF256,SQ8; hashes stay Flat unless it
    /// is HNSW<M>[,efC<n>]), or per feature, `cnn=HNSW32;color=Flat`. Change it later with
    /// `likeness db set-index`.
    #[arg(long, default_value = crate::index_policy::DEFAULT_INDEX)]
    pub index: String,
    /// Memory the automatic index of each field may take (e.g. 4G, 512MiB; default half of the
    /// RAM): past it the graph traverses 8-bit codes and re-ranks with the mapped vectors.
    #[arg(long, value_name = "SIZE")]
    pub memory_budget: Option<String>,
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

/// The library form of `likeness index`'s options (everything but the folders and the database).
#[derive(Debug, Clone)]
pub struct IndexSettings {
    /// Collection name (default [`DEFAULT_COLLECTION`]).
    pub collection: String,
    /// Comma-separated features for a new collection (default cnn,color,phash); an existing
    /// collection keeps its own, and giving others is an error.
    pub features: Option<String>,
    /// Index of a new collection's fields (see `likeness index --index`).
    pub index: String,
    /// Remove records of files under the folders that no longer exist.
    pub prune: bool,
    /// Files embedded per durable batch.
    pub batch: usize,
    /// Where the CNN model is and where it runs.
    pub model: crate::model_args::ModelArgs,
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            collection: DEFAULT_COLLECTION.to_string(),
            features: None,
            index: crate::index_policy::DEFAULT_INDEX.to_string(),
            prune: false,
            batch: IndexOptions::default().chunk,
            model: Default::default(),
        }
    }
}

impl From<&Args> for IndexSettings {
    fn from(a: &Args) -> Self {
        IndexSettings {
            collection: a.collection.clone(),
            features: a.features.clone(),
            index: a.index.clone(),
            prune: a.prune,
            batch: a.batch,
            model: a.model.clone(),
        }
    }
}

/// The folders to index, canonical (an error names a folder that is missing or not a folder).
pub fn canonical_roots(dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
    dirs.iter().map(|d| canonical_dir(d)).collect()
}

/// What `likeness index` does once the database is open: open the collection (or create it
/// with the features and index asked for), then bring it up to date with the image files under
/// `dirs` (never entering the database directory itself). Progress goes to `on_progress`; once
/// `stop` is set, the batch in flight is stored and the report says `interrupted`.
pub fn index_folders(
    db: &Database,
    dirs: &[PathBuf],
    settings: &IndexSettings,
    on_progress: &(dyn Fn(IndexProgress) + Sync),
    stop: &AtomicBool,
) -> Result<IndexReport> {
    let roots = canonical_roots(dirs)?;
    let (coll, extractors) =
        open_or_create(db, &settings.collection, settings.features.as_deref(), &settings.index, &settings.model)?;
    let mut opts = IndexOptions { prune: settings.prune, chunk: settings.batch, ..Default::default() };
    if let Ok(dbdir) = db.path().canonicalize() {
        opts.exclude.push(dbdir);
    }
    index_roots(&coll, &extractors, &roots, &opts, on_progress, stop)
}

/// Run `likeness index`.
pub fn run(args: &Args) -> Result<()> {
    // The folders are checked before the database directory is created.
    canonical_roots(&args.dirs)?;
    let db = Database::open(&args.db)?;

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
    let mut settings = IndexSettings::from(args);
    settings.index = crate::index_policy::with_budget(&args.index, args.memory_budget.as_deref())?;
    let report = index_folders(&db, &args.dirs, &settings, &on_progress, &stop)?;
    bar.finish_and_clear();
    if !report.interrupted {
        // Leave the graph saved for the next command rather than half built.
        crate::index_policy::wait_for_builds(&*db.collection(&args.collection)?, args.json);
    }
    print_report(&report, &args.collection, &args.db, args.json)?;
    if report.interrupted {
        // A requested stop (Ctrl-C, SIGTERM from `docker stop` or systemd) that ended cleanly:
        // what is stored is saved as segments and the exit status is 0, as for `serve`. The
        // report says `"interrupted": true`.
        db.collection(&args.collection)?.checkpoint()?;
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
    if r.gone > r.pruned {
        let n = r.gone - r.pruned;
        println!(
            "{n} indexed file{} under these folders {} gone from disk; {} still in the collection (run again with \
             --prune to remove {})",
            if n == 1 { "" } else { "s" },
            if n == 1 { "is" } else { "are" },
            if n == 1 { "its record is" } else { "their records are" },
            if n == 1 { "it" } else { "them" },
        );
    }
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
