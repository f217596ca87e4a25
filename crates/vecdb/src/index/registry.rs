//! Building an index from a factory string and loading a saved one.
//!
//! Factory strings follow FAISS's index factory: comma-separated stages, e.g.
//! `Flat`, `HNSW32`, `PCA128,HNSW32`, `IVF1024,PQ32,Refine`.
//!
//! | spec | index | search knobs (`SearchParams`) |
//! |---|---|---|
//! | `Flat` | exact scan | — |
//! | `HNSW<M>` | HNSW graph with `M` links per node | `ef` |
//! | `HNSW<M>,SQ8` | the same graph over 8-bit codes, integer distances (dense metrics) | `ef` |
//! | `HNSW<M>,efC<n>` / `HNSW<M>,SQ8,efC<n>` | either graph built with `ef_construction = n` (default 200) | `ef` |
//! | `HNSW<M>,SQ8,Refine` (or `HNSW<M>,SQ8,efC<n>,Refine`) | the 8-bit graph plus the full vectors by slot: the beam walks the codes, its `rerank` closest candidates are re-ranked exactly | `ef`, `rerank` (default 2k + 10) |
//! | `KDForest<t>` | `t` randomized k-d trees (l2, cosine) | `checks` (default 512) |
//! | `KDTree` | one k-d tree, exact backtracking search (l2, cosine; low dimensions) | — |
//! | `LSH<b>` | `b`-bit SimHash sketches (b multiple of 64), Hamming scan, exact re-rank | `rerank` (default max(10k, 100)) |
//! | `IVF<n>,Flat` / `IVF<n>,PQ<m>` / `IVF<n>,SQ8` | k-means coarse quantizer with `n` cells; raw, product-quantized (`m` bytes) or int8 lists | `nprobe` (default 16) |
//! | `PQ<m>` / `SQ8` | the same codecs without cells (one list) | — |
//! | `<index>,Refine` | keeps full vectors and re-ranks the inner index's candidates exactly | `rerank` (default max(10k, 100)) |
//! | `PCA<d>,<index>` / `PCAW<d>,<index>` | PCA to `d` dims (W: whitened) in front of any index | those of the inner index |
//!
//! `PQ<m>` may be written `PQ<m>x8` (8-bit codes are the only kind). `Refine` may be written
//! `Refine(Flat)` or `RFlat`. Names are case-sensitive except `flat`. Quantizing and PCA
//! indexes train themselves on the first vectors added (see each index's docs).

use std::path::Path;

use crate::error::{Error, Result};
use crate::fsutil::corrupt;
use crate::index::file::{read_meta, META_FILE};
use crate::index::flat::FlatIndex;
use crate::index::hnsw::{HnswIndex, Verify, DEFAULT_EF_CONSTRUCTION};
use crate::index::ivf::{IvfCodec, IvfIndex};
use crate::index::kdforest::KdForest;
use crate::index::lsh::LshIndex;
use crate::index::pca::PcaIndex;
use crate::index::refine::RefineIndex;
use crate::index::VectorIndex;
use crate::metric::Metric;

/// Build an empty index from a factory string.
pub fn build_index(spec: &str, dim: usize, metric: Metric) -> Result<Box<dyn VectorIndex>> {
    let stages: Vec<&str> = spec.split(',').map(str::trim).collect();
    if let Some(i) = stages.iter().position(|s| s.is_empty()) {
        return Err(Error::InvalidIndexSpec {
            spec: spec.to_string(),
            reason: if stages.len() == 1 { "empty index spec".into() } else { format!("stage {} is empty", i + 1) },
        });
    }
    build_stages(&stages, dim, metric).map_err(|e| match e {
        // Name the whole spec, and the stage when the error came from an inner constructor.
        Error::InvalidIndexSpec { spec: stage, reason } if stage != spec => {
            Error::InvalidIndexSpec { spec: spec.to_string(), reason: format!("{stage}: {reason}") }
        }
        other => other,
    })
}

fn invalid(stage: &str, reason: impl Into<String>) -> Error {
    Error::InvalidIndexSpec { spec: stage.to_string(), reason: reason.into() }
}

/// `Some(n)` when `stage` is `prefix` followed by a number; an error when the number is bad.
fn numbered(stage: &str, prefix: &str) -> Option<Result<usize>> {
    let rest = stage.strip_prefix(prefix)?;
    if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Err(invalid(stage, format!("expected {prefix}<number>, e.g. {prefix}32"))));
    }
    Some(
        rest.parse::<usize>()
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| invalid(stage, format!("{prefix} needs a positive number"))),
    )
}

fn build_stages(stages: &[&str], dim: usize, metric: Metric) -> Result<Box<dyn VectorIndex>> {
    let joined = stages.join(",");
    // `…,Refine` wraps everything before it.
    if let Some((&last, rest)) = stages.split_last() {
        if matches!(last, "Refine" | "Refine(Flat)" | "RFlat") {
            if rest.is_empty() {
                return Err(invalid(&joined, "Refine needs an index before it, e.g. IVF256,PQ16,Refine"));
            }
            // `HNSW<M>,SQ8[,efC<n>],Refine`: the graph keeps the vectors by slot itself and
            // re-ranks only its final candidates (no id lookups, no second id map).
            if rest[0].starts_with("HNSW") && rest.contains(&"SQ8") {
                let (m, efc) = hnsw_stages(rest, &joined)?;
                return Ok(Box::new(HnswIndex::with_sq8_refine(dim, metric, m, efc)?));
            }
            return Ok(Box::new(RefineIndex::new(build_stages(rest, dim, metric)?)?));
        }
    }
    let first = stages[0];
    let pca = numbered(first, "PCAW").map(|r| (true, r)).or_else(|| numbered(first, "PCA").map(|r| (false, r)));
    if let Some((whiten, d_out)) = pca {
        let d_out = d_out?;
        if stages.len() < 2 {
            return Err(invalid(&joined, format!("{first} must be followed by an index, e.g. {first},HNSW32")));
        }
        if d_out > dim {
            return Err(invalid(first, format!("cannot reduce {dim} dimensions to {d_out}")));
        }
        let inner = build_stages(&stages[1..], d_out, metric)?;
        return Ok(Box::new(PcaIndex::new(dim, whiten, inner)?));
    }
    if let Some(nlist) = numbered(first, "IVF") {
        let nlist = nlist?;
        let Some(&codec) = stages.get(1) else {
            return Err(invalid(&joined, format!("{first} must be followed by a codec: Flat, PQ<m> or SQ8")));
        };
        if let Some(&extra) = stages.get(2) {
            return Err(invalid(&joined, format!("unexpected stage '{extra}' after '{first},{codec}'")));
        }
        let codec = parse_codec(codec)?;
        return Ok(Box::new(IvfIndex::new(&joined, dim, metric, nlist, codec)?));
    }
    if numbered(first, "HNSW").is_some() {
        // `HNSW<M>` with optional `SQ8` (8-bit codes) and `efC<n>` (ef_construction) stages.
        let (m, efc) = hnsw_stages(stages, &joined)?;
        let sq8 = stages.contains(&"SQ8");
        return Ok(if sq8 {
            Box::new(HnswIndex::with_sq8(dim, metric, m, efc)?)
        } else {
            Box::new(HnswIndex::new(dim, metric, m, efc))
        });
    }
    if let Some(&extra) = stages.get(1) {
        return Err(invalid(&joined, format!("unexpected stage '{extra}' after '{first}'")));
    }
    build_leaf(first, dim, metric)
}

/// `M` and `ef_construction` of `HNSW<M>` followed by optional `SQ8` and `efC<n>` stages.
fn hnsw_stages(stages: &[&str], joined: &str) -> Result<(usize, usize)> {
    let first = stages[0];
    let m = match numbered(first, "HNSW") {
        Some(m) => hnsw_m(first, m)?,
        None => return Err(invalid(joined, format!("expected HNSW<M>, got '{first}'"))),
    };
    let (mut sq8, mut efc) = (false, DEFAULT_EF_CONSTRUCTION);
    for &st in &stages[1..] {
        if let Some(n) = numbered(st, "efC") {
            efc = n?;
        } else if st == "SQ8" && !sq8 {
            sq8 = true;
        } else {
            return Err(invalid(joined, format!("unexpected stage '{st}' after '{first}' (expected SQ8 or efC<n>)")));
        }
    }
    Ok((m, efc))
}

fn parse_codec(stage: &str) -> Result<IvfCodec> {
    if matches!(stage, "Flat" | "flat") {
        return Ok(IvfCodec::Flat);
    }
    if stage == "SQ8" {
        return Ok(IvfCodec::Sq8);
    }
    if let Some(body) = stage.strip_prefix("PQ") {
        let m_part = match body.split_once('x') {
            Some((m, "8")) => m,
            Some((_, bits)) => return Err(invalid(stage, format!("only 8-bit PQ codes are supported, got {bits}"))),
            None => body,
        };
        let m = numbered(&format!("PQ{m_part}"), "PQ").unwrap_or_else(|| Err(invalid(stage, "expected PQ<m>")))?;
        return Ok(IvfCodec::Pq { m });
    }
    if stage.starts_with("SQ") {
        return Err(invalid(stage, "only SQ8 (8-bit scalar quantization) is supported"));
    }
    Err(invalid(stage, "unknown codec (expected Flat, PQ<m> or SQ8)"))
}

/// A single-stage index.
fn build_leaf(stage: &str, dim: usize, metric: Metric) -> Result<Box<dyn VectorIndex>> {
    match stage {
        "Flat" | "flat" => return Ok(Box::new(FlatIndex::new(dim, metric))),
        "KDTree" => return Ok(Box::new(KdForest::new(dim, metric, 1, true)?)),
        "SQ8" => return Ok(Box::new(IvfIndex::new(stage, dim, metric, 1, IvfCodec::Sq8)?)),
        _ => {}
    }
    if let Some(t) = numbered(stage, "KDForest") {
        return Ok(Box::new(KdForest::new(dim, metric, t?, false)?));
    }
    if let Some(bits) = numbered(stage, "LSH") {
        return Ok(Box::new(LshIndex::new(dim, metric, bits?)?));
    }
    if stage.starts_with("PQ") {
        let codec = parse_codec(stage)?;
        return Ok(Box::new(IvfIndex::new(stage, dim, metric, 1, codec)?));
    }
    Err(invalid(
        stage,
        "unknown index (expected Flat, HNSW<M>[,SQ8], KDForest<t>, KDTree, LSH<bits>, IVF<n>,<Flat|PQ<m>|SQ8>, \
         PQ<m>, SQ8, PCA<d>,<index> or <index>,Refine)",
    ))
}

/// The `M` of an `HNSW<M>` stage, checked.
fn hnsw_m(stage: &str, m: Result<usize>) -> Result<usize> {
    let m = m?;
    if !(2..=crate::index::hnsw::MAX_M).contains(&m) {
        return Err(invalid(stage, format!("HNSW needs 2 <= M <= {}", crate::index::hnsw::MAX_M)));
    }
    Ok(m)
}

/// Open an index the engine saved itself (a collection's snapshot) as fast as its kind
/// allows: an HNSW graph is mapped without walking it ([`HnswIndex::open`], its files'
/// checksums read as `verify` says); other kinds are loaded and checked as by [`load_index`].
pub fn open_index(dir: &Path, verify: Verify) -> Result<Box<dyn VectorIndex>> {
    let value: serde_json::Value = read_meta(dir)?;
    match value.get("kind").and_then(|k| k.as_str()) {
        Some("hnsw") => Ok(Box::new(HnswIndex::open(dir, verify)?)),
        _ => load_index(dir),
    }
}

/// The index of `field` for `spec`: [`build_index`] at the field's dimension, behind a
/// [`crate::index::multi::MultiVectorIndex`] when the field holds several vectors per record.
pub fn build_field_index(spec: &str, field: &crate::schema::VectorField) -> Result<Box<dyn VectorIndex>> {
    let inner = build_index(spec, field.dim, field.metric)?;
    if field.is_multi() {
        Ok(Box::new(crate::index::multi::MultiVectorIndex::new(field.vectors_per_record, inner)?))
    } else {
        Ok(inner)
    }
}

/// Load an index previously written by [`VectorIndex::save`] into `dir`.
///
/// Reads the `kind` field of `dir/index.json` and dispatches to that index's loader.
/// Every file is checked as it is read ([`crate::index::file`]): a damaged one is an
/// [`Error::Corrupt`] naming it.
pub fn load_index(dir: &Path) -> Result<Box<dyn VectorIndex>> {
    let value: serde_json::Value = read_meta(dir)?;
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    match kind {
        "flat" => Ok(Box::new(FlatIndex::load(dir)?)),
        "hnsw" => Ok(Box::new(HnswIndex::load(dir)?)),
        "kdforest" => Ok(Box::new(KdForest::load(dir)?)),
        "lsh" => Ok(Box::new(LshIndex::load(dir)?)),
        "ivf" => Ok(Box::new(IvfIndex::load(dir)?)),
        "pca" => Ok(Box::new(PcaIndex::load(dir)?)),
        "refine" => Ok(Box::new(RefineIndex::load(dir)?)),
        "multi" => Ok(Box::new(crate::index::multi::MultiVectorIndex::load(dir)?)),
        other => Err(corrupt(&dir.join(META_FILE), format!("unknown index kind '{other}'"))),
    }
}
