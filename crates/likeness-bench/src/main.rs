//! `likeness-bench`: benchmarks of likeness against peer libraries and of its HTTP API.
//!
//! Kept out of the `likeness` binary so the product carries only the product (no plotting,
//! no dataset loaders). Each module is one benchmark; every one prints a table, or JSON
//! with `--json`.

use clap::{Parser, Subcommand};

mod ann;
mod cnn;
mod copy;
mod datasets;
mod decode;
mod exact;
mod http;
mod replica;
mod scale;
mod soak;

/// likeness-bench: measure likeness against peer libraries.
#[derive(Debug, Parser)]
#[command(name = "likeness-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Exact search vs FAISS.
    Exact(exact::Args),
    /// Approximate indexes vs hnswlib/FAISS/usearch.
    Ann(ann::Args),
    /// CNN embedding throughput vs PyTorch.
    Cnn(cnn::Args),
    /// Copy detection: recall@1 per edit kind (crops, rotations, picture in picture, ...) per
    /// search mode (plain CNN, robust query views, hybrid).
    Copy(copy::Args),
    /// Reduced-size JPEG decoding: decode time and CNN embedding distance against full decodes.
    Decode(decode::Args),
    /// Search latency through the HTTP API.
    Http(http::Args),
    /// A `serve --read-only` replica beside an ingesting writer: catch-up latency and search QPS.
    Replica(replica::Args),
    /// One collection at scale (N x D, any index spec): import time and peak memory against
    /// hnswlib/FAISS/usearch, `db info` and open time, bytes per vector on disk / resident / heap,
    /// queries/s at a recall@10 target.
    Scale(scale::Args),
    /// Mixed traffic (id searches, image searches, uploads) against a `likeness serve` process
    /// at several concurrency levels: throughput, latency, statuses, server memory.
    Soak(soak::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        likeness::init_tracing();
    }
    match &cli.command {
        BenchCommand::Exact(a) => exact::run(a),
        BenchCommand::Ann(a) => ann::run(a),
        BenchCommand::Cnn(a) => cnn::run(a),
        BenchCommand::Copy(a) => copy::run(a),
        BenchCommand::Decode(a) => decode::run(a),
        BenchCommand::Http(a) => http::run(a),
        BenchCommand::Replica(a) => replica::run(a),
        BenchCommand::Scale(a) => scale::run(a),
        BenchCommand::Soak(a) => soak::run(a),
    }
}
