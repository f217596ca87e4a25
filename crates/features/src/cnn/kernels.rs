//! Fused CPU kernels run as candle custom ops, on channels-last (NHWC) activations:
//! the stem convolution, depthwise convolution (+bias+ReLU6), and the pointwise (1×1)
//! convolutions as matrix products (faer, AVX-512 where available; candle's `gemm` stops at
//! AVX2 on stable Rust) with the bias (+ReLU6) applied per chunk while it is in cache.
//! candle's grouped `conv2d` splits a depthwise convolution into one convolution per channel,
//! ~20× slower than this channels-last loop, which vectorizes over channels and runs in
//! parallel (rayon) over batch × output rows.
//!
//! Padding is TensorFlow's "SAME": output = ceil(input / stride), the total padding split with
//! the extra pixel on the bottom/right.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape};
use rayon::prelude::*;

/// TensorFlow "SAME" padding: (output size, padding before).
pub fn same_pad(input: usize, kernel: usize, stride: usize) -> (usize, usize) {
    let out = input.div_ceil(stride);
    let total = ((out - 1) * stride + kernel).saturating_sub(input);
    (out, total / 2)
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else { candle_core::bail!("{op}: expected f32 input") };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("{op}: expected a contiguous input")
    };
    Ok(&data[start..end])
}

/// Whether the CPU has AVX2 + FMA (checked once).
fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static FMA: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *FMA.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `acc += x * w`, elementwise; fused multiply-add when `FMA`.
#[inline(always)]
fn axpy<const FMA: bool>(acc: &mut [f32], x: &[f32], w: &[f32]) {
    for ((a, &x), &w) in acc.iter_mut().zip(x).zip(w) {
        *a = if FMA { x.mul_add(w, *a) } else { *a + x * w };
    }
}

/// `acc += s * w`, elementwise.
#[inline(always)]
fn axpy_scalar<const FMA: bool>(acc: &mut [f32], s: f32, w: &[f32]) {
    for (a, &w) in acc.iter_mut().zip(w) {
        *a = if FMA { s.mul_add(w, *a) } else { *a + s * w };
    }
}

#[inline(always)]
fn relu6(v: &mut [f32]) {
    for x in v {
        *x = x.clamp(0.0, 6.0);
    }
}

/// Geometry of a convolution on an NHWC batch.
#[derive(Debug, Clone, Copy)]
pub struct ConvGeometry {
    /// Batch size.
    pub n: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Kernel size.
    pub k: usize,
    /// Stride.
    pub stride: usize,
}

impl ConvGeometry {
    /// Output (height, width, pad_top, pad_left).
    pub fn output(&self) -> (usize, usize, usize, usize) {
        let (ho, pt) = same_pad(self.h, self.k, self.stride);
        let (wo, pl) = same_pad(self.w, self.k, self.stride);
        (ho, wo, pt, pl)
    }
}

/// Depthwise k×k convolution + bias + ReLU6, channels-last.
/// Weights are `[k][k][c]`, bias `[c]`.
pub struct DepthwiseOp<'a> {
    /// Geometry of the input.
    pub geom: ConvGeometry,
    /// Channels.
    pub c: usize,
    /// Weights (BatchNorm folded in), `[k][k][c]`.
    pub weight: &'a [f32],
    /// Bias (BatchNorm folded in), `[c]`.
    pub bias: &'a [f32],
}

impl DepthwiseOp<'_> {
    #[inline(always)]
    fn row<const FMA: bool>(&self, x: &[f32], img: usize, oy: usize, out: &mut [f32]) {
        let ConvGeometry { h, w, k, stride, .. } = self.geom;
        let c = self.c;
        let (_, wo, pt, pl) = self.geom.output();
        for ox in 0..wo {
            let acc = &mut out[ox * c..(ox + 1) * c];
            acc.copy_from_slice(self.bias);
            for ky in 0..k {
                let iy = (oy * stride + ky) as isize - pt as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let row_base = (img * h + iy as usize) * w;
                for kx in 0..k {
                    let ix = (ox * stride + kx) as isize - pl as isize;
                    if ix < 0 || ix >= w as isize {
                        continue;
                    }
                    let p = (row_base + ix as usize) * c;
                    axpy::<FMA>(acc, &x[p..p + c], &self.weight[(ky * k + kx) * c..(ky * k + kx + 1) * c]);
                }
            }
            relu6(acc);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_fma(&self, x: &[f32], img: usize, oy: usize, out: &mut [f32]) {
        self.row::<true>(x, img, oy, out)
    }

    fn run(&self, x: &[f32]) -> Vec<f32> {
        let (ho, wo, _, _) = self.geom.output();
        let row_len = wo * self.c;
        let mut out = vec![0f32; self.geom.n * ho * row_len];
        let fma = has_fma();
        out.par_chunks_mut(row_len).enumerate().for_each(|(r, o)| {
            let (img, oy) = (r / ho, r % ho);
            #[cfg(target_arch = "x86_64")]
            if fma {
                // SAFETY: the CPU supports avx2 and fma (checked at run time).
                unsafe { self.row_fma(x, img, oy, o) };
                return;
            }
            let _ = fma;
            self.row::<false>(x, img, oy, o)
        });
        out
    }
}

impl CustomOp1 for DepthwiseOp<'_> {
    fn name(&self) -> &'static str {
        "depthwise-bias-relu6"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, self.name())?;
        let ConvGeometry { n, h, w, k, .. } = self.geom;
        if x.len() != n * h * w * self.c || self.weight.len() != k * k * self.c || self.bias.len() != self.c {
            candle_core::bail!(
                "depthwise: input of {} values does not match {:?} × {} channels",
                x.len(),
                self.geom,
                self.c
            )
        }
        let (ho, wo, _, _) = self.geom.output();
        Ok((CpuStorage::F32(self.run(x)), Shape::from((n, ho, wo, self.c))))
    }
}

/// The stem: a dense k×k convolution on a 3-channel NHWC image + bias + ReLU6.
/// Weights are `[k][k][3][cout]`.
pub struct StemOp<'a> {
    /// Geometry of the input.
    pub geom: ConvGeometry,
    /// Output channels.
    pub cout: usize,
    /// Weights (BatchNorm folded in), `[k][k][cin][cout]`.
    pub weight: &'a [f32],
    /// Bias (BatchNorm folded in), `[cout]`.
    pub bias: &'a [f32],
}

const STEM_CIN: usize = 3;

impl StemOp<'_> {
    #[inline(always)]
    fn row<const FMA: bool>(&self, x: &[f32], img: usize, oy: usize, out: &mut [f32]) {
        let ConvGeometry { h, w, k, stride, .. } = self.geom;
        let co = self.cout;
        let (_, wo, pt, pl) = self.geom.output();
        for ox in 0..wo {
            let acc = &mut out[ox * co..(ox + 1) * co];
            acc.copy_from_slice(self.bias);
            for ky in 0..k {
                let iy = (oy * stride + ky) as isize - pt as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                for kx in 0..k {
                    let ix = (ox * stride + kx) as isize - pl as isize;
                    if ix < 0 || ix >= w as isize {
                        continue;
                    }
                    let p = ((img * h + iy as usize) * w + ix as usize) * STEM_CIN;
                    for ci in 0..STEM_CIN {
                        let wb = ((ky * k + kx) * STEM_CIN + ci) * co;
                        axpy_scalar::<FMA>(acc, x[p + ci], &self.weight[wb..wb + co]);
                    }
                }
            }
            relu6(acc);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_fma(&self, x: &[f32], img: usize, oy: usize, out: &mut [f32]) {
        self.row::<true>(x, img, oy, out)
    }
}

impl CustomOp1 for StemOp<'_> {
    fn name(&self) -> &'static str {
        "stem-conv-bias-relu6"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, self.name())?;
        let ConvGeometry { n, h, w, k, .. } = self.geom;
        if x.len() != n * h * w * STEM_CIN || self.weight.len() != k * k * STEM_CIN * self.cout {
            candle_core::bail!("stem: input of {} values does not match {:?}", x.len(), self.geom)
        }
        let (ho, wo, _, _) = self.geom.output();
        let row_len = wo * self.cout;
        let mut out = vec![0f32; n * ho * row_len];
        let fma = has_fma();
        out.par_chunks_mut(row_len).enumerate().for_each(|(r, o)| {
            let (img, oy) = (r / ho, r % ho);
            #[cfg(target_arch = "x86_64")]
            if fma {
                // SAFETY: the CPU supports avx2 and fma (checked at run time).
                unsafe { self.row_fma(x, img, oy, o) };
                return;
            }
            let _ = fma;
            self.row::<false>(x, img, oy, o)
        });
        Ok((CpuStorage::F32(out), Shape::from((n, ho, wo, self.cout))))
    }
}

/// A 1×1 convolution on `[rows, cin]` activations: `x · W + bias`, then optionally ReLU6.
///
/// Rows are cut into chunks of [`POINTWISE_ROWS`], run in parallel, each one matrix product
/// (faer, whose kernels use AVX-512 where the CPU has it) followed by the bias and activation
/// while the chunk is still in cache.
pub struct PointwiseOp<'a> {
    /// Weights (BatchNorm folded in), `[cin][cout]` row-major.
    pub weight: &'a [f32],
    /// Bias (BatchNorm folded in), `[cout]`.
    pub bias: &'a [f32],
    /// Input channels.
    pub cin: usize,
    /// Apply ReLU6 after the bias.
    pub relu6: bool,
}

/// Rows per matrix product of [`PointwiseOp`].
const POINTWISE_ROWS: usize = 256;

impl CustomOp1 for PointwiseOp<'_> {
    fn name(&self) -> &'static str {
        "pointwise-bias-relu6"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        use faer::{Accum, MatMut, MatRef, Par};
        let x = contiguous_f32(storage, layout, self.name())?;
        let (cin, cout) = (self.cin, self.bias.len());
        if cin == 0 || cout == 0 || x.len() % cin != 0 || self.weight.len() != cin * cout {
            candle_core::bail!("pointwise: {} inputs, {} weights, {cin} → {cout} channels", x.len(), self.weight.len())
        }
        let rows = x.len() / cin;
        let w = MatRef::from_row_major_slice(self.weight, cin, cout);
        let mut out = vec![0f32; rows * cout];
        out.par_chunks_mut(POINTWISE_ROWS * cout).zip(x.par_chunks(POINTWISE_ROWS * cin)).for_each(|(o, xs)| {
            let m = xs.len() / cin;
            let lhs = MatRef::from_row_major_slice(xs, m, cin);
            let dst = MatMut::from_row_major_slice_mut(o, m, cout);
            faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, w, 1.0f32, Par::Seq);
            for row in o.chunks_exact_mut(cout) {
                row.iter_mut().zip(self.bias).for_each(|(v, b)| *v += b);
                if self.relu6 {
                    relu6(row);
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((rows, cout))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn same_padding_matches_tensorflow() {
        assert_eq!(same_pad(224, 3, 2), (112, 0)); // total 1: 0 before, 1 after
        assert_eq!(same_pad(56, 5, 2), (28, 1)); // total 3: 1 before, 2 after
        assert_eq!(same_pad(14, 5, 1), (14, 2));
        assert_eq!(same_pad(7, 3, 1), (7, 1));
    }

    /// The depthwise op against a naive per-channel convolution with explicit padding.
    #[test]
    fn depthwise_matches_naive() {
        let (n, h, w, c, k, s) = (2usize, 7usize, 6usize, 5usize, 3usize, 2usize);
        let x: Vec<f32> = (0..n * h * w * c).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let weight: Vec<f32> = (0..k * k * c).map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0).collect();
        let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.3 - 0.5).collect();
        let geom = ConvGeometry { n, h, w, k, stride: s };
        let op = DepthwiseOp { geom, c, weight: &weight, bias: &bias };
        let t = Tensor::from_vec(x.clone(), (n, h, w, c), &Device::Cpu).unwrap();
        let y = t.apply_op1_no_bwd(&op).unwrap();
        let (ho, wo, pt, pl) = geom.output();
        assert_eq!(y.dims(), &[n, ho, wo, c]);
        let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for img in 0..n {
            for oy in 0..ho {
                for ox in 0..wo {
                    for ch in 0..c {
                        let mut acc = bias[ch];
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * s + ky) as isize - pt as isize;
                                let ix = (ox * s + kx) as isize - pl as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                    acc += x[((img * h + iy as usize) * w + ix as usize) * c + ch]
                                        * weight[(ky * k + kx) * c + ch];
                                }
                            }
                        }
                        let got = y[((img * ho + oy) * wo + ox) * c + ch];
                        assert!((got - acc.clamp(0.0, 6.0)).abs() < 1e-5, "{got} vs {acc}");
                    }
                }
            }
        }
    }

    /// The pointwise op against a naive matrix product + bias (+ ReLU6), with a row count that
    /// leaves a partial chunk.
    #[test]
    fn pointwise_matches_naive() {
        let (rows, cin, cout) = (2 * POINTWISE_ROWS + 37, 24usize, 40usize);
        let x: Vec<f32> = (0..rows * cin).map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0).collect();
        let weight: Vec<f32> = (0..cin * cout).map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0).collect();
        let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.3 - 5.0).collect();
        for relu6 in [false, true] {
            let op = PointwiseOp { weight: &weight, bias: &bias, cin, relu6 };
            let t = Tensor::from_vec(x.clone(), (rows, cin), &Device::Cpu).unwrap();
            let y = t.apply_op1_no_bwd(&op).unwrap();
            assert_eq!(y.dims(), &[rows, cout]);
            let y = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for r in 0..rows {
                for o in 0..cout {
                    let mut acc = bias[o];
                    for i in 0..cin {
                        acc += x[r * cin + i] * weight[i * cout + o];
                    }
                    let want = if relu6 { acc.clamp(0.0, 6.0) } else { acc };
                    let got = y[r * cout + o];
                    assert!((got - want).abs() < 1e-4 * want.abs().max(1.0), "row {r} col {o}: {got} vs {want}");
                }
            }
        }
    }
}
