//! Property tests: the exact [`FlatIndex`] agrees with a naive reference built on
//! [`Metric::distance`] for every metric, with filters, replacements and removals;
//! range search, batch search and save/load are checked the same way.
//!
//! Generated vectors have small integer components, so every sum is exact in `f32`
//! and results must match the reference bit for bit (ties included: equal
//! distances are ordered by id). Separate tests use random real-valued data large
//! enough to take the parallel scan and the matrix-multiply batch path.

use std::collections::BTreeMap;

use proptest::prelude::*;
use vecdb::index::flat::FlatIndex;
use vecdb::index::load_index;
use vecdb::{Error, Metric, Neighbor, SearchParams, Vector, VectorIndex, VectorRef, VectorsRef};

/// One generated scenario.
#[derive(Debug, Clone)]
struct Case {
    metric: Metric,
    dim: usize,
    /// Batches of (id, vector); later batches replace earlier ids.
    adds: Vec<Vec<(u64, Vector)>>,
    removes: Vec<u64>,
    queries: Vec<Vector>,
    k: usize,
    /// Filter keeps ids with `id % modulus != 0` (modulus 1 = reject all, 0 = no filter).
    modulus: u64,
}

fn vector(metric: Metric, dim: usize) -> BoxedStrategy<Vector> {
    match metric {
        Metric::Hamming => proptest::collection::vec(any::<u8>(), dim.div_ceil(8)).prop_map(Vector::Binary).boxed(),
        _ => proptest::collection::vec(-4i8..=4, dim)
            .prop_map(|v| Vector::Dense(v.into_iter().map(f32::from).collect()))
            .boxed(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    (prop::sample::select(Metric::ALL.to_vec()), 1usize..24).prop_flat_map(|(metric, dim)| {
        let item = (0u64..80, vector(metric, dim));
        (
            proptest::collection::vec(proptest::collection::vec(item, 0..40), 1..4),
            proptest::collection::vec(0u64..80, 0..20),
            proptest::collection::vec(vector(metric, dim), 1..12),
            0usize..20,
            prop_oneof![Just(0u64), Just(1u64), 2u64..5],
        )
            .prop_map(move |(adds, removes, queries, k, modulus)| Case {
                metric,
                dim,
                adds,
                removes,
                queries,
                k,
                modulus,
            })
    })
}

/// Rows of a batch in the layout `add` expects.
fn flatten(vs: &[&Vector]) -> Vector {
    match vs.first() {
        Some(Vector::Binary(_)) => Vector::Binary(
            vs.iter()
                .flat_map(|v| match v {
                    Vector::Binary(b) => b.clone(),
                    Vector::Dense(_) => unreachable!("mixed batch"),
                })
                .collect(),
        ),
        _ => Vector::Dense(
            vs.iter()
                .flat_map(|v| match v {
                    Vector::Dense(d) => d.clone(),
                    Vector::Binary(_) => unreachable!("mixed batch"),
                })
                .collect(),
        ),
    }
}

fn as_rows(v: &Vector) -> VectorsRef<'_> {
    match v {
        Vector::Dense(d) => VectorsRef::Dense(d),
        Vector::Binary(b) => VectorsRef::Binary(b),
    }
}

/// Build the index and the model (id → vector) the same way.
fn build(c: &Case) -> (FlatIndex, BTreeMap<u64, Vector>) {
    let mut index = FlatIndex::new(c.dim, c.metric);
    let mut model = BTreeMap::new();
    for batch in &c.adds {
        let ids: Vec<u64> = batch.iter().map(|(id, _)| *id).collect();
        let rows = flatten(&batch.iter().map(|(_, v)| v).collect::<Vec<_>>());
        if ids.is_empty() {
            continue;
        }
        index.add(&ids, as_rows(&rows)).expect("add");
        for (id, v) in batch {
            model.insert(*id, v.clone());
        }
    }
    let want_removed =
        c.removes.iter().collect::<std::collections::BTreeSet<_>>().iter().filter(|id| model.contains_key(id)).count();
    let removed = index.remove(&c.removes).expect("remove");
    assert_eq!(removed, want_removed);
    for id in &c.removes {
        model.remove(id);
    }
    (index, model)
}

fn accepted(modulus: u64, id: u64) -> bool {
    modulus == 0 || !id.is_multiple_of(modulus)
}

fn reference(c: &Case, model: &BTreeMap<u64, Vector>, q: &Vector) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = model
        .iter()
        .filter(|(id, _)| accepted(c.modulus, **id))
        .map(|(id, v)| Neighbor {
            id: *id,
            distance: c.metric.distance(q.as_ref(), v.as_ref()).expect("reference distance"),
        })
        .collect();
    all.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    all
}

fn run_search(index: &dyn VectorIndex, c: &Case, q: &Vector, k: usize, params: &SearchParams) -> Vec<Neighbor> {
    let m = c.modulus;
    let f = move |id: u64| accepted(m, id);
    let filter: Option<&(dyn Fn(u64) -> bool + Sync)> = if m == 0 { None } else { Some(&f) };
    index.search(q.as_ref(), k, params, filter).expect("search")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn search_equals_naive_reference(c in case()) {
        let (index, model) = build(&c);
        prop_assert_eq!(index.len(), model.len());
        for id in 0..80u64 {
            prop_assert_eq!(index.contains(id), model.contains_key(&id));
            prop_assert_eq!(index.reconstruct(id), model.get(&id).cloned());
        }
        for params in [SearchParams::default(), SearchParams { threads: Some(2), ..Default::default() }] {
            for q in &c.queries {
                let got = run_search(&index, &c, q, c.k, &params);
                let mut want = reference(&c, &model, q);
                want.truncate(c.k);
                prop_assert_eq!(got, want);
            }
        }
    }

    #[test]
    fn range_search_equals_naive_reference(c in case(), pick in 0usize..100) {
        let (index, model) = build(&c);
        let m = c.modulus;
        let f = move |id: u64| accepted(m, id);
        let filter: Option<&(dyn Fn(u64) -> bool + Sync)> = if m == 0 { None } else { Some(&f) };
        for q in &c.queries {
            let want_all = reference(&c, &model, q);
            // A radius equal to one of the distances checks that the bound is inclusive.
            let radius = if want_all.is_empty() { 1.0 } else { want_all[pick % want_all.len()].distance };
            let want: Vec<Neighbor> = want_all.iter().copied().filter(|n| n.distance <= radius).collect();
            let got = index.range_search(q.as_ref(), radius, &SearchParams::default(), filter).expect("range");
            prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn search_batch_equals_single_searches(c in case(), threads in prop_oneof![Just(None), Just(Some(1usize)), Just(Some(2usize))]) {
        let (index, _model) = build(&c);
        let params = SearchParams { threads, ..Default::default() };
        let m = c.modulus;
        let f = move |id: u64| accepted(m, id);
        let filter: Option<&(dyn Fn(u64) -> bool + Sync)> = if m == 0 { None } else { Some(&f) };
        // Repeat the queries so batches reach the matrix-multiply path (>= 8 queries).
        let qs: Vec<&Vector> = c.queries.iter().cycle().take(c.queries.len() * 3).collect();
        let rows = flatten(&qs);
        let got = index.search_batch(as_rows(&rows), c.k, &params, filter).expect("batch");
        prop_assert_eq!(got.len(), qs.len());
        for (q, g) in qs.iter().zip(&got) {
            prop_assert_eq!(g, &run_search(&index, &c, q, c.k, &params));
        }
    }

    #[test]
    fn save_load_round_trip(c in case()) {
        let (index, model) = build(&c);
        let dir = tempfile::tempdir().expect("tempdir");
        index.save(dir.path()).expect("save");
        let manifest: serde_json::Value = serde_json::from_slice(&vecdb::index::file::read(&dir.path().join("index.json")).expect("index.json")).expect("json");
        prop_assert_eq!(&manifest["kind"], "flat");
        let loaded = FlatIndex::load(dir.path()).expect("load");
        let dynamic = load_index(dir.path()).expect("load_index");
        prop_assert_eq!(loaded.len(), model.len());
        prop_assert_eq!(dynamic.len(), model.len());
        prop_assert_eq!(dynamic.metric(), c.metric);
        prop_assert_eq!(dynamic.dim(), c.dim);
        for id in model.keys() {
            prop_assert_eq!(loaded.reconstruct(*id), model.get(id).cloned());
        }
        for q in &c.queries {
            let before = run_search(&index, &c, q, c.k, &SearchParams::default());
            prop_assert_eq!(&run_search(&loaded, &c, q, c.k, &SearchParams::default()), &before);
            prop_assert_eq!(&run_search(dynamic.as_ref(), &c, q, c.k, &SearchParams::default()), &before);
        }
    }
}

/// Deterministic pseudo-random normal-ish floats (sum of uniforms), no RNG crate needed.
fn noise(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..n).map(|_| next() + next() + next() - 1.5).collect()
}

/// Compare against the reference allowing rounding differences: same length,
/// distances within a relative tolerance, and every returned id truly that close.
fn assert_close(got: &[Neighbor], want: &[Neighbor], truth: &BTreeMap<u64, f32>, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: result count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * w.distance.abs().max(1.0);
        assert!((g.distance - w.distance).abs() <= tol, "{what}: rank {i}: {} vs {}", g.distance, w.distance);
        let t = truth[&g.id];
        assert!((g.distance - t).abs() <= tol, "{what}: id {} reported {} but is {}", g.id, g.distance, t);
    }
}

#[test]
fn large_real_valued_scans_match_reference() {
    // 6,000 × 96 = 576k floats: above the parallel-scan threshold.
    let (n, dim) = (6000usize, 96usize);
    for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
        let mut data = noise(n * dim, 7);
        let mut queries = noise(20 * dim, 8);
        if metric == Metric::Cosine {
            data.chunks_exact_mut(dim).for_each(vecdb::distance::normalize);
            queries.chunks_exact_mut(dim).for_each(vecdb::distance::normalize);
        }
        let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
        let mut index = FlatIndex::new(dim, metric);
        index.add(&ids, VectorsRef::Dense(&data)).unwrap();
        let removed: Vec<u64> = ids.iter().copied().filter(|id| id % 7 == 0).collect();
        index.remove(&removed).unwrap();
        let keep = |id: u64| !id.is_multiple_of(5);
        let params = SearchParams { threads: Some(2), ..Default::default() };
        let batch = index.search_batch(VectorsRef::Dense(&queries), 10, &params, Some(&keep)).unwrap();
        for (qi, q) in queries.chunks_exact(dim).enumerate() {
            let mut truth = BTreeMap::new();
            for (i, &id) in ids.iter().enumerate() {
                if id % 7 != 0 {
                    let d =
                        metric.distance(VectorRef::Dense(q), VectorRef::Dense(&data[i * dim..(i + 1) * dim])).unwrap();
                    truth.insert(id, d);
                }
            }
            let mut want: Vec<Neighbor> =
                truth.iter().filter(|(id, _)| keep(**id)).map(|(&id, &distance)| Neighbor { id, distance }).collect();
            want.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
            want.truncate(10);
            let single = index.search(VectorRef::Dense(q), 10, &params, Some(&keep)).unwrap();
            // The scan uses the same kernel as the reference: identical.
            assert_eq!(single, want, "{metric} single query {qi}");
            assert_close(&batch[qi], &want, &truth, &format!("{metric} batch query {qi}"));
            let r = want[4].distance;
            let range = index.range_search(VectorRef::Dense(q), r, &params, Some(&keep)).unwrap();
            assert_eq!(range, want[..range.len()].to_vec(), "{metric} range query {qi}");
            assert!(range.len() >= 5);
        }
    }
}

#[test]
fn hamming_64_bit_hashes_large() {
    let n = 70_000usize; // 560 kB of codes: parallel path
    let codes: Vec<u8> = noise(n * 8, 3).iter().map(|x| ((x + 1.5) * 85.0) as u8).collect();
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut index = FlatIndex::new(64, Metric::Hamming);
    index.add(&ids, VectorsRef::Binary(&codes)).unwrap();
    let q = &codes[8 * 123..8 * 124];
    let got = index.search(VectorRef::Binary(q), 5, &SearchParams::default(), None).unwrap();
    let mut want: Vec<Neighbor> = codes
        .chunks_exact(8)
        .enumerate()
        .map(|(i, c)| Neighbor { id: i as u64, distance: vecdb::distance::hamming_scalar(q, c) as f32 })
        .collect();
    want.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    want.truncate(5);
    assert_eq!(got, want);
    assert_eq!(got[0], Neighbor { id: 123, distance: 0.0 });
}

#[test]
fn bad_input_is_rejected_without_partial_change() {
    let mut index = FlatIndex::new(3, Metric::L2);
    index.add(&[1, 2], VectorsRef::Dense(&[0.0, 0.0, 0.0, 1.0, 1.0, 1.0])).unwrap();
    // Wrong number of rows for the ids.
    assert!(matches!(index.add(&[3], VectorsRef::Dense(&[0.0; 6])), Err(Error::InvalidArgument(_))));
    // Not a whole number of rows.
    assert!(matches!(index.add(&[3], VectorsRef::Dense(&[0.0; 4])), Err(Error::InvalidArgument(_))));
    // NaN in the second row: nothing is added.
    assert!(matches!(
        index.add(&[3, 4], VectorsRef::Dense(&[0.0, 0.0, 0.0, 1.0, f32::NAN, 1.0])),
        Err(Error::InvalidVector(_))
    ));
    assert_eq!(index.len(), 2);
    assert!(!index.contains(3));
    // Wrong kind and wrong dimension of queries.
    assert!(index.search(VectorRef::Binary(&[0]), 1, &SearchParams::default(), None).is_err());
    assert!(matches!(
        index.search(VectorRef::Dense(&[0.0, 0.0]), 1, &SearchParams::default(), None),
        Err(Error::DimensionMismatch { expected: 3, got: 2 })
    ));
    assert!(index.range_search(VectorRef::Dense(&[0.0; 3]), f32::NAN, &SearchParams::default(), None).is_err());
    assert!(index.search_batch(VectorsRef::Dense(&[0.0; 5]), 1, &SearchParams::default(), None).is_err());
}

#[test]
fn corrupt_files_give_clear_errors() {
    let mut index = FlatIndex::new(4, Metric::Cosine);
    index.add(&[5, 6], VectorsRef::Dense(&[1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    index.save(dir.path()).unwrap();
    let vectors = dir.path().join("vectors.bin");
    let mut raw = std::fs::read(&vectors).unwrap();
    raw[3] ^= 0x40;
    std::fs::write(&vectors, &raw).unwrap();
    let err = FlatIndex::load(dir.path()).err().expect("flipped byte must be detected");
    assert!(matches!(&err, Error::Corrupt { path, .. } if path.ends_with("vectors.bin")), "{err}");
    raw.truncate(raw.len() - 1);
    std::fs::write(&vectors, &raw).unwrap();
    assert!(matches!(FlatIndex::load(dir.path()), Err(Error::Corrupt { .. })));
    std::fs::write(dir.path().join("index.json"), b"{\"kind\": \"hnsw\"}").unwrap();
    assert!(matches!(FlatIndex::load(dir.path()), Err(Error::Corrupt { .. })));
    std::fs::remove_file(dir.path().join("index.json")).unwrap();
    assert!(matches!(FlatIndex::load(dir.path()), Err(Error::Io { .. })));
}

#[test]
fn batch_breaks_signed_zero_ties_by_id_like_single_search() {
    // Cosine, dim 1: stored vectors normalize to +1 or -1, a zero query gives products of +0.0
    // and -0.0. Every distance is exactly 1, so the result must be the smallest accepted ids,
    // whichever path (scan or matrix multiply) runs; a total order on raw -p split this tie.
    let n = 60u64;
    let ids: Vec<u64> = (0..n).collect();
    let data: Vec<f32> = ids.iter().map(|id| if id % 3 == 0 { -2.0 } else { 3.0 }).collect();
    let mut index = FlatIndex::new(1, Metric::Cosine);
    index.add(&ids, VectorsRef::Dense(&data)).unwrap();
    let keep = |id: u64| !id.is_multiple_of(4);
    let queries = vec![0.0f32; 12];
    for threads in [None, Some(1), Some(2)] {
        let params = SearchParams { threads, ..Default::default() };
        let single = index.search(VectorRef::Dense(&[0.0]), 4, &params, Some(&keep)).unwrap();
        let want: Vec<u64> = ids.iter().copied().filter(|&id| keep(id)).take(4).collect();
        assert_eq!(single.iter().map(|n| n.id).collect::<Vec<_>>(), want);
        for got in index.search_batch(VectorsRef::Dense(&queries), 4, &params, Some(&keep)).unwrap() {
            assert_eq!(got, single, "threads {threads:?}");
        }
    }
}
