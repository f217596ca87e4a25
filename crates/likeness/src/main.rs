//! The `likeness` command-line tool.

use clap::{Parser, Subcommand};

mod bench;
mod model_cmd;
mod train_cmd;

/// likeness: find the images most alike.
#[derive(Debug, Parser)]
#[command(name = "likeness", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match &cli.command {
        Command::Bench(BenchCommand::Exact(a)) => bench::exact::run(a),
        Command::Bench(BenchCommand::Ann(a)) => bench::ann::run(a),
        Command::Bench(BenchCommand::Cnn(a)) => bench::cnn::run(a),
        Command::Model(a) => model_cmd::run(a),
        Command::Train(a) => train_cmd::run(a),
    }
}
