//! The `likeness` command-line tool.
//!
//! Benchmarks are a binary of their own, `likeness-bench` (crates/likeness-bench).

use clap::{Parser, Subcommand};
use likeness::{
    db_cmd, dedup_cmd, demo_cmd, eval_cmd, index_cmd, model_cmd, search_cmd, server, train_cmd, vectors_cmd,
};

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
    /// Fetch or inspect the CNN model.
    Model(model_cmd::Args),
    /// Fine-tune a projection head on labelled folders.
    Train(train_cmd::TrainArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // `likeness db info DB | head -2`: a closed pipe ends a printing command quietly, as for
    // any Unix tool, instead of a panic in println! (Rust ignores SIGPIPE by default). The
    // server keeps ignoring it: a client hanging up must never end it.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_) | Command::Demo(_)) {
        // SAFETY: restores the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    likeness::init_tracing();
    // Commands that write (or serve) build an `Auto` collection's graph in the background;
    // one-shot readers search exactly meanwhile instead of starting a build they would abandon.
    let builds = matches!(
        cli.command,
        Command::Index(_)
            | Command::Serve(_)
            | Command::Demo(_)
            | Command::Vectors(vectors_cmd::VectorsCommand::Import(_))
            | Command::Db(db_cmd::DbCommand::SetIndex(_))
    );
    vecdb::collection::set_background_builds(builds);
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {}", likeness::error_chain::error_chain(&e));
            if std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0") {
                eprintln!("\n{e:?}");
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Index(a) => index_cmd::run(a),
        Command::Search(a) => search_cmd::run(a),
        Command::Dedup(a) => dedup_cmd::run(a),
        Command::Eval(a) => eval_cmd::run(a),
        Command::Serve(a) => server::run(a),
        Command::Demo(a) => demo_cmd::run(a),
        Command::Db(c) => db_cmd::run(c),
        Command::Vectors(c) => vectors_cmd::run(c),
        Command::Model(a) => model_cmd::run(a),
        Command::Train(a) => train_cmd::run(a),
    }
}
