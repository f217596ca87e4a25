//! `likeness bench ann` (stub: replaced by the real implementation).

/// Arguments of `likeness bench ann`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run the benchmark.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("likeness bench ann is not implemented yet")
}
