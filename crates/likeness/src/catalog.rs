//! How image files map onto vecdb collections: record ids, metadata documents,
//! schemas built from feature extractors, and the choice of a default feature.
//!
//! One collection per indexed tree (default `images`); each feature is a named vector
//! field (`cnn` cosine 1280, `color` l2, `texture` l2, `phash`/`dhash` hamming 64).
//! A record's id is the 64-bit FNV-1a hash of the file's absolute path, so indexing
//! the same file twice updates one record.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use features::pipeline::ImageRecord;
use features::{DistanceKind, Embedding, FeatureExtractor};
use vecdb::{Collection, CollectionSchema, Database, Metric, Record, Vector, VectorField};

use crate::image_meta::ImageMeta;

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
                index: index_for(e.name(), metric, e.dim(), index)?,
                vectors_per_record: e.vectors_per_image(),
            })
        })
        .collect::<Result<_>>()?;
    Ok(CollectionSchema { fields })
}

/// The index spec of field `field` under `--index ARG`:
/// * one spec (`HNSW16,SQ8`): every dense field gets it; bit-vector fields (the 64-bit hashes,
///   scanned exactly with popcount in microseconds) keep `Flat` unless vecdb builds the spec
///   for bit vectors of `dim` bits (`HNSW<M>[,efC<n>]`, the one approximate index for Hamming);
/// * `feature=spec` pairs separated by `;` (`cnn=HNSW32;color=KDForest4`): as given, `Flat`
///   for the features not named. A pair naming no feature of the collection is an error.
pub fn index_for(field: &str, metric: Metric, dim: usize, arg: &str) -> Result<String> {
    let arg = arg.trim();
    if !is_per_feature(arg) {
        let for_bits = metric != Metric::Hamming || vecdb::index::build_index(arg, dim, metric).is_ok();
        return Ok(if for_bits { arg.into() } else { "Flat".into() });
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

/// True when `--index ARG` is a list of `feature=spec` pairs rather than one spec (an `Auto`
/// spec has `=` in its settings: `Auto,budget=4G`).
fn is_per_feature(arg: &str) -> bool {
    arg.contains('=') && vecdb::collection::AutoPolicy::parse(arg).is_none()
}

/// Check that every `feature=` of a per-feature `--index` names one of `fields`.
pub fn check_index_arg(arg: &str, fields: &[String]) -> Result<()> {
    if !is_per_feature(arg) {
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

/// The record an `--id` argument names: a record id as `search` prints it (quotes allowed, as
/// copied from `--json`) or the path of an indexed image (made absolute and resolved the way
/// `index` resolves the files it walks). A number that is no record's id but names an indexed
/// file means the file.
pub fn resolve_record(coll: &Collection, arg: &str) -> Result<u64> {
    let unquoted = arg.trim().trim_matches('"');
    let number = unquoted.parse::<u64>().ok();
    if let Some(id) = number.filter(|id| coll.get(*id).ok().flatten().is_some()) {
        return Ok(id);
    }
    let path = Path::new(arg);
    let resolved = path.canonicalize().or_else(|_| std::path::absolute(path)).unwrap_or_else(|_| path.to_path_buf());
    let id = record_id(&resolved);
    if coll.get_metadata(id).is_some() || coll.get(id).ok().flatten().is_some() {
        return Ok(id);
    }
    match number {
        // No such record: vecdb's search names the id.
        Some(id) => Ok(id),
        None => bail!(
            "no record of collection '{}' for {} (neither a record id nor an indexed file: run `likeness index` on its folder first)",
            coll.name(),
            resolved.display()
        ),
    }
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
    /// For an upload, the file name the client sent.
    pub original_name: Option<String>,
}

/// The metadata stored for an extracted image: the file facts, the image's size and format,
/// and its `tags` (top ImageNet labels) when a classifier ran.
pub fn image_meta(facts: &FileFacts, image: &ImageRecord) -> ImageMeta {
    let tags = image.features.values().find(|f| !f.tags.is_empty()).map(|f| f.tags.iter().map(|t| t.label.clone()));
    let mut meta = ImageMeta {
        label: facts.label.clone(),
        size: Some(facts.size),
        mtime: Some(facts.mtime_ns / 1_000_000_000),
        mtime_ns: Some(facts.mtime_ns),
        width: Some(image.width),
        height: Some(image.height),
        format: Some(image.format.clone()),
        tags: tags.map(Iterator::collect).unwrap_or_default(),
        original_name: facts.original_name.clone(),
        ..Default::default()
    };
    meta.set_path(&facts.path);
    if let Some(root) = &facts.root {
        meta.set_root(root);
    }
    meta
}

/// Build the record for an extracted image: id from the path, one vector per feature,
/// metadata from [`image_meta`].
pub fn build_record(facts: &FileFacts, image: &ImageRecord) -> Record {
    let vectors = image.features.iter().map(|(name, f)| (name.clone(), to_vector(&f.vector))).collect();
    Record { id: record_id(&facts.path), vectors, metadata: image_meta(facts, image).to_metadata() }
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
    fn records_store_the_same_metadata_json_as_before() {
        use std::collections::BTreeMap;

        use features::{Features, Tag};
        let facts = FileFacts {
            root: Some("/photos".into()),
            path: "/photos/cats/a.jpg".into(),
            label: Some("cats".into()),
            size: 12345,
            mtime_ns: 1_700_000_000_123_456_789,
            original_name: None,
        };
        let tag = |label: &str| Tag { class: 0, label: label.into(), prob: 0.5 };
        let mut image = ImageRecord {
            path: facts.path.clone(),
            width: 640,
            height: 480,
            format: "jpeg".into(),
            features: BTreeMap::from([
                (
                    "cnn".to_string(),
                    Features { vector: Embedding::Dense(vec![1.0]), tags: vec![tag("tabby"), tag("lynx")] },
                ),
                ("color".to_string(), Features { vector: Embedding::Dense(vec![0.5, 0.5]), tags: Vec::new() }),
            ]),
        };
        let rec = build_record(&facts, &image);
        assert_eq!(rec.id, record_id(&facts.path));
        assert_eq!(rec.vectors.len(), 2);
        // The exact object earlier versions wrote key by key (vecdb stores keys sorted).
        assert_eq!(
            serde_json::to_string(&rec.metadata).unwrap(),
            r#"{"format":"jpeg","height":480,"label":"cats","mtime":1700000000,"mtime_ns":1700000000123456789,"path":"/photos/cats/a.jpg","root":"/photos","size":12345,"tags":["tabby","lynx"],"width":640}"#
        );
        // No label, root or tags: the keys are left out; an upload keeps its name.
        image.features.remove("cnn");
        let upload = FileFacts { root: None, label: None, original_name: Some("IMG 1.JPG".into()), ..facts };
        assert_eq!(
            serde_json::to_string(&build_record(&upload, &image).metadata).unwrap(),
            r#"{"format":"jpeg","height":480,"mtime":1700000000,"mtime_ns":1700000000123456789,"original_name":"IMG 1.JPG","path":"/photos/cats/a.jpg","size":12345,"width":640}"#
        );
    }

    #[test]
    fn hamming_fields_take_only_specs_vecdb_builds_for_bits() {
        for (spec, want) in [
            ("Flat", "Flat"),
            ("HNSW16", "HNSW16"),
            ("HNSW16,efC100", "HNSW16,efC100"),
            ("HNSW16,SQ8", "Flat"),
            ("IVF64,PQ8", "Flat"),
            ("KDForest4", "Flat"),
            ("LSH256", "Flat"),
        ] {
            assert_eq!(index_for("phash", Metric::Hamming, 64, spec).unwrap(), want, "{spec}");
            assert_eq!(index_for("cnn", Metric::Cosine, 1280, spec).unwrap(), spec, "{spec}");
        }
        assert_eq!(index_for("phash", Metric::Hamming, 64, "cnn=HNSW32;phash=HNSW8").unwrap(), "HNSW8");
        assert_eq!(index_for("color", Metric::L2, 48, "cnn=HNSW32;phash=HNSW8").unwrap(), "Flat");
        // The automatic policy: dense fields follow it (budget and all), hashes are scanned.
        assert_eq!(index_for("cnn", Metric::Cosine, 1280, "Auto,budget=2G").unwrap(), "Auto,budget=2G");
        assert_eq!(index_for("phash", Metric::Hamming, 64, "Auto,budget=2G").unwrap(), "Flat");
        assert_eq!(index_for("cnn", Metric::Cosine, 1280, "cnn=Auto,budget=2G;color=Flat").unwrap(), "Auto,budget=2G");
    }
}
