//! Decoding image files into oriented RGB pixels, with guards against hostile input.
//!
//! Supported formats: JPEG, PNG, WebP, GIF (first frame), BMP, TIFF. The format is detected
//! from the content, not the extension. Grayscale, 16-bit and float images are converted to
//! 8-bit RGB; images with alpha are composited on white; the EXIF orientation (JPEG, WebP,
//! TIFF, PNG `eXIf`) is applied so the result is upright.
//!
//! Guards, checked in this order, each failure a typed [`FeatureError`] naming the file:
//! 1. file size against [`DecodeLimits::max_file_bytes`] (from the file's metadata, before reading);
//! 2. the format signature ([`FeatureError::UnsupportedFormat`] for anything else);
//! 3. the pixel count declared in the header against [`DecodeLimits::max_pixels`], before the
//!    pixel buffer is allocated (decompression bombs);
//! 4. the wall-clock time of decoding against [`DecodeLimits::time_budget`]: decoding runs on a
//!    watchdog thread; past the budget the call returns [`FeatureError::DecodeTimeout`] (the
//!    abandoned decoder finishes in the background and its result is dropped);
//! 5. a panic inside a decoder is caught and reported as [`FeatureError::Decode`].
//!
//! **Reduced-size decoding.** [`load_image_sized`] / [`decode_bytes_sized`] with
//! [`DecodeSize::AtLeast`] decode a JPEG at 1/2 or 1/4 of its size in the DCT domain
//! ([`crate::scaled_jpeg`]) when both sides of the result stay at least that many pixels; the
//! guards above apply unchanged (the pixel guard to the full size the header declares), and the
//! EXIF orientation is applied to the reduced pixels. CMYK and 12/16-bit JPEGs, and every other
//! format, are decoded in full. The extraction pipeline asks for the size its extractors need
//! ([`crate::pipeline`]).

use std::io::{Cursor, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, RgbImage};

use crate::error::{FeatureError, Result};
use crate::scaled_jpeg;

/// Limits applied while decoding a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted file, in bytes (default 100 MiB).
    pub max_file_bytes: u64,
    /// Largest accepted image, in pixels (width × height from the header; default 100 million).
    pub max_pixels: u64,
    /// Longest a single decode may take (default 10 s). `Duration::ZERO` disables the
    /// watchdog and decodes on the calling thread.
    pub time_budget: Duration,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_file_bytes: 100 * 1024 * 1024,
            max_pixels: 100_000_000,
            time_budget: Duration::from_secs(10),
        }
    }
}

/// How many pixels a decode must deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecodeSize {
    /// Every pixel.
    #[default]
    Full,
    /// A JPEG may be decoded at 1/2 or 1/4 of its size (the largest reduction that keeps
    /// both sides of the result at least this many pixels); other formats are decoded in full.
    AtLeast(u32),
}

/// A decoded image: upright (EXIF orientation applied), 8-bit RGB, alpha composited on white.
#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The pixels: the whole image, or a reduced copy when decoded with [`DecodeSize::AtLeast`].
    pub image: RgbImage,
    /// Width of the upright image at full resolution (the header's, after orientation): the
    /// width of `image` unless it was decoded reduced.
    pub width: u32,
    /// Height of the upright image at full resolution (see `width`).
    pub height: u32,
    /// Detected container format: `jpeg`, `png`, `webp`, `gif`, `bmp` or `tiff`.
    pub format: String,
}

/// File extensions (lowercase) that [`is_image_path`] accepts.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff"];

/// Whether `path` has an image extension we decode (case-insensitive):
/// jpg jpeg png webp gif bmp tif tiff.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// Read and decode the image file at `path` within `limits`, every pixel.
pub fn load_image(path: &Path, limits: &DecodeLimits) -> Result<DecodedImage> {
    load_image_sized(path, limits, DecodeSize::Full)
}

/// Read and decode the image file at `path` within `limits`, at the [`DecodeSize`] asked for.
pub fn load_image_sized(path: &Path, limits: &DecodeLimits, size: DecodeSize) -> Result<DecodedImage> {
    let io_err = |source| FeatureError::Io { path: path.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if !meta.is_file() {
        return Err(FeatureError::UnsupportedFormat { path: path.to_path_buf(), reason: "not a regular file".into() });
    }
    check_size(meta.len(), path, limits)?;
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // Read at most one byte over the limit, in case the file grew since `metadata`.
    file.take(limits.max_file_bytes.saturating_add(1)).read_to_end(&mut bytes).map_err(io_err)?;
    check_size(bytes.len() as u64, path, limits)?;
    decode_owned(bytes, path, limits, size)
}

/// Decode an image held in memory, every pixel; `name` is only used in error messages.
pub fn decode_bytes(bytes: &[u8], name: &Path, limits: &DecodeLimits) -> Result<DecodedImage> {
    decode_bytes_sized(bytes, name, limits, DecodeSize::Full)
}

/// Decode an image held in memory at the [`DecodeSize`] asked for; `name` is only used in
/// error messages.
pub fn decode_bytes_sized(bytes: &[u8], name: &Path, limits: &DecodeLimits, size: DecodeSize) -> Result<DecodedImage> {
    check_size(bytes.len() as u64, name, limits)?;
    decode_owned(bytes.to_vec(), name, limits, size)
}

fn check_size(size: u64, path: &Path, limits: &DecodeLimits) -> Result<()> {
    if size == 0 {
        return Err(FeatureError::Empty { path: path.to_path_buf() });
    }
    if size > limits.max_file_bytes {
        return Err(FeatureError::FileTooLarge { path: path.to_path_buf(), size, limit: limits.max_file_bytes });
    }
    Ok(())
}

/// The short lowercase name of a supported format, or `None` for formats we refuse.
fn format_name(format: ImageFormat) -> Option<&'static str> {
    Some(match format {
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::Png => "png",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        ImageFormat::Bmp => "bmp",
        ImageFormat::Tiff => "tiff",
        _ => return None,
    })
}

fn decode_owned(bytes: Vec<u8>, path: &Path, limits: &DecodeLimits, size: DecodeSize) -> Result<DecodedImage> {
    let format = sniff_format(&bytes, path)?;
    if limits.time_budget.is_zero() {
        return decode_guarded(&bytes, format, path, limits, size);
    }
    let (tx, rx) = mpsc::sync_channel(1);
    let bytes = Arc::new(bytes);
    let thread_bytes = Arc::clone(&bytes);
    let owned_path: PathBuf = path.to_path_buf();
    let owned_limits = limits.clone();
    let spawned = std::thread::Builder::new().name("likeness-decode".into()).spawn(move || {
        let result = decode_guarded(&thread_bytes, format, &owned_path, &owned_limits, size);
        // The receiver is gone when the budget ran out; nothing to do then.
        let _ = tx.send(result);
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot spawn a decode thread ({e}); decoding {} without time budget", path.display());
        return decode_guarded(&bytes, format, path, limits, size);
    }
    match rx.recv_timeout(limits.time_budget) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(FeatureError::DecodeTimeout {
            path: path.to_path_buf(),
            budget_ms: limits.time_budget.as_millis().min(u64::MAX as u128) as u64,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(FeatureError::Decode { path: path.to_path_buf(), reason: "decoder thread died".into() })
        }
    }
}

/// Detect the format from the first bytes; refuse anything we do not decode.
fn sniff_format(bytes: &[u8], path: &Path) -> Result<ImageFormat> {
    if bytes.is_empty() {
        return Err(FeatureError::Empty { path: path.to_path_buf() });
    }
    let unsupported = |reason: String| FeatureError::UnsupportedFormat { path: path.to_path_buf(), reason };
    match image::guess_format(bytes) {
        Ok(f) if format_name(f).is_some() => Ok(f),
        Ok(f) => Err(unsupported(format!("{f:?} images are not supported"))),
        Err(_) => {
            let head: String = bytes
                .iter()
                .take(8)
                .map(|b| if b.is_ascii_graphic() || *b == b' ' { *b as char } else { '.' })
                .collect();
            Err(unsupported(format!("unrecognized content starting with {head:?}")))
        }
    }
}

/// Run the decoder, turning a panic into a typed error (last line of defence).
fn decode_guarded(
    bytes: &[u8],
    format: ImageFormat,
    path: &Path,
    limits: &DecodeLimits,
    size: DecodeSize,
) -> Result<DecodedImage> {
    match catch_unwind(AssertUnwindSafe(|| decode_inner(bytes, format, path, limits, size))) {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(FeatureError::Decode { path: path.to_path_buf(), reason: format!("decoder panicked: {msg}") })
        }
    }
}

fn map_image_error(e: ImageError, path: &Path) -> FeatureError {
    let path = path.to_path_buf();
    match e {
        ImageError::Unsupported(u) => FeatureError::UnsupportedFormat { path, reason: u.to_string() },
        ImageError::Limits(l) => FeatureError::Decode { path, reason: format!("decoder memory limit: {l}") },
        other => FeatureError::Decode { path, reason: other.to_string() },
    }
}

/// Walk the JPEG marker structure up to the end-of-image marker. The JPEG decoder is lenient
/// and fills a truncated scan with gray; we want a truncated file to be an error instead.
/// Returns the `(width, height)` of the first frame header (start-of-frame marker), if any.
fn check_jpeg_complete(bytes: &[u8]) -> std::result::Result<Option<(u32, u32)>, String> {
    let mut frame = None;
    let n = bytes.len();
    if n < 4 || bytes[0] != 0xFF || bytes[1] != 0xD8 {
        return Err("missing start-of-image marker".into());
    }
    let mut i = 2;
    loop {
        // Find the next marker, skipping fill bytes.
        if i >= n || bytes[i] != 0xFF {
            return Err(format!("truncated or corrupt JPEG: expected a marker at byte {i} of {n}"));
        }
        while i < n && bytes[i] == 0xFF {
            i += 1;
        }
        if i >= n {
            return Err("truncated JPEG: ends inside a marker".into());
        }
        let marker = bytes[i];
        i += 1;
        match marker {
            0xD9 => return Ok(frame),
            0x01 | 0xD0..=0xD7 => continue, // markers without a length
            _ => {}
        }
        if i + 2 > n {
            return Err("truncated JPEG: ends inside a segment header".into());
        }
        let len = usize::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
        if len < 2 || i + len > n {
            return Err(format!("truncated JPEG: segment of {len} bytes at byte {i} runs past the end ({n} bytes)"));
        }
        // SOF0..SOF15 (not DHT C4, JPG C8, DAC CC): precision, height, width, components.
        if matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) && frame.is_none() && len >= 7 {
            let h = u16::from_be_bytes([bytes[i + 3], bytes[i + 4]]);
            let w = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]);
            frame = Some((u32::from(w), u32::from(h)));
        }
        i += len;
        if marker == 0xDA {
            // Entropy-coded data: runs until a marker other than stuffing (FF 00) or restart.
            loop {
                if i + 1 >= n {
                    return Err("truncated JPEG: image data ends without an end-of-image marker".into());
                }
                if bytes[i] == 0xFF
                    && bytes[i + 1] != 0x00
                    && !(0xD0..=0xD7).contains(&bytes[i + 1])
                    && bytes[i + 1] != 0xFF
                {
                    break;
                }
                i += 1;
            }
        }
    }
}

fn decode_inner(
    bytes: &[u8],
    format: ImageFormat,
    path: &Path,
    limits: &DecodeLimits,
    size: DecodeSize,
) -> Result<DecodedImage> {
    if let (ImageFormat::Jpeg, DecodeSize::AtLeast(min_side)) = (format, size) {
        if let Some(decoded) = decode_jpeg_reduced(bytes, path, limits, min_side) {
            return Ok(decoded);
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut dec_limits = image::Limits::default();
    // Enough for the largest accepted image at 16 bytes/pixel (RGBA f32) plus decoder state.
    let needed = limits.max_pixels.saturating_mul(16).saturating_add(64 << 20);
    dec_limits.max_alloc = Some(needed.max(512 << 20));
    reader.limits(dec_limits);
    // Only the header has been parsed once the decoder exists.
    let mut decoder = reader.into_decoder().map_err(|e| map_image_error(e, path))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(FeatureError::TooSmall { path: path.to_path_buf(), width, height });
    }
    if u64::from(width) * u64::from(height) > limits.max_pixels {
        return Err(FeatureError::TooManyPixels { path: path.to_path_buf(), width, height, limit: limits.max_pixels });
    }
    if format == ImageFormat::Jpeg {
        check_jpeg_complete(bytes).map_err(|reason| FeatureError::Decode { path: path.to_path_buf(), reason })?;
    }
    // A malformed EXIF block must not cost the image: fall back to "no transform".
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let dynamic = DynamicImage::from_decoder(decoder).map_err(|e| map_image_error(e, path))?;
    let mut oriented = DynamicImage::ImageRgb8(to_rgb_on_white(dynamic));
    oriented.apply_orientation(orientation);
    let image = oriented.into_rgb8();
    let name = format_name(format).unwrap_or("unknown");
    Ok(DecodedImage { width: image.width(), height: image.height(), image, format: name.to_string() })
}

/// The reduced decode of a complete JPEG whose declared size passes the guards, or `None` to
/// decode it in full: a file this path does not handle (CMYK, 12/16-bit, small enough already),
/// or one it fails on (the full decoder then gives the file's error or, being more lenient,
/// its pixels).
fn decode_jpeg_reduced(bytes: &[u8], path: &Path, limits: &DecodeLimits, min_side: u32) -> Option<DecodedImage> {
    let (w, h) = check_jpeg_complete(bytes).ok()??;
    if w == 0 || h == 0 || u64::from(w) * u64::from(h) > limits.max_pixels {
        return None;
    }
    let max_alloc = limits.max_pixels.saturating_mul(16).saturating_add(64 << 20).max(512 << 20);
    match scaled_jpeg::decode_scaled(bytes, min_side, usize::try_from(max_alloc).unwrap_or(usize::MAX)) {
        Ok(scaled_jpeg::Scaled::Decoded { image, orientation }) => {
            use image::metadata::Orientation::{Rotate270, Rotate270FlipH, Rotate90, Rotate90FlipH};
            let turned = matches!(orientation, Rotate90 | Rotate270 | Rotate90FlipH | Rotate270FlipH);
            let mut oriented = DynamicImage::ImageRgb8(image);
            oriented.apply_orientation(orientation);
            let image = oriented.into_rgb8();
            let (width, height) = if turned { (h, w) } else { (w, h) };
            Some(DecodedImage { image, width, height, format: "jpeg".into() })
        }
        Ok(scaled_jpeg::Scaled::Unsupported) => None,
        Err(reason) => {
            tracing::debug!("reduced decode of {} failed ({reason}); decoding it in full", path.display());
            None
        }
    }
}

/// Convert any color type to 8-bit RGB; pixels with alpha are composited over white.
pub fn to_rgb_on_white(img: DynamicImage) -> RgbImage {
    if !img.color().has_alpha() {
        return img.into_rgb8();
    }
    let rgba = img.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for px in rgba.as_raw().chunks_exact(4) {
        let a = u32::from(px[3]);
        for &c in &px[..3] {
            // c·a/255 + 255·(255−a)/255, rounded.
            let v = (u32::from(c) * a + 255 * (255 - a) + 127) / 255;
            out.push(v as u8);
        }
    }
    RgbImage::from_raw(w, h, out).expect("buffer length matches dimensions")
}
