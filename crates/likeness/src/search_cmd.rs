//! `likeness search IMAGE... --db DB`: the stored images most like each query image.
//!
//! [`search_images`] is the command without its printing, for the Python package and other callers.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use features::decode::DecodeLimits;
use serde::Serialize;
use vecdb::{Database, Filter, SearchParams};

use crate::catalog::{self, DEFAULT_COLLECTION};
use crate::image_meta::ImageMeta;
use crate::multi_search::{self, Base, ExplainedHit, Explanation, ViewQueries};
use crate::robust::Views;
use crate::verify::{self, HitVerification, QueryKeypoints, VerifySettings};

/// Arguments of `likeness search`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Query images (several = one batch search).
    pub images: Vec<PathBuf>,
    /// Database directory.
    #[arg(long)]
    pub db: PathBuf,
    /// Collection name.
    #[arg(long, default_value = DEFAULT_COLLECTION)]
    pub collection: String,
    /// Number of results per query (default 10; with --threshold, unlimited unless given).
    #[arg(short, long)]
    pub k: Option<usize>,
    /// Range search: every result with distance <= T (cosine distance for cnn, bits for phash, ...).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Metadata filter, e.g. 'label=cat', 'label in cat,dog', 'width>=500', 'path^=/photos/',
    /// combined with and / or / not and parentheses: '(label=cat or label=dog) and width>=500'.
    #[arg(long)]
    pub filter: Option<String>,
    /// Feature to search by (default: cnn when present, else the first feature of the collection),
    /// or several joined by '+' (`cnn+color+phash`): a hybrid search, the features' rankings
    /// fused by reciprocal rank.
    #[arg(long, alias = "features")]
    pub feature: Option<String>,
    /// Robust search: also search turned, mirrored, tilted and cropped views of each query image
    /// and keep each record's best match. `--robust` alone = `all`; or a list of
    /// turns,mirror,tilt[=DEG:DEG],regions (docs/app.md, "Robust search").
    #[arg(long, value_name = "VIEWS", num_args = 0..=1, default_missing_value = "all")]
    pub robust: Option<String>,
    /// Geometric verification: match local keypoints of the query with each of the top N hits
    /// (decoded from their stored paths; default 20) and move the hits verified by a RANSAC
    /// fit to the front, most inliers first (docs/app.md, "Geometric verification").
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "20")]
    pub verify: Option<String>,
    /// How a hybrid search combines its features: rrf (reciprocal rank, the default) or max
    /// (the best calibrated similarity among cnn/phash/dhash; colour breaks ties).
    #[arg(long, default_value = "rrf")]
    pub fusion: crate::fusion::Fusion,
    /// Search by a stored record ("more like this"; the record itself is excluded): its id as
    /// printed by `search` (with or without quotes) or the path of an indexed image.
    #[arg(long, conflicts_with = "images", value_name = "ID|PATH")]
    pub id: Vec<String>,
    #[command(flatten)]
    pub model: crate::model_args::ModelArgs,
    #[command(flatten)]
    pub knobs: crate::knobs::IndexKnobs,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// One result row.
#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    /// Record id (a string in JSON: see [`crate::json_ids`]).
    #[serde(serialize_with = "crate::json_ids::one")]
    pub id: u64,
    /// Distance to the query on the (first) feature searched (smaller is closer).
    pub distance: f32,
    /// The image file.
    pub path: Option<String>,
    /// Its label.
    pub label: Option<String>,
    /// Per-feature distances, similarity, verdict (and the view / fused score that found it).
    #[serde(flatten)]
    pub explanation: Explanation,
    /// Geometric verification (inliers, matched quadrilateral), for the hits verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<HitVerification>,
}

impl From<&ExplainedHit> for ResultRow {
    fn from(h: &ExplainedHit) -> Self {
        let meta = h.hit.metadata.clone().map(ImageMeta::from_metadata).unwrap_or_default();
        ResultRow {
            id: h.hit.id,
            distance: h.distance(),
            path: meta.path,
            label: meta.label,
            explanation: h.explanation(),
            verification: None,
        }
    }
}

/// Results of one query.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResults {
    /// The query: the image's path as given, or `id N`.
    pub query: String,
    /// The feature searched (`cnn+color+phash` for a hybrid search).
    pub feature: String,
    /// The hits, closest first.
    pub results: Vec<ResultRow>,
    /// Whether the best hit is calibrated as unrelated ("no close match"); null when no
    /// calibrated feature was searched or nothing was found.
    pub no_close_match: Option<bool>,
}

/// What to search for.
#[derive(Debug, Clone)]
pub enum Queries {
    /// Query image files (several = one batch search).
    Images(Vec<PathBuf>),
    /// Stored records ("more like this"; each record itself is excluded).
    Ids(Vec<u64>),
}

/// The library form of `likeness search`'s options (everything but the queries and the database).
#[derive(Debug, Clone)]
pub struct SearchSettings {
    /// Collection name.
    pub collection: String,
    /// Results per query (default 10; with a threshold, unlimited unless given). Must be at least 1.
    pub k: Option<usize>,
    /// Range search: every result with distance <= threshold.
    pub threshold: Option<f32>,
    /// Metadata filter, e.g. `label=cat and width>=500`.
    pub filter: Option<String>,
    /// Feature to search by (default: cnn when present, else the collection's first), or a
    /// hybrid `cnn+color+phash`.
    pub feature: Option<String>,
    /// Robust search: the query views searched besides the image itself (images only).
    pub robust: Views,
    /// How a hybrid search combines its features.
    pub fusion: crate::fusion::Fusion,
    /// Geometric verification of the top hits (images only); `None` = off.
    pub verify: Option<VerifySettings>,
    /// Index knobs (ef, nprobe, ...).
    pub params: SearchParams,
    /// Where the CNN model is and where it runs.
    pub model: crate::model_args::ModelArgs,
}

impl Default for SearchSettings {
    fn default() -> Self {
        SearchSettings {
            collection: DEFAULT_COLLECTION.to_string(),
            k: None,
            threshold: None,
            filter: None,
            feature: None,
            robust: Views::none(),
            fusion: Default::default(),
            verify: None,
            params: SearchParams::default(),
            model: Default::default(),
        }
    }
}

/// A query image that could not be read or embedded.
#[derive(Debug, thiserror::Error)]
#[error("query image {0}")]
pub struct QueryImageError(pub features::FeatureError);

/// What `likeness search` does once the database is open: embed the query images with the
/// collection's extractor for the chosen feature (trained heads resolve to the copy in the
/// database) and search them as one batch. A query image that fails is an error
/// ([`QueryImageError`]), as in the CLI.
pub fn search_images(db: &Database, queries: &Queries, settings: &SearchSettings) -> Result<Vec<QueryResults>> {
    let coll = catalog::open_collection(db, &settings.collection)?;
    let features = multi_search::choose_features(&coll, settings.feature.as_deref())?;
    let filter = settings
        .filter
        .as_deref()
        .map(|f| Filter::parse(f).with_context(|| format!("bad --filter '{f}'")))
        .transpose()?;
    let k = match (settings.k, settings.threshold) {
        (Some(0), _) => bail!("-k must be at least 1"),
        (k, Some(_)) => k,
        (k, None) => Some(k.unwrap_or(10)),
    };
    // Verification re-ranks the top N: fetch at least that many, cut to k after.
    let fetch = match (&settings.verify, k) {
        (Some(v), Some(k)) => Some(k.max(v.top_n)),
        (_, k) => k,
    };
    let base = Base {
        k: fetch,
        threshold: settings.threshold,
        filter: filter.clone(),
        params: settings.params.clone(),
        include_vectors: false,
        fusion: settings.fusion,
    };

    let mut keypoints: Vec<QueryKeypoints> = Vec::new();
    let (labels, queries): (Vec<String>, Vec<ViewQueries>) = match queries {
        Queries::Ids(ids) => {
            if !settings.robust.is_plain() {
                bail!("--robust searches views of a query image: give the image file instead of --id");
            }
            if let Some(v) = &settings.verify {
                // The stored record's own file gives the query's keypoints.
                for id in ids {
                    let path = coll
                        .get_metadata(*id)
                        .and_then(|m| crate::image_meta::ImageMeta::from_metadata(m).path)
                        .with_context(|| format!("--verify with --id {id}: the record has no stored file path"))?;
                    let decoded = features::load_image(std::path::Path::new(&path), &DecodeLimits::default())
                        .with_context(|| format!("--verify with --id {id}: reading its file {path}"))?;
                    let image = features::pipeline::working_image(decoded.image);
                    keypoints
                        .push(QueryKeypoints::of(&image, v).with_context(|| format!("record {id}'s file {path}"))?);
                }
            }
            ids.iter().map(|id| (format!("id {id}"), ViewQueries::record(*id, &features))).unzip()
        }
        Queries::Images(images) => {
            let extractors = catalog::build_extractors(&features, &settings.model, Some(db.path()))?;
            let refs: Vec<&dyn features::FeatureExtractor> = extractors.iter().map(|e| e.as_ref()).collect();
            let mut out = Vec::new();
            for path in images {
                let decoded = features::load_image(path, &DecodeLimits::default()).map_err(QueryImageError)?;
                let image = features::pipeline::working_image(decoded.image);
                let q = ViewQueries::embed(&image, &settings.robust, &refs).map_err(QueryImageError)?;
                if let Some(v) = &settings.verify {
                    keypoints.push(
                        QueryKeypoints::of(&image, v).with_context(|| format!("query image {}", path.display()))?,
                    );
                }
                out.push((path.display().to_string(), q));
            }
            out.into_iter().unzip()
        }
    };
    let mut hits = Vec::with_capacity(queries.len());
    for q in &queries {
        hits.push(multi_search::search(&coll, &features, q, &base)?);
    }
    if let (Some(f), true) = (&filter, hits.iter().all(Vec::is_empty)) {
        // Nothing matched: a field no record has is a mistake worth saying (e.g. `colour=red`).
        let missing = f.missing_fields(coll.ids().into_iter().filter_map(|id| coll.get_metadata(id)));
        if !missing.is_empty() {
            bail!(
                "bad --filter '{}': no record of collection '{}' has {}",
                settings.filter.as_deref().unwrap_or_default(),
                settings.collection,
                missing.iter().map(|m| format!("'{m}'")).collect::<Vec<_>>().join(", ")
            );
        }
    }
    let feature = features.join("+");
    Ok(labels
        .into_iter()
        .zip(hits)
        .enumerate()
        .map(|(i, (query, hits))| {
            let mut results: Vec<ResultRow> = hits.iter().map(ResultRow::from).collect();
            if let (Some(v), Some(kp)) = (&settings.verify, keypoints.get(i)) {
                results = verified(results, kp, v, k);
            }
            QueryResults {
                query,
                feature: feature.clone(),
                no_close_match: multi_search::no_close_match(&hits),
                results,
            }
        })
        .collect())
}

/// Verify the top rows against the query's keypoints, move the verified ones first and keep `k`.
fn verified(
    rows: Vec<ResultRow>,
    query: &QueryKeypoints,
    settings: &VerifySettings,
    k: Option<usize>,
) -> Vec<ResultRow> {
    let paths: Vec<Option<&str>> = rows.iter().map(|r| r.path.as_deref()).collect();
    let checks = verify::verify_paths(query, &paths, settings);
    let order = verify::rerank_order(rows.len(), &checks);
    let mut rows: Vec<Option<ResultRow>> = rows.into_iter().map(Some).collect();
    let mut out = Vec::with_capacity(rows.len());
    for i in order {
        if let Some(mut r) = rows[i].take() {
            r.verification = checks.get(i).cloned();
            out.push(r);
        }
    }
    out.truncate(k.unwrap_or(usize::MAX));
    out
}

/// Run `likeness search`.
pub fn run(args: &Args) -> Result<()> {
    if args.images.is_empty() && args.id.is_empty() {
        bail!("give one or more query images, or --id ID|PATH");
    }
    let db = Database::open_read_only(&args.db)?;
    let queries = if args.id.is_empty() {
        Queries::Images(args.images.clone())
    } else {
        let coll = catalog::open_collection(&db, &args.collection)?;
        Queries::Ids(args.id.iter().map(|a| catalog::resolve_record(&coll, a)).collect::<Result<_>>()?)
    };
    let settings = SearchSettings {
        collection: args.collection.clone(),
        k: args.k,
        threshold: args.threshold,
        filter: args.filter.clone(),
        feature: args.feature.clone(),
        robust: match &args.robust {
            Some(spec) => Views::parse(spec)?,
            None => Views::none(),
        },
        fusion: args.fusion,
        verify: args.verify.as_deref().map(VerifySettings::parse).transpose()?,
        params: args.knobs.params(),
        model: args.model.clone(),
    };
    let out = search_images(&db, &queries, &settings)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for q in &out {
            let n = q.results.len();
            println!(
                "{}  (feature {}, {n} result{}; distance: lower = closer)",
                q.query,
                q.feature,
                if n == 1 { "" } else { "s" }
            );
            if q.no_close_match == Some(true) {
                println!("no close match: even the nearest image is unrelated (shown below for reference)");
            }
            if n > 0 {
                println!(
                    "{:>4}  {:>10}  {:>5}  {:<14}  {:>20}  {:<16}  path",
                    "#", "distance", "sim", "verdict", "id", "label"
                );
            }
            for (i, r) in q.results.iter().enumerate() {
                let e = &r.explanation;
                let mut extra = String::new();
                if e.distances.len() > 1 {
                    let ds: Vec<String> = e.distances.iter().map(|(f, d)| format!("{f} {d:.3}")).collect();
                    extra += &format!("  [{}]", ds.join(", "));
                }
                if let Some(v) = &e.view {
                    extra += &format!("  (view {v})");
                }
                if let Some(v) = &r.verification {
                    extra += &match (&v.error, v.verified) {
                        (Some(err), _) => format!("  (not verified: {err})"),
                        (None, true) => {
                            format!("  (verified: {} inliers{})", v.inliers, if v.mirrored { ", mirrored" } else { "" })
                        }
                        (None, false) => format!("  ({} inliers: not verified)", v.inliers),
                    };
                }
                println!(
                    "{:>4}  {:>10.4}  {:>5}  {:<14}  {:>20}  {:<16}  {}{extra}",
                    i + 1,
                    r.distance,
                    e.similarity.map_or("-".into(), |s| format!("{s:.2}")),
                    e.verdict.unwrap_or("-"),
                    r.id,
                    r.label.as_deref().unwrap_or("-"),
                    r.path.as_deref().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}
