//! `PCA<d>,<inner>` and `PCAW<d>,<inner>`: a principal-component projection to `d`
//! dimensions (optionally whitened) in front of any inner index.
//!
//! The projection is fitted by [`VectorIndex::train`], or automatically once enough
//! vectors were added ([`PcaIndex::min_train_points`]); until then vectors wait in an
//! exact pending buffer. For `l2` the data is centered (distances are preserved up to
//! the dropped components); for `cosine` and `dot` the uncentered second-moment matrix is
//! used so inner products are preserved, and for `cosine` projected vectors are
//! re-normalized. Distances reported are those of the inner index in the projected
//! space; put `,Refine` at the end of the spec for exact distances.

use std::path::Path;

use faer::Mat;
use serde::{Deserialize, Serialize};

use crate::distance;
use crate::error::{Error, Result};
use crate::fsutil::corrupt;
use crate::index::common::{dense_batch, dense_query, dense_sample, require_dense, DenseStore};
use crate::index::file::{read_meta, read_pod, write_meta, write_pod, META_FILE};
use crate::index::{load_index, IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Vector, VectorRef, VectorsRef};

/// At most this many rows are used to estimate the covariance.
const MAX_FIT_ROWS: usize = 20_000;

/// A fitted projection.
#[derive(Debug, Clone)]
struct Projection {
    /// Subtracted before projecting (zeros for cosine/dot).
    mean: Vec<f32>,
    /// `d_out × d_in`, rows are principal directions (largest variance first).
    matrix: Vec<f32>,
    /// Eigenvalue (variance) of each kept direction.
    eigen: Vec<f32>,
}

/// PCA pre-transform in front of an inner index.
pub struct PcaIndex {
    d_in: usize,
    d_out: usize,
    whiten: bool,
    metric: Metric,
    proj: Option<Projection>,
    inner: Box<dyn VectorIndex>,
    pending: DenseStore,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    d_in: usize,
    d_out: usize,
    whiten: bool,
    metric: Metric,
    trained: bool,
}

impl PcaIndex {
    /// Project `d_in`-dimensional vectors to `inner.dim()` dimensions in front of `inner` (empty, untrained).
    pub fn new(d_in: usize, whiten: bool, inner: Box<dyn VectorIndex>) -> Result<Self> {
        let d_out = inner.dim();
        let spec = format!("PCA{}{d_out},{}", if whiten { "W" } else { "" }, inner.description());
        require_dense(&spec, inner.metric())?;
        if d_out == 0 || d_out > d_in {
            return Err(Error::InvalidIndexSpec {
                spec,
                reason: format!("PCA output dimension must be in 1..={d_in} (the input dimension), got {d_out}"),
            });
        }
        Ok(PcaIndex { d_in, d_out, whiten, metric: inner.metric(), proj: None, inner, pending: DenseStore::new(d_in) })
    }

    /// Vectors needed before the projection is fitted automatically: max(1000, 4 × output dim).
    pub fn min_train_points(&self) -> usize {
        (4 * self.d_out).max(1000)
    }

    fn fit(&mut self, data: &[f32]) -> Result<()> {
        let d = self.d_in;
        let n_all = data.len() / d;
        if n_all < 2 {
            return Err(Error::InvalidArgument(format!("PCA training needs at least 2 vectors, got {n_all}")));
        }
        let step = n_all.div_ceil(MAX_FIT_ROWS).max(1);
        let rows: Vec<&[f32]> = data.chunks_exact(d).step_by(step).collect();
        let n = rows.len();
        let mut mean = vec![0f64; d];
        if self.metric == Metric::L2 {
            for r in &rows {
                mean.iter_mut().zip(r.iter()).for_each(|(m, x)| *m += *x as f64);
            }
            mean.iter_mut().for_each(|m| *m /= n as f64);
        }
        let x = Mat::<f64>::from_fn(n, d, |i, j| rows[i][j] as f64 - mean[j]);
        let cov: Mat<f64> = x.transpose() * x.as_ref();
        let cov = Mat::<f64>::from_fn(d, d, |i, j| cov[(i, j)] / n as f64);
        let evd = cov
            .self_adjoint_eigen(faer::Side::Lower)
            .map_err(|e| Error::InvalidArgument(format!("PCA eigendecomposition failed: {e:?}")))?;
        let s = evd.S().column_vector();
        let u = evd.U();
        let mut matrix = Vec::with_capacity(self.d_out * d);
        let mut eigen = Vec::with_capacity(self.d_out);
        for c in 0..self.d_out {
            let col = d - 1 - c; // eigenvalues ascend
            eigen.push(s[col].max(0.0) as f32);
            for r in 0..d {
                matrix.push(u[(r, col)] as f32);
            }
        }
        let total: f64 = (0..d).map(|i| s[i].max(0.0)).sum();
        let kept: f64 = eigen.iter().map(|&e| e as f64).sum();
        tracing::debug!(d_in = d, d_out = self.d_out, explained = kept / total.max(1e-30), "PCA fitted");
        self.proj = Some(Projection { mean: mean.iter().map(|&m| m as f32).collect(), matrix, eigen });
        Ok(())
    }

    fn project(&self, p: &Projection, x: &[f32]) -> Vec<f32> {
        let centered: Vec<f32> = x.iter().zip(&p.mean).map(|(a, m)| a - m).collect();
        let mut y: Vec<f32> = p.matrix.chunks_exact(self.d_in).map(|row| distance::dot(row, &centered)).collect();
        if self.whiten {
            y.iter_mut().zip(&p.eigen).for_each(|(v, e)| *v /= (e + 1e-9).sqrt());
        }
        if self.metric == Metric::Cosine {
            distance::normalize(&mut y);
        }
        y
    }

    fn project_batch(&self, p: &Projection, data: &[f32]) -> Vec<f32> {
        use rayon::prelude::*;
        data.par_chunks_exact(self.d_in).flat_map_iter(|x| self.project(p, x)).collect()
    }

    fn flush_pending(&mut self) -> Result<()> {
        let Some(p) = self.proj.clone() else {
            return Ok(());
        };
        self.pending.compact();
        let ids: Vec<u64> = self.pending.iter_live().map(|(id, _)| id).collect();
        let y = self.project_batch(&p, self.pending.data());
        self.inner.add(&ids, VectorsRef::Dense(&y))?;
        self.pending.clear();
        Ok(())
    }

    /// Read an index saved by [`VectorIndex::save`] (the inner index lives in `dir/inner`).
    pub fn load(dir: &Path) -> Result<Self> {
        let meta: Meta = read_meta(dir)?;
        let inner = load_index(&dir.join("inner"))?;
        let mut ix = PcaIndex::new(meta.d_in, meta.whiten, inner)?;
        if ix.d_out != meta.d_out || ix.metric != meta.metric {
            return Err(corrupt(&dir.join(META_FILE), "inner index dimension or metric does not match the PCA stage"));
        }
        ix.pending = DenseStore::load(dir, "pending", meta.d_in)?;
        if meta.trained {
            let mean: Vec<f32> = read_pod(&dir.join("mean.f32"))?;
            let matrix: Vec<f32> = read_pod(&dir.join("matrix.f32"))?;
            let eigen: Vec<f32> = read_pod(&dir.join("eigen.f32"))?;
            if mean.len() != meta.d_in || matrix.len() != meta.d_in * meta.d_out || eigen.len() != meta.d_out {
                return Err(corrupt(&dir.join("matrix.f32"), "PCA matrix sizes do not match"));
            }
            ix.proj = Some(Projection { mean, matrix, eigen });
        }
        Ok(ix)
    }
}

impl VectorIndex for PcaIndex {
    fn description(&self) -> String {
        format!("PCA{}{},{}", if self.whiten { "W" } else { "" }, self.d_out, self.inner.description())
    }
    fn dim(&self) -> usize {
        self.d_in
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn len(&self) -> usize {
        self.inner.len() + self.pending.live()
    }
    fn is_trained(&self) -> bool {
        self.proj.is_some() && self.inner.is_trained()
    }
    fn train(&mut self, sample: VectorsRef<'_>) -> Result<()> {
        let data = dense_sample(sample, self.d_in)?;
        if self.proj.is_some() && !self.inner.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "{} is already trained and holds {} vectors; build a new index to refit the PCA",
                self.description(),
                self.inner.len()
            )));
        }
        let n = data.len() / self.d_in;
        let need = (2 * self.d_out).max(100);
        if n < need {
            return Err(Error::InvalidArgument(format!(
                "{}: PCA training needs at least {need} vectors, got {n}",
                self.description()
            )));
        }
        self.fit(data)?;
        if !self.inner.is_trained() {
            let p = self.proj.clone().expect("just fitted");
            let y = self.project_batch(&p, data);
            self.inner.train(VectorsRef::Dense(&y))?;
        }
        self.flush_pending()
    }
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let data = dense_batch(ids, vectors, self.d_in)?;
        if let Some(p) = &self.proj {
            let y = self.project_batch(p, data);
            for &id in ids {
                self.pending.remove(id);
            }
            return self.inner.add(ids, VectorsRef::Dense(&y));
        }
        for (i, &id) in ids.iter().enumerate() {
            self.pending.insert(id, &data[i * self.d_in..(i + 1) * self.d_in]);
        }
        if self.pending.live() >= self.min_train_points() {
            self.pending.compact();
            let sample = self.pending.data().to_vec();
            self.fit(&sample)?;
            self.flush_pending()?;
        }
        Ok(())
    }
    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let mut n = 0;
        for &id in ids {
            if self.pending.remove(id) {
                n += 1;
            }
        }
        Ok(n + self.inner.remove(ids)?)
    }
    fn contains(&self, id: u64) -> bool {
        self.pending.contains(id) || self.inner.contains(id)
    }
    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.d_in)?;
        match &self.proj {
            Some(p) => {
                let y = self.project(p, q);
                self.inner.search(VectorRef::Dense(&y), k, params, filter)
            }
            None => Ok(self.pending.search(self.metric, q, k, filter)),
        }
    }
    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let q = dense_query(query, self.d_in)?;
        match &self.proj {
            Some(p) => {
                let y = self.project(p, q);
                self.inner.range_search(VectorRef::Dense(&y), radius, params, filter)
            }
            None => Ok(self.pending.range_search(self.metric, q, radius, filter)),
        }
    }
    /// Approximate: the inner index's vector mapped back through the projection.
    fn reconstruct(&self, id: u64) -> Option<Vector> {
        if let Some(v) = self.pending.get(id) {
            return Some(Vector::Dense(v.to_vec()));
        }
        let p = self.proj.as_ref()?;
        let Vector::Dense(mut y) = self.inner.reconstruct(id)? else {
            return None;
        };
        if self.whiten {
            y.iter_mut().zip(&p.eigen).for_each(|(v, e)| *v *= (e + 1e-9).sqrt());
        }
        let mut x = p.mean.clone();
        for (row, &c) in p.matrix.chunks_exact(self.d_in).zip(&y) {
            x.iter_mut().zip(row).for_each(|(a, r)| *a += c * r);
        }
        if self.metric == Metric::Cosine {
            distance::normalize(&mut x);
        }
        Some(Vector::Dense(x))
    }
    fn memory_bytes(&self) -> usize {
        let proj = self.proj.as_ref().map_or(0, |p| (p.mean.len() + p.matrix.len() + p.eigen.len()) * 4);
        proj + self.inner.memory_bytes() + self.pending.memory_bytes()
    }
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(PcaIndex {
            d_in: self.d_in,
            d_out: self.d_out,
            whiten: self.whiten,
            metric: self.metric,
            proj: self.proj.clone(),
            inner: self.inner.clone_index()?,
            pending: self.pending.clone(),
        }))
    }
    fn save(&self, dir: &Path) -> Result<()> {
        write_meta(
            dir,
            &Meta {
                kind: "pca".into(),
                d_in: self.d_in,
                d_out: self.d_out,
                whiten: self.whiten,
                metric: self.metric,
                trained: self.proj.is_some(),
            },
        )?;
        self.pending.save(dir, "pending")?;
        if let Some(p) = &self.proj {
            write_pod(&dir.join("mean.f32"), &p.mean)?;
            write_pod(&dir.join("matrix.f32"), &p.matrix)?;
            write_pod(&dir.join("eigen.f32"), &p.eigen)?;
        }
        self.inner.save(&dir.join("inner"))
    }
}
