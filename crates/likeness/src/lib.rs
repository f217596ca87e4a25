//! The likeness application: the commands of the `likeness` binary, the HTTP server, and
//! the code they share (how images map onto vecdb collections, indexing, stored metadata).
//!
//! A library so that the `likeness-bench` binary (crates/likeness-bench) can drive the
//! same server and catalog without the product binary carrying the benchmarks.

pub mod catalog;
pub mod closeness;
pub mod db_cmd;
pub mod dedup_cmd;
pub mod demo_cmd;
pub mod error_chain;
pub mod eval_cmd;
pub mod fusion;
pub mod heads;
pub mod image_meta;
pub mod index_cmd;
pub mod index_policy;
pub mod indexer;
pub mod json_ids;
pub mod knobs;
pub mod model_args;
pub mod model_cmd;
pub mod multi_search;
pub mod robust;
pub mod search_cmd;
pub mod server;
pub mod signals;
pub mod train_cmd;
pub mod vector_files;
pub mod vectors_cmd;
pub mod verify;
pub mod walk;

/// Log to stderr: warnings by default, or what `RUST_LOG` says.
pub fn init_tracing() {
    // Warnings (a torn WAL tail cut on open, an index that could not be built) reach stderr by
    // default; RUST_LOG chooses more or less.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
