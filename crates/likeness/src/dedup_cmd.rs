//! `likeness dedup --db DB`: groups of near-duplicate images.
//!
//! Every record is range-searched on one feature (the record itself excluded); each pair
//! within the threshold is joined with union-find, and the connected components of two or
//! more images are the groups. The default thresholds were calibrated on edited copies
//! (JPEG q=30, half size, 90% crop, +25% brightness) of the sample photos against distinct
//! photos and emoji skin-tone variants; see docs/app.md.
//!
//! [`dedup`] is the command without its printing, for the Python package and other callers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use vecdb::{Database, Query, SearchRequest};

use crate::catalog::{self, DEFAULT_COLLECTION};
use crate::image_meta::ImageMeta;

/// Arguments of `likeness dedup`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Database directory.
    #[arg(long)]
    pub db: PathBuf,
    /// Collection name.
    #[arg(long, default_value = DEFAULT_COLLECTION)]
    pub collection: String,
    /// Feature to compare (default: cnn when present, else phash, else the first feature).
    #[arg(long)]
    pub feature: Option<String>,
    /// Largest distance between two images of a group (default: the calibrated one for the feature).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Geometrically verify each linking pair of a group (local keypoints matched, RANSAC
    /// fit; the images decoded from their stored paths) and report its inliers.
    #[arg(long)]
    pub verify: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// The calibrated default threshold of a feature (see docs/app.md), if there is one.
pub fn default_threshold(feature: &str) -> Option<f32> {
    match feature {
        // Edited copies ≤ 0.152; nearest distinct photo ≥ 0.108 (one pair), 5th percentile 0.246.
        "cnn" | "cnn-lite2" => Some(0.16),
        // Re-encoded/resized/brightened copies ≤ 10 bits; distinct photos ≥ 18 bits but for one pair.
        // Not crop-robust: 90% crops are 4–26 bits away.
        "phash" => Some(12.0),
        // Copies other than crops ≤ 5 bits; distinct photos ≥ 8 bits.
        "dhash" => Some(6.0),
        // Colour and texture histograms overlap between copies and distinct photos: no safe default.
        _ => None,
    }
}

/// The library form of `likeness dedup`'s options (everything but the database).
#[derive(Debug, Clone)]
pub struct DedupSettings {
    /// Collection name.
    pub collection: String,
    /// Feature to compare (default: cnn when present, else phash, else the first feature).
    pub feature: Option<String>,
    /// Largest distance within a group (default: [`default_threshold`] of the feature).
    pub threshold: Option<f32>,
}

impl Default for DedupSettings {
    fn default() -> Self {
        DedupSettings { collection: DEFAULT_COLLECTION.to_string(), feature: None, threshold: None }
    }
}

/// Progress of [`find_groups`]: records range-searched so far.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct DedupProgress {
    /// Records searched.
    pub done: usize,
    /// Records in the collection.
    pub total: usize,
}

/// [`find_groups`] was stopped before the end.
#[derive(Debug, thiserror::Error)]
#[error("dedup interrupted")]
pub struct Interrupted;

/// The threshold is missing (the feature has no calibrated default) or not a finite number.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ThresholdError(String);

/// One group of near duplicates.
#[derive(Debug, Clone, Serialize)]
pub struct Group {
    /// Record ids, sorted by path (strings in JSON: see [`crate::json_ids`]).
    #[serde(serialize_with = "crate::json_ids::many")]
    pub ids: Vec<u64>,
    /// Their paths.
    pub paths: Vec<String>,
    /// Largest distance of a linking pair in the group.
    pub max_distance: f32,
    /// With `--verify`: each linking pair and its geometric verification.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PairCheck>,
}

/// A linking pair of a group and what geometric verification says about it.
#[derive(Debug, Clone, Serialize)]
pub struct PairCheck {
    /// The two records (the first is the query of the verification).
    #[serde(serialize_with = "crate::json_ids::many")]
    pub ids: Vec<u64>,
    /// Their distance on the feature compared.
    pub distance: f32,
    /// Inliers, verified or not, the first image's corners in the second (or why not checked).
    pub verification: crate::verify::HitVerification,
}

/// The result of a dedup run.
#[derive(Debug, Serialize)]
pub struct DedupReport {
    /// Feature compared.
    pub feature: String,
    /// Threshold used.
    pub threshold: f32,
    /// Records examined.
    pub records: usize,
    /// Groups found, largest first.
    pub groups: Vec<Group>,
    /// The linking pairs (ids and distance), for [`verify_groups`].
    #[serde(skip)]
    pub links: Vec<(u64, u64, f32)>,
}

/// Union-find over dense indexes with path halving.
struct UnionFind {
    parent: Vec<usize>,
}

impl UnionFind {
    fn new(n: usize) -> Self {
        UnionFind { parent: (0..n).collect() }
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Find the groups of records within `threshold` of each other on `feature`. `on_progress` is
/// called after each batch of range searches; once `stop` is set, the run ends with
/// [`Interrupted`] after the batch in flight.
pub fn find_groups(
    coll: &vecdb::Collection,
    feature: &str,
    threshold: f32,
    on_progress: &(dyn Fn(DedupProgress) + Sync),
    stop: &AtomicBool,
) -> Result<DedupReport> {
    let mut ids = coll.ids();
    ids.sort_unstable();
    let index: std::collections::HashMap<u64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut uf = UnionFind::new(ids.len());
    let mut link_dist: BTreeMap<(usize, usize), f32> = BTreeMap::new();
    let total = ids.len();
    let mut done = 0;
    on_progress(DedupProgress { done, total });
    for chunk in ids.chunks(512) {
        if stop.load(Ordering::SeqCst) {
            return Err(Interrupted.into());
        }
        let reqs: Vec<SearchRequest> = chunk
            .iter()
            .map(|id| {
                let mut r = SearchRequest::new(feature, Query::Id(*id), 1);
                r.k = None;
                r.threshold = Some(threshold);
                r.include_metadata = false;
                r
            })
            .collect();
        let results = coll.search_batch(&reqs)?;
        for (id, hits) in chunk.iter().zip(results) {
            let a = index[id];
            for h in hits {
                let Some(&b) = index.get(&h.id) else { continue };
                if a == b {
                    continue;
                }
                uf.union(a, b);
                let key = (a.min(b), a.max(b));
                link_dist.entry(key).or_insert(h.distance);
            }
        }
        done += chunk.len();
        on_progress(DedupProgress { done, total });
    }
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for i in 0..ids.len() {
        let r = uf.find(i);
        members.entry(r).or_default().push(i);
    }
    let mut max_dist: BTreeMap<usize, f32> = BTreeMap::new();
    for ((a, _), d) in &link_dist {
        let r = uf.find(*a);
        let e = max_dist.entry(r).or_insert(0.0);
        *e = e.max(*d);
    }
    let mut groups: Vec<Group> = members
        .into_iter()
        .filter(|(_, m)| m.len() > 1)
        .map(|(root, m)| {
            let mut rows: Vec<(String, u64)> = m
                .iter()
                .map(|&i| {
                    let path = coll
                        .get_metadata(ids[i])
                        .and_then(|md| ImageMeta::from_metadata(md).path)
                        .unwrap_or_else(|| format!("id {}", ids[i]));
                    (path, ids[i])
                })
                .collect();
            rows.sort();
            Group {
                ids: rows.iter().map(|r| r.1).collect(),
                paths: rows.into_iter().map(|r| r.0).collect(),
                max_distance: max_dist.get(&root).copied().unwrap_or(0.0),
                pairs: Vec::new(),
            }
        })
        .collect();
    groups.sort_by(|a, b| b.ids.len().cmp(&a.ids.len()).then_with(|| a.paths.cmp(&b.paths)));
    let links = link_dist.into_iter().map(|((a, b), d)| (ids[a], ids[b], d)).collect();
    Ok(DedupReport { feature: feature.to_string(), threshold, records: ids.len(), groups, links })
}

/// What `likeness dedup` does once the database is open: choose the feature and threshold
/// (the calibrated default unless given), then [`find_groups`].
pub fn dedup(
    db: &Database,
    settings: &DedupSettings,
    on_progress: &(dyn Fn(DedupProgress) + Sync),
    stop: &AtomicBool,
) -> Result<DedupReport> {
    let coll = catalog::open_collection(db, &settings.collection)?;
    let (feature, threshold) = feature_and_threshold(&coll, settings.feature.as_deref(), settings.threshold)?;
    find_groups(&coll, &feature, threshold, on_progress, stop)
}

/// The feature and threshold a dedup of `coll` uses: `feature` when given (else cnn when
/// present, else phash, else the search default) and `threshold` when given (else the
/// feature's [`default_threshold`]). Every error is the caller's (an unknown feature, a
/// threshold that is missing or not finite).
pub fn feature_and_threshold(
    coll: &vecdb::Collection,
    feature: Option<&str>,
    threshold: Option<f32>,
) -> Result<(String, f32)> {
    let names = catalog::field_names(coll);
    let feature = match feature {
        Some(f) => catalog::choose_feature(coll, Some(f))?,
        None => ["cnn", "phash"]
            .iter()
            .find(|f| names.iter().any(|n| n == *f))
            .map(|s| s.to_string())
            .map_or_else(|| catalog::choose_feature(coll, None), Ok)?,
    };
    let threshold = match threshold.or_else(|| default_threshold(&feature)) {
        Some(t) if t.is_finite() => t,
        Some(t) => return Err(ThresholdError(format!("--threshold must be a finite number, got {t}")).into()),
        None => {
            let msg = format!("feature '{feature}' has no calibrated default threshold: give --threshold");
            return Err(ThresholdError(msg).into());
        }
    };
    Ok((feature, threshold))
}

/// Verify every linking pair of `report`'s groups (images decoded from their stored paths),
/// filling each group's `pairs`. An unreadable image is reported in its pairs, never fatal.
pub fn verify_groups(coll: &vecdb::Collection, report: &mut DedupReport, settings: &crate::verify::VerifySettings) {
    use crate::verify::{candidate_keypoints, HitVerification, QueryKeypoints};
    let path_of = |id: u64| coll.get_metadata(id).and_then(|m| ImageMeta::from_metadata(m).path);
    let mut queries: std::collections::HashMap<u64, Result<QueryKeypoints, String>> = Default::default();
    let mut candidates: std::collections::HashMap<u64, Result<features::keypoints::KeypointSet, String>> =
        Default::default();
    let group_of: std::collections::HashMap<u64, usize> =
        report.groups.iter().enumerate().flat_map(|(g, gr)| gr.ids.iter().map(move |id| (*id, g))).collect();
    for &(a, b, distance) in &report.links {
        let Some(&g) = group_of.get(&a) else { continue };
        let q = queries.entry(a).or_insert_with(|| {
            let path = path_of(a).ok_or("the record has no stored path")?;
            let decoded = features::load_image(std::path::Path::new(&path), &features::DecodeLimits::default())
                .map_err(|e| e.to_string())?;
            QueryKeypoints::of(&features::pipeline::working_image(decoded.image), settings).map_err(|e| e.to_string())
        });
        let c = candidates.entry(b).or_insert_with(|| {
            let path = path_of(b).ok_or("the record has no stored path")?;
            candidate_keypoints(std::path::Path::new(&path), settings).map_err(|e| e.to_string())
        });
        let verification = match (&*q, &*c) {
            (Ok(q), Ok(c)) => q.verify(c, settings),
            (Err(e), _) | (_, Err(e)) => HitVerification { error: Some(e.clone()), ..Default::default() },
        };
        report.groups[g].pairs.push(PairCheck { ids: vec![a, b], distance, verification });
    }
}

/// Run `likeness dedup`.
pub fn run(args: &Args) -> Result<()> {
    let db = Database::open_read_only(&args.db)?;
    let settings =
        DedupSettings { collection: args.collection.clone(), feature: args.feature.clone(), threshold: args.threshold };
    let bar = if args.json { ProgressBar::hidden() } else { ProgressBar::new(0) };
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} records  eta {eta}").expect("static template"));
    let on_progress = |p: DedupProgress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    };
    let mut report = dedup(&db, &settings, &on_progress, &AtomicBool::new(false))?;
    bar.finish_and_clear();
    if args.verify {
        let coll = catalog::open_collection(&db, &args.collection)?;
        verify_groups(&coll, &mut report, &crate::verify::VerifySettings::default());
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    for (i, g) in report.groups.iter().enumerate() {
        println!("group {} ({} images, max distance {:.4}):", i + 1, g.ids.len(), g.max_distance);
        for p in &g.paths {
            println!("  {p}");
        }
        for pc in &g.pairs {
            let v = &pc.verification;
            let (a, b) = (pc.ids[0], pc.ids[1]);
            match &v.error {
                Some(e) => println!("  pair {a} – {b}: not verified ({e})"),
                None => println!(
                    "  pair {a} – {b}: {} inliers of {} matches, {}",
                    v.inliers,
                    v.matches,
                    if v.verified { "verified" } else { "NOT verified" }
                ),
            }
        }
    }
    let in_groups: usize = report.groups.iter().map(|g| g.ids.len()).sum();
    println!(
        "{} groups of near duplicates ({} images) among {} records (feature {}, threshold {})",
        report.groups.len(),
        in_groups,
        report.records,
        report.feature,
        report.threshold
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::UnionFind;

    #[test]
    fn union_find_joins_transitively() {
        let mut uf = UnionFind::new(6);
        uf.union(0, 1);
        uf.union(4, 1);
        uf.union(2, 3);
        assert_eq!(uf.find(0), uf.find(4));
        assert_eq!(uf.find(2), uf.find(3));
        assert_ne!(uf.find(0), uf.find(2));
        assert_eq!(uf.find(5), 5);
    }
}
