//! The device-generic forward pass: the same network written with candle tensor ops only
//! (zero padding, strided views, broadcast multiply-add, matmul), so it runs on any candle
//! device — an NVIDIA GPU when built with the `cuda` feature.
//!
//! The fused kernels in [`super::kernels`] stay the CPU path (about 4× faster there). On
//! the CPU this module is the reference that checks the GPU graph: the test suite runs it on
//! [`ComputeDevice::CpuReference`](super::ComputeDevice) and compares its embeddings with the
//! fused path's.
//!
//! Convolutions with TensorFlow "SAME" padding are built from taps: the input is zero-padded
//! and split by the stride into `[n, rows, stride, cols, stride, c]`, so that the input pixels
//! one kernel tap (dy, dx) sees for every output pixel form a plain view of it. A depthwise
//! convolution is then Σ over taps of view × per-channel weight, and the stem convolution a
//! matmul of the concatenated taps (im2col).

use candle_core::{Device, Tensor};

use super::kernels::same_pad;
use crate::error::{FeatureError, Result};

/// A k×k convolution's taps over a padded, stride-split input.
struct Taps {
    /// `[n, rows, stride, cols, stride, c]`.
    split: Tensor,
    stride: usize,
    ho: usize,
    wo: usize,
}

impl Taps {
    /// Pad an `[n, h, w, c]` tensor for a SAME k×k convolution with `stride`, and split it.
    fn new(x: &Tensor, k: usize, stride: usize) -> Result<Self> {
        let (n, h, w, c) = x.dims4()?;
        let (ho, pt) = same_pad(h, k, stride);
        let (wo, pl) = same_pad(w, k, stride);
        // Tap dy reads padded rows dy + stride·i for i < ho, i.e. group i + dy/stride, phase
        // dy % stride; so the padded height is a whole number of groups, enough for the last tap.
        let (rows, cols) = (ho + (k - 1) / stride, wo + (k - 1) / stride);
        let (pb, pr) = match ((rows * stride).checked_sub(pt + h), (cols * stride).checked_sub(pl + w)) {
            (Some(pb), Some(pr)) => (pb, pr),
            _ => {
                return Err(FeatureError::Inference(format!(
                    "convolution geometry {h}×{w}, kernel {k}, stride {stride} does not fit its padding"
                )))
            }
        };
        let padded = x.pad_with_zeros(1, pt, pb)?.pad_with_zeros(2, pl, pr)?;
        let split = padded.reshape((n, rows, stride, cols, stride, c))?;
        Ok(Taps { split, stride, ho, wo })
    }

    /// The `[n, ho, wo, c]` view of the input pixels that tap (dy, dx) multiplies.
    fn tap(&self, dy: usize, dx: usize) -> Result<Tensor> {
        let s = self.stride;
        Ok(self
            .split
            .narrow(1, dy / s, self.ho)?
            .narrow(2, dy % s, 1)?
            .narrow(3, dx / s, self.wo)?
            .narrow(4, dx % s, 1)?
            .squeeze(4)?
            .squeeze(2)?)
    }
}

/// Clamp to [0, 6].
fn relu6(x: &Tensor) -> Result<Tensor> {
    Ok(x.clamp(0f32, 6f32)?)
}

/// The stem: dense k×k convolution of a 3-channel image + bias + ReLU6, as im2col + matmul.
pub(super) struct Stem {
    /// `[k·k·cin, cout]`, rows in (ky, kx, cin) order.
    weight: Tensor,
    /// `[cout]`.
    bias: Tensor,
    k: usize,
    stride: usize,
}

impl Stem {
    /// From folded weights laid out `[k][k][cin][cout]`.
    pub(super) fn new(weight: &[f32], bias: &[f32], k: usize, stride: usize, device: &Device) -> Result<Self> {
        let cout = bias.len();
        Ok(Stem {
            weight: Tensor::from_slice(weight, (weight.len() / cout, cout), device)?,
            bias: Tensor::from_slice(bias, cout, device)?,
            k,
            stride,
        })
    }

    /// `[n, h, w, cin]` → `[n, ho, wo, cout]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let taps = Taps::new(x, self.k, self.stride)?;
        let cols = (0..self.k * self.k).map(|t| taps.tap(t / self.k, t % self.k)).collect::<Result<Vec<_>>>()?;
        let cols = Tensor::cat(&cols, 3)?;
        let rows = cols.reshape((n * taps.ho * taps.wo, cols.dim(3)?))?;
        let y = rows.matmul(&self.weight)?.broadcast_add(&self.bias)?;
        relu6(&y.reshape((n, taps.ho, taps.wo, self.bias.dim(0)?))?)
    }
}

/// Depthwise k×k convolution + bias + ReLU6.
pub(super) struct Depthwise {
    /// `[k·k, c]`.
    weight: Tensor,
    /// `[c]`.
    bias: Tensor,
    k: usize,
    stride: usize,
}

impl Depthwise {
    /// From folded weights laid out `[k][k][c]`.
    pub(super) fn new(weight: &[f32], bias: &[f32], k: usize, stride: usize, device: &Device) -> Result<Self> {
        Ok(Depthwise {
            weight: Tensor::from_slice(weight, (k * k, bias.len()), device)?,
            bias: Tensor::from_slice(bias, bias.len(), device)?,
            k,
            stride,
        })
    }

    /// `[n, h, w, c]` → `[n, ho, wo, c]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let taps = Taps::new(x, self.k, self.stride)?;
        let mut acc: Option<Tensor> = None;
        for t in 0..self.k * self.k {
            let term = taps.tap(t / self.k, t % self.k)?.broadcast_mul(&self.weight.get(t)?)?;
            acc = Some(match acc {
                Some(a) => (a + term)?,
                None => term,
            });
        }
        let acc = acc.ok_or_else(|| FeatureError::Inference("depthwise convolution with no taps".into()))?;
        relu6(&acc.broadcast_add(&self.bias)?)
    }
}

/// A 1×1 convolution: `[rows, cin]` · `[cin, cout]` + bias (+ ReLU6).
pub(super) struct Pointwise {
    weight: Tensor,
    bias: Tensor,
    relu6: bool,
}

impl Pointwise {
    /// `weight` is `[cin][cout]` row-major; it is copied to `device`.
    pub(super) fn new(weight: &[f32], cin: usize, bias: &[f32], relu6: bool, device: &Device) -> Result<Self> {
        let weight = Tensor::from_slice(weight, (cin, bias.len()), device)?;
        Ok(Pointwise { weight, bias: Tensor::from_slice(bias, bias.len(), device)?, relu6 })
    }

    /// `[rows, cin]` → `[rows, cout]`.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight)?.broadcast_add(&self.bias)?;
        if self.relu6 {
            relu6(&y)
        } else {
            Ok(y)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cnn::kernels::{ConvGeometry, DepthwiseOp, StemOp};

    fn pseudo_random(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).max(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a.len(), b.len());
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
    }

    /// Every geometry the network has (kernel 3 and 5, stride 1 and 2), on odd and even sizes:
    /// the tap construction agrees with the fused CPU kernel.
    #[test]
    fn depthwise_taps_match_fused_kernel() {
        let dev = Device::Cpu;
        for (h, w) in [(7, 7), (8, 6), (14, 14), (1, 1), (2, 3)] {
            for k in [3, 5] {
                for stride in [1, 2] {
                    let (n, c) = (2, 5);
                    let x = pseudo_random(n * h * w * c, (h * 31 + w * 7 + k + stride) as u32);
                    let weight = pseudo_random(k * k * c, 9);
                    let bias = pseudo_random(c, 4);
                    let geom = ConvGeometry { n, h, w, k, stride };
                    let xt = Tensor::from_vec(x, (n, h, w, c), &dev).unwrap();
                    let fused = xt.apply_op1_no_bwd(&DepthwiseOp { geom, c, weight: &weight, bias: &bias }).unwrap();
                    let portable = Depthwise::new(&weight, &bias, k, stride, &dev).unwrap().forward(&xt).unwrap();
                    assert_eq!(fused.dims(), portable.dims(), "{h}×{w} k{k} s{stride}");
                    let d = max_abs_diff(&fused, &portable);
                    assert!(d < 1e-5, "{h}×{w} k{k} s{stride}: max difference {d}");
                }
            }
        }
    }

    #[test]
    fn stem_im2col_matches_fused_kernel() {
        let dev = Device::Cpu;
        for (h, w) in [(9, 9), (10, 12), (224, 224)] {
            let (n, k, stride, cout) = (2, 3, 2, 8);
            let x = pseudo_random(n * h * w * 3, (h + w) as u32);
            let weight = pseudo_random(k * k * 3 * cout, 3);
            let bias = pseudo_random(cout, 5);
            let geom = ConvGeometry { n, h, w, k, stride };
            let xt = Tensor::from_vec(x, (n, h, w, 3), &dev).unwrap();
            let fused = xt.apply_op1_no_bwd(&StemOp { geom, cout, weight: &weight, bias: &bias }).unwrap();
            let portable = Stem::new(&weight, &bias, k, stride, &dev).unwrap().forward(&xt).unwrap();
            assert_eq!(fused.dims(), portable.dims());
            let d = max_abs_diff(&fused, &portable);
            assert!(d < 1e-4, "{h}×{w}: max difference {d}");
        }
    }
}
