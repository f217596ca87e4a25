//! `likeness serve`: the HTTP JSON API, thumbnails and the web page over one database.
//!
//! All CPU work (decoding, feature extraction, searches, writes) runs in
//! `spawn_blocking`, so searches keep being answered while an indexing job runs.

pub mod api;
pub mod error;
pub mod openapi;
pub mod state;
pub mod thumbs;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use vecdb::Database;

pub use state::AppState;

/// Arguments of `likeness serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Database directory (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,
    /// API key required for writes (adding and deleting images), sent as `x-api-key: KEY`
    /// or `Authorization: Bearer KEY`. Default: $LIKENESS_API_KEY, else writes are open.
    #[arg(long, env = "LIKENESS_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Folder whose files may be added by server-side path (repeatable). Thumbnails are served
    /// only for files under these folders, the folders already indexed in the database, and uploads.
    #[arg(long = "root")]
    pub roots: Vec<PathBuf>,
    /// Features of collections created through the API.
    #[arg(long, default_value = "cnn,color,phash")]
    pub features: String,
    /// Index of collections created through the API: one factory spec for the dense features
    /// (e.g. HNSW16,SQ8; hashes stay Flat), or per feature, `cnn=HNSW32;color=Flat`.
    #[arg(long, default_value = "Flat")]
    pub index: String,
    /// Collection the web page and `/thumb` use first.
    #[arg(long, default_value = crate::catalog::DEFAULT_COLLECTION)]
    pub collection: String,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub max_body: usize,
    /// Where uploads and the thumbnail cache go. Default: `<DB>/likeness-files`.
    #[arg(long)]
    pub files_dir: Option<PathBuf>,
    /// Every this many seconds, move each collection's write-ahead log into a segment and save
    /// its index snapshots, so that a restart after a crash loads them and re-indexes only
    /// what came later (0: only on shutdown).
    #[arg(long, default_value_t = 300)]
    pub snapshot_every: u64,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
}

/// The application's routes over `state`.
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    let api = Router::new()
        .route("/health", get(api::health))
        .route("/openapi.json", get(openapi::handler))
        .route("/api/collections", get(api::list_collections))
        .route("/api/collections/{name}", get(api::get_collection))
        .route("/api/collections/{name}/labels", get(api::labels))
        .route("/api/collections/{name}/search", post(api::search_json))
        .route("/api/collections/{name}/search/image", post(api::search_image))
        .route("/api/collections/{name}/images", post(api::add_images))
        .route("/api/collections/{name}/records/{id}", get(api::get_record).delete(api::delete_record))
        .route("/api/jobs/{id}", get(api::get_job))
        .route("/thumb/{id}", get(thumbs::handler))
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .fallback(api::not_found)
        .with_state(state);
    api.layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(max_body, error::reject_oversized))
        .layer(axum::middleware::map_response(error::json_errors))
}

/// Run `likeness serve` until Ctrl-C.
pub fn run(args: &Args) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(serve(args.clone(), None))
}

/// Checkpoint every collection every `period` (see `--snapshot-every`); failures are logged.
async fn checkpoint_loop(db: Arc<Database>, period: std::time::Duration) {
    let mut tick = tokio::time::interval(period);
    tick.tick().await; // the first tick is immediate
    loop {
        tick.tick().await;
        let db = db.clone();
        let done = tokio::task::spawn_blocking(move || {
            for name in db.collection_names() {
                // A collection dropped meanwhile is simply gone.
                if let Ok(c) = db.collection(&name) {
                    if let Err(e) = c.checkpoint() {
                        tracing::warn!(collection = %name, error = %e, "periodic checkpoint failed");
                    }
                }
            }
        })
        .await;
        if done.is_err() {
            tracing::warn!("periodic checkpoint task panicked");
        }
    }
}

/// Open the database and serve it on `args.addr`. When `ready` is given, the bound address is sent on
/// it; otherwise a line on stdout names it.
pub async fn serve(args: Args, ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>) -> Result<()> {
    let db_path = args.db.clone();
    let db = tokio::task::spawn_blocking(move || Database::open(&db_path)).await??;
    let db = Arc::new(db);
    let state = AppState::new(db.clone(), &args)?;
    let app = router(state, args.max_body);
    if args.snapshot_every > 0 {
        tokio::spawn(checkpoint_loop(db.clone(), std::time::Duration::from_secs(args.snapshot_every)));
    }
    let listener =
        tokio::net::TcpListener::bind(args.addr).await.with_context(|| format!("cannot listen on {}", args.addr))?;
    let addr = listener.local_addr()?;
    match ready {
        // A caller running the server in-process is told the address and speaks for itself
        // (`likeness-bench http --json` prints nothing but its JSON report).
        Some(tx) => {
            tx.send(addr).ok();
        }
        None => {
            println!("likeness: serving {} on http://{addr}/", args.db.display());
            use std::io::Write;
            std::io::stdout().flush().ok();
        }
    }
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let sig = crate::signals::shutdown_requested().await;
            eprintln!("likeness: {sig}: finishing requests in flight, then saving and exiting");
        })
        .await?;
    // Clean shutdown: the WAL moves into segments and index snapshots are saved, so the next
    // start neither replays nor rebuilds.
    tokio::task::spawn_blocking(move || -> Result<()> {
        for name in db.collection_names() {
            db.collection(&name)?.checkpoint().with_context(|| format!("checkpoint of '{name}' on shutdown"))?;
        }
        Ok(())
    })
    .await??;
    Ok(())
}
