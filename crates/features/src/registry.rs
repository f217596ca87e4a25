//! Build extractors by name.
//!
//! | name | extractor | dim | distance |
//! |---|---|---|---|
//! | `color` | [`ColorHistogram`] (HSV, default 8×4×4, grid per [`ColorOptions::grid`]) | 128 (512/640 with a grid) | L2 |
//! | `texture` | [`Texture`] (uniform LBP r=1,2 + Gabor) | 142 | L2 |
//! | `phash` | [`PHash`] (DCT) | 64 bits | Hamming |
//! | `dhash` | [`DHash`] (difference hash) | 64 bits | Hamming |
//! | `cnn` | EfficientNet-Lite0 embedding | 1280 | cosine |
//! | `cnn-lite2` | EfficientNet-Lite2 embedding | 1280 | cosine |
//! | `regions` | 5 regional descriptors of Lite0 (whole image, four corners at 2/3), a multi-vector field | 5 × 1280 | cosine, best pair |
//! | `cnn+head:PATH` | Lite0 embedding then the projection head saved at `PATH`; the extractor is named `cnn-head.<file stem>` | head's | cosine |
//! | `cnn-lite2+head:PATH` | Lite2 embedding then the projection head at `PATH` | head's | cosine |

use std::path::{Path, PathBuf};

use crate::cnn::{CnnExtractor, CnnVariant, ComputeDevice};
use crate::color::{ColorHistogram, ColorOptions};
use crate::error::{FeatureError, Result};
use crate::extractor::FeatureExtractor;
use crate::head::{HeadExtractor, ProjectionHead};
use crate::phash::{DHash, PHash};
use crate::texture::Texture;

/// The features indexed when none are asked for.
pub const DEFAULT_FEATURES: &[&str] = &["cnn", "color", "phash"];

/// The plain extractor names [`build_extractor`] knows (besides `cnn+head:PATH`).
pub const EXTRACTOR_NAMES: &[&str] = &["color", "texture", "phash", "dhash", "cnn", "cnn-lite2", "regions"];

/// Settings shared by the extractors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtractorOptions {
    /// Where the CNN model lives (`None`: [`crate::cnn::default_model_dir`]).
    pub model_dir: Option<PathBuf>,
    /// Where the CNN runs (CPU by default).
    pub device: ComputeDevice,
    /// Median-denoise (3×3) the working image of the color and texture extractors, which
    /// helps with noisy scans and heavy JPEG artifacts; off by default.
    pub denoise: bool,
    /// Color histogram bins and spatial grid.
    pub color: ColorOptions,
}

/// Build one extractor from its name (see the module table).
pub fn build_extractor(name: &str, opts: &ExtractorOptions) -> Result<Box<dyn FeatureExtractor>> {
    let ex: Box<dyn FeatureExtractor> = match name {
        "color" => Box::new(ColorHistogram::new(opts.color, opts.denoise)?),
        "texture" => Box::new(Texture::new(opts.denoise)),
        "phash" => Box::new(PHash::new()),
        "dhash" => Box::new(DHash::new()),
        "cnn" => Box::new(load_cnn(CnnVariant::Lite0, opts)?),
        "cnn-lite2" => Box::new(load_cnn(CnnVariant::Lite2, opts)?),
        "regions" => Box::new(crate::cnn::regions::RegionsExtractor::new(load_cnn(CnnVariant::Lite0, opts)?)),
        other => {
            if let Some(path) = other.strip_prefix("cnn+head:") {
                head_extractor(CnnVariant::Lite0, path, opts)?
            } else if let Some(path) = other.strip_prefix("cnn-lite2+head:") {
                head_extractor(CnnVariant::Lite2, path, opts)?
            } else {
                return Err(FeatureError::InvalidArgument(format!(
                    "unknown feature {other:?}; known: {}, cnn+head:PATH",
                    EXTRACTOR_NAMES.join(", ")
                )));
            }
        }
    };
    Ok(ex)
}

/// The name of the extractor `cnn+head:PATH` (or `cnn-lite2+head:PATH`) builds: `cnn-head.` (or
/// `cnn-lite2-head.`) and the head's file stem, e.g. `cnn+head:heads/catalogue.safetensors` →
/// `cnn-head.catalogue`, a name vecdb accepts for a vector field.
pub fn head_feature_name(lite2: bool, path: &Path) -> String {
    let (weights, _) = crate::head::artifact_paths(path);
    let stem = weights.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    format!("{}{stem}", if lite2 { "cnn-lite2-head." } else { "cnn-head." })
}

/// The CNN from `opts.model_dir` (fetched on first use), on `opts.device`.
fn load_cnn(variant: CnnVariant, opts: &ExtractorOptions) -> Result<CnnExtractor> {
    CnnExtractor::load(variant, opts.model_dir.as_deref())?.with_device(opts.device)
}

fn head_extractor(variant: CnnVariant, path: &str, opts: &ExtractorOptions) -> Result<Box<dyn FeatureExtractor>> {
    if path.is_empty() {
        return Err(FeatureError::InvalidArgument("cnn+head: needs a path, e.g. cnn+head:heads/emoji".into()));
    }
    let head = ProjectionHead::load(Path::new(path))?;
    let base = load_cnn(variant, opts)?;
    let name = head_feature_name(variant == CnnVariant::Lite2, Path::new(path));
    Ok(Box::new(HeadExtractor::new(Box::new(base), head).with_name(name)))
}

/// Build several extractors; fails on the first name that cannot be built.
pub fn build_extractors<S: AsRef<str>>(names: &[S], opts: &ExtractorOptions) -> Result<Vec<Box<dyn FeatureExtractor>>> {
    names.iter().map(|n| build_extractor(n.as_ref(), opts)).collect()
}
