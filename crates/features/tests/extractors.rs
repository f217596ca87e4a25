//! Extractors and preprocessing on real photos: histogram properties, hue wrap, texture
//! discrimination, and invariance of color and pHash to re-encoding, rescaling and cropping.

use std::io::Cursor;
use std::path::Path;

use features::color::{rgb_to_hsv, ColorGrid, ColorHistogram, ColorOptions};
use features::decode::{decode_bytes, load_image, DecodeLimits};
use features::metrics::distance;
use features::phash::{hamming, pack_bits, DHash, PHash};
use features::pipeline::working_image;
use features::preprocess::{
    center_crop, denoise, normalize, resize_center_crop, resize_exact, resize_shorter_side, to_gray, Layout,
    ResizeFilter,
};
use features::registry::{build_extractor, ExtractorOptions, EXTRACTOR_NAMES};
use features::texture::{uniform_lbp_map, Texture, LBP_BINS, TEXTURE_DIM};
use features::{DistanceKind, Embedding, FeatureError, FeatureExtractor};
use image::{Rgb, RgbImage};
use testdata::data_dir;

fn load(rel: &str) -> RgbImage {
    working_image(load_image(&data_dir().join(rel), &DecodeLimits::default()).unwrap().image)
}

/// Color photos: the scikit-image samples in color plus the 12 wallpapers.
fn photos() -> Vec<(String, RgbImage)> {
    let mut names: Vec<String> = [
        "chelsea.png",
        "coffee.png",
        "astronaut.png",
        "rocket.jpg",
        "motorcycle_left.png",
        "hubble_deep_field.jpg",
        "retina.jpg",
        "ihc.png",
    ]
    .iter()
    .map(|n| format!("photos/{n}"))
    .collect();
    let mut mate: Vec<String> = std::fs::read_dir(data_dir().join("photos/mate"))
        .unwrap()
        .map(|e| format!("photos/mate/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|n| n.ends_with(".jpg"))
        .collect();
    mate.sort();
    names.extend(mate);
    names.into_iter().map(|n| (n.clone(), load(&n))).collect()
}

fn jpeg_q30(img: &RgbImage) -> RgbImage {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut buf), 30).encode_image(img).unwrap();
    decode_bytes(&buf, Path::new("q30.jpg"), &DecodeLimits::default()).unwrap().image
}

fn half(img: &RgbImage) -> RgbImage {
    resize_exact(img, img.width() / 2, img.height() / 2, ResizeFilter::Bilinear)
}

fn crop80(img: &RgbImage) -> RgbImage {
    center_crop(img, img.width() * 4 / 5, img.height() * 4 / 5)
}

/// For every photo and every transform, the transformed copy must be closer to its own
/// original than to any other photo ("much closer": on average over the photos, less than half
/// the distance to the nearest other photo). Prints every margin.
///
/// `crop_strict = false` relaxes the 80% crop case (for pHash, which by construction is not
/// crop-invariant: a 1.25× zoom scrambles its higher DCT frequencies): there the copy must
/// only be closer to its original than to the *average* other photo, and on average closer
/// than the nearest other photo.
/// An image edit applied to a photo.
type Transform = fn(&RgbImage) -> RgbImage;

fn check_invariance(ex: &dyn FeatureExtractor, crop_strict: bool) {
    let photos = photos();
    let originals: Vec<Embedding> = photos.iter().map(|(_, im)| ex.extract(im).unwrap().vector).collect();
    let kind = ex.distance();
    let transforms: [(&str, Transform); 3] = [("jpeg q30", jpeg_q30), ("half size", half), ("80% crop", crop80)];
    for (tname, t) in &transforms {
        let (mut sum_own, mut sum_other) = (0f64, 0f64);
        for (i, (name, img)) in photos.iter().enumerate() {
            let v = ex.extract(&t(img)).unwrap().vector;
            let own = distance(&v, &originals[i], kind);
            let others: Vec<(usize, f32)> = originals
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(j, o)| (j, distance(&v, o, kind)))
                .collect();
            let (j, other) = *others.iter().min_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
            let avg_other = others.iter().map(|o| o.1).sum::<f32>() / others.len() as f32;
            println!(
                "{} {name} {tname}: own {own:.4}, nearest other {other:.4} ({}), average other {avg_other:.4}",
                ex.name(),
                photos[j].0
            );
            let strict = crop_strict || *tname != "80% crop";
            let bound = if strict { other } else { avg_other };
            assert!(own < bound, "{} {name} {tname}: own {own} not below {bound} ({})", ex.name(), photos[j].0);
            sum_own += f64::from(own);
            sum_other += f64::from(other);
        }
        let n = photos.len() as f64;
        let (mean_own, mean_other) = (sum_own / n, sum_other / n);
        println!("{} {tname}: mean own {mean_own:.4}, mean nearest other {mean_other:.4}", ex.name());
        let strict = crop_strict || *tname != "80% crop";
        let bound = if strict { mean_other / 2.0 } else { mean_other };
        assert!(mean_own < bound, "{} {tname}: mean own {mean_own} vs nearest other {mean_other}", ex.name());
    }
}

#[test]
fn color_is_invariant_to_jpeg_scale_and_crop() {
    check_invariance(&ColorHistogram::new(ColorOptions::default(), false).unwrap(), true);
}

#[test]
fn phash_is_invariant_to_jpeg_scale_and_crop() {
    check_invariance(&PHash::new(), false);
}

#[test]
fn phash_copies_stay_within_hamming_of_distinct_photos() {
    // JPEG and rescaling (no geometry change) must be closer than any two distinct photos.
    let ex = PHash::new();
    let photos = photos();
    let hashes: Vec<Embedding> = photos.iter().map(|(_, im)| ex.extract(im).unwrap().vector).collect();
    let mut closest_pair = f32::INFINITY;
    for i in 0..hashes.len() {
        for j in i + 1..hashes.len() {
            closest_pair = closest_pair.min(distance(&hashes[i], &hashes[j], DistanceKind::Hamming));
        }
    }
    for (i, (name, img)) in photos.iter().enumerate() {
        for copy in [jpeg_q30(img), half(img)] {
            let d = distance(&ex.extract(&copy).unwrap().vector, &hashes[i], DistanceKind::Hamming);
            assert!(d < closest_pair, "{name}: copy at {d} bits, two distinct photos at {closest_pair}");
        }
    }
}

#[test]
fn color_histogram_blocks_sum_to_one_and_vector_is_unit() {
    let img = load("photos/coffee.png");
    for grid in [ColorGrid::Global, ColorGrid::Grid2x2, ColorGrid::Grid2x2Global] {
        let ex = ColorHistogram::new(ColorOptions { grid, ..Default::default() }, false).unwrap();
        let hist = ex.histograms(&img);
        assert_eq!(hist.len(), ex.dim());
        assert_eq!(ex.dim(), 128 * grid.blocks());
        for (b, block) in hist.chunks(128).enumerate() {
            let sum: f32 = block.iter().sum();
            assert!((sum - 1.0).abs() < 1e-4, "{grid:?} block {b} sums to {sum}");
            assert!(block.iter().all(|&v| v >= 0.0));
        }
        let Embedding::Dense(v) = ex.extract(&img).unwrap().vector else { panic!("dense expected") };
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{grid:?}: norm {norm}");
        // The vector is the square root of the histogram (scaled by 1/√blocks).
        let s = 1.0 / (grid.blocks() as f32).sqrt();
        for (x, h) in v.iter().zip(&hist) {
            assert!((x - h.sqrt() * s).abs() < 1e-5);
        }
    }
    // The 2×2 grid tells apart an image and its upside-down copy; the global histogram cannot.
    let flipped = image::imageops::flip_vertical(&img);
    let global = ColorHistogram::new(ColorOptions::default(), false).unwrap();
    let grid =
        ColorHistogram::new(ColorOptions { grid: ColorGrid::Grid2x2Global, ..Default::default() }, false).unwrap();
    let dg =
        distance(&global.extract(&img).unwrap().vector, &global.extract(&flipped).unwrap().vector, DistanceKind::L2);
    let dq = distance(&grid.extract(&img).unwrap().vector, &grid.extract(&flipped).unwrap().vector, DistanceKind::L2);
    assert!(dq > dg, "grid {dq} vs global {dg}");
    // Bad options are refused.
    assert!(matches!(
        ColorHistogram::new(ColorOptions { hue_bins: 1, ..Default::default() }, false),
        Err(FeatureError::InvalidArgument(_))
    ));
}

/// A solid image of the given hue at full saturation and value.
fn solid_hue(deg: f32) -> RgbImage {
    let h = deg / 60.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    let px = Rgb([(r * 255.0f32).round() as u8, (g * 255.0f32).round() as u8, (b * 255.0f32).round() as u8]);
    RgbImage::from_pixel(16, 16, px)
}

#[test]
fn hue_wraps_around() {
    let ex = ColorHistogram::new(ColorOptions::default(), false).unwrap();
    let v = |deg: f32| ex.extract(&solid_hue(deg)).unwrap().vector;
    // The test colors really have the hues we ask for (8-bit rounding moves them < 1°).
    for deg in [359.0, 1.0, 20.0, 340.0] {
        let (h, ..) = rgb_to_hsv(solid_hue(deg).get_pixel(0, 0).0);
        let diff = (h - deg).abs().min(360.0 - (h - deg).abs());
        assert!(diff < 1.0, "{deg} came out as {h}");
    }
    let d = |a: f32, b: f32| distance(&v(a), &v(b), DistanceKind::L2);
    let across_wrap = d(359.0, 1.0);
    assert!(across_wrap < d(1.0, 20.0), "359°–1° {across_wrap} vs 1°–20° {}", d(1.0, 20.0));
    assert!(across_wrap < d(359.0, 340.0), "359°–1° {across_wrap} vs 359°–340° {}", d(359.0, 340.0));
    // Both put their mass in the first and the last hue bins.
    let hist = |deg: f32| ex.histograms(&solid_hue(deg));
    for deg in [359.0, 1.0] {
        let h = hist(deg);
        let per_hue: Vec<f32> = h.chunks(16).map(|c| c.iter().sum()).collect();
        assert!(per_hue[0] > 0.4 && per_hue[7] > 0.4, "{deg}: {per_hue:?}");
        assert!((per_hue[0] + per_hue[7] - 1.0).abs() < 1e-4, "{deg}: {per_hue:?}");
    }
}

#[test]
fn gray_pixels_spread_evenly_over_hue() {
    let ex = ColorHistogram::new(ColorOptions::default(), false).unwrap();
    let h = ex.histograms(&RgbImage::from_pixel(8, 8, Rgb([128, 128, 128])));
    let per_hue: Vec<f32> = h.chunks(16).map(|c| c.iter().sum()).collect();
    for p in &per_hue {
        assert!((p - per_hue[0]).abs() < 1e-6, "{per_hue:?}");
    }
}

#[test]
fn texture_tells_textures_apart() {
    // Two halves of the same texture sample are closer to each other than to other textures.
    let tex = Texture::new(false);
    let names = ["brick", "grass", "gravel"];
    let halves: Vec<(Embedding, Embedding)> = names
        .iter()
        .map(|n| {
            let img = load(&format!("photos/{n}.png"));
            let (w, h) = img.dimensions();
            let left = image::imageops::crop_imm(&img, 0, 0, w / 2, h).to_image();
            let right = image::imageops::crop_imm(&img, w / 2, 0, w / 2, h).to_image();
            (tex.extract(&left).unwrap().vector, tex.extract(&right).unwrap().vector)
        })
        .collect();
    for (i, (l, r)) in halves.iter().enumerate() {
        let own = distance(l, r, DistanceKind::L2);
        for (j, (ol, or)) in halves.iter().enumerate().filter(|(j, _)| *j != i) {
            let other = distance(l, ol, DistanceKind::L2).min(distance(l, or, DistanceKind::L2));
            assert!(own < other, "{} halves at {own}, {} at {other}", names[i], names[j]);
        }
    }
    // Shape of the vector.
    let img = load("photos/brick.png");
    let (l1, l2, gabor) = tex.parts(&img);
    assert_eq!((l1.len(), l2.len(), gabor.len()), (LBP_BINS, LBP_BINS, 24));
    assert!((l1.iter().sum::<f32>() - 1.0).abs() < 1e-4 && (l2.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    let Embedding::Dense(v) = tex.extract(&img).unwrap().vector else { panic!() };
    assert_eq!(v.len(), TEXTURE_DIM);
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    // 58 uniform patterns, each with its own bin.
    let map = uniform_lbp_map();
    let mut uniform: Vec<u8> = map.iter().copied().filter(|&b| (b as usize) < LBP_BINS - 1).collect();
    uniform.sort();
    uniform.dedup();
    assert_eq!(uniform.len(), 58);
    assert_eq!((map[0], map[255] as usize), (0, LBP_BINS - 2));
    assert_eq!(map[0b0101_0101] as usize, LBP_BINS - 1);
}

#[test]
fn texture_ignores_brightness_and_contrast_changes_of_lbp() {
    let tex = Texture::new(false);
    let img = load("photos/grass.png");
    // A monotonic brightness/contrast change keeps every LBP code.
    let brighter = RgbImage::from_fn(img.width(), img.height(), |x, y| {
        Rgb(img.get_pixel(x, y).0.map(|c| (u32::from(c) * 3 / 4 + 40) as u8))
    });
    let (a1, a2, _) = tex.parts(&img);
    let (b1, b2, _) = tex.parts(&brighter);
    let diff: f32 = a1.iter().zip(&b1).chain(a2.iter().zip(&b2)).map(|(x, y)| (x - y).abs()).sum();
    let (c1, c2, _) = tex.parts(&load("photos/gravel.png"));
    let diff_other: f32 = a1.iter().zip(&c1).chain(a2.iter().zip(&c2)).map(|(x, y)| (x - y).abs()).sum();
    assert!(diff < diff_other / 4.0, "brightness change moved LBP by {diff}, other texture {diff_other}");
}

#[test]
fn hashes_are_64_bits_lsb_first() {
    assert_eq!(pack_bits(&[true, false, false, false, false, false, false, false, false, true]), vec![0b1, 0b10]);
    assert_eq!(hamming(&[0b1011], &[0b0001]), 2);
    let img = load("photos/chelsea.png");
    for ex in [Box::new(PHash::new()) as Box<dyn FeatureExtractor>, Box::new(DHash::new())] {
        assert_eq!((ex.dim(), ex.distance()), (64, DistanceKind::Hamming));
        let Embedding::Binary(bits) = ex.extract(&img).unwrap().vector else { panic!("binary expected") };
        assert_eq!(bits.len(), 8);
        if ex.name() == "phash" {
            // Thresholding at the median of the 63 AC coefficients: 31 of them lie above it;
            // the DC bit (bit 0) is set for a non-black image.
            let ones: u32 = bits.iter().map(|b| b.count_ones()).sum();
            assert_eq!(bits[0] & 1, 1);
            assert_eq!(ones, 32);
        }
        // A mirrored image hashes differently; the same image identically.
        let again = ex.extract(&img).unwrap().vector;
        assert_eq!(again, Embedding::Binary(bits.clone()));
        let mirror = ex.extract(&image::imageops::flip_horizontal(&img)).unwrap().vector;
        assert!(distance(&mirror, &Embedding::Binary(bits), DistanceKind::Hamming) > 0.0);
    }
    // dHash by hand on a horizontal ramp: every pixel is darker than its right neighbour → 0 bits;
    // on the mirrored ramp all 64 bits are set.
    let ramp = RgbImage::from_fn(90, 80, |x, _| Rgb([(x * 2) as u8; 3]));
    assert_eq!(DHash::new().extract(&ramp).unwrap().vector, Embedding::Binary(vec![0; 8]));
    let down = image::imageops::flip_horizontal(&ramp);
    assert_eq!(DHash::new().extract(&down).unwrap().vector, Embedding::Binary(vec![0xFF; 8]));
}

#[test]
fn extractors_handle_tiny_and_flat_images() {
    let opts = ExtractorOptions::default();
    for name in ["color", "texture", "phash", "dhash"] {
        let ex = build_extractor(name, &opts).unwrap();
        for img in [
            RgbImage::from_pixel(1, 1, Rgb([200, 10, 10])),
            RgbImage::from_pixel(3, 2, Rgb([0, 0, 0])),
            RgbImage::from_pixel(1, 50, Rgb([9, 99, 199])),
            // An extreme strip: the working sizes must stay bounded.
            RgbImage::from_fn(2, 40_000, |_, y| Rgb([(y % 251) as u8, 0, 0])),
        ] {
            let f = ex.extract(&img).unwrap_or_else(|e| panic!("{name} on {:?}: {e}", img.dimensions()));
            let len = match &f.vector {
                Embedding::Dense(v) => {
                    assert!(v.iter().all(|x| x.is_finite()), "{name}: non-finite");
                    v.len()
                }
                Embedding::Binary(b) => b.len() * 8,
            };
            assert_eq!(len, ex.dim(), "{name}");
        }
    }
}

#[test]
fn registry_builds_by_name() {
    let opts = ExtractorOptions::default();
    for (name, dim, kind) in [
        ("color", 128, DistanceKind::L2),
        ("texture", TEXTURE_DIM, DistanceKind::L2),
        ("phash", 64, DistanceKind::Hamming),
        ("dhash", 64, DistanceKind::Hamming),
    ] {
        let ex = build_extractor(name, &opts).unwrap();
        assert_eq!((ex.name(), ex.dim(), ex.distance()), (name, dim, kind));
        assert!(EXTRACTOR_NAMES.contains(&name));
    }
    let grid = ExtractorOptions {
        color: ColorOptions { grid: ColorGrid::Grid2x2Global, ..Default::default() },
        ..Default::default()
    };
    assert_eq!(build_extractor("color", &grid).unwrap().dim(), 640);
    assert!(matches!(build_extractor("sift", &opts), Err(FeatureError::InvalidArgument(m)) if m.contains("sift")));
    assert!(matches!(build_extractor("cnn+head:", &opts), Err(FeatureError::InvalidArgument(_))));
    // Denoise option changes the color vector of a noisy image only slightly.
    let img = load("photos/chelsea.png");
    let plain = build_extractor("color", &opts).unwrap().extract(&img).unwrap().vector;
    let dn = build_extractor("color", &ExtractorOptions { denoise: true, ..Default::default() }).unwrap();
    let d = distance(&plain, &dn.extract(&img).unwrap().vector, DistanceKind::L2);
    assert!(d > 0.0);
}

#[test]
fn preprocessing_shapes_and_values() {
    let img = load("photos/chelsea.png"); // 451 × 300
    let r = resize_shorter_side(&img, 256);
    assert_eq!(r.dimensions(), (385, 256));
    let tall = image::imageops::rotate90(&img);
    assert_eq!(resize_shorter_side(&tall, 256).dimensions(), (256, 385));
    let c = center_crop(&r, 224, 224);
    assert_eq!(c.dimensions(), (224, 224));
    assert_eq!(c.get_pixel(0, 0), r.get_pixel((385 - 224) / 2, (256 - 224) / 2));
    // Cropping more than the image scales it up first.
    assert_eq!(center_crop(&RgbImage::new(10, 5), 20, 20).dimensions(), (20, 20));
    // A 1 × 100000 strip: only the crop window is resampled.
    let strip = RgbImage::from_fn(1, 100_000, |_, y| Rgb([(y % 256) as u8; 3]));
    assert_eq!(center_crop(&strip, 224, 224).dimensions(), (224, 224));
    let fused_strip = resize_center_crop(&strip, 256, 224, ResizeFilter::Bilinear);
    assert_eq!(fused_strip.dimensions(), (224, 224));
    // The fused resize+crop matches resize then crop better than a one-pixel-shifted crop does.
    let fused = resize_center_crop(&img, 256, 224, ResizeFilter::Bilinear);
    assert_eq!(fused.dimensions(), (224, 224));
    let shifted = image::imageops::crop_imm(&r, (385 - 224) / 2 + 1, (256 - 224) / 2, 224, 224).to_image();
    let mad = |a: &RgbImage, b: &RgbImage| {
        a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.as_raw().len() as f64
    };
    assert!(mad(&fused, &c) < mad(&shifted, &c) / 2.0, "fused {} vs shifted {}", mad(&fused, &c), mad(&shifted, &c));
    // Normalization, both layouts.
    let n = normalize(&c, [127.0; 3], [128.0; 3], Layout::Chw);
    assert_eq!(n.len(), 3 * 224 * 224);
    let p = c.get_pixel(5, 7).0;
    for ch in 0..3 {
        assert_eq!(n[ch * 224 * 224 + 7 * 224 + 5], (f32::from(p[ch]) - 127.0) / 128.0);
    }
    let h = normalize(&c, [0.0; 3], [255.0; 3], Layout::Hwc);
    assert_eq!(h[(7 * 224 + 5) * 3 + 1], f32::from(p[1]) / 255.0);
    // Gray is BT.601.
    let g = to_gray(&RgbImage::from_pixel(1, 1, Rgb([255, 0, 0])));
    assert_eq!(g.get_pixel(0, 0).0[0], 76);
}

#[test]
fn median_denoise_removes_salt_and_pepper() {
    let img = resize_shorter_side(&load("photos/coffee.png"), 100);
    let mut noisy = img.clone();
    // Deterministic sparse impulses.
    for i in 0..noisy.width() * noisy.height() / 50 {
        let (x, y) = ((i * 7919) % noisy.width(), (i * 104_729 / 7) % noisy.height());
        noisy.put_pixel(x, y, if i % 2 == 0 { Rgb([255; 3]) } else { Rgb([0; 3]) });
    }
    let err = |a: &RgbImage| a.as_raw().iter().zip(img.as_raw()).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>();
    // The median filter barely notices sparse impulses: filtering the noisy image gives nearly
    // what filtering the clean one gives.
    let clean_filtered = denoise(&img, 1);
    let noisy_filtered = denoise(&noisy, 1);
    let d_filtered: f64 =
        noisy_filtered.as_raw().iter().zip(clean_filtered.as_raw()).map(|(x, y)| f64::from(x.abs_diff(*y))).sum();
    assert!(d_filtered < err(&noisy) / 4.0, "filtered {d_filtered} vs noisy {}", err(&noisy));
    assert!(denoise(&img, 0) == img);
}

#[test]
fn texture_is_invariant_to_jpeg_scale_and_crop() {
    check_invariance(&Texture::new(false), true);
}
