//! The options every command that embeds images shares: where the CNN model is and where it runs.

use std::path::PathBuf;

use features::cnn::ComputeDevice;
use features::registry::ExtractorOptions;

/// `--model-dir` and `--device`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ModelArgs {
    /// Where the CNN model is (fetched there on first use). Default: $LIKENESS_MODEL_DIR or the user cache.
    #[arg(long)]
    pub model_dir: Option<PathBuf>,
    /// Where the CNN runs: cpu (fused kernels, the default), cuda or cuda:N (an NVIDIA GPU; needs a
    /// build with `--features cuda`), or cpu-ref (the GPU's tensor graph on the CPU, for checking).
    #[arg(long, env = "LIKENESS_DEVICE", default_value = "cpu")]
    pub device: ComputeDevice,
}

impl ModelArgs {
    /// The extractor settings these options give (other settings at their defaults).
    pub fn extractor_options(&self) -> ExtractorOptions {
        ExtractorOptions { model_dir: self.model_dir.clone(), device: self.device, ..Default::default() }
    }
}
