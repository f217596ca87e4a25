//! The automatic index policy: the `Auto` spec, which picks a field's index from its size and a
//! memory budget instead of asking the user to know the right factory string in advance (after
//! Weaviate's dynamic index and Qdrant's indexing threshold).
//!
//! * Below `threshold` live vectors (default [`DEFAULT_THRESHOLD`]): exact search, the stored
//!   rows scanned in place (`Flat`).
//! * From there on: a graph ([`GRAPH_SPEC`]) built in the background while searches stay exact
//!   and writes go on, then swapped in (see `background.rs`).
//! * When the float graph would not fit the memory budget (default: half of the machine's RAM),
//!   the graph traverses 8-bit codes ([`GRAPH_SQ8_SPEC`], a quarter of the vector bytes) and
//!   every search re-ranks its candidates exactly with the full vectors read from the mapped
//!   segment columns (DiskANN-style: compact codes in memory, full vectors on disk).
//! * Bit-vector (`hamming`) fields always scan exactly: a popcount scan of 64-bit hashes runs at
//!   memory speed.
//!
//! Spec grammar: `Auto`, optionally followed by `,threshold=N` and/or `,budget=SIZE` (`SIZE` in
//! bytes with an optional `K`, `M`, `G` or `T` suffix, binary units: `budget=4G`, `budget=512MiB`).

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::schema::VectorField;

/// Live vectors from which an `Auto` field is served by a graph.
pub const DEFAULT_THRESHOLD: usize = 10_000;
/// The float graph an `Auto` field gets within its memory budget.
pub const GRAPH_SPEC: &str = "HNSW32";
/// The 8-bit graph an `Auto` field gets past its memory budget (searches re-rank exactly).
pub const GRAPH_SQ8_SPEC: &str = "HNSW32,SQ8";
/// Links per node of the automatic graphs (the `32` of [`GRAPH_SPEC`]), for the estimates.
const GRAPH_M: usize = 32;
/// Share of physical memory an `Auto` field's index may take when no budget is given.
const DEFAULT_BUDGET_SHARE: f64 = 0.5;

/// A parsed `Auto` spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoPolicy {
    /// Live vectors from which a graph serves the field.
    pub threshold: usize,
    /// Bytes the field's in-memory index may take; `None`: half of physical memory.
    pub budget: Option<u64>,
}

/// What an `Auto` field should be served by now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Exact search over the stored rows.
    Exact,
    /// A graph of this spec; `rerank`: candidates re-scored exactly from the stored vectors.
    Graph { spec: String, rerank: bool },
}

impl AutoPolicy {
    /// `Some` for an `Auto` spec (parsed, or the reason it is malformed), `None` for any other.
    pub fn parse(spec: &str) -> Option<Result<AutoPolicy>> {
        let mut parts = spec.trim().split(',').map(str::trim);
        let head = parts.next()?;
        if !head.eq_ignore_ascii_case("auto") {
            return None;
        }
        let mut policy = AutoPolicy { threshold: DEFAULT_THRESHOLD, budget: None };
        for part in parts {
            let bad = |why: &str| Error::InvalidArgument(format!("index spec '{spec}': {why}"));
            let Some((key, value)) = part.split_once('=') else {
                return Some(Err(bad(&format!("'{part}' is not key=value (threshold=N or budget=SIZE)"))));
            };
            match key.trim() {
                "threshold" => match value.trim().replace('_', "").parse::<usize>() {
                    Ok(n) => policy.threshold = n,
                    Err(_) => return Some(Err(bad(&format!("threshold '{value}' is not a count of vectors")))),
                },
                "budget" => match parse_size(value) {
                    Some(b) if b > 0 => policy.budget = Some(b),
                    _ => {
                        return Some(Err(bad(&format!(
                            "budget '{value}' is not a size in bytes (e.g. 4G, 512MiB, 1000000)"
                        ))))
                    }
                },
                other => return Some(Err(bad(&format!("unknown setting '{other}' (threshold or budget)")))),
            }
        }
        Some(Ok(policy))
    }

    /// The budget in bytes: the one given, or half of physical memory.
    pub fn budget_bytes(&self) -> u64 {
        self.budget.unwrap_or_else(|| (physical_memory() as f64 * DEFAULT_BUDGET_SHARE) as u64)
    }

    /// What field `field` with `n` live vectors should be served by, and why (for `db info`).
    pub(crate) fn choose(&self, field: &VectorField, n: usize) -> (Choice, String) {
        if field.metric == Metric::Hamming {
            return (Choice::Exact, "exact scan: bit vectors are always scanned (popcount)".into());
        }
        if n < self.threshold {
            return (
                Choice::Exact,
                format!("exact scan: {n} vectors, below the graph threshold of {}", self.threshold),
            );
        }
        let budget = self.budget_bytes();
        let float = graph_bytes(field, n, false);
        if float <= budget {
            let why = format!(
                "{GRAPH_SPEC}: {n} vectors (threshold {}); the float graph (~{}) fits the memory budget ({})",
                self.threshold,
                human(float),
                human(budget)
            );
            return (Choice::Graph { spec: GRAPH_SPEC.into(), rerank: false }, why);
        }
        let codes = graph_bytes(field, n, true);
        let fits = if codes <= budget { "fits" } else { "is over it too, the smallest choice" };
        let why = format!(
            "{GRAPH_SQ8_SPEC} + exact re-rank from the mapped vectors: {n} vectors; the float graph (~{}) is over \
             the memory budget ({}), the 8-bit graph (~{}) {fits}",
            human(float),
            human(budget),
            human(codes)
        );
        (Choice::Graph { spec: GRAPH_SQ8_SPEC.into(), rerank: true }, why)
    }
}

/// True for the spec of a graph the `Auto` policy builds.
pub(crate) fn is_auto_graph(spec: &str) -> bool {
    spec == GRAPH_SPEC || spec == GRAPH_SQ8_SPEC
}

/// Estimated memory of an automatic graph over `n` vectors of `field`: the vectors (or their
/// 8-bit codes), level-0 links (2M of 4 bytes), upper levels (about 1/M of the nodes with M
/// links each) and per-node bookkeeping. The float graph reads its vectors in place from the
/// mapped segment columns (page cache, not heap), but its walk touches them at random, so they
/// must stay resident to be fast: they count against the budget all the same.
pub(crate) fn graph_bytes(field: &VectorField, n: usize, quantized: bool) -> u64 {
    // A multi-vector field's graph holds a node per vector.
    let vector = if quantized { field.dim } else { 4 * field.dim };
    let links = 2 * GRAPH_M * 4 + 4 * 2;
    (n as u64) * (field.vectors_per_record as u64) * (vector + links + 32) as u64
}

/// Physical memory in bytes (`/proc/meminfo`, read once), or 8 GiB where it cannot be read.
pub(crate) fn physical_memory() -> u64 {
    static MEMORY: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MEMORY.get_or_init(read_physical_memory)
}

fn read_physical_memory() -> u64 {
    let fallback = 8 << 30;
    let Ok(text) = std::fs::read_to_string("/proc/meminfo") else { return fallback };
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(fallback, |kb| kb * 1024)
}

/// `1000`, `64K`, `512MiB`, `4G`, `1.5GB`, `2T` → bytes (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_uppercase().trim_end_matches('B').trim_end_matches('I') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// `1.5 GiB`-style size for messages.
fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(dim: usize, metric: Metric) -> VectorField {
        VectorField::new("v", dim, metric, "Auto")
    }

    #[test]
    fn parses_the_spec_and_rejects_bad_settings() {
        assert!(AutoPolicy::parse("HNSW32").is_none());
        assert!(AutoPolicy::parse("Flat").is_none());
        let p = AutoPolicy::parse(" auto ").unwrap().unwrap();
        assert_eq!(p, AutoPolicy { threshold: DEFAULT_THRESHOLD, budget: None });
        let p = AutoPolicy::parse("Auto,threshold=500,budget=2G").unwrap().unwrap();
        assert_eq!(p, AutoPolicy { threshold: 500, budget: Some(2 << 30) });
        assert_eq!(AutoPolicy::parse("Auto,budget=512MiB").unwrap().unwrap().budget, Some(512 << 20));
        for bad in ["Auto,threshold=x", "Auto,budget=0", "Auto,budget=3Q", "Auto,size=3", "Auto,HNSW32"] {
            let e = AutoPolicy::parse(bad).unwrap().unwrap_err().to_string();
            assert!(e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("1.5GB"), Some(3 << 29));
        assert_eq!(parse_size("2t"), Some(2 << 40));
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("G"), None);
    }

    #[test]
    fn chooses_by_size_then_budget() {
        let p = AutoPolicy { threshold: 100, budget: Some(10 << 20) };
        let f = field(128, Metric::L2);
        assert_eq!(p.choose(&f, 99).0, Choice::Exact);
        assert_eq!(p.choose(&f, 100).0, Choice::Graph { spec: GRAPH_SPEC.into(), rerank: false });
        // 128-d floats: ~0.8 KB per vector, so 100,000 of them exceed 10 MiB; their codes too.
        let (c, why) = p.choose(&f, 100_000);
        assert_eq!(c, Choice::Graph { spec: GRAPH_SQ8_SPEC.into(), rerank: true });
        assert!(why.contains("over the memory budget"), "{why}");
        assert_eq!(p.choose(&field(64, Metric::Hamming), 1_000_000).0, Choice::Exact);
        assert!(physical_memory() > 0);
    }
}
