//! Scalar quantization to 8 bits per component: each dimension's trained
//! `[min, max]` range is cut into 256 steps.

/// A trained 8-bit scalar quantizer.
#[derive(Debug, Clone)]
pub(crate) struct ScalarQuantizer {
    pub(crate) vmin: Vec<f32>,
    /// Step per code unit, per dimension (`(max − min) / 255`, never 0).
    pub(crate) scale: Vec<f32>,
}

/// A query prepared for fast distance to codes.
pub(crate) struct SqQuery {
    /// L2: `(q − min)`; dot: `q × scale`.
    a: Vec<f32>,
    /// dot: `q · min`.
    offset: f32,
}

impl ScalarQuantizer {
    /// Fit per-dimension ranges on the rows of `data`.
    pub(crate) fn train(data: &[f32], dim: usize) -> Self {
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for row in data.chunks_exact(dim) {
            for j in 0..dim {
                lo[j] = lo[j].min(row[j]);
                hi[j] = hi[j].max(row[j]);
            }
        }
        let mut scale = vec![1.0; dim];
        for j in 0..dim {
            if !lo[j].is_finite() {
                lo[j] = 0.0;
                hi[j] = 0.0;
            }
            // A small margin so values slightly outside the sample still fit.
            let margin = (hi[j] - lo[j]) * 0.01;
            lo[j] -= margin;
            let range = hi[j] + margin - lo[j];
            scale[j] = if range > 0.0 { range / 255.0 } else { 1e-12 };
        }
        ScalarQuantizer { vmin: lo, scale }
    }

    pub(crate) fn dim(&self) -> usize {
        self.vmin.len()
    }

    /// Encode `v` into `out` (`dim` bytes).
    pub(crate) fn encode(&self, v: &[f32], out: &mut [u8]) {
        for j in 0..self.dim() {
            out[j] = ((v[j] - self.vmin[j]) / self.scale[j]).round().clamp(0.0, 255.0) as u8;
        }
    }

    /// Decode into `out` (`dim` floats).
    pub(crate) fn decode(&self, code: &[u8], out: &mut [f32]) {
        for j in 0..self.dim() {
            out[j] = self.vmin[j] + self.scale[j] * code[j] as f32;
        }
    }

    /// Prepare `q` for squared-L2 distances.
    pub(crate) fn l2_query(&self, q: &[f32]) -> SqQuery {
        SqQuery { a: q.iter().zip(&self.vmin).map(|(x, m)| x - m).collect(), offset: 0.0 }
    }

    /// Prepare `q` for inner products.
    pub(crate) fn dot_query(&self, q: &[f32]) -> SqQuery {
        SqQuery {
            a: q.iter().zip(&self.scale).map(|(x, s)| x * s).collect(),
            offset: q.iter().zip(&self.vmin).map(|(x, m)| x * m).sum(),
        }
    }

    /// Squared L2 distance between a prepared query and a code.
    #[inline]
    pub(crate) fn l2_sq(&self, pq: &SqQuery, code: &[u8]) -> f32 {
        crate::code_distance::sq_l2_sq(&pq.a, &self.scale, code)
    }

    /// Inner product between a prepared query and a code.
    #[inline]
    pub(crate) fn dot(pq: &SqQuery, code: &[u8]) -> f32 {
        crate::code_distance::sq_dot(&pq.a, code) + pq.offset
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.vmin.len() * 8
    }
}
