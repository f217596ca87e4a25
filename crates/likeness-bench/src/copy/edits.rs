//! The edited copies of the copy-detection benchmark: each [`EditKind`] turns an original photo
//! into a copy with parameters drawn from a seeded generator, so a run is reproducible.

use features::augment;
use image::codecs::jpeg::JpegEncoder;
use image::{imageops, DynamicImage, Rgb, RgbImage};

/// A small seeded generator (SplitMix64): reproducible without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[lo, hi)`.
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform integer in `[0, n)`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    /// A fair coin.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 == 1
    }
}

/// The kinds of edit, in the order the tables list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditKind {
    /// A crop keeping ~70% of the area, anywhere.
    Crop70,
    /// A crop keeping ~50% of the area, in a corner.
    Crop50Corner,
    /// A crop keeping ~30% of the area, off centre.
    Crop30,
    /// Rotated 3–7° (canvas grown, corners filled).
    Rotate5,
    /// Rotated 12–18°.
    Rotate15,
    /// Rotated 27–33°.
    Rotate30,
    /// Rotated 42–48°.
    Rotate45,
    /// Turned by 90°, 180° or 270°.
    Rotate90,
    /// Mirrored left to right.
    Mirror,
    /// A perspective warp (corners moved by up to 15%).
    Perspective,
    /// Hue turned, brightness and contrast changed.
    Colour,
    /// Gaussian blur, σ 2–4 px on a 640 px image.
    Blur,
    /// JPEG quality 8–15.
    Jpeg,
    /// A caption bar of text-like marks and a logo.
    Overlay,
    /// Pasted at 30–50% of the width into another photo.
    PictureInPicture,
    /// A screenshot: a window with title bar, borders and a status bar around the photo.
    Screenshot,
}

impl EditKind {
    /// Every kind.
    pub const ALL: [EditKind; 16] = [
        EditKind::Crop70,
        EditKind::Crop50Corner,
        EditKind::Crop30,
        EditKind::Rotate5,
        EditKind::Rotate15,
        EditKind::Rotate30,
        EditKind::Rotate45,
        EditKind::Rotate90,
        EditKind::Mirror,
        EditKind::Perspective,
        EditKind::Colour,
        EditKind::Blur,
        EditKind::Jpeg,
        EditKind::Overlay,
        EditKind::PictureInPicture,
        EditKind::Screenshot,
    ];

    /// The name used in tables and `--edits`.
    pub fn name(self) -> &'static str {
        match self {
            EditKind::Crop70 => "crop-70",
            EditKind::Crop50Corner => "crop-50-corner",
            EditKind::Crop30 => "crop-30",
            EditKind::Rotate5 => "rotate-5",
            EditKind::Rotate15 => "rotate-15",
            EditKind::Rotate30 => "rotate-30",
            EditKind::Rotate45 => "rotate-45",
            EditKind::Rotate90 => "rotate-90",
            EditKind::Mirror => "mirror",
            EditKind::Perspective => "perspective",
            EditKind::Colour => "colour",
            EditKind::Blur => "blur",
            EditKind::Jpeg => "jpeg",
            EditKind::Overlay => "overlay",
            EditKind::PictureInPicture => "pip",
            EditKind::Screenshot => "screenshot",
        }
    }

    /// The copy of `img` (`host` is the photo a picture-in-picture goes into).
    pub fn apply(self, img: &RgbImage, host: &RgbImage, rng: &mut Rng) -> RgbImage {
        let fill = if rng.coin() { Rgb([0, 0, 0]) } else { Rgb([255, 255, 255]) };
        let tilt = |rng: &mut Rng, lo: f64, hi: f64| rng.range(lo, hi) * if rng.coin() { 1.0 } else { -1.0 };
        match self {
            EditKind::Crop70 => crop_area(img, 0.7, rng, false),
            EditKind::Crop50Corner => crop_area(img, 0.5, rng, true),
            EditKind::Crop30 => crop_area(img, 0.3, rng, false),
            EditKind::Rotate5 => augment::rotate_expand(img, tilt(rng, 3.0, 7.0), fill),
            EditKind::Rotate15 => augment::rotate_expand(img, tilt(rng, 12.0, 18.0), fill),
            EditKind::Rotate30 => augment::rotate_expand(img, tilt(rng, 27.0, 33.0), fill),
            EditKind::Rotate45 => augment::rotate_expand(img, tilt(rng, 42.0, 48.0), fill),
            EditKind::Rotate90 => augment::rotate_quarter(img, 1 + rng.below(3) as u32),
            EditKind::Mirror => augment::mirror(img),
            EditKind::Perspective => perspective(img, rng, fill),
            EditKind::Colour => colour(img, rng),
            EditKind::Blur => imageops::blur(img, rng.range(2.0, 4.0) as f32),
            EditKind::Jpeg => jpeg(img, 8 + rng.below(8) as u8),
            EditKind::Overlay => overlay(img, rng),
            EditKind::PictureInPicture => picture_in_picture(img, host, rng),
            EditKind::Screenshot => screenshot(img, rng),
        }
    }
}

/// A crop keeping `area` of the image with the aspect ratio kept, at a random place (or a
/// random corner).
fn crop_area(img: &RgbImage, area: f64, rng: &mut Rng, corner: bool) -> RgbImage {
    let side = area.sqrt();
    let (w, h) = (img.width(), img.height());
    let (cw, ch) = (((w as f64) * side) as u32, ((h as f64) * side) as u32);
    let (x, y) = if corner {
        (if rng.coin() { 0 } else { w - cw }, if rng.coin() { 0 } else { h - ch })
    } else {
        (rng.below((w - cw + 1) as usize) as u32, rng.below((h - ch + 1) as usize) as u32)
    };
    augment::crop(img, (x, y, cw, ch))
}

fn perspective(img: &RgbImage, rng: &mut Rng, fill: Rgb<u8>) -> RgbImage {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let mut j = |v: f64, len: f64| v + rng.range(-0.15, 0.15) * len;
    let corners = [(j(0.0, w), j(0.0, h)), (j(w, w), j(0.0, h)), (j(w, w), j(h, h)), (j(0.0, w), j(h, h))];
    // Shift into a canvas that holds the whole warped image.
    let min_x = corners.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
    let min_y = corners.iter().map(|c| c.1).fold(f64::INFINITY, f64::min);
    let max_x = corners.iter().map(|c| c.0).fold(f64::NEG_INFINITY, f64::max);
    let max_y = corners.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    let shifted = corners.map(|(x, y)| (x - min_x, y - min_y));
    augment::warp_perspective(img, &shifted, (max_x - min_x) as u32, (max_y - min_y) as u32, fill)
        .unwrap_or_else(|_| img.clone())
}

fn colour(img: &RgbImage, rng: &mut Rng) -> RgbImage {
    let hue = rng.range(30.0, 90.0) as i32 * if rng.coin() { 1 } else { -1 };
    let bright = rng.range(25.0, 50.0) as i32 * if rng.coin() { 1 } else { -1 };
    let contrast = rng.range(-30.0, 30.0) as f32;
    let d = DynamicImage::ImageRgb8(img.clone()).huerotate(hue).brighten(bright).adjust_contrast(contrast);
    d.to_rgb8()
}

fn jpeg(img: &RgbImage, quality: u8) -> RgbImage {
    let mut buf = Vec::new();
    if JpegEncoder::new_with_quality(&mut buf, quality).encode_image(img).is_err() {
        return img.clone();
    }
    image::load_from_memory(&buf).map(|d| d.to_rgb8()).unwrap_or_else(|_| img.clone())
}

/// A caption bar (a third of the width to all of it, 12–20% of the height) of dark "letters"
/// on a light band, and a coloured logo in another corner.
fn overlay(img: &RgbImage, rng: &mut Rng) -> RgbImage {
    let mut out = img.clone();
    let (w, h) = (img.width(), img.height());
    let bar_h = (h as f64 * rng.range(0.12, 0.2)) as u32;
    let bar_w = (w as f64 * rng.range(0.5, 1.0)) as u32;
    let top = rng.coin();
    let y0 = if top { 0 } else { h - bar_h };
    let band = Rgb([235, 235, 235]);
    fill_rect(&mut out, 0, y0, bar_w, bar_h, band, 0.8);
    // Letters: dark blocks of random widths with gaps, two lines.
    let line_h = bar_h / 3;
    for line in 0..2 {
        let mut x = line_h / 2;
        let y = y0 + line_h / 2 + line * (line_h + line_h / 3);
        while x + line_h < bar_w {
            let lw = (line_h as f64 * rng.range(0.3, 0.8)) as u32;
            fill_rect(&mut out, x, y, lw.max(1), line_h * 2 / 3, Rgb([20, 20, 30]), 1.0);
            x += lw + line_h / 4 + if rng.below(5) == 0 { line_h / 2 } else { 0 };
        }
    }
    // Logo: a filled disc with a ring, 10–18% of the shorter side, semi-opaque.
    let r = (w.min(h) as f64 * rng.range(0.05, 0.09)) as i64;
    let (cx, cy) = (if rng.coin() { r + 8 } else { w as i64 - r - 8 }, if top { h as i64 - r - 8 } else { r + 8 });
    let logo = Rgb([rng.below(256) as u8, 40, 200]);
    for y in (cy - r).max(0)..(cy + r).min(h as i64) {
        for x in (cx - r).max(0)..(cx + r).min(w as i64) {
            let d2 = (x - cx).pow(2) + (y - cy).pow(2);
            if d2 <= r * r {
                let c = if d2 >= (r * 3 / 4).pow(2) { Rgb([255, 255, 255]) } else { logo };
                blend(&mut out, x as u32, y as u32, c, 0.75);
            }
        }
    }
    out
}

fn picture_in_picture(img: &RgbImage, host: &RgbImage, rng: &mut Rng) -> RgbImage {
    let mut out = host.clone();
    let share = rng.range(0.3, 0.5);
    let pw = ((host.width() as f64) * share) as u32;
    let ph = ((pw as f64) * img.height() as f64 / img.width() as f64) as u32;
    let ph = ph.min(host.height() * 9 / 10).max(8);
    let small = imageops::resize(img, pw.max(8), ph, imageops::FilterType::Triangle);
    let x = rng.below((host.width() - small.width() + 1) as usize) as i64;
    let y = rng.below((host.height() - small.height() + 1) as usize) as i64;
    imageops::overlay(&mut out, &small, x, y);
    if std::env::var_os("LIKENESS_BENCH_DEBUG").is_some() {
        eprintln!("pip pasted at {x},{y} {}x{} into {}x{}", small.width(), small.height(), host.width(), host.height());
    }
    out
}

/// A window around the photo: a dark title bar with three buttons, light grey borders, a
/// status bar, on a desktop-coloured canvas; the photo at 60–85% of the canvas width.
fn screenshot(img: &RgbImage, rng: &mut Rng) -> RgbImage {
    let share = rng.range(0.6, 0.85);
    let cw = ((img.width() as f64) / share) as u32;
    let title = (cw as f64 * 0.05) as u32;
    let status = title / 2 + 2;
    let border = (cw as f64 * 0.01) as u32 + 2;
    let ch = img.height() + title + status + 2 * border + (cw - img.width()) / 3;
    let desktop = Rgb([rng.below(120) as u8, rng.below(120) as u8 + 60, 160]);
    let mut out = RgbImage::from_pixel(cw, ch, desktop);
    let win_w = img.width() + 2 * border;
    let win_h = img.height() + title + status + 2 * border;
    let wx = rng.below((cw - win_w + 1) as usize) as u32;
    let wy = rng.below((ch - win_h + 1) as usize) as u32;
    fill_rect(&mut out, wx, wy, win_w, win_h, Rgb([210, 210, 210]), 1.0);
    fill_rect(&mut out, wx, wy, win_w, title, Rgb([50, 54, 62]), 1.0);
    for (i, c) in [[230, 80, 70], [240, 190, 60], [90, 190, 80]].into_iter().enumerate() {
        let s = title / 2;
        fill_rect(&mut out, wx + border + i as u32 * (s + s / 2) + s / 2, wy + s / 2, s, s, Rgb(c), 1.0);
    }
    fill_rect(&mut out, wx, wy + win_h - status, win_w, status, Rgb([240, 240, 240]), 1.0);
    imageops::overlay(&mut out, img, (wx + border) as i64, (wy + title + border) as i64);
    out
}

fn fill_rect(img: &mut RgbImage, x: u32, y: u32, w: u32, h: u32, c: Rgb<u8>, alpha: f64) {
    for yy in y..(y + h).min(img.height()) {
        for xx in x..(x + w).min(img.width()) {
            blend(img, xx, yy, c, alpha);
        }
    }
}

fn blend(img: &mut RgbImage, x: u32, y: u32, c: Rgb<u8>, alpha: f64) {
    let p = img.get_pixel_mut(x, y);
    for (v, c) in p.0.iter_mut().zip(c.0) {
        *v = (*v as f64 * (1.0 - alpha) + c as f64 * alpha).round() as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_are_reproducible_and_change_the_image() {
        let img = RgbImage::from_fn(120, 80, |x, y| Rgb([(x * 2) as u8, (y * 3) as u8, ((x + y) % 256) as u8]));
        let host = RgbImage::from_pixel(200, 150, Rgb([10, 200, 10]));
        for kind in EditKind::ALL {
            let a = kind.apply(&img, &host, &mut Rng::new(7));
            let b = kind.apply(&img, &host, &mut Rng::new(7));
            assert_eq!(a, b, "{} is not reproducible", kind.name());
            assert_ne!(a, img, "{} left the image as it was", kind.name());
            assert!(a.width() >= 8 && a.height() >= 8, "{}: {:?}", kind.name(), a.dimensions());
        }
        let names: std::collections::BTreeSet<_> = EditKind::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), EditKind::ALL.len());
    }
}
