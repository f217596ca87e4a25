//! Decoding: every format and pixel layout, EXIF orientation, and a corpus of bad files.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use features::decode::{decode_bytes, is_image_path, load_image, DecodeLimits};
use features::FeatureError;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba, RgbaImage};
use testdata::data_dir;

fn chelsea() -> RgbImage {
    image::open(data_dir().join("photos/chelsea.png")).unwrap().into_rgb8()
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

fn jpeg(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, quality).encode_image(img).unwrap();
    buf
}

fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let s: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
    s as f64 / a.as_raw().len() as f64
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

#[test]
fn decodes_every_format_and_layout() {
    let dir = tempfile::tempdir().unwrap();
    let orig = chelsea();
    let (w, h) = orig.dimensions();
    let dynamic = DynamicImage::ImageRgb8(orig.clone());
    let flipped = image::imageops::flip_horizontal(&orig);

    // Lossless formats must round-trip exactly.
    for (name, format, fmt_name) in [
        ("c.png", ImageFormat::Png, "png"),
        ("c.bmp", ImageFormat::Bmp, "bmp"),
        ("c.tiff", ImageFormat::Tiff, "tiff"),
        ("c.webp", ImageFormat::WebP, "webp"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, encode(&dynamic, format)).unwrap();
        let d = load_image(&path, &limits()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!((d.width, d.height), (w, h), "{name}");
        assert_eq!(d.format, fmt_name);
        assert!(d.image == orig, "{name} does not round-trip");
    }

    // Lossy formats: right size, and closer to the original than to its mirror image.
    let jpg = dir.path().join("c.jpg");
    std::fs::write(&jpg, jpeg(&orig, 90)).unwrap();
    let gif = dir.path().join("c.gif");
    std::fs::write(&gif, encode(&dynamic, ImageFormat::Gif)).unwrap();
    for (path, fmt_name) in [(&jpg, "jpeg"), (&gif, "gif")] {
        let d = load_image(path, &limits()).unwrap();
        assert_eq!((d.width, d.height, d.format.as_str()), (w, h, fmt_name));
        let (e_orig, e_flip) = (mean_abs_diff(&d.image, &orig), mean_abs_diff(&d.image, &flipped));
        assert!(e_orig < e_flip / 4.0, "{fmt_name}: error {e_orig} vs mirror {e_flip}");
    }

    // 16-bit RGB: v·257 maps back to v exactly.
    let rgb16: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(w, h, |x, y| Rgb(orig.get_pixel(x, y).0.map(|c| u16::from(c) * 257)));
    let p16 = dir.path().join("c16.png");
    std::fs::write(&p16, encode(&DynamicImage::ImageRgb16(rgb16), ImageFormat::Png)).unwrap();
    assert!(load_image(&p16, &limits()).unwrap().image == orig, "16-bit PNG");

    // Grayscale 8- and 16-bit: R = G = B = gray.
    let gray = DynamicImage::ImageRgb8(orig.clone()).into_luma8();
    let gray16: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(w, h, |x, y| Luma([u16::from(gray.get_pixel(x, y).0[0]) * 257]));
    for (name, img) in
        [("g8.png", DynamicImage::ImageLuma8(gray.clone())), ("g16.png", DynamicImage::ImageLuma16(gray16))]
    {
        let path = dir.path().join(name);
        std::fs::write(&path, encode(&img, ImageFormat::Png)).unwrap();
        let d = load_image(&path, &limits()).unwrap();
        for (p, g) in d.image.pixels().zip(gray.pixels()) {
            assert_eq!(p.0, [g.0[0]; 3], "{name}");
        }
    }
    // Gray JPEG.
    let gj = dir.path().join("g.jpg");
    let mut buf = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut buf, 95).encode_image(&gray).unwrap();
    std::fs::write(&gj, buf).unwrap();
    let d = load_image(&gj, &limits()).unwrap();
    assert!(d.image.pixels().all(|p| p.0[0] == p.0[1] && p.0[1] == p.0[2]));

    // Alpha: transparent left half → white; opaque right half → the photo; alpha 128 → blend.
    let rgba: RgbaImage = ImageBuffer::from_fn(w, h, |x, y| {
        let [r, g, b] = orig.get_pixel(x, y).0;
        let a = if y == 0 {
            128
        } else if x < w / 2 {
            0
        } else {
            255
        };
        Rgba([r, g, b, a])
    });
    let pa = dir.path().join("alpha.png");
    std::fs::write(&pa, encode(&DynamicImage::ImageRgba8(rgba.clone()), ImageFormat::Png)).unwrap();
    let d = load_image(&pa, &limits()).unwrap();
    for (x, y, p) in d.image.enumerate_pixels() {
        let o = orig.get_pixel(x, y).0;
        let expect = if y == 0 {
            o.map(|c| ((u32::from(c) * 128 + 255 * 127 + 127) / 255) as u8)
        } else if x < w / 2 {
            [255; 3]
        } else {
            o
        };
        assert_eq!(p.0, expect, "alpha pixel ({x},{y})");
    }
    // 16-bit RGBA and gray+alpha convert too.
    let la = DynamicImage::ImageRgba8(rgba).into_luma_alpha8();
    let pla = dir.path().join("la.png");
    std::fs::write(&pla, encode(&DynamicImage::ImageLumaA8(la), ImageFormat::Png)).unwrap();
    let d = load_image(&pla, &limits()).unwrap();
    assert_eq!(d.image.get_pixel(0, 1).0, [255; 3]);

    // Very small images.
    for (name, img) in [
        ("one.png", RgbImage::from_pixel(1, 1, Rgb([10, 20, 30]))),
        ("tiny.bmp", RgbImage::from_pixel(2, 3, Rgb([200, 100, 0]))),
    ] {
        let path = dir.path().join(name);
        let fmt = ImageFormat::from_path(&path).unwrap();
        std::fs::write(&path, encode(&DynamicImage::ImageRgb8(img.clone()), fmt)).unwrap();
        assert!(load_image(&path, &limits()).unwrap().image == img, "{name}");
    }
    // decode_bytes gives the same as load_image.
    let bytes = std::fs::read(&jpg).unwrap();
    let from_bytes = decode_bytes(&bytes, Path::new("mem.jpg"), &limits()).unwrap();
    assert!(from_bytes.image == load_image(&jpg, &limits()).unwrap().image);
}

/// Insert an APP1 Exif segment with the given orientation right after the JPEG SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2a\x00\x00\x00\x08"); // big endian, IFD at offset 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
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
fn exif_orientation_is_applied() {
    let plain = jpeg(&chelsea(), 90);
    let upright = decode_bytes(&plain, Path::new("plain.jpg"), &limits()).unwrap().image;
    let cases: [(u16, RgbImage); 4] = [
        (1, upright.clone()),
        (3, image::imageops::rotate180(&upright)),
        (6, image::imageops::rotate90(&upright)),
        (8, image::imageops::rotate270(&upright)),
    ];
    for (tag, expect) in cases {
        let bytes = with_exif_orientation(&plain, tag);
        let d = decode_bytes(&bytes, Path::new("exif.jpg"), &limits()).unwrap();
        assert_eq!((d.width, d.height), expect.dimensions(), "orientation {tag}");
        assert!(d.image == expect, "orientation {tag}: pixels not rotated as expected");
    }
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out
}

/// A valid PNG header declaring a `w × h` RGB image, with a tiny IDAT: a decompression bomb.
fn png_bomb(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend(png_chunk(b"IHDR", &ihdr));
    out.extend(png_chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]));
    out.extend(png_chunk(b"IEND", &[]));
    out
}

/// A BMP header declaring a `w × h` 24-bit image with a few bytes of pixel data.
fn bmp_bomb(w: i32, h: i32) -> Vec<u8> {
    let mut out = b"BM".to_vec();
    out.extend_from_slice(&(54u32 + 16).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&w.to_le_bytes());
    out.extend_from_slice(&h.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 24]);
    out.extend_from_slice(&[0x55; 16]);
    out
}

#[test]
fn bad_files_give_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let good_jpeg = jpeg(&chelsea(), 90);
    let good_png = encode(&DynamicImage::ImageRgb8(chelsea()), ImageFormat::Png);

    std::fs::write(p("empty.jpg"), b"").unwrap();
    std::fs::write(p("truncated.jpg"), &good_jpeg[..good_jpeg.len() / 3]).unwrap();
    let mut bad_crc = good_png.clone();
    // Flip a byte inside the first IDAT chunk's data: its CRC no longer matches.
    let idat = bad_crc.windows(4).position(|w| w == b"IDAT").unwrap();
    bad_crc[idat + 4 + 10] ^= 0xFF;
    std::fs::write(p("badcrc.png"), bad_crc).unwrap();
    std::fs::write(p("text.jpg"), b"this is not an image, just some text\n").unwrap();
    std::fs::write(p("bomb.png"), png_bomb(30_000, 30_000)).unwrap();
    std::fs::write(p("bomb.bmp"), bmp_bomb(30_000, 30_000)).unwrap();
    std::fs::write(p("big.png"), &good_png).unwrap();
    std::fs::create_dir(p("folder.jpg")).unwrap();

    let check = |name: &str, lim: &DecodeLimits, ok: &dyn Fn(&FeatureError) -> bool| {
        let path = p(name);
        let err = match load_image(&path, lim) {
            Ok(d) => panic!("{name}: decoded as {}×{} instead of failing", d.width, d.height),
            Err(e) => e,
        };
        assert!(ok(&err), "{name}: unexpected error {err:?}");
        assert_eq!(err.path(), Some(path.as_path()), "{name}: error must name the file");
        assert!(err.to_string().contains(name), "{name}: message {err} must name the file");
    };
    let l = limits();
    check("empty.jpg", &l, &|e| matches!(e, FeatureError::Empty { .. }));
    check("truncated.jpg", &l, &|e| matches!(e, FeatureError::Decode { .. }));
    check("badcrc.png", &l, &|e| matches!(e, FeatureError::Decode { .. }));
    check("text.jpg", &l, &|e| matches!(e, FeatureError::UnsupportedFormat { .. }));
    check("folder.jpg", &l, &|e| matches!(e, FeatureError::UnsupportedFormat { .. }));
    check("missing.png", &l, &|e| matches!(e, FeatureError::Io { .. }));
    for bomb in ["bomb.png", "bomb.bmp"] {
        let t = std::time::Instant::now();
        check(
            bomb,
            &l,
            &|e| matches!(e, FeatureError::TooManyPixels { width: 30_000, height: 30_000, limit, .. } if *limit == l.max_pixels),
        );
        // Rejected from the header: no 2.7 GB buffer was allocated and filled.
        assert!(t.elapsed() < Duration::from_secs(2), "{bomb} took {:?}", t.elapsed());
    }
    let small = DecodeLimits { max_file_bytes: good_png.len() as u64 - 1, ..limits() };
    check(
        "big.png",
        &small,
        &|e| matches!(e, FeatureError::FileTooLarge { size, limit, .. } if *size == good_png.len() as u64 && *limit == small.max_file_bytes),
    );
    // The same guards apply to in-memory input.
    let e = decode_bytes(&good_png, Path::new("upload.png"), &small).unwrap_err();
    assert!(matches!(e, FeatureError::FileTooLarge { .. }) && e.to_string().contains("upload.png"));
    let e = decode_bytes(&png_bomb(30_000, 30_000), Path::new("up.png"), &limits()).unwrap_err();
    assert!(matches!(e, FeatureError::TooManyPixels { .. }));
    // A lower pixel limit rejects a real photo (451 × 300 = 135,300 px).
    let few = DecodeLimits { max_pixels: 135_299, ..limits() };
    check("big.png", &few, &|e| matches!(e, FeatureError::TooManyPixels { width: 451, height: 300, .. }));
    let enough = DecodeLimits { max_pixels: 135_300, ..limits() };
    assert!(load_image(&p("big.png"), &enough).is_ok());
}

#[test]
fn decode_time_budget_is_enforced() {
    let photo = data_dir().join("photos/mate/Aqua.jpg");
    let tight = DecodeLimits { time_budget: Duration::from_micros(1), ..limits() };
    match load_image(&photo, &tight) {
        Err(FeatureError::DecodeTimeout { path, budget_ms }) => {
            assert_eq!(path, photo);
            assert_eq!(budget_ms, 0);
        }
        other => panic!("expected a timeout, got {:?}", other.map(|d| (d.width, d.height))),
    }
    // Without a budget (zero = off) and with the default one, the photo decodes.
    let off = DecodeLimits { time_budget: Duration::ZERO, ..limits() };
    let a = load_image(&photo, &off).unwrap();
    let b = load_image(&photo, &limits()).unwrap();
    assert!(a.image == b.image);
}

#[test]
fn image_paths_by_extension() {
    for ok in ["a.jpg", "b.JPEG", "c.png", "d.webp", "e.gif", "f.bmp", "g.tif", "h.TIFF"] {
        assert!(is_image_path(Path::new(ok)), "{ok}");
    }
    for no in ["a.txt", "b", "c.jpg.part", "d.svg", ".png"] {
        assert!(!is_image_path(Path::new(no)), "{no}");
    }
}

#[test]
fn cmyk_jpeg_decodes_to_the_same_colours() {
    // An Adobe CMYK JPEG of chelsea.png (made by Pillow in scripts/fetch-test-data.sh): decoded
    // to RGB, it matches the original up to JPEG loss.
    let path = data_dir().join("cmyk/chelsea_cmyk.jpg");
    assert!(path.is_file(), "{} missing: run scripts/fetch-test-data.sh", path.display());
    let got = load_image(&path, &DecodeLimits::default()).unwrap();
    assert_eq!(got.format, "jpeg");
    let want = chelsea();
    assert_eq!((got.width, got.height), want.dimensions());
    let diff: f64 =
        got.image.as_raw().iter().zip(want.as_raw()).map(|(a, b)| (*a as f64 - *b as f64).abs()).sum::<f64>()
            / want.as_raw().len() as f64;
    eprintln!("CMYK JPEG vs original: mean absolute difference {diff:.2} levels");
    assert!(diff < 6.0, "mean absolute difference {diff:.2} levels: colours are off (inverted or misread channels?)");
}
