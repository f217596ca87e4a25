//! `GET /api/collections/{name}/duplicates`: the groups of near-duplicate images, as
//! `likeness dedup` finds them ([`crate::dedup_cmd::find_groups`]), each image with its file
//! facts and each group with the copy to keep by three rules (see [`suggest`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::browse::card;
use super::error::{ApiError, ApiResult};
use super::state::AppState;
use crate::dedup_cmd::{feature_and_threshold, find_groups};
use crate::image_meta::ImageMeta;

/// Query string of the duplicates route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DuplicatesQuery {
    /// Feature compared (default: cnn when present, else phash).
    feature: Option<String>,
    /// Largest distance within a group (default: the feature's calibrated one). Read as f64 so
    /// that a negative number too small for an f32 is still refused.
    threshold: Option<f64>,
}

/// Formats that keep every pixel as it was: preferred by the "quality" rule at equal resolution.
const LOSSLESS: &[&str] = &["png", "tiff", "bmp"];

/// The index of the member to keep by each rule: `largest` (most bytes), `oldest` (earliest
/// modification time) and `quality` (most pixels, then a lossless format, then most bytes).
/// Ties go to the first member (members are sorted by path).
pub fn suggest(members: &[ImageMeta]) -> (usize, usize, usize) {
    let largest = best(members, |m| m.size.unwrap_or(0));
    let oldest = best(members, |m| std::cmp::Reverse(m.mtime_ns.unwrap_or(u64::MAX)));
    let quality = best(members, |m| {
        let pixels = u64::from(m.width.unwrap_or(0)) * u64::from(m.height.unwrap_or(0));
        let lossless = m.format.as_deref().is_some_and(|f| LOSSLESS.contains(&f));
        (pixels, lossless, m.size.unwrap_or(0))
    });
    (largest, oldest, quality)
}

/// The index of the first member with the greatest `key`.
fn best<K: Ord>(members: &[ImageMeta], key: impl Fn(&ImageMeta) -> K) -> usize {
    let mut best = 0;
    for (i, m) in members.iter().enumerate().skip(1) {
        if key(m) > key(&members[best]) {
            best = i;
        }
    }
    best
}

/// Sets its flag when dropped: a dedup whose client went away stops after the batch in flight.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `GET /api/collections/{name}/duplicates?feature=&threshold=`.
pub async fn handler(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    q: Result<Query<DuplicatesQuery>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let started = Instant::now();
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if q.threshold.is_some_and(|t| t < 0.0 || !t.is_finite()) {
        return Err(ApiError::bad_request("threshold must be a finite number, not negative"));
    }
    let c = st.collection(&name)?;
    let (feature, threshold) = feature_and_threshold(&c, q.feature.as_deref(), q.threshold.map(|t| t as f32))
        .map_err(|e| ApiError::bad_request(crate::error_chain::error_chain(&e)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let _guard = StopOnDrop(stop.clone());
    let st2 = st.clone();
    let body = tokio::task::spawn_blocking(move || -> ApiResult<Value> {
        let report = find_groups(&c, &feature, threshold, &|_| {}, &stop)?;
        let groups: Vec<Value> = report
            .groups
            .iter()
            .map(|g| {
                let metas: Vec<ImageMeta> = g
                    .ids
                    .iter()
                    .map(|id| c.get_metadata(*id).map(ImageMeta::from_metadata).unwrap_or_default())
                    .collect();
                let (largest, oldest, quality) = suggest(&metas);
                let members: Vec<Value> =
                    g.ids.iter().zip(&metas).map(|(id, m)| card(&st2, c.name(), *id, m)).collect();
                json!({
                    "max_distance": g.max_distance,
                    "members": members,
                    "keep": {
                        "largest": g.ids[largest].to_string(),
                        "oldest": g.ids[oldest].to_string(),
                        "quality": g.ids[quality].to_string(),
                    },
                })
            })
            .collect();
        Ok(json!({
            "collection": c.name(),
            "feature": report.feature,
            "threshold": report.threshold,
            "records": report.records,
            "groups": groups,
        }))
    })
    .await??;
    let mut body = body;
    body["took_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
    Ok(Json(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(size: u64, mtime: u64, w: u32, h: u32, format: &str) -> ImageMeta {
        ImageMeta {
            size: Some(size),
            mtime_ns: Some(mtime),
            width: Some(w),
            height: Some(h),
            format: Some(format.into()),
            ..Default::default()
        }
    }

    #[test]
    fn each_rule_picks_its_copy() {
        let members = [
            meta(900, 30, 640, 480, "jpeg"), // largest file
            meta(500, 10, 320, 240, "jpeg"), // oldest
            meta(800, 20, 640, 480, "png"),  // same pixels as the first, lossless
        ];
        assert_eq!(suggest(&members), (0, 1, 2));
        // Ties go to the first member; unknown facts never win.
        let same = [meta(1, 1, 1, 1, "jpeg"), meta(1, 1, 1, 1, "jpeg"), ImageMeta::default()];
        assert_eq!(suggest(&same), (0, 0, 0));
    }
}
