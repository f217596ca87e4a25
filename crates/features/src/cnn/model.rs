//! The EfficientNet-Lite network: weights from the converted safetensors file with BatchNorm
//! folded into the convolutions, and the forward pass on channels-last batches.
//!
//! Architecture (EfficientNet-Lite = EfficientNet without squeeze-excite, with ReLU6, a fixed
//! 32-channel stem and 1280-channel head): stem 3×3/2 conv → MBConv blocks → 1×1 head conv →
//! global average pool (the embedding) → linear classifier over the 1000 ImageNet classes.
//! Block channels and kernel sizes are read from the weights; the stage layout (repeats and
//! strides) comes from the variant.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use super::device::ComputeDevice;
use super::kernels::{ConvGeometry, DepthwiseOp, PointwiseOp, StemOp};
use super::portable;
use crate::error::{FeatureError, Result};

/// BatchNorm epsilon of the TensorFlow-trained checkpoints.
const BN_EPS: f32 = 1e-3;
/// Stride of the stem convolution.
const STEM_STRIDE: usize = 2;
/// Kernel size and stride of each of the 7 stages.
const STAGE_KERNELS: [usize; 7] = [3, 3, 5, 3, 5, 5, 3];
const STAGE_STRIDES: [usize; 7] = [1, 2, 2, 2, 1, 2, 1];

/// Named float tensors in logical PyTorch layout.
struct Weights {
    tensors: HashMap<String, (Vec<usize>, Vec<f32>)>,
    file: String,
}

impl Weights {
    fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| FeatureError::Io { path: path.to_path_buf(), source: e })?;
        let file = path.display().to_string();
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| FeatureError::ModelFormat(format!("{file}: not a safetensors file: {e}")))?;
        let mut tensors = HashMap::new();
        for (name, view) in st.tensors() {
            if view.dtype() != safetensors::Dtype::F32 {
                return Err(FeatureError::ModelFormat(format!("{file}: {name} is {:?}, expected F32", view.dtype())));
            }
            let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            tensors.insert(name, (view.shape().to_vec(), data));
        }
        Ok(Weights { tensors, file })
    }

    fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn get(&self, name: &str, shape_len: usize) -> Result<(&[usize], &[f32])> {
        let (shape, data) = self
            .tensors
            .get(name)
            .ok_or_else(|| FeatureError::ModelFormat(format!("{}: missing tensor {name}", self.file)))?;
        if shape.len() != shape_len {
            return Err(FeatureError::ModelFormat(format!(
                "{}: {name} has shape {shape:?}, expected {shape_len} dimensions",
                self.file
            )));
        }
        Ok((shape, data))
    }

    /// Per-output-channel (scale, shift) of an inference-mode BatchNorm.
    fn batchnorm(&self, prefix: &str, channels: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        let mut parts = Vec::with_capacity(4);
        for p in ["weight", "bias", "running_mean", "running_var"] {
            let (shape, data) = self.get(&format!("{prefix}.{p}"), 1)?;
            if shape[0] != channels {
                return Err(FeatureError::ModelFormat(format!(
                    "{}: {prefix}.{p} has {} channels, the convolution before it {channels}",
                    self.file, shape[0]
                )));
            }
            parts.push(data);
        }
        let scale: Vec<f32> = parts[0].iter().zip(parts[3]).map(|(g, v)| g / (v + BN_EPS).sqrt()).collect();
        let shift = parts[1].iter().zip(parts[2]).zip(&scale).map(|((b, m), s)| b - m * s).collect();
        Ok((scale, shift))
    }

    /// A conv `[cout, cin, k, k]` followed by BatchNorm `bn`, folded and laid out as
    /// `[k][k][cin][cout]` (HWIO) plus bias.
    fn conv_bn(&self, conv: &str, bn: &str) -> Result<FoldedConv> {
        let (shape, w) = self.get(&format!("{conv}.weight"), 4)?;
        let (cout, cin, kh, kw) = (shape[0], shape[1], shape[2], shape[3]);
        if kh != kw {
            return Err(FeatureError::ModelFormat(format!("{}: {conv} kernel is {kh}×{kw}", self.file)));
        }
        let (scale, shift) = self.batchnorm(bn, cout)?;
        let k = kh;
        let mut out = vec![0f32; w.len()];
        for o in 0..cout {
            for i in 0..cin {
                for y in 0..k {
                    for x in 0..k {
                        out[((y * k + x) * cin + i) * cout + o] = w[((o * cin + i) * k + y) * k + x] * scale[o];
                    }
                }
            }
        }
        Ok(FoldedConv { weight: out, bias: shift, cout, cin, k })
    }
}

/// A convolution with its BatchNorm folded in, weights `[k][k][cin][cout]`.
struct FoldedConv {
    weight: Vec<f32>,
    bias: Vec<f32>,
    cout: usize,
    cin: usize,
    k: usize,
}

/// A 1×1 convolution as a `[cin, cout]` matrix + bias (+ ReLU6).
struct Pointwise {
    /// `[cin][cout]`.
    weight: Vec<f32>,
    bias: Vec<f32>,
    cin: usize,
    cout: usize,
    relu6: bool,
}

impl Pointwise {
    fn load(w: &Weights, conv: &str, bn: &str, relu6: bool) -> Result<Self> {
        let FoldedConv { weight, bias, cout, cin, k } = w.conv_bn(conv, bn)?;
        if k != 1 {
            return Err(FeatureError::ModelFormat(format!("{}: {conv} is {k}×{k}, expected 1×1", w.file)));
        }
        Ok(Pointwise { weight, bias, cin, cout, relu6 })
    }

    /// `x`: `[rows, cin]` → `[rows, cout]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.apply_op1_no_bwd(&PointwiseOp {
            weight: &self.weight,
            bias: &self.bias,
            cin: self.cin,
            relu6: self.relu6,
        })?)
    }
}

/// A depthwise convolution, `[k][k][c]` + bias, followed by ReLU6.
struct Depthwise {
    weight: Vec<f32>,
    bias: Vec<f32>,
    c: usize,
    k: usize,
    stride: usize,
}

/// One MBConv block (no squeeze-excite in the Lite variants).
struct Block {
    expand: Option<Pointwise>,
    depthwise: Depthwise,
    project: Pointwise,
    residual: bool,
}

/// Activations: a contiguous `[n, h, w, c]` tensor.
struct Act {
    t: Tensor,
    n: usize,
    h: usize,
    w: usize,
    c: usize,
}

impl Act {
    fn rows(&self) -> Result<Tensor> {
        Ok(self.t.reshape((self.n * self.h * self.w, self.c))?)
    }
}

/// Result of running the network on a batch.
pub struct NetOutput {
    /// Global-average-pooled features, `[n][1280]`, not normalized.
    pub pooled: Vec<Vec<f32>>,
    /// Classifier logits, `[n][classes]`.
    pub logits: Vec<Vec<f32>>,
}

/// The head's activations for a batch: `n × h × w` cells of `c` channels, as rows
/// (`n·h·w × c`, row-major over image, row, column).
pub struct FeatureMap {
    /// The activations, `n·h·w × c`, on the network's device.
    pub t: Tensor,
    /// Images in the batch.
    pub n: usize,
    /// Cells per column.
    pub h: usize,
    /// Cells per row.
    pub w: usize,
    /// Channels (the embedding dimension).
    pub c: usize,
}

/// The loaded network.
pub struct EfficientNetLite {
    stem_w: Vec<f32>,
    stem_b: Vec<f32>,
    stem_k: usize,
    stem_c: usize,
    blocks: Vec<Block>,
    head: Pointwise,
    fc_w: Tensor,
    fc_b: Tensor,
    /// Number of classes of the classifier.
    pub classes: usize,
    /// The device-generic graph, when the network runs anywhere but on the fused CPU kernels.
    portable: Option<PortableNet>,
    device: ComputeDevice,
}

impl EfficientNetLite {
    /// Load from a converted safetensors file; `repeats` is the number of blocks per stage.
    pub fn load(path: &Path, repeats: &[usize; 7]) -> Result<Self> {
        let w = Weights::load(path)?;
        let FoldedConv { weight: stem_w, bias: stem_b, cout: stem_c, cin: stem_cin, k: stem_k } =
            w.conv_bn("_conv_stem", "_bn0")?;
        if stem_cin != 3 {
            return Err(FeatureError::ModelFormat(format!("{}: stem takes {stem_cin} channels, not 3", w.file)));
        }
        let mut blocks = Vec::new();
        let mut cin = stem_c;
        let mut idx = 0;
        for (stage, &r) in repeats.iter().enumerate() {
            for rep in 0..r {
                let p = format!("_blocks.{idx}");
                let expand = if w.has(&format!("{p}._expand_conv.weight")) {
                    Some(Pointwise::load(&w, &format!("{p}._expand_conv"), &format!("{p}._bn0"), true)?)
                } else {
                    None
                };
                let mid = expand.as_ref().map_or(cin, |e| e.cout);
                if let Some(e) = &expand {
                    if e.cin != cin {
                        return Err(FeatureError::ModelFormat(format!(
                            "{}: {p} expands {} channels, previous block gives {cin}",
                            w.file, e.cin
                        )));
                    }
                }
                let (dw_shape, dw) = w.get(&format!("{p}._depthwise_conv.weight"), 4)?;
                let (c, k) = (dw_shape[0], dw_shape[2]);
                if dw_shape[1] != 1 || dw_shape[3] != k || c != mid || k != STAGE_KERNELS[stage] {
                    return Err(FeatureError::ModelFormat(format!(
                        "{}: {p}._depthwise_conv.weight has shape {dw_shape:?}, expected [{mid}, 1, {k0}, {k0}]",
                        w.file,
                        k0 = STAGE_KERNELS[stage]
                    )));
                }
                let (scale, bias) = w.batchnorm(&format!("{p}._bn1"), c)?;
                let mut weight = vec![0f32; c * k * k];
                for ch in 0..c {
                    for t in 0..k * k {
                        weight[t * c + ch] = dw[ch * k * k + t] * scale[ch];
                    }
                }
                let stride = if rep == 0 { STAGE_STRIDES[stage] } else { 1 };
                let project = Pointwise::load(&w, &format!("{p}._project_conv"), &format!("{p}._bn2"), false)?;
                if project.cin != c {
                    return Err(FeatureError::ModelFormat(format!(
                        "{}: {p} projects {} channels, not {c}",
                        w.file, project.cin
                    )));
                }
                let residual = stride == 1 && cin == project.cout;
                cin = project.cout;
                blocks.push(Block { expand, depthwise: Depthwise { weight, bias, c, k, stride }, project, residual });
                idx += 1;
            }
        }
        if w.has(&format!("_blocks.{idx}._depthwise_conv.weight")) {
            return Err(FeatureError::ModelFormat(format!(
                "{}: more blocks than the {idx} this variant has (wrong variant?)",
                w.file
            )));
        }
        let head = Pointwise::load(&w, "_conv_head", "_bn1", true)?;
        if head.cin != cin {
            return Err(FeatureError::ModelFormat(format!("{}: head takes {} channels, not {cin}", w.file, head.cin)));
        }
        let (fc_shape, fc) = w.get("_fc.weight", 2)?;
        let (classes, feat) = (fc_shape[0], fc_shape[1]);
        if feat != head.cout {
            return Err(FeatureError::ModelFormat(format!(
                "{}: _fc takes {feat} features, head gives {}",
                w.file, head.cout
            )));
        }
        let (fcb_shape, fcb) = w.get("_fc.bias", 1)?;
        if fcb_shape[0] != classes {
            return Err(FeatureError::ModelFormat(format!(
                "{}: _fc.bias has {} classes, not {classes}",
                w.file, fcb_shape[0]
            )));
        }
        // [classes, feat] → [feat, classes] so that logits = pooled · fc_w.
        let fc_w = Tensor::from_slice(fc, (classes, feat), &Device::Cpu)?.t()?.contiguous()?;
        let fc_b = Tensor::from_slice(fcb, (1, classes), &Device::Cpu)?;
        Ok(EfficientNetLite {
            stem_w,
            stem_b,
            stem_k,
            stem_c,
            blocks,
            head,
            fc_w,
            fc_b,
            classes,
            portable: None,
            device: ComputeDevice::Cpu,
        })
    }

    /// Run on `device` from now on: anything but [`ComputeDevice::Cpu`] copies the weights to
    /// that device and runs the device-generic graph ([`portable`]).
    pub fn set_device(&mut self, device: ComputeDevice) -> Result<()> {
        self.portable = match device.candle_device()? {
            None => None,
            Some(dev) => Some(PortableNet::new(self, &dev)?),
        };
        self.device = device;
        Ok(())
    }

    /// The device the network runs on.
    pub fn device(&self) -> ComputeDevice {
        self.device
    }

    /// Embedding dimension (channels of the head).
    pub fn dim(&self) -> usize {
        self.head.cout
    }

    /// Run on an NHWC batch of normalized pixels (`n × size × size × 3` values).
    pub fn forward(&self, input: Vec<f32>, n: usize, size: usize) -> Result<NetOutput> {
        if n == 0 {
            return Ok(NetOutput { pooled: vec![], logits: vec![] });
        }
        let map = self.feature_map(input, n, size, size)?;
        let pooled = map.t.reshape((n, map.h * map.w, map.c))?.mean(1)?;
        // The classifier's weights live on the device the map is on.
        let (fc_w, fc_b) = match &self.portable {
            Some(p) => (&p.fc_w, &p.fc_b),
            None => (&self.fc_w, &self.fc_b),
        };
        let logits = pooled.matmul(fc_w)?.broadcast_add(fc_b)?;
        Ok(NetOutput { pooled: pooled.to_vec2()?, logits: logits.to_vec2()? })
    }

    /// The head's activations (after its ReLU6, before pooling) for an NHWC batch of `n`
    /// images of `height × width` normalized pixels: a map of `n × h × w × dim` values, one
    /// cell per 32 × 32 input pixels. [`EfficientNetLite::forward`] averages it over the cells;
    /// regional descriptors ([`super::regions`]) average windows of it.
    pub fn feature_map(&self, input: Vec<f32>, n: usize, height: usize, width: usize) -> Result<FeatureMap> {
        if input.len() != n * height * width * 3 || n == 0 {
            return Err(FeatureError::InvalidArgument(format!(
                "CNN input has {} values, expected {n}×{height}×{width}×3 with n > 0",
                input.len()
            )));
        }
        if let Some(p) = &self.portable {
            return p.feature_map(input, n, height, width);
        }
        let x = Tensor::from_vec(input, (n, height, width, 3), &Device::Cpu)?;
        let geom = ConvGeometry { n, h: height, w: width, k: self.stem_k, stride: STEM_STRIDE };
        let (ho, wo, _, _) = geom.output();
        let t = x.apply_op1_no_bwd(&StemOp { geom, cout: self.stem_c, weight: &self.stem_w, bias: &self.stem_b })?;
        let mut act = Act { t, n, h: ho, w: wo, c: self.stem_c };
        for b in &self.blocks {
            act = self.block(b, act)?;
        }
        let head = self.head.forward(&act.rows()?)?;
        Ok(FeatureMap { t: head, n, h: act.h, w: act.w, c: self.head.cout })
    }

    fn block(&self, b: &Block, x: Act) -> Result<Act> {
        let expanded = match &b.expand {
            Some(e) => e.forward(&x.rows()?)?,
            None => x.t.clone(),
        };
        let d = &b.depthwise;
        let geom = ConvGeometry { n: x.n, h: x.h, w: x.w, k: d.k, stride: d.stride };
        let (ho, wo, _, _) = geom.output();
        let expanded = expanded.reshape((x.n, x.h, x.w, d.c))?;
        let dw = expanded.apply_op1_no_bwd(&DepthwiseOp { geom, c: d.c, weight: &d.weight, bias: &d.bias })?;
        drop(expanded);
        let rows = dw.reshape((x.n * ho * wo, d.c))?;
        let mut y = b.project.forward(&rows)?;
        if b.residual {
            y = (y + x.rows()?)?;
        }
        let c = b.project.cout;
        Ok(Act { t: y.reshape((x.n, ho, wo, c))?, n: x.n, h: ho, w: wo, c })
    }
}

/// One MBConv block of the device-generic graph.
struct PortableBlock {
    expand: Option<portable::Pointwise>,
    depthwise: portable::Depthwise,
    project: portable::Pointwise,
    residual: bool,
}

/// The network as device-generic tensor ops, weights on one candle device.
struct PortableNet {
    device: Device,
    stem: portable::Stem,
    blocks: Vec<PortableBlock>,
    head: portable::Pointwise,
    fc_w: Tensor,
    fc_b: Tensor,
}

impl PortableNet {
    fn new(net: &EfficientNetLite, device: &Device) -> Result<Self> {
        let pointwise = |p: &Pointwise| portable::Pointwise::new(&p.weight, p.cin, &p.bias, p.relu6, device);
        let blocks = net
            .blocks
            .iter()
            .map(|b| {
                let d = &b.depthwise;
                Ok(PortableBlock {
                    expand: b.expand.as_ref().map(pointwise).transpose()?,
                    depthwise: portable::Depthwise::new(&d.weight, &d.bias, d.k, d.stride, device)?,
                    project: pointwise(&b.project)?,
                    residual: b.residual,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PortableNet {
            device: device.clone(),
            stem: portable::Stem::new(&net.stem_w, &net.stem_b, net.stem_k, STEM_STRIDE, device)?,
            blocks,
            head: pointwise(&net.head)?,
            fc_w: net.fc_w.to_device(device)?,
            fc_b: net.fc_b.to_device(device)?,
        })
    }

    /// Same contract as [`EfficientNetLite::feature_map`] (input already checked).
    fn feature_map(&self, input: Vec<f32>, n: usize, height: usize, width: usize) -> Result<FeatureMap> {
        let x = Tensor::from_vec(input, (n, height, width, 3), &self.device)?;
        let mut t = self.stem.forward(&x)?;
        for b in &self.blocks {
            let (_, h, w, c) = t.dims4()?;
            let rows = t.reshape((n * h * w, c))?;
            let expanded = match &b.expand {
                Some(e) => e.forward(&rows)?,
                None => rows.clone(),
            };
            let mid = expanded.dim(1)?;
            let dw = b.depthwise.forward(&expanded.reshape((n, h, w, mid))?)?;
            let (_, ho, wo, _) = dw.dims4()?;
            let mut y = b.project.forward(&dw.reshape((n * ho * wo, mid))?)?;
            if b.residual {
                y = (y + rows)?;
            }
            let cout = y.dim(1)?;
            t = y.reshape((n, ho, wo, cout))?;
        }
        let (_, h, w, c) = t.dims4()?;
        let head = self.head.forward(&t.reshape((n * h * w, c))?)?;
        let c = head.dim(1)?;
        Ok(FeatureMap { t: head, n, h, w, c })
    }
}
