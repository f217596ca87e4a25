//! `likeness bench cnn` (stub: replaced by the real implementation).

/// Arguments of `likeness bench cnn`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the benchmark.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("likeness bench cnn is not implemented yet")
}
