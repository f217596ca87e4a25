//! `likeness train`: fine-tune a projection head on labelled folders (stub: replaced by the real implementation).

use std::path::PathBuf;

/// Arguments of `likeness train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// ImageFolder tree `root/<label>/<file>`.
    pub root: Option<PathBuf>,
}

/// Run `likeness train`.
pub fn run(_args: &TrainArgs) -> anyhow::Result<()> {
    anyhow::bail!("likeness train is not implemented yet")
}
