//! How image files map onto vecdb collections: record ids, metadata documents,
//! schemas built from feature extractors, and the choice of a default feature.
//!
//! One collection per indexed tree (default `images`); each feature is a named vector
//! field (`cnn` cosine 1280, `color` l2, `texture` l2, `phash`/`dhash` hamming 64).
//! A record's id is the 64-bit FNV-1a hash of the file's absolute path, so indexing
//! the same file twice updates one record.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use features::pipeline::ImageRecord;
use features::{DistanceKind, Embedding, FeatureExtractor};
use serde_json::{json, Value};
use vecdb::{Collection, CollectionSchema, Database, Metadata, Metric, Record, Vector, VectorField};

/// The collection name used when none is given.
pub const DEFAULT_COLLECTION: &str = "images";

/// Features tried, in order, when a search does not name one.
const PREFERRED_FEATURES: &[&str] = &["cnn", "cnn-lite2", "color", "texture", "phash", "dhash"];

/// 64-bit FNV-1a hash of a byte string.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The record id of a file: FNV-1a of its absolute path's bytes.
pub fn record_id(path: &Path) -> u64 {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        fnv1a(path.as_os_str().as_bytes())
    }
    #[cfg(not(unix))]
    {
        fnv1a(path.to_string_lossy().as_bytes())
    }
}

/// The vecdb metric an extractor's distance kind maps to.
pub fn metric_for(kind: DistanceKind) -> Metric {
    match kind {
        DistanceKind::L2 => Metric::L2,
        DistanceKind::Cosine => Metric::Cosine,
        DistanceKind::Hamming => Metric::Hamming,
    }
}

/// Convert an extractor's embedding into a vecdb vector.
pub fn to_vector(e: &Embedding) -> Vector {
    match e {
        Embedding::Dense(v) => Vector::Dense(v.clone()),
        Embedding::Binary(v) => Vector::Binary(v.clone()),
    }
}

/// A collection schema with one field per extractor, indexed as `index` says ([`index_for`]);
/// a per-feature `index` naming a feature the extractors do not give is an error.
pub fn schema_for(extractors: &[Box<dyn FeatureExtractor>], index: &str) -> Result<CollectionSchema> {
    let names: Vec<String> = extractors.iter().map(|e| e.name().to_string()).collect();
    check_index_arg(index, &names)?;
    let fields = extractors
        .iter()
        .map(|e| {
            let metric = metric_for(e.distance());
            Ok(VectorField {
                name: e.name().to_string(),
                dim: e.dim(),
                metric,
                index: index_for(e.name(), metric, index)?,
            })
        })
        .collect::<Result<_>>()?;
    Ok(CollectionSchema { fields })
}

/// The index spec of field `field` under `--index ARG`:
/// * one spec (`HNSW16,SQ8`): every dense field gets it; bit-vector fields (the 64-bit hashes,
///   scanned exactly with popcount in microseconds) keep `Flat` unless the spec is a plain
///   `HNSW<M>`, the one approximate index for Hamming;
/// * `feature=spec` pairs separated by `;` (`cnn=HNSW32;color=KDForest4`): as given, `Flat`
///   for the features not named. A pair naming no feature of the collection is an error.
pub fn index_for(field: &str, metric: Metric, arg: &str) -> Result<String> {
    let arg = arg.trim();
    if !arg.contains('=') {
        let plain_hnsw =
            arg.strip_prefix("HNSW").is_some_and(|m| !m.is_empty() && m.bytes().all(|b| b.is_ascii_digit()));
        return Ok(if metric == Metric::Hamming && !plain_hnsw && arg != "Flat" { "Flat".into() } else { arg.into() });
    }
    let mut spec = "Flat".to_string();
    for pair in arg.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, s)) = pair.split_once('=') else {
            bail!("--index '{arg}': '{pair}' is not feature=spec (e.g. cnn=HNSW32;color=Flat)");
        };
        if crate::heads::canonical(name.trim()) == field {
            spec = s.trim().to_string();
        }
    }
    Ok(spec)
}

/// Check that every `feature=` of a per-feature `--index` names one of `fields`.
pub fn check_index_arg(arg: &str, fields: &[String]) -> Result<()> {
    if !arg.contains('=') {
        return Ok(());
    }
    for name in arg.split(';').filter_map(|p| p.split_once('=')).map(|(n, _)| crate::heads::canonical(n.trim())) {
        if !fields.contains(&name) {
            bail!("--index names feature '{name}', which the collection does not have (it has: {})", fields.join(", "));
        }
    }
    Ok(())
}

/// Split a comma-separated feature list (`cnn,color`) into names, rejecting empty ones.
pub fn parse_feature_list(list: &str) -> Result<Vec<String>> {
    let names: Vec<String> = list.split(',').map(|s| s.trim().to_string()).collect();
    if names.iter().any(String::is_empty) {
        bail!("empty feature name in '{list}' (expected e.g. cnn,color,phash)");
    }
    let mut seen = std::collections::BTreeSet::new();
    for n in &names {
        if !seen.insert(n) {
            bail!("feature '{n}' is listed twice in '{list}'");
        }
    }
    Ok(names)
}

/// Field names of a collection, in schema order.
pub fn field_names(coll: &Collection) -> Vec<String> {
    coll.schema().fields.iter().map(|f| f.name.clone()).collect()
}

/// The feature a search uses: `requested` when given (and present), else the first preferred one present.
pub fn choose_feature(coll: &Collection, requested: Option<&str>) -> Result<String> {
    let names = field_names(coll);
    if let Some(r) = requested {
        let r = crate::heads::canonical(r); // `cnn+head:heads/x` names the field `cnn-head.x`
        if names.contains(&r) {
            return Ok(r);
        }
        bail!("collection '{}' has no feature '{r}' (it has: {})", coll.name(), names.join(", "));
    }
    // A trained head was added to be used: it comes first.
    names
        .iter()
        .find(|n| crate::heads::is_head_field(n))
        .cloned()
        .or_else(|| PREFERRED_FEATURES.iter().find(|p| names.iter().any(|n| n == *p)).map(|s| s.to_string()))
        .or_else(|| names.first().cloned())
        .with_context(|| format!("collection '{}' has no vector fields", coll.name()))
}

/// Open an existing collection, or fail with a message naming the collections that exist.
pub fn open_collection(db: &Database, name: &str) -> Result<Arc<Collection>> {
    db.collection(name).map_err(|e| match e {
        vecdb::Error::UnknownCollection(_) => {
            let names = db.collection_names();
            if names.is_empty() {
                anyhow::anyhow!(
                    "database {} has no collection '{name}' (it is empty: run `likeness index DIR --db {}` first)",
                    db.path().display(),
                    db.path().display()
                )
            } else {
                anyhow::anyhow!(
                    "database {} has no collection '{name}' (it has: {})",
                    db.path().display(),
                    names.join(", ")
                )
            }
        }
        other => anyhow::Error::new(other),
    })
}

/// Build the named extractors (`cnn` loads, and on first use fetches, the model into
/// `model.model_dir`, and runs on `model.device`). With `db`, heads installed in that database
/// (`cnn+head:NAME`, see [`crate::heads`]) load from there.
pub fn build_extractors(
    names: &[String],
    model: &crate::model_args::ModelArgs,
    db: Option<&Path>,
) -> Result<Vec<Box<dyn FeatureExtractor>>> {
    let opts = model.extractor_options();
    names
        .iter()
        .map(|n| {
            features::registry::build_extractor(&crate::heads::resolve(n, db), &opts)
                .with_context(|| format!("cannot build feature extractor '{n}'"))
        })
        .collect()
}

/// File facts stored beside the vectors.
#[derive(Debug, Clone)]
pub struct FileFacts {
    /// The indexed root the file was found under (absolute), if any.
    pub root: Option<PathBuf>,
    /// The file's absolute path.
    pub path: PathBuf,
    /// ImageFolder label.
    pub label: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, ns since the Unix epoch.
    pub mtime_ns: u64,
}

/// Build the record for an extracted image: id from the path, one vector per feature,
/// metadata `path`, `label`, `size`, `mtime` (s), `mtime_ns`, `width`, `height`, `format`,
/// `tags` (top ImageNet labels when a classifier ran) and `root`.
pub fn build_record(facts: &FileFacts, image: &ImageRecord) -> Record {
    let mut vectors = BTreeMap::new();
    let mut tags: Vec<Value> = Vec::new();
    for (name, f) in &image.features {
        vectors.insert(name.clone(), to_vector(&f.vector));
        if tags.is_empty() && !f.tags.is_empty() {
            tags = f.tags.iter().map(|t| Value::String(t.label.clone())).collect();
        }
    }
    let mut m = Metadata::new();
    m.insert("path".into(), json!(facts.path.to_string_lossy()));
    if let Some(l) = &facts.label {
        m.insert("label".into(), json!(l));
    }
    m.insert("size".into(), json!(facts.size));
    m.insert("mtime".into(), json!(facts.mtime_ns / 1_000_000_000));
    m.insert("mtime_ns".into(), json!(facts.mtime_ns));
    m.insert("width".into(), json!(image.width));
    m.insert("height".into(), json!(image.height));
    m.insert("format".into(), json!(image.format));
    if !tags.is_empty() {
        m.insert("tags".into(), Value::Array(tags));
    }
    if let Some(r) = &facts.root {
        m.insert("root".into(), json!(r.to_string_lossy()));
    }
    Record { id: record_id(&facts.path), vectors, metadata: m }
}

/// True when a stored record's metadata says it was made from this exact file version.
pub fn is_unchanged(meta: &Metadata, size: u64, mtime_ns: u64) -> bool {
    meta.get("size").and_then(Value::as_u64) == Some(size)
        && meta.get("mtime_ns").and_then(Value::as_u64) == Some(mtime_ns)
}

/// A metadata string field.
pub fn meta_str<'a>(meta: &'a Metadata, key: &str) -> Option<&'a str> {
    meta.get(key).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_reference_values() {
        // Reference values of 64-bit FNV-1a.
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x85944171f73967e8);
        assert_ne!(record_id(Path::new("/a/b.jpg")), record_id(Path::new("/a/c.jpg")));
    }

    #[test]
    fn feature_lists_parse_and_reject_bad_input() {
        assert_eq!(parse_feature_list("cnn, color,phash").unwrap(), ["cnn", "color", "phash"]);
        assert!(parse_feature_list("cnn,,color").is_err());
        assert!(parse_feature_list("color,color").is_err());
    }

    #[test]
    fn unchanged_needs_same_size_and_mtime() {
        let mut m = Metadata::new();
        m.insert("size".into(), json!(10));
        m.insert("mtime_ns".into(), json!(1_700_000_000_123_456_789u64));
        assert!(is_unchanged(&m, 10, 1_700_000_000_123_456_789));
        assert!(!is_unchanged(&m, 11, 1_700_000_000_123_456_789));
        assert!(!is_unchanged(&m, 10, 1_700_000_000_123_456_788));
    }
}
