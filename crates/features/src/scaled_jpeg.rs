//! Reduced-size JPEG decoding: DCT-domain scaling by 1/2 or 1/4.
//!
//! A JPEG stores 8×8 blocks of DCT coefficients. Decoding at 1/k runs a k-times smaller inverse
//! DCT per block (4×4 or 2×2 from the lowest coefficients), so a 24 MP photo wanted at a few
//! hundred pixels skips most of the inverse transforms, colour conversion, upsampling and memory
//! traffic of a full decode. The entropy decoding of every coefficient remains, which is why
//! progressive files gain less than baseline ones. The result is an antialiased reduction, as
//! libjpeg's `scale_denom` and Pillow's `draft()` give.
//!
//! 1/8 is not used: `jpeg-decoder`'s 1×1 inverse DCT truncates instead of rounding, which darkens
//! every channel by half a level on average and shifts R and B by about 1.3 levels after colour
//! conversion (measured on the wallpapers: the colour histogram of one moved 0.195, against 0.008
//! at 1/4), and it is no faster than 1/4: entropy decoding dominates both (83 against 88 ms for a
//! 12–24 MP photo, BENCHMARKS.md issue 18).
//!
//! Decoding goes through the `jpeg-decoder` crate (pure Rust, image-rs), one thread per image
//! (the pipeline decodes several images at once). What it does not decode itself is left to the
//! caller, which falls back to the full decoder: CMYK/YCCK files, 12/16-bit (lossless) JPEGs and
//! progressive JPEGs give [`Scaled::Unsupported`].

use image::metadata::Orientation;
use image::RgbImage;
use jpeg_decoder::{CodingProcess, Decoder, PixelFormat};

/// The outcome of [`decode_scaled`].
pub(crate) enum Scaled {
    /// Pixels at a reduced size, not yet oriented, with the file's EXIF orientation.
    Decoded {
        /// The reduced pixels as stored (before orientation).
        image: RgbImage,
        /// EXIF orientation to apply (`NoTransforms` when absent or malformed).
        orientation: Orientation,
    },
    /// This file is not worth reducing (already small enough) or its pixel layout is one this
    /// path does not handle (CMYK, more than 8 bits): decode it in full instead.
    Unsupported,
}

/// The scale denominator (1, 2 or 4) that keeps both sides of a `width × height` image at least
/// `min_side` pixels: the largest reduction that still does (1 when even 1/2 would not).
pub fn scale_denominator(width: u32, height: u32, min_side: u32) -> u32 {
    let shorter = width.min(height);
    [4u32, 2].into_iter().find(|&k| shorter.div_ceil(k) >= min_side.max(1)).unwrap_or(1)
}

/// Decode `bytes` (a complete JPEG whose header dimensions the caller has checked) reduced so that
/// both sides stay at least `min_side` pixels. `max_alloc` bounds the decoder's buffers.
pub(crate) fn decode_scaled(bytes: &[u8], min_side: u32, max_alloc: usize) -> Result<Scaled, String> {
    let mut decoder = Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(max_alloc);
    decoder.read_info().map_err(|e| e.to_string())?;
    let Some(info) = decoder.info() else { return Err("no frame header".into()) };
    if !matches!(info.pixel_format, PixelFormat::L8 | PixelFormat::RGB24) {
        return Ok(Scaled::Unsupported);
    }
    // Progressive files: every coefficient is entropy-decoded in several scans whatever the
    // scale, and `jpeg-decoder` does that slower than the full decoder (zune-jpeg) decodes the
    // whole file: 1652 against 1568 ms for a 18 MP progressive wallpaper (BENCHMARKS.md, issue 18).
    if info.coding_process == CodingProcess::DctProgressive {
        return Ok(Scaled::Unsupported);
    }
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let k = scale_denominator(w, h, min_side);
    if k == 1 {
        return Ok(Scaled::Unsupported);
    }
    let (sw, sh) = decoder.scale(w.div_ceil(k) as u16, h.div_ceil(k) as u16).map_err(|e| e.to_string())?;
    let pixels = decoder.decode().map_err(|e| e.to_string())?;
    let (sw, sh) = (u32::from(sw), u32::from(sh));
    let rgb = match info.pixel_format {
        PixelFormat::RGB24 => pixels,
        _ => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
    };
    let expected = sw as usize * sh as usize * 3;
    if rgb.len() != expected {
        return Err(format!("decoder returned {} bytes for {sw}×{sh} pixels", rgb.len()));
    }
    let image = RgbImage::from_raw(sw, sh, rgb).ok_or("pixel buffer does not match its size")?;
    // A malformed EXIF block must not cost the image: no transform then.
    let orientation = decoder.exif_data().and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    Ok(Scaled::Decoded { image, orientation })
}

#[cfg(test)]
mod tests {
    use super::scale_denominator;

    #[test]
    fn the_largest_reduction_that_keeps_both_sides() {
        assert_eq!(scale_denominator(4000, 3000, 256), 4); // 1000 × 750
        assert_eq!(scale_denominator(2560, 1600, 256), 4); // 640 × 400
        assert_eq!(scale_denominator(1920, 1080, 256), 4); // 480 × 270
        assert_eq!(scale_denominator(800, 600, 256), 2); // 400 × 300
        assert_eq!(scale_denominator(500, 400, 256), 1);
        assert_eq!(scale_denominator(3000, 4000, 256), 4); // portrait alike
        assert_eq!(scale_denominator(1025, 1025, 256), 4); // 257 after rounding up
        assert_eq!(scale_denominator(1020, 4000, 256), 2); // 1/4 would give 255
        assert_eq!(scale_denominator(100, 100, 0), 4);
    }
}
