//! The `likeness` command-line tool.

use clap::{Parser, Subcommand};

mod bench;
mod bench_http;
mod catalog;
mod datasets;
mod db_cmd;
mod dedup_cmd;
mod demo_cmd;
mod eval_cmd;
mod heads;
mod index_cmd;
mod indexer;
mod knobs;
mod model_args;
mod model_cmd;
mod search_cmd;
mod server;
mod train_cmd;
mod vectors_cmd;
mod walk;

/// likeness: find the images most alike.
#[derive(Debug, Parser)]
#[command(name = "likeness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Index image folders into a database (incremental; Ctrl-C keeps what is stored).
    Index(index_cmd::Args),
    /// Find the stored images most like one or more query images.
    Search(search_cmd::Args),
    /// Find groups of near-duplicate images.
    Dedup(dedup_cmd::Args),
    /// Measure each feature's retrieval quality on a labelled folder (leave-one-out).
    Eval(eval_cmd::Args),
    /// Serve the HTTP JSON API and the web page.
    Serve(server::Args),
    /// Fetch the model, index the sample photos, show a few searches, then serve the web page.
    Demo(demo_cmd::Args),
    /// Inspect a database.
    #[command(subcommand)]
    Db(db_cmd::DbCommand),
    /// Import and search raw vectors (.npy, .fvecs).
    #[command(subcommand)]
    Vectors(vectors_cmd::VectorsCommand),
    /// Benchmarks against peer libraries.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Fetch or inspect the CNN model.
    Model(model_cmd::Args),
    /// Fine-tune a projection head on labelled folders.
    Train(train_cmd::TrainArgs),
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Exact search vs FAISS.
    Exact(bench::exact::Args),
    /// Approximate indexes vs hnswlib/FAISS/usearch.
    Ann(bench::ann::Args),
    /// CNN embedding throughput vs PyTorch.
    Cnn(bench::cnn::Args),
    /// Search latency through the HTTP API.
    Http(bench_http::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Warnings (a torn WAL tail cut on open, an index that could not be built) reach stderr by
    // default; RUST_LOG chooses more or less.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
    match &cli.command {
        Command::Index(a) => index_cmd::run(a),
        Command::Search(a) => search_cmd::run(a),
        Command::Dedup(a) => dedup_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Serve(a) => server::run(a),
        Command::Demo(a) => demo_cmd::run(a),
        Command::Db(c) => db_cmd::run(c),
        Command::Vectors(c) => vectors_cmd::run(c),
        Command::Bench(BenchCommand::Http(a)) => bench_http::run(a),
        Command::Bench(BenchCommand::Exact(a)) => bench::exact::run(a),
        Command::Bench(BenchCommand::Ann(a)) => bench::ann::run(a),
        Command::Bench(BenchCommand::Cnn(a)) => bench::cnn::run(a),
        Command::Model(a) => model_cmd::run(a),
        Command::Train(a) => train_cmd::run(a),
    }
}
