//! The per-query index knobs shared by `likeness search` and `likeness vectors search`.

use vecdb::SearchParams;

/// `--ef`, `--nprobe`, `--checks`, `--rerank`: each tunes one kind of index and is ignored by the others.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct IndexKnobs {
    /// HNSW candidate list (more = higher recall, slower; default 64).
    #[arg(long)]
    pub ef: Option<usize>,
    /// IVF lists probed (default 16).
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// k-d forest leaf budget (default 512).
    #[arg(long)]
    pub checks: Option<usize>,
    /// Candidates re-ranked exactly by LSH and `…,Refine` indexes.
    #[arg(long)]
    pub rerank: Option<usize>,
}

impl IndexKnobs {
    /// The knobs as vecdb search parameters.
    pub fn params(&self) -> SearchParams {
        SearchParams {
            ef: self.ef,
            nprobe: self.nprobe,
            checks: self.checks,
            rerank: self.rerank,
            ..Default::default()
        }
    }
}
