//! Reduced-size JPEG decoding (DCT-domain 1/2, 1/4): sizes, metadata, pixels close to a
//! full decode, EXIF orientation, greyscale, CMYK, the guards, and extractor outputs that stay
//! equivalent to those of a full decode.

use std::path::{Path, PathBuf};

use features::color::ColorHistogram;
use features::decode::{decode_bytes_sized, load_image, load_image_sized, DecodeLimits, DecodeSize};
use features::phash::{DHash, PHash};
use features::pipeline::{decode_size, extract_image, extract_path};
use features::preprocess::{resize_exact, ResizeFilter};
use features::texture::Texture;
use features::{Embedding, FeatureError, FeatureExtractor};
use image::{DynamicImage, GrayImage, RgbImage};
use testdata::data_dir;

fn chelsea() -> RgbImage {
    image::open(data_dir().join("photos/chelsea.png")).unwrap().into_rgb8()
}

fn jpeg(img: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality).encode_image(img).unwrap();
    buf
}

/// Chelsea enlarged 8× (3608 × 2400), as a JPEG.
fn large_chelsea_jpeg() -> Vec<u8> {
    let c = chelsea();
    let big = resize_exact(&c, c.width() * 8, c.height() * 8, ResizeFilter::CatmullRom);
    jpeg(&DynamicImage::ImageRgb8(big), 92)
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let s: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    s as f64 / a.as_raw().len() as f64
}

/// Insert an APP1 Exif segment with the given orientation right after the JPEG SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"II\x2a\x00\x08\x00\x00\x00"); // little endian, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut payload = b"Exif\x00\x00".to_vec();
    payload.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn a_large_jpeg_decodes_reduced_with_its_full_size_reported() {
    let bytes = large_chelsea_jpeg();
    let name = Path::new("big.jpg");
    let lim = DecodeLimits::default();
    let full = decode_bytes_sized(&bytes, name, &lim, DecodeSize::Full).unwrap();
    assert_eq!((full.width, full.height, full.image.width()), (3608, 2400, 3608));
    // 256 px on both sides: 1/4 (902 × 600, the largest reduction used); 601: 1/2; 2000: full.
    for (min, want) in
        [(256, (902, 600)), (600, (902, 600)), (601, (1804, 1200)), (1000, (1804, 1200)), (2000, (3608, 2400))]
    {
        let d = decode_bytes_sized(&bytes, name, &lim, DecodeSize::AtLeast(min)).unwrap();
        assert_eq!((d.width, d.height), (3608, 2400), "the full size is reported (min {min})");
        assert_eq!(d.image.dimensions(), want, "min side {min}");
        assert_eq!(d.format, "jpeg");
        // The DCT-domain reduction is close to the full decode shrunk alike (a box filter).
        let shrunk = resize_exact(&full.image, want.0, want.1, ResizeFilter::Box);
        let diff = mean_abs_diff(&d.image, &shrunk);
        eprintln!("min side {min}: reduced {want:?}, mean abs diff to the full decode shrunk {diff:.2} levels");
        assert!(diff < 2.0, "min side {min}: {diff:.2} levels from the full decode");
    }
}

#[test]
fn reduced_decode_applies_the_exif_orientation() {
    let plain = large_chelsea_jpeg();
    let lim = DecodeLimits::default();
    let size = DecodeSize::AtLeast(256);
    let upright = decode_bytes_sized(&plain, Path::new("plain.jpg"), &lim, size).unwrap().image;
    assert_eq!(upright.dimensions(), (902, 600));
    let cases: [(u16, RgbImage, (u32, u32)); 4] = [
        (1, upright.clone(), (3608, 2400)),
        (3, image::imageops::rotate180(&upright), (3608, 2400)),
        (6, image::imageops::rotate90(&upright), (2400, 3608)),
        (8, image::imageops::rotate270(&upright), (2400, 3608)),
    ];
    for (tag, expect, full_size) in cases {
        let bytes = with_exif_orientation(&plain, tag);
        let d = decode_bytes_sized(&bytes, Path::new("exif.jpg"), &lim, size).unwrap();
        assert_eq!((d.width, d.height), full_size, "orientation {tag}: upright full size");
        assert!(d.image == expect, "orientation {tag}: pixels not rotated as expected");
        // The same orientation as the full decoder's.
        let full = decode_bytes_sized(&bytes, Path::new("exif.jpg"), &lim, DecodeSize::Full).unwrap();
        assert_eq!((full.width, full.height), full_size, "orientation {tag}: full decode");
    }
}

#[test]
fn greyscale_jpegs_decode_reduced_to_grey_rgb() {
    let c = chelsea();
    let grey = GrayImage::from_fn(c.width() * 4, c.height() * 4, |x, y| {
        let p = c.get_pixel(x / 4, y / 4).0;
        image::Luma([((u32::from(p[0]) + u32::from(p[1]) + u32::from(p[2])) / 3) as u8])
    });
    let bytes = jpeg(&DynamicImage::ImageLuma8(grey), 90);
    let d =
        decode_bytes_sized(&bytes, Path::new("grey.jpg"), &DecodeLimits::default(), DecodeSize::AtLeast(256)).unwrap();
    assert_eq!((d.width, d.height), (1804, 1200));
    assert_eq!(d.image.dimensions(), (451, 300));
    assert!(d.image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]), "grey stays grey");
}

#[test]
fn cmyk_jpegs_fall_back_to_the_full_decoder() {
    let path = data_dir().join("cmyk/chelsea_cmyk.jpg");
    assert!(path.is_file(), "{} missing: run scripts/fetch-test-data.sh", path.display());
    let lim = DecodeLimits::default();
    let full = load_image(&path, &lim).unwrap();
    let asked = load_image_sized(&path, &lim, DecodeSize::AtLeast(100)).unwrap();
    assert_eq!((asked.width, asked.height), (451, 300));
    assert!(asked.image == full.image, "a CMYK JPEG decodes as before, in full");
}

#[test]
fn the_guards_still_apply_to_reduced_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let good = large_chelsea_jpeg();
    let size = DecodeSize::AtLeast(256);
    let lim = DecodeLimits::default();
    let check = |name: &str, bytes: &[u8], lim: &DecodeLimits, ok: &dyn Fn(&FeatureError) -> bool| {
        let path: PathBuf = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = match load_image_sized(&path, lim, size) {
            Ok(d) => panic!("{name}: decoded as {}×{} instead of failing", d.width, d.height),
            Err(e) => e,
        };
        assert!(ok(&err), "{name}: unexpected error {err:?}");
        assert_eq!(err.path(), Some(path.as_path()), "{name}: the error names the file");
        assert!(err.to_string().contains(name), "{name}: message {err} names the file");
    };
    check("truncated.jpg", &good[..good.len() / 2], &lim, &|e| matches!(e, FeatureError::Decode { .. }));
    check("cut-before-end.jpg", &good[..good.len() - 2], &lim, &|e| matches!(e, FeatureError::Decode { .. }));
    // 3608 × 2400 = 8,659,200 px: a lower limit refuses it from the header.
    let few = DecodeLimits { max_pixels: 8_000_000, ..lim.clone() };
    check("many.jpg", &good, &few, &|e| matches!(e, FeatureError::TooManyPixels { width: 3608, height: 2400, .. }));
    // A header that declares 30000 × 30000 (a decompression bomb) is refused before decoding.
    let mut bomb = good.clone();
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).expect("baseline frame header");
    bomb[sof + 5..sof + 9].copy_from_slice(&[0x75, 0x30, 0x75, 0x30]);
    check("bomb.jpg", &bomb, &lim, &|e| matches!(e, FeatureError::TooManyPixels { width: 30_000, height: 30_000, .. }));
    // The time budget holds as before.
    let tight = DecodeLimits { time_budget: std::time::Duration::from_micros(1), ..lim.clone() };
    check("slow.jpg", &good, &tight, &|e| matches!(e, FeatureError::DecodeTimeout { .. }));
}

fn dense(e: &Embedding) -> &[f32] {
    match e {
        Embedding::Dense(v) => v,
        Embedding::Binary(_) => panic!("dense expected"),
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

fn hamming(a: &Embedding, b: &Embedding) -> u32 {
    match (a, b) {
        (Embedding::Binary(a), Embedding::Binary(b)) => a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum(),
        _ => panic!("binary expected"),
    }
}

/// The classic extractors on the wallpapers (1280–2560 px JPEGs, decoded at 1/2 or 1/4): what
/// the pipeline computes from the reduced decode stays within a small distance of what a full
/// decode gives, far below the distance between different photos.
#[test]
fn classic_features_of_reduced_decodes_match_full_decodes() {
    let extractors: Vec<Box<dyn FeatureExtractor>> = vec![
        Box::new(ColorHistogram::new(Default::default(), false).unwrap()),
        Box::new(Texture::new(false)),
        Box::new(PHash::new()),
        Box::new(DHash::new()),
    ];
    assert_eq!(decode_size(&extractors), DecodeSize::AtLeast(320));
    let lim = DecodeLimits::default();
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(data_dir().join("photos/mate")).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    assert!(files.len() >= 10, "the wallpapers are missing: run scripts/fetch-test-data.sh");
    let (mut worst_color, mut worst_texture, mut worst_phash, mut worst_dhash) = (0f32, 0f32, 0u32, 0u32);
    let mut between_color = f32::MAX;
    let mut previous: Option<Vec<f32>> = None;
    for f in &files {
        let reduced = extract_path(f, &extractors, &lim).unwrap();
        let full = extract_image(load_image(f, &lim).unwrap().image, f, &extractors).unwrap();
        let c = l2(dense(&reduced.features["color"].vector), dense(&full["color"].vector));
        let t = l2(dense(&reduced.features["texture"].vector), dense(&full["texture"].vector));
        let p = hamming(&reduced.features["phash"].vector, &full["phash"].vector);
        let d = hamming(&reduced.features["dhash"].vector, &full["dhash"].vector);
        eprintln!("{}: color {c:.4} texture {t:.4} phash {p} dhash {d}", f.display());
        (worst_color, worst_texture) = (worst_color.max(c), worst_texture.max(t));
        (worst_phash, worst_dhash) = (worst_phash.max(p), worst_dhash.max(d));
        let color = dense(&full["color"].vector).to_vec();
        if let Some(prev) = previous.replace(color.clone()) {
            between_color = between_color.min(l2(&prev, &color));
        }
    }
    eprintln!(
        "worst: color {worst_color:.4} (closest distinct wallpapers {between_color:.4}), texture {worst_texture:.4}, \
         phash {worst_phash} bits, dhash {worst_dhash} bits"
    );
    assert!(worst_color < 0.03, "color moved {worst_color}");
    assert!(worst_texture < 0.05, "texture moved {worst_texture}");
    assert!(worst_phash <= 4, "phash moved {worst_phash} bits (copies are within 10)");
    assert!(worst_dhash <= 3, "dhash moved {worst_dhash} bits (copies are within 5)");
}
