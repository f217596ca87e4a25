//! Geometric image transforms for query-side augmentation and for generating edited copies:
//! rotation by any angle (with or without the corners cut off), quarter turns, mirroring,
//! perspective warps through a [`Homography`], and a grid of overlapping regions.
//!
//! All functions take and return RGB images; pixels outside the source are filled with a given
//! colour. Sampling is bilinear.

use image::{imageops, Rgb, RgbImage};

use crate::error::{FeatureError, Result};

/// A 3×3 projective transform of the plane, row-major, mapping `(x, y)` to
/// `((h0 x + h1 y + h2) / w, (h3 x + h4 y + h5) / w)` with `w = h6 x + h7 y + h8`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Homography(pub [f64; 9]);

impl Homography {
    /// The transform that maps each of the four points `from[i]` onto `to[i]`; `None` when the
    /// points are degenerate (three on a line).
    pub fn from_points(from: &[(f64, f64); 4], to: &[(f64, f64); 4]) -> Option<Homography> {
        // Eight equations in h0..h7 (h8 = 1).
        let mut a = [[0.0f64; 9]; 8];
        for (i, (&(x, y), &(u, v))) in from.iter().zip(to).enumerate() {
            a[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
            a[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
        }
        let h = solve8(a)?;
        Some(Homography([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], 1.0]))
    }

    /// Where `(x, y)` goes; `None` at the line sent to infinity.
    pub fn apply(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let h = &self.0;
        let w = h[6] * x + h[7] * y + h[8];
        if w.abs() < 1e-12 {
            return None;
        }
        Some(((h[0] * x + h[1] * y + h[2]) / w, (h[3] * x + h[4] * y + h[5]) / w))
    }
}

/// Gaussian elimination with partial pivoting on an 8×8 system (augmented column 8).
fn solve8(mut a: [[f64; 9]; 8]) -> Option<[f64; 8]> {
    for col in 0..8 {
        let pivot = (col..8).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        let pivot_row = a[col];
        for (row, r) in a.iter_mut().enumerate() {
            if row != col {
                let f = r[col] / pivot_row[col];
                for (v, p) in r.iter_mut().zip(pivot_row).skip(col) {
                    *v -= f * p;
                }
            }
        }
    }
    Some(std::array::from_fn(|i| a[i][8] / a[i][i]))
}

/// Bilinear sample of `img` at `(x, y)` (pixel centres at integer + 0.5); `None` outside.
fn sample(img: &RgbImage, x: f64, y: f64) -> Option<[u8; 3]> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    if !(0.0..w).contains(&x) || !(0.0..h).contains(&y) {
        return None;
    }
    let fx = (x - 0.5).clamp(0.0, w - 1.0);
    let fy = (y - 0.5).clamp(0.0, h - 1.0);
    let (x0, y0) = (fx.floor() as u32, fy.floor() as u32);
    let (x1, y1) = ((x0 + 1).min(img.width() - 1), (y0 + 1).min(img.height() - 1));
    let (tx, ty) = (fx - x0 as f64, fy - y0 as f64);
    let p = |x, y| img.get_pixel(x, y).0;
    let (a, b, c, d) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
    Some(std::array::from_fn(|k| {
        let top = a[k] as f64 * (1.0 - tx) + b[k] as f64 * tx;
        let bottom = c[k] as f64 * (1.0 - tx) + d[k] as f64 * tx;
        (top * (1.0 - ty) + bottom * ty).round().clamp(0.0, 255.0) as u8
    }))
}

/// An image of `width × height` whose pixel `(u, v)` is the source pixel at `inverse(u, v)`
/// (`fill` where that falls outside the source).
pub fn warp_inverse(
    img: &RgbImage,
    width: u32,
    height: u32,
    fill: Rgb<u8>,
    inverse: impl Fn(f64, f64) -> Option<(f64, f64)>,
) -> RgbImage {
    RgbImage::from_fn(width, height, |u, v| {
        inverse(u as f64 + 0.5, v as f64 + 0.5).and_then(|(x, y)| sample(img, x, y)).map(Rgb).unwrap_or(fill)
    })
}

/// Warp `img` so that its four corners (top-left, top-right, bottom-right, bottom-left) land on
/// `corners` in an output of `width × height`.
pub fn warp_perspective(
    img: &RgbImage,
    corners: &[(f64, f64); 4],
    width: u32,
    height: u32,
    fill: Rgb<u8>,
) -> Result<RgbImage> {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let src = [(0.0, 0.0), (w, 0.0), (w, h), (0.0, h)];
    let inverse = Homography::from_points(corners, &src)
        .ok_or_else(|| FeatureError::InvalidArgument("degenerate perspective corners".into()))?;
    Ok(warp_inverse(img, width, height, fill, |u, v| inverse.apply(u, v)))
}

/// `img` turned by `quarter_turns` × 90° clockwise.
pub fn rotate_quarter(img: &RgbImage, quarter_turns: u32) -> RgbImage {
    match quarter_turns % 4 {
        0 => img.clone(),
        1 => imageops::rotate90(img),
        2 => imageops::rotate180(img),
        _ => imageops::rotate270(img),
    }
}

/// `img` mirrored left to right.
pub fn mirror(img: &RgbImage) -> RgbImage {
    imageops::flip_horizontal(img)
}

/// `img` rotated `degrees` clockwise about its centre on a canvas large enough to hold all of it
/// (the corners filled with `fill`).
pub fn rotate_expand(img: &RgbImage, degrees: f64, fill: Rgb<u8>) -> RgbImage {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let (s, c) = degrees.to_radians().sin_cos();
    let nw = (w * c.abs() + h * s.abs()).round().max(1.0);
    let nh = (w * s.abs() + h * c.abs()).round().max(1.0);
    rotate_into(img, degrees, nw as u32, nh as u32, fill)
}

/// `img` rotated `degrees` clockwise about its centre, then cut to the largest axis-aligned
/// rectangle of the original's aspect ratio that holds no fill: what a query of a rotated copy
/// looks like once turned back, without the blank corners the CNN would otherwise see.
pub fn rotate_inscribed(img: &RgbImage, degrees: f64) -> RgbImage {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let (s, c) = degrees.to_radians().sin_cos();
    let (s, c) = (s.abs(), c.abs());
    // A w'×h' = (t w)×(t h) rectangle fits inside the rotated w×h one when its rotated-back
    // extent fits: t (w c + h s) <= w and t (w s + h c) <= h.
    let t = (w / (w * c + h * s)).min(h / (w * s + h * c)).min(1.0);
    let nw = (w * t).floor().max(1.0) as u32;
    let nh = (h * t).floor().max(1.0) as u32;
    rotate_into(img, degrees, nw, nh, Rgb([0, 0, 0]))
}

fn rotate_into(img: &RgbImage, degrees: f64, width: u32, height: u32, fill: Rgb<u8>) -> RgbImage {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let (s, c) = degrees.to_radians().sin_cos();
    let (cx, cy) = (w / 2.0, h / 2.0);
    let (ox, oy) = (width as f64 / 2.0, height as f64 / 2.0);
    // Inverse map: turn the output point back by -degrees about the centres.
    warp_inverse(img, width, height, fill, |u, v| {
        let (dx, dy) = (u - ox, v - oy);
        Some((cx + c * dx + s * dy, cy - s * dx + c * dy))
    })
}

/// Overlapping square-ish regions of `img` at each of `scales` (side as a share of the shorter
/// side, in (0, 1]): a grid with about 40% overlap per scale, as `(x, y, width, height)`.
pub fn grid_regions(width: u32, height: u32, scales: &[f64]) -> Vec<(u32, u32, u32, u32)> {
    let mut out = Vec::new();
    let short = width.min(height) as f64;
    for &scale in scales {
        let side = (short * scale.clamp(0.05, 1.0)).round().max(1.0) as u32;
        let positions = |len: u32| -> Vec<u32> {
            if side >= len {
                return vec![0];
            }
            let free = (len - side) as f64;
            let n = (free / (side as f64 * 0.6)).ceil() as u32 + 1;
            (0..n).map(|i| (free * i as f64 / (n - 1).max(1) as f64).round() as u32).collect()
        };
        for y in positions(height) {
            for x in positions(width) {
                out.push((x, y, side.min(width), side.min(height)));
            }
        }
    }
    out
}

/// The part of `img` at `(x, y, width, height)` (clipped to the image).
pub fn crop(img: &RgbImage, (x, y, w, h): (u32, u32, u32, u32)) -> RgbImage {
    let x = x.min(img.width().saturating_sub(1));
    let y = y.min(img.height().saturating_sub(1));
    let w = w.min(img.width() - x).max(1);
    let h = h.min(img.height() - y).max(1);
    imageops::crop_imm(img, x, y, w, h).to_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128]))
    }

    #[test]
    fn homography_maps_the_four_points() {
        let from = [(0.0, 0.0), (100.0, 0.0), (100.0, 50.0), (0.0, 50.0)];
        let to = [(10.0, 5.0), (90.0, 12.0), (95.0, 60.0), (3.0, 48.0)];
        let h = Homography::from_points(&from, &to).unwrap();
        for (a, b) in from.iter().zip(&to) {
            let (u, v) = h.apply(a.0, a.1).unwrap();
            assert!((u - b.0).abs() < 1e-6 && (v - b.1).abs() < 1e-6, "{a:?} -> ({u}, {v}), want {b:?}");
        }
        let line = [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0), (3.0, 3.0)];
        assert!(Homography::from_points(&line, &to).is_none());
    }

    #[test]
    fn rotations_turn_the_content() {
        let img = gradient(40, 20);
        let r = rotate_expand(&img, 90.0, Rgb([0, 0, 0]));
        assert_eq!(r.dimensions(), (20, 40));
        // 90° clockwise: the top-left pixel goes to the top-right corner.
        let q = rotate_quarter(&img, 1);
        assert_eq!(q.get_pixel(19, 0), img.get_pixel(0, 0));
        let diff = r.get_pixel(19, 1).0[0].abs_diff(q.get_pixel(19, 1).0[0]);
        assert!(diff <= 8, "{diff}");
        // A turn and its inverse give back the centre of the image.
        let back = rotate_inscribed(&rotate_expand(&img, 30.0, Rgb([0, 0, 0])), -30.0);
        let c = back.get_pixel(back.width() / 2, back.height() / 2).0;
        assert!(c[0].abs_diff(127) < 20 && c[1].abs_diff(127) < 25, "{c:?}");
        // The inscribed rectangle holds no fill.
        let ins = rotate_inscribed(&RgbImage::from_pixel(60, 40, Rgb([200, 200, 200])), 30.0);
        assert!(ins.pixels().all(|p| p.0[0] > 150), "black corners left in {:?}", ins.dimensions());
        assert_eq!(mirror(&img).get_pixel(39, 0), img.get_pixel(0, 0));
    }

    #[test]
    fn perspective_warp_puts_the_corners_where_asked() {
        let img = RgbImage::from_pixel(50, 50, Rgb([255, 0, 0]));
        let out =
            warp_perspective(&img, &[(10.0, 10.0), (40.0, 5.0), (45.0, 45.0), (5.0, 40.0)], 50, 50, Rgb([0, 0, 255]))
                .unwrap();
        assert_eq!(out.get_pixel(25, 25).0, [255, 0, 0]);
        assert_eq!(out.get_pixel(1, 1).0, [0, 0, 255]);
    }

    #[test]
    fn grid_regions_cover_the_image_and_stay_inside() {
        let regions = grid_regions(300, 200, &[1.0, 0.5]);
        assert!(regions.contains(&(0, 0, 200, 200)) && regions.contains(&(100, 0, 200, 200)));
        for &(x, y, w, h) in &regions {
            assert!(x + w <= 300 && y + h <= 200);
        }
        let halves: Vec<_> = regions.iter().filter(|r| r.2 == 100).collect();
        assert!(halves.iter().any(|r| r.0 == 200 && r.1 == 100), "{halves:?}");
        assert_eq!(crop(&gradient(30, 30), (20, 20, 50, 50)).dimensions(), (10, 10));
    }
}
