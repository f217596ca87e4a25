//! `likeness-bench copy`: copy detection. Real photos are split (seeded) into *originals* and
//! *hosts*; half the hosts receive the pasted originals of picture-in-picture copies (and are
//! not stored), the other half give distractors. The database holds the originals among
//! distractors — random crops of those hosts, and emoji — and each original is queried through one copy per [`EditKind`] (crops, rotations,
//! mirror, perspective, colour, blur, JPEG, overlays, picture in picture into a host,
//! screenshots). The command prints recall@1 (the original is the first hit) per edit kind for
//! each search mode: plain CNN, the robust views of [`likeness::robust`], the hybrid
//! `cnn+color+phash` of [`likeness::fusion`], and the geometric verification of
//! [`likeness::verify`] re-ranking the top N of the plain or robust search.
//!
//! With `LIKENESS_BENCH_DEBUG` set, every query a `+verify` mode gets wrong is printed to
//! stderr (where the original was in the top N, its inliers, and the first hit's).
//!
//! The search is the product's: a vecdb collection (Flat) built with the catalog's schema, the
//! views and merging of `likeness search --robust`, the fusion of `--feature cnn+color+phash`.

mod edits;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use features::preprocess::{fit_within, ResizeFilter};
use features::{is_image_path, load_image, DecodeLimits, FeatureExtractor};
use image::RgbImage;
use likeness::catalog::{build_extractors, schema_for, to_vector};
use likeness::fusion::Fusion;
use likeness::multi_search::{self, Base, ViewQueries};
use likeness::robust::Views;
use likeness::verify::{self, QueryKeypoints, VerifySettings};
use rayon::prelude::*;
use serde::Serialize;
use vecdb::{Database, Query, Record};

pub use edits::{EditKind, Rng};

/// Arguments of `likeness-bench copy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of real photos, split into originals and hosts (default: $LIKENESS_TEST_DATA/photos).
    #[arg(long)]
    photos: Option<PathBuf>,
    /// How many photos are originals (the rest are hosts and distractor sources; default: half).
    #[arg(long)]
    originals: Option<usize>,
    /// Random crops of each host stored as distractors.
    #[arg(long, default_value_t = 80)]
    crops_per_host: usize,
    /// Folder of emoji PNGs stored as distractors (default: $LIKENESS_TEST_DATA/emoji/64).
    #[arg(long)]
    emoji: Option<PathBuf>,
    /// How many emoji to store (seeded sample; 0 = none).
    #[arg(long, default_value_t = 1000)]
    emoji_count: usize,
    /// Only these edit kinds (comma-separated names, e.g. pip,rotate-30; default: all).
    #[arg(long)]
    edits: Option<String>,
    /// Longest side of every stored and query image.
    #[arg(long, default_value_t = 640)]
    max_side: u32,
    /// Seed of the split, the edits and the distractors.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Hits re-ranked by geometric verification in the `+verify` modes.
    #[arg(long, default_value_t = verify::DEFAULT_TOP_N)]
    verify_top: usize,
    #[command(flatten)]
    model: likeness::model_args::ModelArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Synthetic distractors added to the collection, to time the searches at scale (e.g.
    /// 100000): each mixes the vectors of two stored distractors, so they crowd the
    /// neighbourhoods of real embeddings without being copies of anything queried.
    #[arg(long, default_value_t = 0)]
    extra_distractors: usize,
    /// Index spec of the collection (`likeness index --index`), e.g. `cnn=HNSW16` to search
    /// the CNN field through a graph at scale; default exact (`Flat`).
    #[arg(long, default_value = "Flat")]
    index: String,
    /// Only these modes (comma-separated names as in the table; default: all).
    #[arg(long)]
    modes: Option<String>,
}

/// A search mode of the table: which query views it searches, on which features, fused how.
struct Mode {
    name: &'static str,
    views: Views,
    features: &'static [&'static str],
    fusion: Fusion,
    /// Re-rank the top hits by geometric verification.
    verify: bool,
}

/// The features of the modes that search the stored regional descriptors.
const REGIONS_MODE: &[&str] = &["regions"];

fn modes() -> Vec<Mode> {
    let v = |s: &str| Views::parse(s).expect("built-in spec");
    const CNN: &[&str] = &["cnn"];
    const HYBRID: &[&str] = &["cnn", "color", "phash"];
    const REGIONS: &[&str] = REGIONS_MODE;
    let m = |name, views, features, fusion| Mode { name, views, features, fusion, verify: false };
    let verified = |name, views| Mode { name, views, features: CNN, fusion: Fusion::Rrf, verify: true };
    vec![
        m("cnn", Views::none(), CNN, Fusion::Rrf),
        m("+turns+mirror", v("turns,mirror"), CNN, Fusion::Rrf),
        m("+tilt", v("tilt"), CNN, Fusion::Rrf),
        m("+regions(p=0)", Views { region_penalty: 0.0, ..v("regions") }, CNN, Fusion::Rrf),
        m("+regions", v("regions"), CNN, Fusion::Rrf),
        m("robust(all)", Views::all(), CNN, Fusion::Rrf),
        m("hybrid-rrf", Views::none(), HYBRID, Fusion::Rrf),
        m("hybrid-max", Views::none(), HYBRID, Fusion::Max),
        m("hybrid-max+all", Views::all(), HYBRID, Fusion::Max),
        verified("cnn+verify", Views::none()),
        verified("robust+verify", Views::all()),
        m("regions", Views::none(), REGIONS, Fusion::Rrf),
        Mode { name: "regions+verify", views: Views::none(), features: REGIONS, fusion: Fusion::Rrf, verify: true },
    ]
}

/// The results of one mode.
#[derive(Debug, Serialize)]
struct ModeResult {
    mode: String,
    /// recall@1 per edit kind.
    recall_at_1: BTreeMap<String, f64>,
    /// recall@1 over every query.
    overall: f64,
    /// Query views embedded and searched per query (mean).
    views_per_query: f64,
    /// Estimated ms per query: views × measured CNN ms per view + measured search ms (+ for
    /// the verified modes: the query's keypoints, the matching and RANSAC, measured, and
    /// `verify_top` × the measured ms to decode and detect a candidate's keypoints).
    ms_per_query: f64,
    /// Share of queries whose original comes first with the verdict "near duplicate" (the
    /// dedup threshold's recall on these copies).
    original_near_duplicate: f64,
    /// Share of queries whose closest *other* image is called a near duplicate (a false one).
    distractor_near_duplicate: f64,
    /// Share of queries whose closest other image is called similar or closer.
    distractor_similar: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    originals: usize,
    hosts: usize,
    distractors: usize,
    queries: usize,
    edit_kinds: Vec<String>,
    cnn_ms_per_view: f64,
    /// Mean ms to detect a stored image's keypoints (the bench holds them in memory).
    candidate_keypoints_ms: f64,
    /// Mean ms to decode a stored 640 px JPEG (what the product adds per candidate).
    candidate_decode_ms: f64,
    /// Hits verified per query in the `+verify` modes.
    verify_top: usize,
    bytes_per_image: BTreeMap<String, usize>,
    modes: Vec<ModeResult>,
}

fn default_data(sub: &str) -> Result<PathBuf> {
    Ok(crate::datasets::data_dir()?.join(sub))
}

fn list_images(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && is_image_path(e.path()))
        .map(|e| e.into_path())
        .collect();
    out.sort();
    Ok(out)
}

fn load(path: &std::path::Path, max_side: u32) -> Result<RgbImage> {
    let img = load_image(path, &DecodeLimits::default()).with_context(|| format!("reading {}", path.display()))?;
    Ok(fit_within(&img.image, max_side, ResizeFilter::Bilinear))
}

/// Mean ms to decode the originals once written as 640 px JPEGs (quality 90).
fn decode_ms(images: &[RgbImage]) -> Result<f64> {
    let mut total = 0.0;
    for im in images {
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90).encode_image(im)?;
        let t = Instant::now();
        features::decode_bytes(&bytes, std::path::Path::new("bench.jpg"), &DecodeLimits::default())?;
        total += t.elapsed().as_secs_f64();
    }
    Ok(total * 1000.0 / images.len().max(1) as f64)
}

fn shuffle<T>(v: &mut [T], rng: &mut Rng) {
    for i in (1..v.len()).rev() {
        v.swap(i, rng.below(i + 1));
    }
}

/// Embed images with every extractor (in batches), as records.
fn embed_records(extractors: &[Box<dyn FeatureExtractor>], images: &[(u64, RgbImage)]) -> Result<Vec<Record>> {
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(16) {
        let imgs: Vec<RgbImage> = chunk.iter().map(|(_, im)| im.clone()).collect();
        let mut per_ex = Vec::new();
        for ex in extractors {
            per_ex.push(ex.extract_batch(&imgs)?);
        }
        for (i, (id, _)) in chunk.iter().enumerate() {
            let mut r = Record::new(*id);
            for (ex, feats) in extractors.iter().zip(&per_ex) {
                r = r.with_vector(ex.name(), to_vector(&feats[i].vector));
            }
            out.push(r);
        }
    }
    Ok(out)
}

/// One query: the edited copy embedded in every view.
struct QueryVecs {
    original: u64,
    kind: EditKind,
    views: ViewQueries,
    keypoints: QueryKeypoints,
}

/// The views of `q` that `views` asks for (by name: `original`, `turn…`, `mirror`, `tilt…`,
/// `region…`).
fn select(q: &ViewQueries, views: &Views) -> ViewQueries {
    let keep = |name: &str| {
        name == "original"
            || (views.turns && name.starts_with("turn"))
            || (views.mirror && name == "mirror")
            || (!views.tilts.is_empty() && name.starts_with("tilt"))
            || (views.regions && (name.starts_with("region") || name.starts_with("frame")))
    };
    let mut out = ViewQueries { names: Vec::new(), queries: Vec::new(), penalties: Vec::new() };
    for (n, v) in q.names.iter().zip(&q.queries).filter(|(n, _)| keep(n)) {
        out.names.push(n.clone());
        out.queries.push(v.clone());
        out.penalties.push(views.penalty(n));
    }
    out
}

/// Add `n` synthetic distractors made from the stored distractors (ids from 1,000,000 up) of
/// `records`: each mixes two of them, `a·x + (1 − a)·y` with `a` in [0.25, 0.75], field by field
/// (row by row for a multi-vector field; bit vectors are copied from `x`). Mixtures of real
/// embeddings stay where real embeddings lie (noise added to them would not: a graph index then
/// faces points of high intrinsic dimension no photo collection has), they crowd the
/// neighbourhoods of real distractors, and none is a copy of anything queried.
fn add_synthetic(coll: &vecdb::Collection, records: &[Record], n: usize, seed: u64) -> Result<()> {
    let sources: Vec<&Record> = records.iter().filter(|r| r.id >= 1_000_000).collect();
    if sources.len() < 2 {
        bail!("too few stored distractors to derive synthetic ones from");
    }
    let mut rng = Rng::new(seed ^ 0x5EED);
    let schema = coll.schema().clone();
    let mut next = 100_000_000u64;
    let mut left = n;
    while left > 0 {
        let chunk = left.min(2_000);
        let mut batch = Vec::with_capacity(chunk);
        for _ in 0..chunk {
            let (x, y) = (sources[rng.below(sources.len())], sources[rng.below(sources.len())]);
            let a = rng.range(0.25, 0.75) as f32;
            let mut r = Record::new(next);
            for f in &schema.fields {
                let v = match (&x.vectors[&f.name], &y.vectors[&f.name]) {
                    (vecdb::Vector::Dense(u), vecdb::Vector::Dense(w)) => {
                        vecdb::Vector::Dense(u.iter().zip(w).map(|(p, q)| a * p + (1.0 - a) * q).collect())
                    }
                    (other, _) => other.clone(),
                };
                r = r.with_vector(f.name.clone(), v);
            }
            batch.push(r);
            next += 1;
        }
        coll.insert(batch)?;
        left -= chunk;
    }
    Ok(())
}

/// Run `likeness-bench copy`.
pub fn run(args: &Args) -> Result<()> {
    let photos_dir = match &args.photos {
        Some(p) => p.clone(),
        None => default_data("photos")?,
    };
    let mut photos = list_images(&photos_dir)?;
    if photos.len() < 4 {
        bail!("{} holds {} photos; the benchmark needs at least 4", photos_dir.display(), photos.len());
    }
    let mut rng = Rng::new(args.seed);
    shuffle(&mut photos, &mut rng);
    let n_orig = args.originals.unwrap_or(photos.len() / 2).clamp(1, photos.len() - 1);
    let (orig_paths, host_paths) = photos.split_at(n_orig);
    let kinds: Vec<EditKind> = match &args.edits {
        None => EditKind::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|n| {
                EditKind::ALL.iter().copied().find(|k| k.name() == n.trim()).with_context(|| {
                    format!(
                        "unknown edit kind '{n}' (known: {})",
                        EditKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
                    )
                })
            })
            .collect::<Result<_>>()?,
    };

    let originals: Vec<RgbImage> = orig_paths.iter().map(|p| load(p, args.max_side)).collect::<Result<_>>()?;
    let hosts: Vec<RgbImage> = host_paths.iter().map(|p| load(p, args.max_side)).collect::<Result<_>>()?;
    // Half the hosts receive the pasted originals and stay out of the database (a picture in
    // picture whose host is stored has two right answers); the other half give distractors.
    let (pip_hosts, sources) = hosts.split_at(hosts.len().div_ceil(2));

    // Distractors: random crops of the source hosts (30–90% of each side, some mirrored) and emoji.
    let mut stored: Vec<(u64, RgbImage)> = originals.iter().enumerate().map(|(i, im)| (i as u64, im.clone())).collect();
    let mut next_id = 1_000_000u64;
    for host in sources {
        for _ in 0..args.crops_per_host {
            let s = rng.range(0.3, 0.9);
            let (w, h) = ((host.width() as f64 * s) as u32, (host.height() as f64 * rng.range(0.3, 0.9)) as u32);
            let x = rng.below((host.width() - w + 1) as usize) as u32;
            let y = rng.below((host.height() - h + 1) as usize) as u32;
            let mut c = features::augment::crop(host, (x, y, w.max(16), h.max(16)));
            if rng.coin() {
                c = features::augment::mirror(&c);
            }
            stored.push((next_id, c));
            next_id += 1;
        }
    }
    if args.emoji_count > 0 {
        let dir = match &args.emoji {
            Some(p) => p.clone(),
            None => default_data("emoji/64")?,
        };
        let mut emoji = list_images(&dir)?;
        shuffle(&mut emoji, &mut rng);
        for p in emoji.iter().take(args.emoji_count) {
            stored.push((next_id, load(p, args.max_side)?));
            next_id += 1;
        }
    }
    let distractors = stored.len() - originals.len();

    let names = ["cnn", "color", "phash", "regions"].map(String::from);
    let extractors = build_extractors(&names, &args.model, None)?;
    let dir = std::env::temp_dir().join(format!("likeness-bench-copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = Database::open(&dir)?;
    let schema = schema_for(&extractors, &args.index)?;
    let bytes_per_image: BTreeMap<String, usize> =
        schema.fields.iter().map(|f| (f.name.clone(), f.bytes_per_vector())).collect();
    let coll = db.create_collection("copies", schema)?;
    let vsettings = VerifySettings::top(args.verify_top)?;
    let t = Instant::now();
    let stored_kp: HashMap<u64, features::keypoints::KeypointSet> = stored
        .par_iter()
        .map(|(id, im)| Ok((*id, features::keypoints::detect(im, &vsettings.keypoints)?)))
        .collect::<Result<_>>()?;
    let candidate_keypoints_ms =
        t.elapsed().as_secs_f64() * 1000.0 * rayon::current_num_threads() as f64 / stored.len() as f64;
    let candidate_decode_ms = decode_ms(&originals)?;
    eprintln!("embedding {} stored images ({} originals, {distractors} distractors)…", stored.len(), originals.len());
    let t = Instant::now();
    let records = embed_records(&extractors, &stored)?;
    coll.insert(records.clone())?;
    eprintln!("stored in {:.1} s", t.elapsed().as_secs_f64());
    if args.extra_distractors > 0 {
        let t = Instant::now();
        add_synthetic(&coll, &records, args.extra_distractors, args.seed)?;
        coll.wait_for_index_builds(|_| {});
        eprintln!("{} synthetic distractors added in {:.1} s", args.extra_distractors, t.elapsed().as_secs_f64());
    }
    drop(records);
    drop(stored);

    // Queries: one copy per original and kind, every view embedded once.
    let all_views = Views::all();
    let mut queries = Vec::new();
    let mut cnn_s = 0.0;
    let mut n_views = 0usize;
    let mut query_kp_s = 0.0;
    let mut regions_s = 0.0;
    for (oi, img) in originals.iter().enumerate() {
        for &kind in &kinds {
            let mut r = Rng::new(args.seed ^ (oi as u64 + 1).wrapping_mul(0x9e37_79b9) ^ (kind as u64 + 1) << 40);
            let host = &pip_hosts[r.below(pip_hosts.len())];
            let copy = kind.apply(img, host, &mut r);
            let copy = features::pipeline::working_image(copy);
            let t = Instant::now();
            let refs: Vec<&dyn FeatureExtractor> = extractors.iter().map(|e| e.as_ref()).collect();
            let views = ViewQueries::embed(&copy, &all_views, &refs[..1])?;
            cnn_s += t.elapsed().as_secs_f64();
            n_views += views.names.len();
            // The cheap features in every view too (for hybrid + robust).
            let t = Instant::now();
            let keypoints = QueryKeypoints::of(&copy, &vsettings)?;
            query_kp_s += t.elapsed().as_secs_f64();
            let mut views = views;
            let imgs: Vec<RgbImage> = all_views.images(&copy).into_iter().map(|(_, im)| im).collect();
            for ex in &extractors[1..3] {
                for (q, f) in views.queries.iter_mut().zip(ex.extract_batch(&imgs)?) {
                    q.insert(ex.name().to_string(), Query::Vector(to_vector(&f.vector)));
                }
            }
            // The stored regions are searched with the query's own regions (the image view).
            let t = Instant::now();
            let regions = extractors[3].extract(&copy)?;
            regions_s += t.elapsed().as_secs_f64();
            views.queries[0].insert("regions".into(), Query::Vector(to_vector(&regions.vector)));
            if std::env::var_os("LIKENESS_BENCH_DEBUG").is_some() && kind == EditKind::PictureInPicture {
                let orig = coll.get(oi as u64)?.context("original stored")?;
                let vecdb::Vector::Dense(ov) = &orig.vectors["cnn"] else { bail!("cnn is dense") };
                let mut best: Vec<(f32, String)> = views
                    .names
                    .iter()
                    .zip(&views.queries)
                    .filter_map(|(n, q)| match q.get("cnn") {
                        Some(Query::Vector(vecdb::Vector::Dense(v))) => {
                            Some((1.0 - v.iter().zip(ov).map(|(a, b)| a * b).sum::<f32>(), n.clone()))
                        }
                        _ => None,
                    })
                    .collect();
                best.sort_by(|a, b| a.0.total_cmp(&b.0));
                eprintln!(
                    "pip of {oi} ({}x{}): frames {:?}; closest views to the original: {:?}",
                    copy.width(),
                    copy.height(),
                    features::frames::detect(&copy, 3),
                    &best[..3.min(best.len())]
                );
            }
            queries.push(QueryVecs { original: oi as u64, kind, views, keypoints });
        }
        eprintln!("queries of original {}/{} embedded", oi + 1, originals.len());
    }
    let cnn_ms_per_view = cnn_s * 1000.0 / n_views.max(1) as f64;

    let wanted: Option<Vec<String>> = args.modes.as_ref().map(|m| m.split(',').map(|x| x.trim().to_string()).collect());
    let mut results = Vec::new();
    for mode in modes().into_iter().filter(|m| wanted.as_ref().is_none_or(|w| w.iter().any(|x| x == m.name))) {
        let features: Vec<String> = mode.features.iter().map(|f| f.to_string()).collect();
        let k = if mode.verify { args.verify_top.max(10) } else { 10 };
        let base = Base { k: Some(k), fusion: mode.fusion, ..Default::default() };
        let mut hits_by_kind: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        let mut search_s = 0.0;
        let mut views_used = 0usize;
        let (mut orig_nd, mut other_nd, mut other_sim) = (0usize, 0usize, 0usize);
        for q in &queries {
            let vq = select(&q.views, &mode.views);
            views_used += vq.names.len();
            let t = Instant::now();
            let mut hits = multi_search::search(&coll, &features, &vq, &base)?;
            search_s += t.elapsed().as_secs_f64();
            if mode.verify {
                let t = Instant::now();
                let checks: Vec<_> = hits
                    .iter()
                    .take(vsettings.top_n)
                    .map(|h| stored_kp.get(&h.hit.id).map(|c| q.keypoints.verify(c, &vsettings)).unwrap_or_default())
                    .collect();
                let order = verify::rerank_order(hits.len(), &checks);
                if std::env::var_os("LIKENESS_BENCH_DEBUG").is_some() && hits[order[0]].hit.id != q.original {
                    let pos = hits.iter().position(|h| h.hit.id == q.original);
                    let orig = pos.and_then(|p| checks.get(p));
                    let top = &checks[order[0]];
                    eprintln!(
                        "{} {}: original at {pos:?} inliers {:?}/{:?}; first {} inliers {}/{} verified {}",
                        mode.name,
                        q.kind.name(),
                        orig.map(|c| c.inliers),
                        orig.map(|c| c.matches),
                        hits[order[0]].hit.id,
                        top.inliers,
                        top.matches,
                        top.verified
                    );
                }
                let mut slots: Vec<_> = hits.into_iter().map(Some).collect();
                hits = order.into_iter().filter_map(|i| slots[i].take()).collect();
                search_s += t.elapsed().as_secs_f64();
            }
            let e = hits_by_kind.entry(q.kind.name().to_string()).or_default();
            e.1 += 1;
            if hits.first().map(|h| h.hit.id) == Some(q.original) {
                e.0 += 1;
                if hits[0].judgement.verdict == Some("near duplicate") {
                    orig_nd += 1;
                }
            }
            let other = hits.iter().find(|h| h.hit.id != q.original).and_then(|h| h.judgement.verdict);
            other_nd += usize::from(other == Some("near duplicate"));
            other_sim += usize::from(matches!(other, Some("near duplicate" | "similar")));
        }
        let total: usize = hits_by_kind.values().map(|v| v.1).sum();
        let good: usize = hits_by_kind.values().map(|v| v.0).sum();
        let vpq = views_used as f64 / queries.len().max(1) as f64;
        let mut extra = if mode.features.len() > 1 { 2.0 } else { 0.0 }; // color + phash, ~1 ms each
        if mode.verify {
            extra += query_kp_s * 1000.0 / queries.len().max(1) as f64
                + args.verify_top as f64 * (candidate_keypoints_ms + candidate_decode_ms);
        }
        results.push(ModeResult {
            mode: mode.name.to_string(),
            recall_at_1: hits_by_kind.iter().map(|(k, (g, n))| (k.clone(), *g as f64 / *n as f64)).collect(),
            overall: good as f64 / total.max(1) as f64,
            views_per_query: vpq,
            ms_per_query: if mode.features == REGIONS_MODE {
                regions_s * 1000.0 / queries.len().max(1) as f64
            } else {
                vpq * cnn_ms_per_view
            } + extra
                + search_s * 1000.0 / queries.len().max(1) as f64,
            original_near_duplicate: orig_nd as f64 / queries.len().max(1) as f64,
            distractor_near_duplicate: other_nd as f64 / queries.len().max(1) as f64,
            distractor_similar: other_sim as f64 / queries.len().max(1) as f64,
        });
    }
    drop(coll);
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);

    let report = Report {
        originals: originals.len(),
        hosts: hosts.len(),
        distractors,
        queries: queries.len(),
        edit_kinds: kinds.iter().map(|k| k.name().to_string()).collect(),
        cnn_ms_per_view,
        candidate_keypoints_ms,
        candidate_decode_ms,
        verify_top: args.verify_top,
        bytes_per_image,
        modes: results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "copy detection: {} originals × {} edit kinds = {} queries; {} distractors (crops of half of {} hosts + emoji) + the originals stored",
        r.originals,
        r.edit_kinds.len(),
        r.queries,
        r.distractors,
        r.hosts
    );
    print!("{:<16}", "recall@1");
    for m in &r.modes {
        print!(" {:>13}", m.mode);
    }
    println!();
    for k in &r.edit_kinds {
        print!("{k:<16}");
        for m in &r.modes {
            print!(" {:>13.3}", m.recall_at_1.get(k).copied().unwrap_or(f64::NAN));
        }
        println!();
    }
    let row = |label: &str, f: &dyn Fn(&ModeResult) -> String| {
        print!("{label:<16}");
        for m in &r.modes {
            print!(" {:>13}", f(m));
        }
        println!();
    };
    row("overall", &|m| format!("{:.3}", m.overall));
    row("views/query", &|m| format!("{:.1}", m.views_per_query));
    row("ms/query", &|m| format!("{:.0}", m.ms_per_query));
    row("orig near-dup", &|m| format!("{:.3}", m.original_near_duplicate));
    row("other near-dup", &|m| format!("{:.3}", m.distractor_near_duplicate));
    row("other similar", &|m| format!("{:.3}", m.distractor_similar));
    println!(
        "verification: top {} hits; per candidate {:.1} ms keypoints + {:.1} ms decode (a 640 px JPEG)",
        r.verify_top, r.candidate_keypoints_ms, r.candidate_decode_ms
    );
    println!(
        "CNN {:.1} ms per view; stored bytes per image: {}",
        r.cnn_ms_per_view,
        r.bytes_per_image.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
    );
}
