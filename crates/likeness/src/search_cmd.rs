//! `likeness search IMAGE... --db DB`: the stored images most like each query image.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use features::decode::DecodeLimits;
use features::pipeline::extract_many;
use serde::Serialize;
use vecdb::{Database, Filter, Hit, Query, SearchRequest};

use crate::catalog::{self, meta_str, to_vector, DEFAULT_COLLECTION};

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
    /// Metadata filter, e.g. 'label=cat', 'label in cat,dog', 'width>=500', 'path^=/photos/'; join with ' and '.
    #[arg(long)]
    pub filter: Option<String>,
    /// Feature to search by (default: cnn when present, else the first feature of the collection).
    #[arg(long, alias = "features")]
    pub feature: Option<String>,
    /// Search by a stored record ("more like this"; the record itself is excluded).
    #[arg(long, conflicts_with = "images")]
    pub id: Vec<u64>,
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
    /// Record id.
    pub id: u64,
    /// Distance to the query (smaller is closer).
    pub distance: f32,
    /// The image file.
    pub path: Option<String>,
    /// Its label.
    pub label: Option<String>,
}

impl From<&Hit> for ResultRow {
    fn from(h: &Hit) -> Self {
        let meta = h.metadata.as_ref();
        ResultRow {
            id: h.id,
            distance: h.distance,
            path: meta.and_then(|m| meta_str(m, "path")).map(str::to_string),
            label: meta.and_then(|m| meta_str(m, "label")).map(str::to_string),
        }
    }
}

/// Results of one query.
#[derive(Debug, Serialize)]
struct QueryResults {
    query: String,
    feature: String,
    results: Vec<ResultRow>,
}

/// Run `likeness search`.
pub fn run(args: &Args) -> Result<()> {
    if args.images.is_empty() && args.id.is_empty() {
        bail!("give one or more query images, or --id N");
    }
    let db = Database::open_read_only(&args.db)?;
    let coll = catalog::open_collection(&db, &args.collection)?;
    let feature = catalog::choose_feature(&coll, args.feature.as_deref())?;
    let filter =
        args.filter.as_deref().map(|f| Filter::parse(f).with_context(|| format!("bad --filter '{f}'"))).transpose()?;
    let k = match (args.k, args.threshold) {
        (Some(0), _) => bail!("-k must be at least 1"),
        (k, Some(_)) => k,
        (k, None) => Some(k.unwrap_or(10)),
    };

    let (labels, queries): (Vec<String>, Vec<Query>) = if !args.id.is_empty() {
        args.id.iter().map(|id| (format!("id {id}"), Query::Id(*id))).unzip()
    } else {
        let extractors = catalog::build_extractors(std::slice::from_ref(&feature), &args.model, Some(db.path()))?;
        let results = extract_many(&args.images, &extractors, &DecodeLimits::default(), &|_| {});
        let mut out = Vec::new();
        for (path, r) in args.images.iter().zip(results) {
            let rec = r.map_err(|e| anyhow::anyhow!("query image {}", e))?;
            let f =
                rec.features.get(&feature).with_context(|| format!("extractor did not produce feature '{feature}'"))?;
            out.push((path.display().to_string(), Query::Vector(to_vector(&f.vector))));
        }
        out.into_iter().unzip()
    };
    let params = args.knobs.params();
    let reqs: Vec<SearchRequest> = queries
        .into_iter()
        .map(|q| {
            let mut r = SearchRequest::new(feature.clone(), q, k.unwrap_or(usize::MAX));
            r.k = k;
            r.threshold = args.threshold;
            r.filter = filter.clone();
            r.params = params.clone();
            r
        })
        .collect();
    let hits = if reqs.len() == 1 { vec![coll.search(&reqs[0])?] } else { coll.search_batch(&reqs)? };
    let out: Vec<QueryResults> = labels
        .into_iter()
        .zip(hits)
        .map(|(query, hits)| QueryResults {
            query,
            feature: feature.clone(),
            results: hits.iter().map(ResultRow::from).collect(),
        })
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for q in &out {
            println!("{}  (feature {}, {} results)", q.query, q.feature, q.results.len());
            for (i, r) in q.results.iter().enumerate() {
                println!(
                    "{:>4}  {:>10.4}  {:<16}  {}",
                    i + 1,
                    r.distance,
                    r.label.as_deref().unwrap_or("-"),
                    r.path.as_deref().unwrap_or("?")
                );
            }
        }
    }
    Ok(())
}
