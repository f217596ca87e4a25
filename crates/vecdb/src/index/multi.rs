//! The index of a multi-vector field: every record holds `count` vectors of `sub_dim`
//! components (an image's regional descriptors, say), stored side by side in one row of
//! `count × sub_dim`. The inner index — any spec — holds each of them under a key of its own;
//! a search scores a record by its best pair, the smallest distance between any query vector
//! and any of the record's vectors (max-sim), and returns records, not vectors.
//!
//! A query is one vector or several (`q × sub_dim` components, `q` up to
//! [`MAX_QUERY_VECTORS`]); each query vector asks the inner index for `k × count` keys so that
//! `k` distinct records come back when the inner search is exact. Filters apply to records
//! inside the inner search.
//!
//! Keys: sub-vector `j` of the record in slot `s` is key `s × count + j`; slots are reused
//! after removals and saved with the index (`slots.u64`, the record id of each slot or
//! [`FREE`]).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil::corrupt;
use crate::index::file::{read_meta, read_pod, write_meta, write_pod, META_FILE};
use crate::index::topk::{sort_neighbors, TopK};
use crate::index::{load_index, IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::{Element, Vector, VectorRef, VectorsRef};

/// Most vectors one query may hold.
pub const MAX_QUERY_VECTORS: usize = 1024;
/// Most vectors per record of a multi-vector field.
pub const MAX_VECTORS_PER_RECORD: usize = 256;
/// A slot without a record.
pub const FREE: u64 = u64::MAX;

/// `count` vectors per record in front of an inner index of single vectors.
pub struct MultiVectorIndex {
    count: usize,
    inner: Box<dyn VectorIndex>,
    /// Record id per slot ([`FREE`] when unused).
    slots: Vec<u64>,
    slot_of: HashMap<u64, u32>,
    free: Vec<u32>,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    count: usize,
}

/// The rows of a query: one or more vectors of `sub_dim` components.
pub(crate) fn query_rows<'a>(query: VectorRef<'a>, sub_dim: usize) -> Result<(VectorsRef<'a>, usize)> {
    let rows: VectorsRef<'a> = match query {
        VectorRef::Dense(d) => VectorsRef::Dense(d),
        VectorRef::Binary(b) => VectorsRef::Binary(b),
    };
    let n = rows.whole_rows(sub_dim).map_err(|_| {
        Error::InvalidVector(format!(
            "a query of {} values is not whole vectors of dimension {sub_dim}",
            match query {
                VectorRef::Dense(d) => d.len(),
                VectorRef::Binary(b) => b.len(),
            }
        ))
    })?;
    if n == 0 || n > MAX_QUERY_VECTORS {
        return Err(Error::InvalidVector(format!(
            "a query holds {n} vectors of dimension {sub_dim}; 1 to {MAX_QUERY_VECTORS} are allowed"
        )));
    }
    Ok((rows, n))
}

/// Keep each id's smallest distance from `lists`, then the `k` best (all with `k = None`).
pub(crate) fn best_per_id(lists: impl IntoIterator<Item = Neighbor>, k: Option<usize>) -> Vec<Neighbor> {
    let mut best: HashMap<u64, f32> = HashMap::new();
    for n in lists {
        best.entry(n.id).and_modify(|d| *d = d.min(n.distance)).or_insert(n.distance);
    }
    match k {
        Some(k) => {
            let mut top = TopK::new(k);
            for (id, d) in best {
                top.push(d, id);
            }
            top.into_sorted()
        }
        None => {
            let mut v: Vec<Neighbor> = best.into_iter().map(|(id, distance)| Neighbor { id, distance }).collect();
            sort_neighbors(&mut v);
            v
        }
    }
}

impl MultiVectorIndex {
    /// `count` vectors per record in front of `inner` (empty), which holds single vectors.
    pub fn new(count: usize, inner: Box<dyn VectorIndex>) -> Result<Self> {
        if count == 0 || count > MAX_VECTORS_PER_RECORD {
            return Err(Error::InvalidArgument(format!(
                "a multi-vector field holds 1 to {MAX_VECTORS_PER_RECORD} vectors per record, not {count}"
            )));
        }
        Ok(MultiVectorIndex { count, inner, slots: Vec::new(), slot_of: HashMap::new(), free: Vec::new() })
    }

    /// Vectors per record.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Dimension of one vector.
    pub fn sub_dim(&self) -> usize {
        self.inner.dim()
    }

    fn keys(&self, slot: u32) -> impl Iterator<Item = u64> {
        let base = slot as u64 * self.count as u64;
        (0..self.count as u64).map(move |j| base + j)
    }

    fn record_of(&self, key: u64) -> u64 {
        self.slots.get((key / self.count as u64) as usize).copied().unwrap_or(FREE)
    }

    /// Map inner hits (keys) to records, best pair per record, the `k` best.
    fn merge(&self, lists: Vec<Vec<Neighbor>>, k: Option<usize>) -> Vec<Neighbor> {
        let hits = lists.into_iter().flatten().filter_map(|n| {
            let id = self.record_of(n.id);
            (id != FREE).then_some(Neighbor { id, distance: n.distance })
        });
        best_per_id(hits, k)
    }

    /// Read an index saved by [`VectorIndex::save`] (the inner index lives in `dir/inner`).
    pub fn load(dir: &Path) -> Result<Self> {
        let meta: Meta = read_meta(dir)?;
        let inner = load_index(&dir.join("inner"))?;
        let mut ix = MultiVectorIndex::new(meta.count, inner)
            .map_err(|e| corrupt(&dir.join(META_FILE), format!("bad multi-vector index: {e}")))?;
        let path = dir.join("slots.u64");
        let slots: Vec<u64> = read_pod(&path)?;
        for (s, &id) in slots.iter().enumerate() {
            if id == FREE {
                ix.free.push(s as u32);
            } else if ix.slot_of.insert(id, s as u32).is_some() {
                return Err(corrupt(&path, format!("record id {id} holds two slots")));
            }
        }
        if slots.len() > u32::MAX as usize {
            return Err(corrupt(&path, "more slots than an index can hold"));
        }
        ix.slots = slots;
        Ok(ix)
    }
}

impl VectorIndex for MultiVectorIndex {
    fn description(&self) -> String {
        self.inner.description()
    }
    fn dim(&self) -> usize {
        self.count * self.inner.dim()
    }
    fn metric(&self) -> Metric {
        self.inner.metric()
    }
    fn len(&self) -> usize {
        self.slot_of.len()
    }
    fn is_trained(&self) -> bool {
        self.inner.is_trained()
    }
    fn train(&mut self, sample: VectorsRef<'_>) -> Result<()> {
        // Rows of `count` vectors side by side are `count` times as many rows of one vector.
        self.inner.train(sample)
    }
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let rows = vectors.whole_rows(self.dim())?;
        if rows != ids.len() {
            return Err(Error::InvalidArgument(format!("{} ids but {rows} rows of {} vectors", ids.len(), self.count)));
        }
        self.remove(ids)?;
        let mut keys = Vec::with_capacity(ids.len() * self.count);
        for &id in ids {
            if self.slot_of.contains_key(&id) {
                return Err(Error::InvalidArgument(format!("id {id} appears twice in one batch")));
            }
            let slot = match self.free.pop() {
                Some(s) => {
                    self.slots[s as usize] = id;
                    s
                }
                None => {
                    let s = u32::try_from(self.slots.len()).map_err(|_| {
                        Error::InvalidArgument("a multi-vector index holds at most 2^32 records".into())
                    })?;
                    self.slots.push(id);
                    s
                }
            };
            self.slot_of.insert(id, slot);
            keys.extend(self.keys(slot));
        }
        let added = self.inner.add(&keys, vectors);
        if added.is_err() {
            // Leave no record behind whose vectors the inner index refused.
            for &id in ids {
                if let Some(s) = self.slot_of.remove(&id) {
                    self.slots[s as usize] = FREE;
                    self.free.push(s);
                }
            }
            let _ = self.inner.remove(&keys);
        }
        added
    }
    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let mut keys = Vec::new();
        let mut n = 0;
        for id in ids {
            if let Some(slot) = self.slot_of.remove(id) {
                keys.extend(self.keys(slot));
                self.slots[slot as usize] = FREE;
                self.free.push(slot);
                n += 1;
            }
        }
        if !keys.is_empty() {
            self.inner.remove(&keys)?;
        }
        Ok(n)
    }
    fn contains(&self, id: u64) -> bool {
        self.slot_of.contains_key(&id)
    }
    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let (rows, _) = query_rows(query, self.inner.dim())?;
        if k == 0 {
            return Ok(Vec::new());
        }
        let keep = |key: u64| {
            let id = self.record_of(key);
            id != FREE && filter.is_none_or(|f| f(id))
        };
        let per_query = k.saturating_mul(self.count).min(self.inner.len().max(1));
        let lists = self.inner.search_batch(rows, per_query, params, Some(&keep))?;
        Ok(self.merge(lists, Some(k)))
    }
    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        let (rows, n) = query_rows(query, self.inner.dim())?;
        let keep = |key: u64| {
            let id = self.record_of(key);
            id != FREE && filter.is_none_or(|f| f(id))
        };
        let lists = (0..n)
            .map(|i| self.inner.range_search(rows.row(self.inner.dim(), i), radius, params, Some(&keep)))
            .collect::<Result<Vec<_>>>()?;
        Ok(self.merge(lists, None))
    }
    fn reconstruct(&self, id: u64) -> Option<Vector> {
        let slot = *self.slot_of.get(&id)?;
        let mut parts = self.keys(slot).map(|key| self.inner.reconstruct(key));
        match self.inner.metric().element() {
            Element::F32 => {
                let mut out = Vec::with_capacity(self.dim());
                for p in parts.by_ref() {
                    let Some(Vector::Dense(v)) = p else { return None };
                    out.extend(v);
                }
                Some(Vector::Dense(out))
            }
            Element::Bit => {
                let mut out = Vec::new();
                for p in parts.by_ref() {
                    let Some(Vector::Binary(v)) = p else { return None };
                    out.extend(v);
                }
                Some(Vector::Binary(out))
            }
        }
    }
    fn memory_bytes(&self) -> usize {
        self.inner.memory_bytes() + self.slots.capacity() * 8 + self.slot_of.capacity() * 16 + self.free.capacity() * 4
    }
    fn save(&self, dir: &Path) -> Result<()> {
        write_meta(dir, &Meta { kind: "multi".into(), count: self.count })?;
        write_pod(&dir.join("slots.u64"), &self.slots)?;
        self.inner.save(&dir.join("inner"))
    }
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(MultiVectorIndex {
            count: self.count,
            inner: self.inner.clone_index()?,
            slots: self.slots.clone(),
            slot_of: self.slot_of.clone(),
            free: self.free.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::build_index;

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    /// Records of 3 vectors of dimension 4; record `i`'s vectors point at axes i%4, (i+1)%4 and
    /// a mix, each slightly tilted by `i`.
    fn records(n: usize) -> (Vec<u64>, Vec<f32>) {
        let mut data = Vec::new();
        for i in 0..n {
            let t = 0.01 * i as f32;
            let mut a = [t; 4];
            a[i % 4] = 1.0;
            let mut b = [t; 4];
            b[(i + 1) % 4] = 1.0;
            let c = [1.0, 1.0, t, 0.5];
            for v in [a, b, c] {
                data.extend(unit(&v));
            }
        }
        ((0..n as u64).map(|i| 100 + i).collect(), data)
    }

    /// The exact answer: min over pairs, by brute force.
    fn brute(ids: &[u64], data: &[f32], q: &[f32], k: usize, keep: impl Fn(u64) -> bool) -> Vec<Neighbor> {
        let mut all = Vec::new();
        for (r, &id) in ids.iter().enumerate() {
            if !keep(id) {
                continue;
            }
            for j in 0..3 {
                let v = &data[(r * 3 + j) * 4..][..4];
                for qv in q.chunks(4) {
                    let d = 1.0 - qv.iter().zip(v).map(|(a, b)| a * b).sum::<f32>();
                    all.push(Neighbor { id, distance: d });
                }
            }
        }
        best_per_id(all, Some(k))
    }

    fn close(a: &[Neighbor], b: &[Neighbor]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert!((x.distance - y.distance).abs() < 1e-5, "{a:?} vs {b:?}");
        }
        let ids = |v: &[Neighbor]| v.iter().map(|n| n.id).collect::<std::collections::BTreeSet<_>>();
        // Ids agree up to ties at the last distance.
        let last = a.last().map_or(0.0, |n| n.distance);
        let firm = |v: &[Neighbor]| v.iter().filter(|n| n.distance < last - 1e-5).map(|n| n.id).collect::<Vec<_>>();
        assert_eq!(firm(a), firm(b));
        assert!(ids(a).len() == a.len());
    }

    #[test]
    fn scores_records_by_their_best_pair_with_one_or_many_query_vectors() {
        let (ids, data) = records(40);
        let mut ix = MultiVectorIndex::new(3, build_index("Flat", 4, Metric::Cosine).unwrap()).unwrap();
        ix.add(&ids, VectorsRef::Dense(&data)).unwrap();
        assert_eq!((ix.len(), ix.dim()), (40, 12));
        let one = unit(&[0.1, 0.0, 1.0, 0.0]);
        let got = ix.search(VectorRef::Dense(&one), 5, &SearchParams::default(), None).unwrap();
        close(&got, &brute(&ids, &data, &one, 5, |_| true));
        let two: Vec<f32> = [unit(&[0.0, 1.0, 0.2, 0.0]), unit(&[1.0, 1.0, 0.3, 0.5])].concat();
        let got = ix.search(VectorRef::Dense(&two), 7, &SearchParams::default(), None).unwrap();
        close(&got, &brute(&ids, &data, &two, 7, |_| true));
        // Filters apply to records.
        let even = |id: u64| id.is_multiple_of(2);
        let got = ix.search(VectorRef::Dense(&two), 7, &SearchParams::default(), Some(&even)).unwrap();
        assert!(got.iter().all(|n| n.id.is_multiple_of(2)));
        close(&got, &brute(&ids, &data, &two, 7, even));
        // A record's whole row comes back.
        assert_eq!(ix.reconstruct(103), Some(Vector::Dense(data[3 * 12..4 * 12].to_vec())));
        // A query that is not whole vectors is refused.
        assert!(ix.search(VectorRef::Dense(&one[..3]), 5, &SearchParams::default(), None).is_err());
    }

    #[test]
    fn replaces_removes_reuses_slots_and_survives_save_and_load() {
        let (ids, data) = records(12);
        let mut ix = MultiVectorIndex::new(3, build_index("HNSW8", 4, Metric::Cosine).unwrap()).unwrap();
        ix.add(&ids, VectorsRef::Dense(&data)).unwrap();
        assert_eq!(ix.remove(&[100, 101, 999]).unwrap(), 2);
        assert!(!ix.contains(100) && ix.contains(102));
        // Replace 102 with 105's vectors; add 100 back (reusing a slot).
        ix.add(&[102, 100], VectorsRef::Dense(&[&data[5 * 12..6 * 12], &data[..12]].concat())).unwrap();
        assert_eq!(ix.len(), 11);
        assert_eq!(ix.slots.len(), 12, "freed slots are reused");
        let q = data[5 * 12..5 * 12 + 4].to_vec();
        let got = ix.search(VectorRef::Dense(&q), 2, &SearchParams::default(), None).unwrap();
        assert!(got.iter().all(|n| n.distance < 1e-5) && got.len() == 2, "{got:?}");
        let dir = tempfile::tempdir().unwrap();
        ix.save(dir.path()).unwrap();
        let back = load_index(dir.path()).unwrap();
        assert_eq!((back.len(), back.dim()), (11, 12));
        assert_eq!(back.search(VectorRef::Dense(&q), 2, &SearchParams::default(), None).unwrap(), got);
        // A damaged slot table is reported, naming the file.
        std::fs::write(dir.path().join("slots.u64"), b"garbage").unwrap();
        let e = load_index(dir.path()).err().unwrap().to_string();
        assert!(e.contains("slots.u64"), "{e}");
    }
}
