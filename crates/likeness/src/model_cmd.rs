//! `likeness model ...`: fetch and inspect the CNN model (stub: replaced by the real implementation).

/// Arguments of `likeness model`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Run `likeness model`.
pub fn run(_args: &Args) -> anyhow::Result<()> {
    anyhow::bail!("likeness model is not implemented yet")
}
