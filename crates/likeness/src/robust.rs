//! Robust search: query-side augmentation. The query image is embedded in several *views* —
//! quarter turns, its mirror image, small tilts turned back, the frames found in it (a photo
//! pasted with straight borders, [`features::frames`]) and a grid of regions — each view
//! is searched, and the hit lists are merged by each record's best distance over the views.
//!
//! What each view finds (measured with `likeness-bench copy`, BENCHMARKS.md): quarter turns and
//! the mirror find copies turned by 90°/180°/270° or flipped; tilts find copies rotated by
//! 10–45°; regions find a photo pasted small into another one (picture in picture) or framed
//! by a screenshot. The cost is one CNN pass and one search per view.

use std::collections::HashMap;

use features::augment;
use image::RgbImage;
use serde::Serialize;
use vecdb::Hit;

/// A query view spec that did not parse.
#[derive(Debug, thiserror::Error)]
#[error("bad robust spec '{spec}': {why} (expected a comma-separated list of turns, mirror, tilt, tilt=DEG:DEG..., regions, all)")]
pub struct ViewsError {
    /// The spec as given.
    pub spec: String,
    /// What is wrong with it.
    pub why: String,
}

/// Which views of a query image a robust search embeds (the image itself always).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Views {
    /// The image turned by 90°, 180° and 270°.
    pub turns: bool,
    /// The image mirrored left to right.
    pub mirror: bool,
    /// Tilts turned back: the image rotated by each of these angles (degrees, both signs)
    /// and cut to the rectangle without blank corners.
    pub tilts: Vec<f64>,
    /// The frames found in the image ([`features::frames`], up to [`MAX_FRAMES`]) and a grid
    /// of regions at 1/2 and 0.7 of the shorter side (picture in picture, borders).
    pub regions: bool,
    /// Added to the distances found through region views before merging, so that a region
    /// must beat the whole image by this margin (regions of an ordinary query match crops of
    /// other photos; see BENCHMARKS.md). Default [`REGION_PENALTY`].
    pub region_penalty: f32,
}

/// The default [`Views::region_penalty`] (cosine distance).
pub const REGION_PENALTY: f32 = 0.05;

/// Added to the distances found through frame views (a rectangle with straight borders found
/// in the query, [`features::frames`]): a frame is cut exactly where a pasted photo is, so it
/// needs less of a margin than a grid region.
pub const FRAME_PENALTY: f32 = 0.02;

/// Frames of the query embedded as views, at most.
pub const MAX_FRAMES: usize = 3;

impl Default for Views {
    fn default() -> Views {
        Views { turns: false, mirror: false, tilts: Vec::new(), regions: false, region_penalty: REGION_PENALTY }
    }
}

/// Tilts used by `tilt` (both signs of each).
pub const DEFAULT_TILTS: [f64; 2] = [15.0, 30.0];

/// Region sizes (share of the shorter side) used by `regions`.
pub const REGION_SCALES: [f64; 2] = [0.5, 0.7];

impl Views {
    /// Only the image itself (a plain search).
    pub fn none() -> Views {
        Views::default()
    }

    /// Every view: turns, mirror, tilts of [`DEFAULT_TILTS`], regions.
    pub fn all() -> Views {
        Views { turns: true, mirror: true, tilts: DEFAULT_TILTS.to_vec(), regions: true, ..Views::default() }
    }

    /// Parse `turns,mirror,tilt,regions` (any subset, comma-separated), `tilt=10:20:30` for
    /// chosen angles, or `all`.
    pub fn parse(spec: &str) -> Result<Views, ViewsError> {
        let err = |why: String| ViewsError { spec: spec.to_string(), why };
        let mut v = Views::none();
        for part in spec.split(',').map(str::trim) {
            match part {
                "all" => v = Views::all(),
                "turns" | "rot90" => v.turns = true,
                "mirror" | "flip" => v.mirror = true,
                "tilt" | "tilts" => v.tilts = DEFAULT_TILTS.to_vec(),
                "regions" | "pip" => v.regions = true,
                "" => return Err(err("an empty item".into())),
                p if p.starts_with("tilt=") => {
                    let mut angles = Vec::new();
                    for a in p["tilt=".len()..].split(':') {
                        let deg: f64 =
                            a.trim().parse().map_err(|_| err(format!("'{a}' is not an angle in degrees")))?;
                        if !(deg.is_finite() && deg > 0.0 && deg < 90.0) {
                            return Err(err(format!("tilt {deg} is not between 0 and 90 degrees")));
                        }
                        angles.push(deg);
                    }
                    if angles.len() > 8 {
                        return Err(err("at most 8 tilt angles".into()));
                    }
                    v.tilts = angles;
                }
                other => return Err(err(format!("unknown view '{other}'"))),
            }
        }
        Ok(v)
    }

    /// Whether this is a plain search (the image only).
    pub fn is_plain(&self) -> bool {
        !self.turns && !self.mirror && self.tilts.is_empty() && !self.regions
    }

    /// What to add to the distances of the view named `name` before merging.
    pub fn penalty(&self, name: &str) -> f32 {
        if name.starts_with("region") {
            self.region_penalty
        } else if name.starts_with("frame") {
            FRAME_PENALTY.min(self.region_penalty)
        } else {
            0.0
        }
    }

    /// The views of `image`, named (`original`, `turn90`, `mirror`, `tilt-15`, `region 3/14`…),
    /// the image itself first.
    pub fn images(&self, image: &RgbImage) -> Vec<(String, RgbImage)> {
        let mut out = vec![("original".to_string(), image.clone())];
        if self.turns {
            for q in 1..4 {
                out.push((format!("turn{}", q * 90), augment::rotate_quarter(image, q)));
            }
        }
        if self.mirror {
            out.push(("mirror".into(), augment::mirror(image)));
        }
        for &deg in &self.tilts {
            for d in [deg, -deg] {
                out.push((format!("tilt{d:+}"), augment::rotate_inscribed(image, d)));
            }
        }
        if self.regions {
            let frames = features::frames::detect(image, MAX_FRAMES);
            let n = frames.len();
            for (i, f) in frames.into_iter().enumerate() {
                // One pixel inside the borders (a resampled border bleeds into its neighbours).
                let inner = (f.x + 1, f.y + 1, f.w.saturating_sub(2).max(1), f.h.saturating_sub(2).max(1));
                out.push((
                    format!("frame {}/{n} at {},{} {}x{}", i + 1, f.x, f.y, f.w, f.h),
                    augment::crop(image, inner),
                ));
            }
            let regions = augment::grid_regions(image.width(), image.height(), &REGION_SCALES);
            let n = regions.len();
            for (i, r) in regions.into_iter().enumerate() {
                out.push((format!("region {}/{n} at {},{} {}x{}", i + 1, r.0, r.1, r.2, r.3), augment::crop(image, r)));
            }
        }
        out
    }
}

/// A hit merged over views: the record's best distance and the view that gave it.
#[derive(Debug, Clone)]
pub struct ViewHit {
    /// The hit of the best view.
    pub hit: Hit,
    /// Index of that view in the list searched.
    pub view: usize,
}

/// Merge per-view hit lists (index = view) by each record's smallest distance plus its view's
/// penalty (`penalties[view]`, 0 where missing); the `k` closest, ties broken by view order
/// then id. The hits keep their true distances.
pub fn merge_best(per_view: Vec<Vec<Hit>>, penalties: &[f32], k: usize) -> Vec<ViewHit> {
    let mut best: HashMap<u64, (f32, ViewHit)> = HashMap::new();
    for (view, hits) in per_view.into_iter().enumerate() {
        let pen = penalties.get(view).copied().unwrap_or(0.0);
        for hit in hits {
            let score = hit.distance + pen;
            match best.get(&hit.id) {
                Some((b, _)) if *b <= score => {}
                _ => {
                    best.insert(hit.id, (score, ViewHit { hit, view }));
                }
            }
        }
    }
    let mut out: Vec<(f32, ViewHit)> = best.into_values().collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.view.cmp(&b.1.view)).then(a.1.hit.id.cmp(&b.1.hit.id)));
    out.truncate(k);
    out.into_iter().map(|(_, h)| h).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: u64, distance: f32) -> Hit {
        Hit { id, distance, metadata: None, vectors: None }
    }

    #[test]
    fn specs_parse_and_bad_ones_name_the_problem() {
        assert!(Views::parse("turns").unwrap().turns);
        let v = Views::parse("mirror, tilt=10:20").unwrap();
        assert!(v.mirror && !v.turns && v.tilts == [10.0, 20.0]);
        assert_eq!(Views::parse("all").unwrap(), Views::all());
        let e = Views::parse("turns,sideways").unwrap_err().to_string();
        assert!(e.contains("unknown view 'sideways'"), "{e}");
        assert!(Views::parse("tilt=95").unwrap_err().to_string().contains("between 0 and 90"));
        assert!(Views::parse("turns,").is_err());
        assert!(Views::none().is_plain() && !Views::all().is_plain());
    }

    #[test]
    fn views_are_named_and_the_original_comes_first() {
        let img = RgbImage::new(40, 30);
        let views = Views::all().images(&img);
        assert_eq!(views[0].0, "original");
        assert!(views.iter().any(|(n, im)| n == "turn90" && im.dimensions() == (30, 40)));
        assert!(views.iter().any(|(n, _)| n == "tilt-15"));
        assert!(views.iter().filter(|(n, _)| n.starts_with("region")).count() >= 4);
        assert_eq!(Views::none().images(&img).len(), 1);
    }

    #[test]
    fn merge_keeps_each_records_best_view() {
        let lists = || vec![vec![hit(1, 0.5), hit(2, 0.2)], vec![hit(1, 0.1), hit(3, 0.3)]];
        let merged = merge_best(lists(), &[], 2);
        assert_eq!(merged.iter().map(|h| (h.hit.id, h.view)).collect::<Vec<_>>(), [(1, 1), (2, 0)]);
        assert_eq!(merged[0].hit.distance, 0.1);
        // A penalty of 0.3 on view 1: record 1 scores 0.4 through it (still under its 0.5 in
        // view 0) and now comes after record 2; record 3 scores 0.6.
        let merged = merge_best(lists(), &[0.0, 0.3], 3);
        assert_eq!(merged.iter().map(|h| (h.hit.id, h.view)).collect::<Vec<_>>(), [(2, 0), (1, 1), (3, 1)]);
        assert_eq!(merged[1].hit.distance, 0.1, "the true distance is kept");
        assert_eq!(Views::all().penalty("region 1/4 at 0,0 10x10"), REGION_PENALTY);
        assert_eq!(Views::all().penalty("tilt+15"), 0.0);
    }
}
