//! Learned projection heads on top of the CNN embedding.
//!
//! A head is either linear (`y = W x + b`) or a 2-layer MLP (`y = W2 relu(W1 x + b1) + b2`); its output
//! is always L2-normalized, so heads are compared with cosine distance. A trained head is stored as a
//! versioned artifact of two files side by side: `<name>.safetensors` (tensors `fc1.weight`, `fc1.bias`
//! and, for an MLP, `fc2.weight`, `fc2.bias`, PyTorch `Linear` layout `[out, in]`) and `<name>.json`
//! ([`HeadInfo`]: dims, metric, base extractor, data hash, seed, metrics, creation time).
//!
//! Heads are trained by [`crate::train`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use candle_core::{DType, Device, Tensor};
use image::RgbImage;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::error::{FeatureError, Result};
use crate::extractor::{DistanceKind, Embedding, FeatureExtractor, Features};

/// Version of the artifact format written by [`ProjectionHead::save`].
pub const HEAD_FORMAT_VERSION: u32 = 1;

/// The description stored beside a head's tensors (`<name>.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadInfo {
    /// Artifact format version ([`HEAD_FORMAT_VERSION`]).
    pub version: u32,
    /// Input dimension (the base extractor's dimension).
    pub in_dim: usize,
    /// Output dimension.
    pub out_dim: usize,
    /// Hidden width of the MLP; 0 for a linear head.
    pub hidden: usize,
    /// How outputs are compared; always `"cosine"`.
    pub metric: String,
    /// Name of the base extractor the head was trained on (e.g. `"cnn"`).
    pub base: String,
    /// Hash (sha256, hex) of the training and validation data.
    pub data_hash: String,
    /// Seed used for initialisation and batch sampling.
    pub seed: u64,
    /// Metrics measured during training (e.g. `val_map`, `val_p_at_10`, `val_raw_map`, `best_epoch`).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Training settings (loss, learning rate, ...), free-form.
    #[serde(default)]
    pub training: BTreeMap<String, serde_json::Value>,
    /// Creation time, RFC 3339 UTC.
    pub created: String,
}

/// One affine layer, PyTorch layout: `weight [out, in]`, `bias [out]`.
#[derive(Debug, Clone)]
struct Layer {
    weight: Tensor,
    bias: Tensor,
}

impl Layer {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)
    }
}

/// A trained projection head (linear or 2-layer MLP) mapping CNN embeddings to a smaller metric space.
#[derive(Debug, Clone)]
pub struct ProjectionHead {
    /// Output dimension (also available as [`ProjectionHead::out_dim`]).
    pub out_dim: usize,
    in_dim: usize,
    hidden: usize,
    layers: Vec<Layer>,
    info: Option<HeadInfo>,
}

/// The two files of a head artifact for `path` (`x`, `x.safetensors` or `x.json` all name the same artifact).
pub fn artifact_paths(path: &Path) -> (PathBuf, PathBuf) {
    let stem = match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") | Some("json") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let mut st = stem.clone().into_os_string();
    st.push(".safetensors");
    let mut js = stem.into_os_string();
    js.push(".json");
    (PathBuf::from(st), PathBuf::from(js))
}

impl ProjectionHead {
    /// A freshly initialised head (PyTorch `Linear` init: uniform in ±1/√fan_in), deterministic for `seed`.
    /// `hidden == 0` gives a linear head.
    pub fn init(in_dim: usize, hidden: usize, out_dim: usize, seed: u64) -> Result<Self> {
        if in_dim == 0 || out_dim == 0 {
            return Err(FeatureError::InvalidArgument(format!(
                "projection head dimensions must be positive (in {in_dim}, out {out_dim})"
            )));
        }
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut layer = |fan_in: usize, fan_out: usize| -> Result<Layer> {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let w: Vec<f32> = (0..fan_in * fan_out).map(|_| rng.random_range(-bound..bound)).collect();
            let b: Vec<f32> = (0..fan_out).map(|_| rng.random_range(-bound..bound)).collect();
            Ok(Layer {
                weight: Tensor::from_vec(w, (fan_out, fan_in), &Device::Cpu)?,
                bias: Tensor::from_vec(b, fan_out, &Device::Cpu)?,
            })
        };
        let layers = if hidden == 0 {
            vec![layer(in_dim, out_dim)?]
        } else {
            vec![layer(in_dim, hidden)?, layer(hidden, out_dim)?]
        };
        Ok(ProjectionHead { out_dim, in_dim, hidden, layers, info: None })
    }

    /// Build a head from its tensors, named as in the artifact (`fc1.weight`, `fc1.bias`, optional
    /// `fc2.weight`, `fc2.bias`). Shapes are checked.
    pub fn from_tensors(tensors: &HashMap<String, Tensor>) -> Result<Self> {
        let get = |name: &str| -> Result<Tensor> {
            let t = tensors
                .get(name)
                .ok_or_else(|| FeatureError::ModelFormat(format!("projection head: tensor {name} is missing")))?;
            Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?)
        };
        let mut layers = vec![Layer { weight: get("fc1.weight")?, bias: get("fc1.bias")? }];
        if tensors.contains_key("fc2.weight") || tensors.contains_key("fc2.bias") {
            layers.push(Layer { weight: get("fc2.weight")?, bias: get("fc2.bias")? });
        }
        let mut prev: Option<usize> = None;
        for (i, l) in layers.iter().enumerate() {
            let (o, n) = l.weight.dims2().map_err(|_| {
                FeatureError::ModelFormat(format!("projection head: fc{}.weight is not a matrix", i + 1))
            })?;
            if l.bias.dims() != [o] {
                return Err(FeatureError::ModelFormat(format!(
                    "projection head: fc{}.bias has shape {:?}, expected [{o}]",
                    i + 1,
                    l.bias.dims()
                )));
            }
            if let Some(p) = prev {
                if p != n {
                    return Err(FeatureError::ModelFormat(format!(
                        "projection head: fc{} takes {n} inputs but fc{} gives {p}",
                        i + 1,
                        i
                    )));
                }
            }
            prev = Some(o);
        }
        let in_dim = layers[0].weight.dims()[1];
        let out_dim = layers[layers.len() - 1].weight.dims()[0];
        let hidden = if layers.len() == 2 { layers[0].weight.dims()[0] } else { 0 };
        Ok(ProjectionHead { out_dim, in_dim, hidden, layers, info: None })
    }

    /// The head's tensors, named as in the artifact.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut m = HashMap::new();
        for (i, l) in self.layers.iter().enumerate() {
            m.insert(format!("fc{}.weight", i + 1), l.weight.clone());
            m.insert(format!("fc{}.bias", i + 1), l.bias.clone());
        }
        m
    }

    /// A copy whose tensors own fresh storage and carry no autograd history (snapshots during training).
    pub fn detached_copy(&self) -> Result<Self> {
        let layers = self
            .layers
            .iter()
            .map(|l| Ok(Layer { weight: l.weight.detach().copy()?, bias: l.bias.detach().copy()? }))
            .collect::<Result<Vec<_>>>()?;
        Ok(ProjectionHead { layers, info: self.info.clone(), ..*self })
    }

    /// Load a head saved by training. `path` may name the `.safetensors` file, the `.json` file, or the
    /// common stem; both files must exist and agree.
    pub fn load(path: &Path) -> Result<Self> {
        let (st_path, json_path) = artifact_paths(path);
        let json = std::fs::read(&json_path).map_err(|source| FeatureError::Io { path: json_path.clone(), source })?;
        let info: HeadInfo = serde_json::from_slice(&json).map_err(|e| {
            FeatureError::ModelFormat(format!("{}: not a projection head description: {e}", json_path.display()))
        })?;
        if info.version != HEAD_FORMAT_VERSION {
            return Err(FeatureError::ModelFormat(format!(
                "{}: head format version {} is not supported (expected {HEAD_FORMAT_VERSION})",
                json_path.display(),
                info.version
            )));
        }
        if info.metric != "cosine" {
            return Err(FeatureError::ModelFormat(format!(
                "{}: head metric {:?} is not supported (expected \"cosine\")",
                json_path.display(),
                info.metric
            )));
        }
        let bytes = std::fs::read(&st_path).map_err(|source| FeatureError::Io { path: st_path.clone(), source })?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| FeatureError::ModelFormat(format!("{}: {e}", st_path.display())))?;
        let mut head = Self::from_tensors(&tensors)
            .map_err(|e| FeatureError::ModelFormat(format!("{}: {e}", st_path.display())))?;
        if (head.in_dim, head.hidden, head.out_dim) != (info.in_dim, info.hidden, info.out_dim) {
            return Err(FeatureError::ModelFormat(format!(
                "{}: tensors are {}→{}→{} but {} says {}→{}→{}",
                st_path.display(),
                head.in_dim,
                head.hidden,
                head.out_dim,
                json_path.display(),
                info.in_dim,
                info.hidden,
                info.out_dim
            )));
        }
        for (name, t) in head.tensors() {
            let v = t.flatten_all()?.to_vec1::<f32>()?;
            if v.iter().any(|x| !x.is_finite()) {
                return Err(FeatureError::ModelFormat(format!(
                    "{}: tensor {name} has non-finite values",
                    st_path.display()
                )));
            }
        }
        head.info = Some(info);
        Ok(head)
    }

    /// Save as `<path>.safetensors` + `<path>.json` (see [`artifact_paths`]); `info`'s dims are overwritten
    /// with the head's own. Returns the two paths written.
    pub fn save(&self, path: &Path, info: &HeadInfo) -> Result<(PathBuf, PathBuf)> {
        let (st_path, json_path) = artifact_paths(path);
        if let Some(dir) = st_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| FeatureError::Io { path: dir.to_path_buf(), source })?;
        }
        let mut info = info.clone();
        info.version = HEAD_FORMAT_VERSION;
        info.in_dim = self.in_dim;
        info.hidden = self.hidden;
        info.out_dim = self.out_dim;
        let tensors: HashMap<String, Tensor> =
            self.tensors().into_iter().map(|(k, t)| Ok((k, t.detach().contiguous()?))).collect::<Result<_>>()?;
        candle_core::safetensors::save(&tensors, &st_path)
            .map_err(|e| FeatureError::ModelFormat(format!("{}: cannot write: {e}", st_path.display())))?;
        let json = serde_json::to_vec_pretty(&info)
            .map_err(|e| FeatureError::InvalidArgument(format!("cannot serialise head description: {e}")))?;
        std::fs::write(&json_path, json).map_err(|source| FeatureError::Io { path: json_path.clone(), source })?;
        Ok((st_path, json_path))
    }

    /// Input dimension.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }
    /// Output dimension.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
    /// Hidden width (0 for a linear head).
    pub fn hidden(&self) -> usize {
        self.hidden
    }
    /// The description loaded with the head, if it came from an artifact.
    pub fn info(&self) -> Option<&HeadInfo> {
        self.info.as_ref()
    }

    /// Raw (unnormalized) output for a batch `x [n, in_dim]`; differentiable when the head's tensors are
    /// training variables.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = self.layers[0].forward(x)?;
        for l in &self.layers[1..] {
            h = l.forward(&h.relu()?)?;
        }
        Ok(h)
    }

    /// L2-normalized output for a batch `x [n, in_dim]`.
    pub fn forward_normalized(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        l2_normalize_rows(&self.forward(x)?)
    }

    /// Project one embedding; output is L2-normalized.
    pub fn apply(&self, embedding: &[f32]) -> Result<Vec<f32>> {
        Ok(self.apply_batch(&[embedding])?.pop().unwrap_or_default())
    }

    /// Project several embeddings at once; outputs are L2-normalized.
    pub fn apply_batch<V: AsRef<[f32]>>(&self, embeddings: &[V]) -> Result<Vec<Vec<f32>>> {
        if embeddings.is_empty() {
            return Ok(Vec::new());
        }
        let mut flat = Vec::with_capacity(embeddings.len() * self.in_dim);
        for (i, e) in embeddings.iter().enumerate() {
            let e = e.as_ref();
            if e.len() != self.in_dim {
                return Err(FeatureError::InvalidArgument(format!(
                    "projection head expects {}-d input, embedding {i} has {} values",
                    self.in_dim,
                    e.len()
                )));
            }
            flat.extend_from_slice(e);
        }
        let x = Tensor::from_vec(flat, (embeddings.len(), self.in_dim), &Device::Cpu)?;
        Ok(self.forward_normalized(&x)?.detach().to_vec2::<f32>()?)
    }
}

/// Divide each row by its L2 norm (rows of zeros stay zero).
pub(crate) fn l2_normalize_rows(y: &Tensor) -> candle_core::Result<Tensor> {
    let norm = (y.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
    y.broadcast_div(&norm)
}

/// The current time as RFC 3339 UTC (`2026-01-31T12:00:00Z`).
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// A feature extractor that runs a base extractor (the CNN) and then a projection head.
pub struct HeadExtractor {
    base: Box<dyn FeatureExtractor>,
    head: ProjectionHead,
    name: String,
}

impl HeadExtractor {
    /// Wrap `base` (whose vectors must match the head's input dimension) with `head`; the
    /// extractor is named `cnn+head`.
    pub fn new(base: Box<dyn FeatureExtractor>, head: ProjectionHead) -> Self {
        HeadExtractor { base, head, name: "cnn+head".into() }
    }

    /// The same extractor under another name (the registry names it after the head's file,
    /// e.g. `cnn-head.catalogue`, so that two heads can live side by side).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The head.
    pub fn head(&self) -> &ProjectionHead {
        &self.head
    }

    fn project(&self, mut f: Features) -> Result<Features> {
        match &f.vector {
            Embedding::Dense(v) => {
                f.vector = Embedding::Dense(self.head.apply(v)?);
                Ok(f)
            }
            Embedding::Binary(_) => Err(FeatureError::InvalidArgument(format!(
                "projection head needs dense vectors, but extractor {} gives binary ones",
                self.base.name()
            ))),
        }
    }
}

impl FeatureExtractor for HeadExtractor {
    fn name(&self) -> &str {
        &self.name
    }
    fn dim(&self) -> usize {
        self.head.out_dim
    }
    fn distance(&self) -> DistanceKind {
        DistanceKind::Cosine
    }
    fn extract(&self, image: &RgbImage) -> Result<Features> {
        self.project(self.base.extract(image)?)
    }
    fn extract_batch(&self, images: &[RgbImage]) -> Result<Vec<Features>> {
        self.base.extract_batch(images)?.into_iter().map(|f| self.project(f)).collect()
    }
    fn batch_size(&self) -> usize {
        self.base.batch_size()
    }
    fn min_input_side(&self) -> u32 {
        self.base.min_input_side()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> HeadInfo {
        HeadInfo {
            version: HEAD_FORMAT_VERSION,
            in_dim: 0,
            out_dim: 0,
            hidden: 0,
            metric: "cosine".into(),
            base: "cnn".into(),
            data_hash: "abc".into(),
            seed: 7,
            metrics: BTreeMap::from([("val_map".to_string(), 0.5)]),
            training: BTreeMap::new(),
            created: now_rfc3339(),
        }
    }

    #[test]
    fn artifact_paths_accept_stem_or_either_file() {
        for p in ["d/h", "d/h.safetensors", "d/h.json"] {
            let (a, b) = artifact_paths(Path::new(p));
            assert_eq!(a, Path::new("d/h.safetensors"));
            assert_eq!(b, Path::new("d/h.json"));
        }
        assert_eq!(artifact_paths(Path::new("h.v2")).0, Path::new("h.v2.safetensors"));
    }

    #[test]
    fn init_is_deterministic_and_output_is_unit_norm() {
        let a = ProjectionHead::init(16, 8, 4, 3).unwrap();
        let b = ProjectionHead::init(16, 8, 4, 3).unwrap();
        let c = ProjectionHead::init(16, 8, 4, 4).unwrap();
        let x: Vec<f32> = (0..16).map(|i| (i as f32 * 0.37).sin()).collect();
        let (ya, yb, yc) = (a.apply(&x).unwrap(), b.apply(&x).unwrap(), c.apply(&x).unwrap());
        assert_eq!(ya, yb);
        assert_ne!(ya, yc);
        assert_eq!(ya.len(), 4);
        let n: f32 = ya.iter().map(|v| v * v).sum();
        assert!((n - 1.0).abs() < 1e-5, "norm² {n}");
        assert_eq!((a.in_dim(), a.hidden(), a.out_dim()), (16, 8, 4));
    }

    #[test]
    fn save_load_round_trip_gives_identical_outputs() {
        let dir = tempfile::tempdir().unwrap();
        for hidden in [0, 12] {
            let head = ProjectionHead::init(10, hidden, 5, 11).unwrap();
            let path = dir.path().join(format!("sub/head{hidden}"));
            let (st, js) = head.save(&path, &info()).unwrap();
            assert!(st.exists() && js.exists());
            let loaded = ProjectionHead::load(&st).unwrap();
            let xs: Vec<Vec<f32>> = (0..6).map(|k| (0..10).map(|i| ((i * k) as f32).cos()).collect()).collect();
            assert_eq!(head.apply_batch(&xs).unwrap(), loaded.apply_batch(&xs).unwrap());
            let li = loaded.info().unwrap();
            assert_eq!((li.in_dim, li.hidden, li.out_dim), (10, hidden, 5));
            assert_eq!(li.metrics["val_map"], 0.5);
        }
    }

    #[test]
    fn bad_input_and_bad_artifacts_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let head = ProjectionHead::init(4, 0, 2, 1).unwrap();
        assert!(matches!(head.apply(&[1.0, 2.0]), Err(FeatureError::InvalidArgument(_))));
        // Missing files name the file.
        let err = ProjectionHead::load(&dir.path().join("nope")).unwrap_err();
        assert!(err.to_string().contains("nope.json"), "{err}");
        // Dims in the JSON that disagree with the tensors.
        let path = dir.path().join("h");
        head.save(&path, &info()).unwrap();
        let (_, js) = artifact_paths(&path);
        let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&js).unwrap()).unwrap();
        v["out_dim"] = 3.into();
        std::fs::write(&js, serde_json::to_vec(&v).unwrap()).unwrap();
        assert!(matches!(ProjectionHead::load(&path), Err(FeatureError::ModelFormat(_))));
        // A future version.
        v["out_dim"] = 2.into();
        v["version"] = 99.into();
        std::fs::write(&js, serde_json::to_vec(&v).unwrap()).unwrap();
        let err = ProjectionHead::load(&path).unwrap_err();
        assert!(err.to_string().contains("version 99"), "{err}");
        // Garbage tensors file.
        v["version"] = HEAD_FORMAT_VERSION.into();
        std::fs::write(&js, serde_json::to_vec(&v).unwrap()).unwrap();
        std::fs::write(artifact_paths(&path).0, b"not safetensors").unwrap();
        assert!(matches!(ProjectionHead::load(&path), Err(FeatureError::ModelFormat(_))));
    }

    #[test]
    fn rfc3339_has_the_right_shape() {
        let s = now_rfc3339();
        assert_eq!(s.len(), 20, "{s}");
        assert!(s.starts_with("20") && s.ends_with('Z'), "{s}");
    }
}
