//! `likeness bench exact` (stub: replaced by the real implementation).

/// Arguments of `likeness bench exact`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the benchmark.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("likeness bench exact is not implemented yet")
}
