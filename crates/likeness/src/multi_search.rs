//! One query searched through several views (robust search, [`crate::robust`]) and several
//! features (hybrid search, [`crate::fusion`]), with an explanation per hit: the distance on
//! every feature searched, a similarity in [0, 1] and a calibrated verdict
//! ([`crate::closeness::judge`]). `likeness search`, the HTTP API and `likeness-bench copy`
//! all go through [`search`].
//!
//! Per feature, each view is searched (one batch) and the lists are merged by each record's
//! best distance over the views; with one feature that is the answer, with several the merged
//! lists are fused by reciprocal rank and a record missing from a feature's list gets its
//! distance on that feature computed from its stored vector.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use features::FeatureExtractor;
use image::RgbImage;
use serde::Serialize;
use vecdb::{Collection, Filter, Hit, Query, SearchParams, SearchRequest, Vector};

use crate::catalog::{self, to_vector};
use crate::closeness::{judge, Judgement};
use crate::fusion;
use crate::robust::{merge_best, Views};

/// The features of a search: one (plain) or several fused (hybrid, `cnn+color+phash`).
/// Each is checked against the collection; the first is the primary one (its distance is the
/// hit's `distance`).
pub fn choose_features(coll: &Collection, requested: Option<&str>) -> Result<Vec<String>> {
    match requested.and_then(fusion::parse_hybrid) {
        Some(names) => {
            let mut out: Vec<String> = Vec::new();
            for n in names {
                if n.is_empty() {
                    bail!("empty feature name in hybrid '{}' (expected e.g. cnn+color+phash)", requested.unwrap_or(""));
                }
                let f = catalog::choose_feature(coll, Some(&n))?;
                if out.contains(&f) {
                    bail!("feature '{f}' is listed twice in '{}'", requested.unwrap_or(""));
                }
                out.push(f);
            }
            Ok(out)
        }
        None => Ok(vec![catalog::choose_feature(coll, requested)?]),
    }
}

/// A query as searched: per view (named), the query of each feature.
#[derive(Debug, Clone)]
pub struct ViewQueries {
    /// View names (`original` first).
    pub names: Vec<String>,
    /// Per view, the query per feature.
    pub queries: Vec<BTreeMap<String, Query>>,
    /// Per view, the distance added before merging ([`Views::penalty`]).
    pub penalties: Vec<f32>,
}

impl ViewQueries {
    /// A stored record ("more like this"): one view, `Query::Id` on every feature.
    pub fn record(id: u64, features: &[String]) -> ViewQueries {
        ViewQueries {
            names: vec!["original".into()],
            queries: vec![features.iter().map(|f| (f.clone(), Query::Id(id))).collect()],
            penalties: vec![0.0],
        }
    }

    /// Query vectors given directly (one view).
    pub fn vectors(vectors: BTreeMap<String, Vector>) -> ViewQueries {
        ViewQueries {
            names: vec!["original".into()],
            queries: vec![vectors.into_iter().map(|(f, v)| (f, Query::Vector(v))).collect()],
            penalties: vec![0.0],
        }
    }

    /// Embed `image` (already reduced to the working size) in each of `views` with each
    /// extractor (the CNN in one batch over the views).
    pub fn embed(
        image: &RgbImage,
        views: &Views,
        extractors: &[&dyn FeatureExtractor],
    ) -> features::Result<ViewQueries> {
        let (names, images): (Vec<String>, Vec<RgbImage>) = views.images(image).into_iter().unzip();
        let mut queries: Vec<BTreeMap<String, Query>> = vec![BTreeMap::new(); images.len()];
        for ex in extractors {
            for (q, f) in queries.iter_mut().zip(ex.extract_batch(&images)?) {
                q.insert(ex.name().to_string(), Query::Vector(to_vector(&f.vector)));
            }
        }
        let penalties = names.iter().map(|n| views.penalty(n)).collect();
        Ok(ViewQueries { names, queries, penalties })
    }
}

/// What every per-view, per-feature search shares.
#[derive(Debug, Clone, Default)]
pub struct Base {
    /// Results wanted (`None`: up to [`vecdb::search_body::MAX_K`] within the threshold).
    pub k: Option<usize>,
    /// Range search on the primary feature (refused with several features).
    pub threshold: Option<f32>,
    /// Metadata filter.
    pub filter: Option<Filter>,
    /// Index knobs.
    pub params: SearchParams,
    /// Return stored vectors with each hit.
    pub include_vectors: bool,
    /// How several features are combined.
    pub fusion: fusion::Fusion,
}

/// A hit with its explanation.
#[derive(Debug, Clone)]
pub struct ExplainedHit {
    /// The record (metadata included).
    pub hit: Hit,
    /// Distance on each feature searched, in the search's order.
    pub distances: Vec<(String, f32)>,
    /// Hybrid: the fused score — RRF over the best possible (1 = first on every feature), or
    /// for `max` fusion the best calibrated similarity.
    pub fused: Option<f64>,
    /// Robust: the view that found the record closest on the primary feature.
    pub view: Option<String>,
    /// Similarity and verdict.
    pub judgement: Judgement,
}

/// How many candidates each feature's list holds before fusion.
const FUSION_DEPTH: usize = 100;

/// Search `coll` for `q` on `features` (see the module docs).
pub fn search(coll: &Collection, features: &[String], q: &ViewQueries, base: &Base) -> Result<Vec<ExplainedHit>> {
    if features.len() > 1 && base.threshold.is_some() {
        bail!(
            "a threshold applies to one feature's distances: it cannot be combined with a hybrid search ({})",
            features.join("+")
        );
    }
    let k = base.k.unwrap_or(vecdb::search_body::MAX_K);
    let depth = if features.len() > 1 { k.max(FUSION_DEPTH) } else { k };
    let robust = q.names.len() > 1;
    let mut lists = Vec::new();
    for f in features {
        let reqs: Vec<SearchRequest> = q
            .queries
            .iter()
            .map(|view| {
                let query = view.get(f).cloned().with_context(|| format!("no query for feature '{f}'"))?;
                let mut r = SearchRequest::new(f.clone(), query, depth);
                r.k = if base.threshold.is_some() { base.k } else { Some(depth) };
                r.threshold = base.threshold;
                r.filter = base.filter.clone();
                r.params = base.params.clone();
                r.include_vectors = base.include_vectors;
                Ok(r)
            })
            .collect::<Result<_>>()?;
        let per_view = if reqs.len() == 1 { vec![coll.search(&reqs[0])?] } else { coll.search_batch(&reqs)? };
        lists.push(merge_best(per_view, &q.penalties, depth));
    }
    let schema = coll.schema();
    let explain = |hit: Hit, distances: Vec<(String, f32)>, fused: Option<f64>, view: Option<usize>| {
        let judgement = judge(schema, &distances);
        ExplainedHit { hit, distances, fused, view: view.filter(|_| robust).map(|v| q.names[v].clone()), judgement }
    };
    if features.len() == 1 {
        let list = lists.pop().unwrap_or_default();
        return Ok(list
            .into_iter()
            .take(k)
            .map(|vh| {
                let d = vec![(features[0].clone(), vh.hit.distance)];
                explain(vh.hit, d, None, Some(vh.view))
            })
            .collect());
    }
    let ids: Vec<Vec<u64>> = lists.iter().map(|l| l.iter().map(|h| h.hit.id).collect()).collect();
    let found: Vec<HashMap<u64, (f32, usize, &Hit)>> =
        lists.iter().map(|l| l.iter().map(|h| (h.hit.id, (h.hit.distance, h.view, &h.hit))).collect()).collect();
    // Candidates with their fused score: RRF's top k, or every candidate (scored below).
    let candidates: Vec<(u64, f64)> = match base.fusion {
        fusion::Fusion::Rrf => {
            let max = fusion::max_score(features.len());
            fusion::rrf(&ids, k).into_iter().map(|f| (f.id, f.score / max)).collect()
        }
        fusion::Fusion::Max => fusion::rrf(&ids, usize::MAX).into_iter().map(|f| (f.id, 0.0)).collect(),
    };
    let mut out = Vec::with_capacity(candidates.len());
    for (id, score) in candidates {
        let mut distances = Vec::with_capacity(features.len());
        let mut hit = None;
        let mut view = None;
        let mut stored = None;
        for (fi, f) in features.iter().enumerate() {
            if let Some((d, v, h)) = found[fi].get(&id) {
                distances.push((f.clone(), *d));
                hit.get_or_insert_with(|| (*h).clone());
                if fi == 0 {
                    view = Some(*v);
                }
            } else {
                // Not in this feature's list: its distance from the stored vector.
                if stored.is_none() {
                    stored = coll.get(id)?;
                }
                if let Some(d) = stored.as_ref().and_then(|r| stored_distance(coll, r, f, &q.queries[0])) {
                    distances.push((f.clone(), d));
                }
            }
        }
        let Some(hit) = hit else { continue };
        out.push(explain(hit, distances, Some(score), view));
    }
    if base.fusion == fusion::Fusion::Max {
        // Best calibrated similarity first; then the mean similarity over every feature.
        let mean = |h: &ExplainedHit| {
            let sims: Vec<f32> = h
                .distances
                .iter()
                .filter_map(|(f, d)| {
                    let fl = schema.fields.iter().find(|x| &x.name == f)?;
                    crate::closeness::similarity(f, fl.metric, fl.dim, *d)
                })
                .collect();
            sims.iter().sum::<f32>() / sims.len().max(1) as f32
        };
        for h in &mut out {
            h.fused = h.judgement.similarity.map(f64::from);
        }
        out.sort_by(|a, b| {
            let (sa, sb) = (a.judgement.similarity.unwrap_or(0.0), b.judgement.similarity.unwrap_or(0.0));
            sb.total_cmp(&sa).then(mean(b).total_cmp(&mean(a))).then(a.hit.id.cmp(&b.hit.id))
        });
        out.truncate(k);
    }
    Ok(out)
}

/// The distance on `field` between a stored record and the query of the first view.
fn stored_distance(coll: &Collection, rec: &vecdb::Record, field: &str, view: &BTreeMap<String, Query>) -> Option<f32> {
    let metric = coll.schema().fields.iter().find(|f| f.name == field)?.metric;
    let mine = rec.vectors.get(field)?;
    let theirs = match view.get(field)? {
        Query::Vector(v) => v.clone(),
        Query::Id(id) => coll.get(*id).ok()??.vectors.get(field)?.clone(),
    };
    metric.distance(theirs.as_ref(), mine.as_ref()).ok()
}

/// The JSON of an explanation (`distances`, `similarity`, `verdict`, `verdict_by`, and `view`
/// / `fused_score` where they apply), to merge into a hit object.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// Distance per feature searched.
    pub distances: BTreeMap<String, f32>,
    /// Similarity in [0, 1].
    pub similarity: Option<f32>,
    /// Calibrated verdict.
    pub verdict: Option<&'static str>,
    /// The feature the verdict is read from.
    pub verdict_by: Option<String>,
    /// Robust search: the query view that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    /// Hybrid search: the RRF score over the best possible.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused_score: Option<f64>,
}

impl ExplainedHit {
    /// The explanation part of the hit.
    pub fn explanation(&self) -> Explanation {
        Explanation {
            distances: crate::closeness::distance_map(&self.distances),
            similarity: self.judgement.similarity,
            verdict: self.judgement.verdict,
            verdict_by: self.judgement.by.clone(),
            view: self.view.clone(),
            fused_score: self.fused,
        }
    }

    /// The primary feature's distance.
    pub fn distance(&self) -> f32 {
        self.distances.first().map_or(self.hit.distance, |d| d.1)
    }
}

/// Whether every hit is calibrated as unrelated ("no close match": for a plain search, the
/// best hit is); `None` when no verdict is available (no hit, or uncalibrated features only).
pub fn no_close_match(hits: &[ExplainedHit]) -> Option<bool> {
    let verdicts: Vec<&str> = hits.iter().filter_map(|h| h.judgement.verdict).collect();
    if verdicts.is_empty() {
        return None;
    }
    Some(verdicts.iter().all(|v| *v == "unrelated"))
}
