//! CNN input preparation: resize the shorter side, center-crop, normalize to `(x − 127) / 128`.
//!
//! Resizing uses the crate's [`crate::preprocess::resize_center_crop`] (antialiased bilinear, as
//! PIL / torchvision, in one pass over the crop window).

use image::RgbImage;

use crate::error::{FeatureError, Result};
use crate::preprocess::{resize_center_crop, ResizeFilter};

/// Per-channel mean and scale of the EfficientNet-Lite checkpoints.
const MEAN: f32 = 127.0;
const SCALE: f32 = 128.0;

/// Resize `img` so its shorter side is `shorter` pixels (aspect kept), then crop the central
/// `crop × crop` square.
pub fn resize_and_crop(img: &RgbImage, shorter: u32, crop: u32) -> Result<RgbImage> {
    let (w, h) = img.dimensions();
    if w == 0 || h == 0 {
        return Err(FeatureError::InvalidArgument(format!("cannot embed an empty {w}×{h} image")));
    }
    Ok(resize_center_crop(img, shorter, crop, ResizeFilter::Bilinear))
}

/// Append an RGB image's pixels, normalized, to an NHWC buffer.
pub fn normalize_into(img: &RgbImage, out: &mut Vec<f32>) {
    out.extend(img.as_raw().iter().map(|&v| (v as f32 - MEAN) / SCALE));
}
