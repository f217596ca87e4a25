//! Frames: axis-aligned rectangles with straight, sharp borders inside an image — a photo pasted
//! into another one (picture in picture), the photo inside a screenshot's window, a framed
//! print. Robust search ([`crate::augment`] views in the application) embeds each frame found
//! as one more view of the query, cut exactly where the pasted photo is, which a fixed grid of
//! regions only approximates.
//!
//! How: a vertical border is a column where the intensity steps sharply between neighbouring
//! pixels along a long run of rows (a horizontal border the same along a row). The columns
//! and rows with the longest such runs are candidate sides; every rectangle of candidate sides
//! (and of the image's own borders, for a photo pasted against an edge) is scored by the share
//! of its perimeter that lies on a step, read from prefix sums in O(1); the best rectangles
//! that do not overlap much are returned. Textured areas make short, broken runs; a pasted
//! photo makes four long straight ones.

use image::RgbImage;

/// A step between neighbouring pixels (0–255, the largest over the channels) that counts as a
/// border.
const STEP: i16 = 24;
/// What a side on the image's own border counts for (less than a real step found: a frame with
/// its own four borders wins over one that leans on the image's).
const EDGE_SIDE: f32 = 0.9;
/// Candidate columns and rows kept (each side).
const CANDIDATES: usize = 40;
/// Gaps (pixels) a border run may have and still count as one run.
const GAP: usize = 3;
/// Smallest frame side, as a share of the image side.
const MIN_SIDE: f32 = 0.12;
/// Share of the perimeter that must lie on steps.
const MIN_SCORE: f32 = 0.7;

/// A frame found in an image: the rectangle inside its borders, in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Frame {
    /// Left column (the first inside the frame).
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
    /// Share of the perimeter on intensity steps, `MIN_SCORE..=1`.
    pub score: f32,
}

/// Step maps and their prefix sums.
struct Steps {
    w: usize,
    h: usize,
    /// `col[x * (h + 1) + y]`: steps between columns `x − 1` and `x` (within ±1 column) on rows `< y`.
    col: Vec<u32>,
    /// `row[y * (w + 1) + x]`: steps between rows `y − 1` and `y` (within ±1 row) on columns `< x`.
    row: Vec<u32>,
}

impl Steps {
    fn new(img: &RgbImage) -> Steps {
        let (w, h) = (img.width() as usize, img.height() as usize);
        let px: Vec<[i16; 3]> = img.pixels().map(|p| [p[0] as i16, p[1] as i16, p[2] as i16]).collect();
        // The step between two pixels: the largest over the channels (a photo pasted on a host
        // of the same brightness but another hue still has a border).
        let step = |a: usize, b: usize| {
            let (p, q) = (px[a], px[b]);
            (p[0] - q[0]).abs().max((p[1] - q[1]).abs()).max((p[2] - q[2]).abs())
        };
        // v[y * (w + 1) + x]: a step between columns x − 1 and x at row y (x in 1..w), thinned
        // to the largest of three neighbouring steps (as Canny's non-maximum suppression), so
        // that texture gives scattered steps and a border one line.
        let dx = |x: usize, y: usize| if x == 0 || x >= w { 0 } else { step(y * w + x, y * w + x - 1) };
        let dy = |x: usize, y: usize| if y == 0 || y >= h { 0 } else { step(y * w + x, (y - 1) * w + x) };
        let mut v = vec![false; h * (w + 1)];
        let mut hz = vec![false; (h + 1) * w];
        for y in 0..h {
            for x in 1..w {
                let d = dx(x, y);
                v[y * (w + 1) + x] = d >= STEP && d >= dx(x - 1, y) && d >= dx(x + 1, y);
            }
        }
        for y in 1..h {
            for x in 0..w {
                let d = dy(x, y);
                hz[y * w + x] = d >= STEP && d >= dy(x, y - 1) && d >= dy(x, y + 1);
            }
        }
        // Dilate across the border by one pixel (a resampled edge spreads over two columns).
        let vd = |x: usize, y: usize| (x.saturating_sub(1)..=(x + 1).min(w)).any(|c| v[y * (w + 1) + c]);
        let hd = |x: usize, y: usize| (y.saturating_sub(1)..=(y + 1).min(h)).any(|r| hz[r * w + x]);
        let mut col = vec![0u32; (w + 1) * (h + 1)];
        for x in 0..=w {
            for y in 0..h {
                col[x * (h + 1) + y + 1] = col[x * (h + 1) + y] + u32::from(vd(x, y));
            }
        }
        let mut row = vec![0u32; (h + 1) * (w + 1)];
        for y in 0..=h {
            for x in 0..w {
                row[y * (w + 1) + x + 1] = row[y * (w + 1) + x] + u32::from(hd(x, y));
            }
        }
        Steps { w, h, col, row }
    }

    /// Steps on column border `x` over rows `y0..y1`.
    fn on_col(&self, x: usize, y0: usize, y1: usize) -> u32 {
        self.col[x * (self.h + 1) + y1] - self.col[x * (self.h + 1) + y0]
    }

    /// Steps on row border `y` over columns `x0..x1`.
    fn on_row(&self, y: usize, x0: usize, x1: usize) -> u32 {
        self.row[y * (self.w + 1) + x1] - self.row[y * (self.w + 1) + x0]
    }

    /// The longest run (gaps up to [`GAP`]) of steps on column border `x`.
    fn col_run(&self, x: usize) -> usize {
        longest_run((0..self.h).map(|y| self.on_col(x, y, y + 1) > 0))
    }

    /// The longest run of steps on row border `y`.
    fn row_run(&self, y: usize) -> usize {
        longest_run((0..self.w).map(|x| self.on_row(y, x, x + 1) > 0))
    }
}

fn longest_run(bits: impl Iterator<Item = bool>) -> usize {
    let (mut best, mut start, mut last) = (0usize, None::<usize>, 0usize);
    for (i, b) in bits.enumerate() {
        if !b {
            continue;
        }
        match start {
            Some(s) if i - last <= GAP + 1 => best = best.max(i - s + 1),
            _ => {
                start = Some(i);
                best = best.max(1);
            }
        }
        last = i;
    }
    best
}

/// The `n` positions whose runs stand out most from their neighbours' (3–5 away: a border is
/// one long line, texture makes every nearby line long), at least 3 apart, with runs of at
/// least `min_run`.
fn best_lines(runs: &[usize], n: usize, min_run: usize) -> Vec<usize> {
    let near = |i: usize| {
        let around = (i.saturating_sub(5)..=i.saturating_sub(3)).chain((i + 3)..=(i + 5).min(runs.len() - 1));
        around.filter(|&j| j != i).map(|j| runs[j]).max().unwrap_or(0)
    };
    let contrast: Vec<i64> = (0..runs.len()).map(|i| runs[i] as i64 - near(i) as i64).collect();
    let mut order: Vec<usize> = (0..runs.len()).filter(|&i| runs[i] >= min_run && contrast[i] > 0).collect();
    order.sort_by(|&a, &b| contrast[b].cmp(&contrast[a]).then(a.cmp(&b)));
    let mut out: Vec<usize> = Vec::new();
    for i in order {
        if out.iter().all(|&o| o.abs_diff(i) >= 3) {
            out.push(i);
            if out.len() == n {
                break;
            }
        }
    }
    out
}

fn iou(a: &Frame, b: &Frame) -> f32 {
    let x0 = a.x.max(b.x);
    let y0 = a.y.max(b.y);
    let x1 = (a.x + a.w).min(b.x + b.w);
    let y1 = (a.y + a.h).min(b.y + b.h);
    if x1 <= x0 || y1 <= y0 {
        return 0.0;
    }
    let inter = ((x1 - x0) * (y1 - y0)) as f32;
    inter / ((a.w * a.h + b.w * b.h) as f32 - inter)
}

/// Up to `max` frames of `img`, best first (see the module docs). Images under 32 pixels a side
/// have none.
pub fn detect(img: &RgbImage, max: usize) -> Vec<Frame> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 32 || h < 32 || max == 0 {
        return Vec::new();
    }
    let s = Steps::new(img);
    let (min_w, min_h) = ((w as f32 * MIN_SIDE) as usize, (h as f32 * MIN_SIDE) as usize);
    let col_runs: Vec<usize> = (0..=w).map(|x| if x == 0 || x == w { 0 } else { s.col_run(x) }).collect();
    let row_runs: Vec<usize> = (0..=h).map(|y| if y == 0 || y == h { 0 } else { s.row_run(y) }).collect();
    // Candidate sides: the longest runs, plus the image's own borders.
    let mut xs = best_lines(&col_runs, CANDIDATES, min_h);
    let mut ys = best_lines(&row_runs, CANDIDATES, min_w);
    xs.extend([0, w]);
    ys.extend([0, h]);
    xs.sort_unstable();
    ys.sort_unstable();
    let mut found: Vec<Frame> = Vec::new();
    for (i, &x0) in xs.iter().enumerate() {
        for &x1 in &xs[i + 1..] {
            if x1 - x0 < min_w {
                continue;
            }
            for (j, &y0) in ys.iter().enumerate() {
                for &y1 in &ys[j + 1..] {
                    if y1 - y0 < min_h {
                        continue;
                    }
                    // Sides on the image's border count as found, but two at least must be real
                    // steps, and the whole image is not a frame.
                    let sides = [
                        (x0 == 0, s.on_col(x0, y0, y1) as f32 / (y1 - y0) as f32),
                        (x1 == w, s.on_col(x1, y0, y1) as f32 / (y1 - y0) as f32),
                        (y0 == 0, s.on_row(y0, x0, x1) as f32 / (x1 - x0) as f32),
                        (y1 == h, s.on_row(y1, x0, x1) as f32 / (x1 - x0) as f32),
                    ];
                    let real = sides.iter().filter(|(edge, _)| !edge).count();
                    if real < 2 || (x1 - x0) * (y1 - y0) > w * h * 9 / 10 {
                        continue;
                    }
                    let score = sides.iter().map(|&(edge, f)| if edge { EDGE_SIDE } else { f }).sum::<f32>() / 4.0;
                    let weakest = sides.iter().filter(|(edge, _)| !edge).map(|s| s.1).fold(1.0, f32::min);
                    if score >= MIN_SCORE && weakest >= MIN_SCORE - 0.2 {
                        found.push(Frame {
                            x: x0 as u32,
                            y: y0 as u32,
                            w: (x1 - x0) as u32,
                            h: (y1 - y0) as u32,
                            score,
                        });
                    }
                }
            }
        }
    }
    found.sort_by(|a, b| b.score.total_cmp(&a.score).then((b.w * b.h).cmp(&(a.w * a.h))));
    let mut out: Vec<Frame> = Vec::new();
    for f in found {
        if out.iter().all(|o| iou(o, &f) < 0.5) {
            out.push(f);
            if out.len() == max {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A textured "photo": smooth gradients plus noise, no long straight steps.
    fn texture(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            let n = (x.wrapping_mul(7919) ^ y.wrapping_mul(104_729) ^ seed.wrapping_mul(31))
                .wrapping_mul(2_654_435_761)
                >> 29;
            let v = ((x * 3 + y * 2 + seed * 40) % 200) as u8;
            Rgb([v.saturating_add(n as u8), (v / 2).saturating_add(n as u8), 120u8.saturating_add((n * 2) as u8)])
        })
    }

    #[test]
    fn finds_a_pasted_photo_and_nothing_in_a_plain_one() {
        let mut host = texture(640, 427, 1);
        assert!(detect(&host, 3).is_empty(), "{:?}", detect(&host, 3));
        // A bright photo with smooth shading of its own (grey 190-250 against the host's 40-140).
        let photo = RgbImage::from_fn(200, 150, |x, y| {
            Rgb([250 - (x / 8) as u8, 200 + (y / 4) as u8, 190 + ((x + y) / 6) as u8])
        });
        image::imageops::overlay(&mut host, &photo, 301, 97);
        let frames = detect(&host, 3);
        let f = frames.first().expect("the pasted photo is a frame");
        assert!(f.x.abs_diff(301) <= 1 && f.y.abs_diff(97) <= 1, "{f:?}");
        assert!(f.w.abs_diff(200) <= 2 && f.h.abs_diff(150) <= 2, "{f:?}");
        // Pasted against the left edge: three real sides.
        let mut host = texture(640, 427, 2);
        image::imageops::overlay(&mut host, &photo, 0, 200);
        let f = detect(&host, 3)[0];
        assert!(f.x == 0 && f.y.abs_diff(200) <= 1 && f.w.abs_diff(200) <= 2, "{f:?}");
        // Too small to search.
        assert!(detect(&RgbImage::new(20, 20), 3).is_empty());
    }
}
