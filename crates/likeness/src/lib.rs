//! The likeness application: the commands of the `likeness` binary, the HTTP server, and
//! the code they share (how images map onto vecdb collections, indexing, stored metadata).
//!
//! A library so that the `likeness-bench` binary (crates/likeness-bench) can drive the
//! same server and catalog without the product binary carrying the benchmarks.

pub mod catalog;
pub mod db_cmd;
pub mod dedup_cmd;
pub mod demo_cmd;
pub mod eval_cmd;
pub mod heads;
pub mod image_meta;
pub mod index_cmd;
pub mod indexer;
pub mod knobs;
pub mod model_args;
pub mod model_cmd;
pub mod search_cmd;
pub mod server;
pub mod train_cmd;
pub mod vector_files;
pub mod vectors_cmd;
pub mod walk;

/// Log to stderr as `RUST_LOG` says (call when it is set).
pub fn init_tracing_from_env() {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
}
