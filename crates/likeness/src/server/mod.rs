//! `likeness serve`: the HTTP JSON API, thumbnails and the web page over one database.
//!
//! All CPU work (decoding, feature extraction, searches, writes) runs in
//! `spawn_blocking`, so searches keep being answered while an indexing job runs.

pub mod admission;
pub mod api;
pub mod auth;
pub mod browse;
pub mod duplicates;
pub mod error;
pub mod files;
pub mod limits;
pub mod openapi;
pub mod state;
pub mod thumbs;
pub mod uploads;
pub mod web;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use vecdb::Database;

pub use state::AppState;

/// Arguments of `likeness serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Database directory (created if missing, unless `--read-only`).
    #[arg(long)]
    pub db: PathBuf,
    /// Serve as a read-only replica beside the writer: open the database without its lock and
    /// without writing a byte, follow what the writer process acknowledges (every
    /// `--refresh-ms`), and refuse writes with 403. Run as many replicas as you like.
    #[arg(long)]
    pub read_only: bool,
    /// How often a `--read-only` replica catches up with the writer, in milliseconds.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(10..))]
    pub refresh_ms: u64,
    /// Address to listen on (port 0 picks a free port; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:7878")]
    pub addr: SocketAddr,
    /// API key required for writes (adding and deleting images), sent as `x-api-key: KEY`
    /// or `Authorization: Bearer KEY`. Default: $LIKENESS_API_KEY, else writes are open.
    #[arg(long, env = "LIKENESS_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Key required for reads too (searches, records, thumbnails; not /health or the page's own
    /// files), sent like the API key; the API key also works for reads. The page asks for it.
    /// Default: $LIKENESS_READ_KEY, else reads are open.
    #[arg(long, env = "LIKENESS_READ_KEY", hide_env_values = true)]
    pub read_key: Option<String>,
    /// Folder whose files may be added by server-side path (repeatable). Thumbnails are served
    /// only for files under these folders, the folders already indexed in the database, and uploads.
    #[arg(long = "root")]
    pub roots: Vec<PathBuf>,
    /// Features of collections created through the API.
    #[arg(long, default_value = "cnn,color,phash")]
    pub features: String,
    /// Index of collections created through the API: `Auto` (default: exact below 10,000
    /// images, then a graph built in the background), one factory spec for the dense features
    /// (e.g. HNSW16,SQ8; hashes stay Flat), or per feature, `cnn=HNSW32;color=Flat`.
    #[arg(long, default_value = crate::index_policy::DEFAULT_INDEX)]
    pub index: String,
    /// Collection the web page and `/thumb` use first.
    #[arg(long, default_value = crate::catalog::DEFAULT_COLLECTION)]
    pub collection: String,
    /// Largest accepted request body, in bytes.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub max_body: usize,
    /// Images decoded at once by searches by image, uploads, adds and thumbnails (default: the
    /// number of cores). Each holds at most one full-resolution image.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Image requests that may wait for a worker; past that the server answers 503 with
    /// `Retry-After` at once. Bounds buffered uploads to (workers + queue) × --max-body.
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Longest an admitted image request waits for a worker, in seconds, before a 503.
    #[arg(long, default_value_t = 30)]
    pub queue_wait_s: u64,
    /// Most connections open at once; past it new ones wait in the kernel's accept queue.
    #[arg(long, default_value_t = 1024)]
    pub max_connections: usize,
    /// Requests per second each client address may send (bursts of twice that); past it 429
    /// with `Retry-After`. 0: unlimited.
    #[arg(long, default_value_t = 200.0)]
    pub rate_limit: f64,
    /// Longest a request may take, in seconds, before the server answers 503 (0: no limit).
    #[arg(long, default_value_t = 120)]
    pub request_timeout_s: u64,
    /// Largest uploaded image (search by image, upload), in pixels (width × height, read from
    /// the header before decoding). Files added from --root folders use the CLI's limit (100 million).
    #[arg(long, default_value_t = 50_000_000)]
    pub max_upload_pixels: u64,
    /// Where uploads and the thumbnail cache go. Default: `<DB>/likeness-files`.
    #[arg(long)]
    pub files_dir: Option<PathBuf>,
    /// Every this many seconds, move each collection's write-ahead log into a segment and save
    /// its index snapshots, so that a restart after a crash loads them and re-indexes only
    /// what came later (0: only on shutdown). Ignored by a `--read-only` replica.
    #[arg(long, default_value_t = 300)]
    pub snapshot_every: u64,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
}

impl Args {
    /// The arguments `likeness serve --db DB` would have (every other option at its default).
    pub fn with_db(db: impl Into<std::path::PathBuf>) -> Args {
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: Args,
        }
        let db: std::path::PathBuf = db.into();
        let mut args = <Serve as clap::Parser>::parse_from(["serve", "--db", "."]).args;
        args.db = db;
        args
    }
}

/// The application's routes over `state`, with the limits of `args` (body size, request rate
/// per client address, request time).
pub fn router(state: Arc<AppState>, args: &Args) -> Router {
    let max_body = args.max_body;
    let limiter = Arc::new(limits::RateLimiter::new(args.rate_limit, 2.0 * args.rate_limit));
    let timeout = match args.request_timeout_s {
        0 => std::time::Duration::MAX,
        s => std::time::Duration::from_secs(s),
    };
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
        .route("/api/collections/{name}/records", get(browse::handler))
        .route("/api/collections/{name}/duplicates", get(duplicates::handler))
        .route("/api/collections/{name}/records/{id}/original", get(files::original))
        .route("/api/collections/{name}/records/{id}/move", post(files::move_file))
        .route("/api/collections/{name}/records/{id}/file", delete(files::delete_file))
        .route("/api/server", get(files::server_info))
        .route("/api/jobs/{id}", get(api::get_job))
        .route("/thumb/{id}", get(thumbs::handler))
        .route("/", get(web::index))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route("/favicon.svg", get(web::favicon))
        .route("/favicon.ico", get(web::favicon))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::reads))
        .with_state(state);
    api.layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(max_body, error::reject_oversized))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(limiter, limits::rate_limit))
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

/// Catch a read-only replica up with the writer every `period`; failures are logged (once per
/// distinct error) and the replica keeps answering from what it has.
async fn refresh_loop(state: Arc<AppState>, period: std::time::Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_error = String::new();
    loop {
        tick.tick().await;
        let st = state.clone();
        match tokio::task::spawn_blocking(move || st.refresh()).await {
            Ok(Ok(_)) => last_error.clear(),
            Ok(Err(e)) => {
                let msg = e.to_string();
                if msg != last_error {
                    tracing::warn!(error = %msg, "replica could not catch up with the writer; serving what it has");
                    last_error = msg;
                }
            }
            Err(e) => tracing::warn!(error = %e, "replica refresh task panicked"),
        }
    }
}

/// Open the database and serve it on `args.addr`. When `ready` is given, the bound address is sent on
/// it; otherwise a line on stdout names it.
pub async fn serve(args: Args, ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>) -> Result<()> {
    let db_path = args.db.clone();
    let read_only = args.read_only;
    let db = tokio::task::spawn_blocking(move || {
        if read_only {
            Database::open_read_only(&db_path)
                .with_context(|| format!("cannot open {} as a read-only replica", db_path.display()))
        } else {
            Ok(Database::open(&db_path)?)
        }
    })
    .await??;
    let db = Arc::new(db);
    let state = AppState::new(db.clone(), &args)?;
    if !read_only {
        // Uploads left by a crash between deleting a record and removing its image.
        let (db, dir) = (db.clone(), state.upload_dir.clone());
        let swept = tokio::task::spawn_blocking(move || uploads::sweep(&db, &dir)).await?;
        match swept {
            Ok(r) if !(r.orphans.is_empty() && r.partial.is_empty()) => tracing::info!(
                orphans = r.orphans.len(),
                partial = r.partial.len(),
                "removed uploads no record refers to"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot sweep the uploads folder"),
        }
    }
    let app = router(state.clone(), &args);
    if read_only {
        tokio::spawn(refresh_loop(state, std::time::Duration::from_millis(args.refresh_ms)));
    } else if args.snapshot_every > 0 {
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
            let mode = if read_only { " (read-only replica)" } else { "" };
            println!("likeness: serving {}{mode} on http://{addr}/", args.db.display());
            use std::io::Write;
            std::io::stdout().flush().ok();
        }
    }
    let listener = limits::CappedListener::new(listener, args.max_connections);
    axum::serve(listener, app.into_make_service_with_connect_info::<limits::Peer>())
        .with_graceful_shutdown(async {
            let sig = crate::signals::shutdown_requested().await;
            eprintln!("likeness: {sig}: finishing requests in flight, then saving and exiting");
        })
        .await?;
    if read_only {
        return Ok(()); // a replica owns nothing to save
    }
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
