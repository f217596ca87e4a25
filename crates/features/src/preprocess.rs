//! Preprocessing shared by the extractors: SIMD resizing (`fast_image_resize`), center
//! cropping, grayscale conversion, per-channel normalization and an optional median denoise.
//!
//! Every resize uses a convolution filter whose support grows with the downscale factor, so
//! large reductions (a 4000 px photo to 32 px) average all source pixels instead of aliasing.

use std::cell::RefCell;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{GrayImage, RgbImage};

/// Interpolation filter for resizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResizeFilter {
    /// Box (area average when downscaling; nearest when upscaling).
    Box,
    /// Triangle filter, as PIL's/torchvision's antialiased bilinear. The default.
    #[default]
    Bilinear,
    /// Catmull-Rom bicubic.
    CatmullRom,
    /// Lanczos with 3 lobes (sharpest, slowest).
    Lanczos3,
}

impl ResizeFilter {
    fn alg(self) -> ResizeAlg {
        ResizeAlg::Convolution(match self {
            ResizeFilter::Box => FilterType::Box,
            ResizeFilter::Bilinear => FilterType::Bilinear,
            ResizeFilter::CatmullRom => FilterType::CatmullRom,
            ResizeFilter::Lanczos3 => FilterType::Lanczos3,
        })
    }
}

thread_local! {
    // A resizer keeps scratch buffers; one per thread avoids reallocating them per call.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Resize the `(left, top, width, height)` region of a packed 8-bit buffer with `channels`
/// channels to `dst_w × dst_h`. Sizes must be non-zero; the region must lie inside the image.
fn resize_raw(
    src: &[u8],
    src_w: u32,
    src_h: u32,
    pixel_type: PixelType,
    region: (f64, f64, f64, f64),
    (dst_w, dst_h): (u32, u32),
    filter: ResizeFilter,
) -> Vec<u8> {
    let channels = pixel_type.size();
    // Keep the region inside the image despite floating-point rounding.
    let (sw, sh) = (f64::from(src_w), f64::from(src_h));
    let left = region.0.clamp(0.0, sw - 1.0);
    let top = region.1.clamp(0.0, sh - 1.0);
    let width = region.2.clamp(1.0, sw - left);
    let height = region.3.clamp(1.0, sh - top);
    let full = left == 0.0 && top == 0.0 && width == f64::from(src_w) && height == f64::from(src_h);
    if full && src_w == dst_w && src_h == dst_h {
        return src.to_vec();
    }
    let mut dst = vec![0u8; dst_w as usize * dst_h as usize * channels];
    let src_view = ImageRef::new(src_w, src_h, src, pixel_type);
    let dst_view = Image::from_slice_u8(dst_w, dst_h, &mut dst, pixel_type);
    let (Ok(src_view), Ok(mut dst_view)) = (src_view, dst_view) else {
        unreachable!("buffer sizes are computed from the dimensions")
    };
    let options = ResizeOptions::new().resize_alg(filter.alg()).crop(left, top, width, height);
    RESIZER.with(|r| {
        r.borrow_mut().resize(&src_view, &mut dst_view, &options).expect("pixel types match and sizes are non-zero")
    });
    dst
}

/// Resize an RGB image to exactly `width × height` (aspect ratio not preserved).
/// Zero target sizes are raised to 1. Returns a copy when the size is unchanged.
pub fn resize_exact(img: &RgbImage, width: u32, height: u32, filter: ResizeFilter) -> RgbImage {
    let (w, h) = (width.max(1), height.max(1));
    if img.width() == 0 || img.height() == 0 {
        return RgbImage::new(w, h);
    }
    let region = (0.0, 0.0, f64::from(img.width()), f64::from(img.height()));
    let raw = resize_raw(img.as_raw(), img.width(), img.height(), PixelType::U8x3, region, (w, h), filter);
    RgbImage::from_raw(w, h, raw).expect("length matches")
}

/// The size `(w, h)` that gives an image of `width × height` a shorter side of `shorter`,
/// keeping the aspect ratio (the longer side is rounded, at least 1).
pub fn shorter_side_size(width: u32, height: u32, shorter: u32) -> (u32, u32) {
    let shorter = shorter.max(1);
    let (w, h) = (width.max(1) as u64, height.max(1) as u64);
    if w <= h {
        let nh = ((h * shorter as u64 + w / 2) / w).max(1);
        (shorter, nh.min(u32::MAX as u64) as u32)
    } else {
        let nw = ((w * shorter as u64 + h / 2) / h).max(1);
        (nw.min(u32::MAX as u64) as u32, shorter)
    }
}

/// Resize so the shorter side is `shorter` pixels, keeping the aspect ratio
/// (up- or downscaling), with the default [`ResizeFilter::Bilinear`].
///
/// The output has `shorter² × aspect` pixels: with untrusted images of extreme aspect ratio
/// (a 1×100000 strip) that can be huge. For a CNN input prefer [`resize_center_crop`], which
/// only resamples the crop window; otherwise cap the size (see [`fit_within`]).
pub fn resize_shorter_side(img: &RgbImage, shorter: u32) -> RgbImage {
    resize_shorter_side_with(img, shorter, ResizeFilter::default())
}

/// [`resize_shorter_side`] with an explicit filter.
pub fn resize_shorter_side_with(img: &RgbImage, shorter: u32, filter: ResizeFilter) -> RgbImage {
    let (w, h) = shorter_side_size(img.width(), img.height(), shorter);
    resize_exact(img, w, h, filter)
}

/// Shrink so that neither side exceeds `max_side`, keeping the aspect ratio; smaller images
/// are returned unchanged (cloned).
pub fn fit_within(img: &RgbImage, max_side: u32, filter: ResizeFilter) -> RgbImage {
    let (w, h) = img.dimensions();
    let max_side = max_side.max(1);
    if w <= max_side && h <= max_side {
        return img.clone();
    }
    let (nw, nh) = if w >= h {
        (max_side, ((u64::from(h) * u64::from(max_side) + u64::from(w) / 2) / u64::from(w)).max(1) as u32)
    } else {
        (((u64::from(w) * u64::from(max_side) + u64::from(h) / 2) / u64::from(h)).max(1) as u32, max_side)
    };
    resize_exact(img, nw, nh, filter)
}

/// Cut the centered `width × height` window out of `img` (a pixel copy, no resampling).
///
/// When the image is smaller than the window in either direction it is first scaled up,
/// keeping its aspect ratio, until it covers the window, so the result always has exactly
/// the requested size.
pub fn center_crop(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (cw, ch) = (width.max(1), height.max(1));
    let (iw, ih) = (img.width(), img.height());
    if iw == 0 || ih == 0 {
        return RgbImage::new(cw, ch);
    }
    if iw < cw || ih < ch {
        // Scale factor that makes the image cover the window; resample only the window's
        // source region (never the whole enlarged image, which could be huge for a strip).
        let s = (f64::from(cw) / f64::from(iw)).max(f64::from(ch) / f64::from(ih));
        let (rw, rh) = (f64::from(cw) / s, f64::from(ch) / s);
        let region = ((f64::from(iw) - rw) / 2.0, (f64::from(ih) - rh) / 2.0, rw, rh);
        let raw = resize_raw(img.as_raw(), iw, ih, PixelType::U8x3, region, (cw, ch), ResizeFilter::Bilinear);
        return RgbImage::from_raw(cw, ch, raw).expect("length matches");
    }
    let x0 = (iw - cw) / 2;
    let y0 = (ih - ch) / 2;
    image::imageops::crop_imm(img, x0, y0, cw, ch).to_image()
}

/// Resize so the shorter side is `shorter`, then take the centered `crop × crop` square — the
/// usual CNN input (e.g. 256 → 224) — in a single resampling pass: the crop window is mapped
/// back to source coordinates and only that region is resized, which is faster than resizing
/// the whole image and gives the same pixels up to rounding.
pub fn resize_center_crop(img: &RgbImage, shorter: u32, crop: u32, filter: ResizeFilter) -> RgbImage {
    let crop = crop.max(1);
    let shorter = shorter.max(crop);
    let (iw, ih) = (img.width(), img.height());
    if iw == 0 || ih == 0 {
        return RgbImage::new(crop, crop);
    }
    let (rw, rh) = shorter_side_size(iw, ih, shorter);
    // Scale from resized to source coordinates, per axis.
    let sx = f64::from(iw) / f64::from(rw);
    let sy = f64::from(ih) / f64::from(rh);
    let left = f64::from((rw - crop.min(rw)) / 2) * sx;
    let top = f64::from((rh - crop.min(rh)) / 2) * sy;
    let region = (left, top, f64::from(crop) * sx, f64::from(crop) * sy);
    let raw = resize_raw(img.as_raw(), iw, ih, PixelType::U8x3, region, (crop, crop), filter);
    RgbImage::from_raw(crop, crop, raw).expect("length matches")
}

/// ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B), rounded, in fixed point.
pub fn to_gray(img: &RgbImage) -> GrayImage {
    let raw: Vec<u8> = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| ((19595 * u32::from(p[0]) + 38470 * u32::from(p[1]) + 7471 * u32::from(p[2]) + 32768) >> 16) as u8)
        .collect();
    GrayImage::from_raw(img.width(), img.height(), raw).expect("length matches")
}

/// Memory layout of a normalized tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Channels first: all R, then all G, then all B (PyTorch `CHW`).
    Chw,
    /// Channels last: R, G, B of each pixel in turn (`HWC`).
    Hwc,
}

/// Per-channel normalization `(x − mean[c]) / std[c]` of 8-bit values (x in 0..=255) into
/// `f32`, in the given layout. EfficientNet-Lite uses `mean = 127`, `std = 128` on all
/// channels; torchvision ImageNet models use `mean = 255·[0.485, 0.456, 0.406]`,
/// `std = 255·[0.229, 0.224, 0.225]`.
pub fn normalize(img: &RgbImage, mean: [f32; 3], std: [f32; 3], layout: Layout) -> Vec<f32> {
    let mut out = Vec::with_capacity(img.as_raw().len());
    normalize_into(img, mean, std, layout, &mut out);
    out
}

/// [`normalize`] appending to `out` (to fill a batch buffer without extra copies).
pub fn normalize_into(img: &RgbImage, mean: [f32; 3], std: [f32; 3], layout: Layout, out: &mut Vec<f32>) {
    let inv = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
    let raw = img.as_raw();
    match layout {
        Layout::Hwc => out.extend(raw.chunks_exact(3).flat_map(|p| {
            [
                (f32::from(p[0]) - mean[0]) * inv[0],
                (f32::from(p[1]) - mean[1]) * inv[1],
                (f32::from(p[2]) - mean[2]) * inv[2],
            ]
        })),
        Layout::Chw => {
            for c in 0..3 {
                out.extend(raw.chunks_exact(3).map(|p| (f32::from(p[c]) - mean[c]) * inv[c]));
            }
        }
    }
}

/// Median filter over a `(2·radius+1)²` window, per channel, with edge pixels replicated —
/// removes salt-and-pepper and JPEG speckle while keeping edges. `radius = 0` returns a copy.
/// Cost grows with the window area, so apply it to already downscaled images (the extractors
/// do, when their `denoise` option is on, with radius 1).
pub fn denoise(img: &RgbImage, radius: u32) -> RgbImage {
    if radius == 0 || img.width() == 0 || img.height() == 0 {
        return img.clone();
    }
    let (w, h) = (img.width() as i64, img.height() as i64);
    let r = radius as i64;
    let raw = img.as_raw();
    let mut out = vec![0u8; raw.len()];
    let mut window: Vec<u8> = Vec::with_capacity(((2 * r + 1) * (2 * r + 1)) as usize);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                window.clear();
                for dy in -r..=r {
                    let yy = (y + dy).clamp(0, h - 1);
                    for dx in -r..=r {
                        let xx = (x + dx).clamp(0, w - 1);
                        window.push(raw[((yy * w + xx) * 3) as usize + c]);
                    }
                }
                let mid = window.len() / 2;
                let (_, m, _) = window.select_nth_unstable(mid);
                out[((y * w + x) * 3) as usize + c] = *m;
            }
        }
    }
    RgbImage::from_raw(img.width(), img.height(), out).expect("length matches")
}
