//! Approximate indexes (k-d forest, LSH, IVF-PQ/SQ8, PCA, Refine) against exact brute force
//! on generated clustered data: recall floors, persistence, removal, dynamic inserts,
//! filtered and range search, factory errors.

use std::collections::HashSet;

use vecdb::index::{build_index, load_index};
use vecdb::{Error, IdFilter, Metric, Neighbor, SearchParams, VectorIndex, VectorRef, VectorsRef};

mod common;
use common::clustered::{brute, build, build_trained, clustered, params, recall};

type Case = (&'static str, Metric, SearchParams, f64);

/// (spec, metric, params, recall@10 floor) on 10k × 64 clustered data (intrinsic dim 24).
fn cases() -> Vec<Case> {
    use Metric::{Cosine, Dot, L2};
    let c = |spec, metric, nprobe, checks, rerank, floor| (spec, metric, params(nprobe, checks, rerank), floor);
    vec![
        c("KDForest8", L2, None, Some(512), None, 0.8),
        c("KDForest8", L2, None, Some(1536), None, 0.9),
        c("KDForest8", Cosine, None, Some(1536), None, 0.9),
        c("LSH256", L2, None, None, Some(200), 0.9),
        c("LSH256", Cosine, None, None, Some(200), 0.9),
        c("LSH256", Dot, None, None, Some(200), 0.85),
        c("IVF256,PQ16,Refine", L2, Some(16), None, Some(100), 0.9),
        c("IVF128,PQ8,Refine", Cosine, Some(16), None, Some(100), 0.9),
        c("IVF128,PQ8", Cosine, Some(16), None, None, 0.5),
        c("IVF256,SQ8", L2, Some(16), None, None, 0.9),
        c("IVF256,SQ8", Dot, Some(16), None, None, 0.9),
        c("IVF64,Flat", L2, Some(8), None, None, 0.9),
        c("SQ8", L2, None, None, None, 0.95),
        c("HNSW16,SQ8", L2, None, None, None, 0.9),
        c("PCA32,HNSW16", L2, None, None, None, 0.95),
        c("IVF256,PQ16", L2, Some(16), None, None, 0.75),
        c("HNSW16,SQ8", Cosine, None, None, None, 0.9),
        c("HNSW16,SQ8,Refine", Dot, None, None, Some(64), 0.95),
        c("SQ8", Cosine, None, None, None, 0.95),
        c("PQ16,Refine", L2, None, None, Some(100), 0.9),
        c("PCA32,Flat", L2, None, None, None, 0.95),
        c("PCA32,Flat", Cosine, None, None, None, 0.95),
        c("PCAW24,Flat,Refine", L2, None, None, Some(200), 0.9),
        c("PCA32,KDForest8,Refine", L2, None, Some(1536), Some(50), 0.9),
        c("PCA32,IVF64,PQ8,Refine", L2, Some(16), None, Some(100), 0.9),
    ]
}

#[test]
fn recall_floors_at_documented_parameters() {
    let l2 = clustered(10_000, 100, 64, 24, 64, 1, false);
    let unit = clustered(10_000, 100, 64, 24, 64, 1, true);
    let mut failures = Vec::new();
    for (spec, metric, p, floor) in cases() {
        let d = if metric == Metric::Cosine { &unit } else { &l2 };
        let t = std::time::Instant::now();
        let ix = build(spec, d, metric);
        let build_s = t.elapsed().as_secs_f64();
        let r = recall(ix.as_ref(), d, metric, &p);
        eprintln!(
            "{spec:<24} {metric:<7} recall@10 {r:.3} (floor {floor})  {:.1} bytes/vector  build {build_s:.2}s  [{}]",
            ix.memory_bytes() as f64 / d.n() as f64,
            ix.description()
        );
        assert_eq!(ix.description(), spec);
        if r < floor {
            failures.push(format!("{spec} {metric}: recall {r:.3} < {floor}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// IVF ranks the cells of a batch's queries with matrix products (also under `Refine`, which
/// re-ranks the batch's candidates); the lists it then scans, and the distances, are those of
/// single searches. With every cell probed the results are
/// identical; with a few, only a near-tie between two centroids (rounded differently by the
/// product) may change which cell is probed.
#[test]
fn ivf_batch_search_equals_single_searches() {
    use Metric::{Cosine, Dot, L2};
    let d = clustered(4000, 100, 48, 16, 24, 77, false);
    let du = clustered(4000, 100, 48, 16, 24, 78, true);
    for (spec, metric, data) in [
        ("IVF64,SQ8", L2, &d),
        ("IVF64,SQ8", Dot, &d),
        ("IVF64,SQ8", Cosine, &du),
        ("IVF64,PQ8", L2, &d),
        ("IVF64,Flat", L2, &d),
        ("IVF64,PQ8,Refine", L2, &d),
        ("PCA24,IVF64,SQ8", L2, &d),
    ] {
        let ix = build_trained(spec, data, metric);
        for nprobe in [4, 64] {
            let p = params(Some(nprobe), None, None);
            let batch = ix.search_batch(VectorsRef::Dense(&data.queries), 10, &p, None).unwrap();
            assert_eq!(batch.len(), data.nq());
            let (mut same, mut total) = (0, 0);
            for (i, b) in batch.iter().enumerate() {
                let single = ix.search(VectorRef::Dense(data.q(i)), 10, &p, None).unwrap();
                assert_eq!(b.len(), single.len(), "{spec} {metric:?} nprobe {nprobe} query {i}");
                if nprobe == 64 {
                    for (x, y) in b.iter().zip(&single) {
                        assert_eq!(x.id, y.id, "{spec} {metric:?} query {i}: {b:?} vs {single:?}");
                        assert!((x.distance - y.distance).abs() <= 1e-5 * y.distance.abs().max(1.0));
                    }
                }
                let ids: HashSet<u64> = single.iter().map(|n| n.id).collect();
                same += b.iter().filter(|n| ids.contains(&n.id)).count();
                total += single.len();
            }
            assert!(same as f64 >= 0.99 * total as f64, "{spec} {metric:?} nprobe {nprobe}: {same}/{total} agree");
        }
        // A batch that is not whole rows is an error, not a panic.
        let bad = &data.queries[..data.dim * 10 - 1];
        assert!(ix.search_batch(VectorsRef::Dense(bad), 10, &params(Some(4), None, None), None).is_err(), "{spec}");
        // So is a non-finite value, as in a single search.
        let mut nan = data.queries[..data.dim * 10].to_vec();
        nan[data.dim * 3 + 1] = f32::NAN;
        assert!(ix.search_batch(VectorsRef::Dense(&nan), 10, &params(Some(4), None, None), None).is_err(), "{spec}");
    }
}

/// LSH's batched search (matrix-product sketches, queries scanning the sketches in groups)
/// returns exactly what one search per query returns, with deletions and a filter, and
/// for batches of every size (a lone query is sketched like one in a group).
#[test]
fn lsh_batch_search_equals_single_searches() {
    use Metric::{Cosine, L2};
    let d = clustered(3000, 70, 48, 16, 24, 91, false);
    let du = clustered(3000, 70, 48, 16, 24, 92, true);
    for (spec, metric, data) in [("LSH256", L2, &d), ("LSH128", Cosine, &du), ("PCA24,LSH64", L2, &d)] {
        let mut ix = build_trained(spec, data, metric);
        let gone: Vec<u64> = (0..3000).step_by(7).collect();
        ix.remove(&gone).unwrap();
        let keep = |id: u64| !id.is_multiple_of(3);
        for filter in [None, Some(&keep as IdFilter)] {
            for rerank in [10, 100] {
                let p = params(None, None, Some(rerank));
                for size in [1, 2, 17, 70] {
                    let queries = &data.queries[..size * data.dim];
                    let batch = ix.search_batch(VectorsRef::Dense(queries), 10, &p, filter).unwrap();
                    assert_eq!(batch.len(), size);
                    for (i, b) in batch.iter().enumerate() {
                        let single = ix.search(VectorRef::Dense(data.q(i)), 10, &p, filter).unwrap();
                        assert_eq!(b, &single, "{spec} {metric:?} rerank {rerank} batch of {size}, query {i}");
                        assert!(b.iter().all(|n| !n.id.is_multiple_of(7) && filter.is_none_or(|f| f(n.id))), "{spec}");
                    }
                }
            }
        }
        // A batch that is not whole rows, or holds a NaN, is an error, not a panic.
        let p = params(None, None, Some(100));
        let bad = &data.queries[..data.dim * 10 - 1];
        assert!(ix.search_batch(VectorsRef::Dense(bad), 10, &p, None).is_err(), "{spec}");
        let mut nan = data.queries[..data.dim * 10].to_vec();
        nan[data.dim * 3 + 1] = f32::NAN;
        assert!(ix.search_batch(VectorsRef::Dense(&nan), 10, &p, None).is_err(), "{spec}");
    }
}

#[test]
fn kdtree_exact_mode_matches_brute_force() {
    let d = clustered(5_000, 50, 8, 8, 16, 2, false);
    let ix = build("KDTree", &d, Metric::L2);
    for i in 0..d.nq() {
        let got = ix.search(VectorRef::Dense(d.q(i)), 10, &SearchParams::default(), None).unwrap();
        let want = brute(&d, Metric::L2, d.q(i), 10, &|_| true);
        let got: Vec<u64> = got.iter().map(|n| n.id).collect();
        let want: Vec<u64> = want.iter().map(|n| n.id).collect();
        assert_eq!(got, want, "query {i}");
    }
}

const PERSIST_SPECS: &[&str] = &[
    "KDForest4",
    "KDTree",
    "LSH128",
    "IVF64,PQ8",
    "IVF64,SQ8,Refine",
    "IVF32,Flat",
    "SQ8",
    "HNSW12,SQ8",
    "PCA16,KDForest4",
    "PCAW16,IVF16,PQ4,Refine",
];

#[test]
fn persistence_round_trip_gives_identical_results() {
    let d = clustered(3_000, 20, 32, 16, 16, 3, false);
    for spec in PERSIST_SPECS {
        let mut ix = build_trained(spec, &d, Metric::L2);
        // Tombstones and a few late inserts must survive the round trip too.
        ix.remove(&(0..300).collect::<Vec<u64>>()).unwrap();
        let extra: Vec<u64> = (10_000..10_020).collect();
        ix.add(&extra, VectorsRef::Dense(&d.queries)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        ix.save(dir.path()).unwrap();
        let back = load_index(dir.path()).unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(back.description(), ix.description());
        assert_eq!(back.len(), ix.len(), "{spec}");
        assert_eq!(back.dim(), ix.dim());
        let p = params(Some(4), Some(64), Some(30));
        for i in 0..d.nq() {
            let q = VectorRef::Dense(d.q(i));
            let a = ix.search(q, 10, &p, None).unwrap();
            let b = back.search(q, 10, &p, None).unwrap();
            assert_eq!(a, b, "{spec} query {i}");
        }
        assert_eq!(back.reconstruct(5_00), ix.reconstruct(5_00), "{spec}");
        assert!(!back.contains(7) && back.contains(10_005), "{spec}");
    }
}

#[test]
fn clone_index_is_an_independent_copy() {
    let d = clustered(3_000, 20, 32, 16, 16, 9, false);
    let p = params(Some(4), Some(64), Some(30));
    let results = |ix: &dyn VectorIndex| -> Vec<Vec<Neighbor>> {
        (0..d.nq()).map(|i| ix.search(VectorRef::Dense(d.q(i)), 10, &p, None).unwrap()).collect()
    };
    let specs = PERSIST_SPECS.iter().copied().chain(["Flat", "HNSW12"]);
    for (n, spec) in specs.enumerate() {
        let mut ix = build_trained(spec, &d, Metric::L2);
        // Every other case goes through a save and load first: a loaded HNSW maps its rows
        // from disk, and the copy shares that mapping.
        if n % 2 == 1 {
            let dir = tempfile::tempdir().unwrap();
            ix.save(dir.path()).unwrap();
            ix = load_index(dir.path()).unwrap();
        }
        let before = results(ix.as_ref());
        let mut copy = ix.clone_index().unwrap_or_else(|| panic!("{spec}: no clone_index"));
        assert_eq!(copy.description(), ix.description(), "{spec}");
        assert_eq!(results(copy.as_ref()), before, "{spec}: the copy searches differently");

        // Changing the original leaves the copy as it was, and the other way round.
        let gone: Vec<u64> = (0..3_000).step_by(2).collect();
        ix.remove(&gone).unwrap();
        ix.add(&[50_000], VectorsRef::Dense(d.q(0))).unwrap();
        assert_eq!(results(copy.as_ref()), before, "{spec}: the copy changed with the original");
        assert_eq!((copy.len(), copy.contains(0), copy.contains(50_000)), (3_000, true, false), "{spec}");
        copy.add(&[60_000], VectorsRef::Dense(d.q(1))).unwrap();
        assert!(copy.contains(60_000) && !ix.contains(60_000), "{spec}");
        assert_eq!(ix.len(), 1_501, "{spec}");
        assert_eq!(ix.search(VectorRef::Dense(d.q(0)), 1, &p, None).unwrap()[0].id, 50_000, "{spec}");
    }
}

#[test]
fn removed_ids_never_appear_and_late_inserts_are_found() {
    let d = clustered(4_000, 30, 32, 16, 16, 4, false);
    for spec in ["KDForest4", "KDTree", "LSH128", "IVF64,PQ8,Refine", "IVF64,SQ8", "PCA16,KDForest4", "PQ8,Refine"] {
        let mut ix = build_trained(spec, &d, Metric::L2);
        let removed: Vec<u64> = (0..4_000).filter(|i| i % 3 == 0).collect();
        assert_eq!(ix.remove(&removed).unwrap(), removed.len(), "{spec}");
        assert_eq!(ix.remove(&removed).unwrap(), 0, "{spec}: second removal");
        assert_eq!(ix.len(), 4_000 - removed.len());
        let gone: HashSet<u64> = removed.iter().copied().collect();
        assert!(gone.iter().all(|&id| !ix.contains(id)));
        // Late inserts: the queries themselves under new ids, one at a time.
        for i in 0..d.nq() {
            ix.add(&[100_000 + i as u64], VectorsRef::Dense(d.q(i))).unwrap();
        }
        // Also re-add a removed id with a new vector: it must be found again.
        ix.add(&[0], VectorsRef::Dense(d.q(0))).unwrap();
        let p = params(Some(8), Some(256), Some(50));
        for i in 0..d.nq() {
            let res = ix.search(VectorRef::Dense(d.q(i)), 20, &p, None).unwrap();
            assert_eq!(res.len(), 20);
            for n in &res {
                assert!(n.id == 0 || !gone.contains(&n.id), "{spec}: removed id {} returned", n.id);
            }
            let ids: Vec<u64> = res.iter().map(|n| n.id).collect();
            assert!(ids.contains(&(100_000 + i as u64)), "{spec}: late insert {i} not found in {ids:?}");
            if i == 0 {
                assert!(ids.contains(&0), "{spec}: re-added id 0 not found");
            }
        }
        assert_eq!(ix.len(), 4_000 - removed.len() + d.nq() + 1, "{spec}");
    }
}

#[test]
fn quantized_indexes_train_themselves_from_small_batches() {
    let d = clustered(12_000, 20, 32, 16, 16, 5, false);
    for spec in ["IVF64,PQ8,Refine", "PCA16,IVF32,SQ8,Refine", "LSH128", "SQ8"] {
        let mut ix = build_index(spec, d.dim, Metric::L2).unwrap();
        assert!(!ix.is_trained(), "{spec}");
        for start in (0..d.n()).step_by(500) {
            let ids: Vec<u64> = (start as u64..(start + 500) as u64).collect();
            ix.add(&ids, VectorsRef::Dense(&d.base[start * d.dim..(start + 500) * d.dim])).unwrap();
            // Searchable at every step, even before training.
            let res = ix.search(VectorRef::Dense(d.v(start)), 5, &SearchParams::default(), None).unwrap();
            assert_eq!(res.len(), 5, "{spec} after {} vectors", start + 500);
            assert_eq!(res[0].id, start as u64, "{spec}: own vector first after {} vectors", start + 500);
        }
        assert!(ix.is_trained(), "{spec} should have trained itself");
        assert_eq!(ix.len(), d.n());
    }
}

#[test]
fn explicit_train_then_add() {
    let d = clustered(5_000, 20, 32, 16, 16, 6, false);
    let mut ix = build_index("IVF32,PQ8,Refine", d.dim, Metric::L2).unwrap();
    ix.train(VectorsRef::Dense(&d.base[..2_000 * d.dim])).unwrap();
    assert!(ix.is_trained());
    ix.add(&[1, 2, 3], VectorsRef::Dense(&d.base[..3 * d.dim])).unwrap();
    let res = ix.search(VectorRef::Dense(d.v(1)), 3, &SearchParams::default(), None).unwrap();
    assert_eq!(res[0].id, 2);
    assert!(res[0].distance.abs() < 1e-4);
    // Too small a sample is a typed error, not a panic.
    let mut ix = build_index("IVF256,PQ8", d.dim, Metric::L2).unwrap();
    assert!(matches!(ix.train(VectorsRef::Dense(&d.base[..100 * d.dim])), Err(Error::InvalidArgument(_))));
}

#[test]
fn filtered_search_returns_k_results_when_they_exist() {
    let d = clustered(6_000, 20, 32, 16, 16, 7, false);
    let specs =
        ["KDForest4", "KDTree", "LSH128", "IVF64,PQ8", "IVF64,PQ8,Refine", "SQ8", "HNSW12,SQ8", "PCA16,KDForest4"];
    let selective: IdFilter = &|id| id % 97 == 5; // ~62 ids
    let tiny: IdFilter = &|id| id < 4_000 && id % 1000 == 7; // 4 ids
    for spec in specs {
        let ix = build_trained(spec, &d, Metric::L2);
        // Low budgets on purpose: the filter must not starve the result list.
        let p = params(Some(1), Some(16), Some(10));
        for i in 0..d.nq() {
            let q = VectorRef::Dense(d.q(i));
            let res = ix.search(q, 10, &p, Some(selective)).unwrap();
            assert_eq!(res.len(), 10, "{spec} query {i}");
            assert!(res.iter().all(|n| selective(n.id)), "{spec}: filter violated");
            let res = ix.search(q, 10, &p, Some(tiny)).unwrap();
            let mut ids: Vec<u64> = res.iter().map(|n| n.id).collect();
            ids.sort_unstable();
            assert_eq!(ids, vec![7, 1007, 2007, 3007], "{spec}: all 4 accepted ids");
        }
    }
}

#[test]
fn range_search_matches_brute_force_for_exact_variants() {
    for metric in [Metric::L2, Metric::Cosine] {
        let d = clustered(5_000, 20, 32, 16, 16, 8, metric == Metric::Cosine);
        for spec in ["KDForest4", "KDTree", "LSH128", "IVF64,PQ8,Refine", "SQ8,Refine", "PCA16,Flat,Refine"] {
            let ix = build_trained(spec, &d, metric);
            for i in 0..d.nq() {
                let q = d.q(i);
                let r = brute(&d, metric, q, 25, &|_| true)[24].distance;
                let keep = |id: u64| id.is_multiple_of(2);
                for filter in [None, Some(&keep as IdFilter)] {
                    let got = ix.range_search(VectorRef::Dense(q), r, &SearchParams::default(), filter).unwrap();
                    let want: Vec<Neighbor> = brute(&d, metric, q, d.n(), &|id| filter.is_none_or(|f| f(id)))
                        .into_iter()
                        .filter(|n| n.distance <= r)
                        .collect();
                    let got_ids: Vec<u64> = got.iter().map(|n| n.id).collect();
                    let want_ids: Vec<u64> = want.iter().map(|n| n.id).collect();
                    assert_eq!(got_ids, want_ids, "{spec} {metric} query {i}");
                    for (g, w) in got.iter().zip(&want) {
                        assert!((g.distance - w.distance).abs() < 1e-4, "{spec}: distance");
                    }
                }
            }
        }
    }
}

#[test]
fn factory_errors_are_typed_and_explain_the_problem() {
    let cases: &[(&str, Metric, &str)] = &[
        ("", Metric::L2, "empty"),
        ("Foo", Metric::L2, "unknown index"),
        ("IVF0,PQ8", Metric::L2, "positive"),
        ("IVF256", Metric::L2, "codec"),
        ("IVF256,PQ7", Metric::L2, "divide"),
        ("IVF256,PQ8,HNSW32", Metric::L2, "unexpected stage"),
        ("IVF16,PQ8x4", Metric::L2, "8-bit"),
        ("IVF16,SQ4", Metric::L2, "SQ8"),
        ("IVFx,Flat", Metric::L2, "IVF<number>"),
        ("PCA128,Flat", Metric::L2, "cannot reduce"),
        ("PCA32", Metric::L2, "followed by"),
        ("LSH100", Metric::L2, "multiple of 64"),
        ("KDForest8", Metric::Dot, "l2 or cosine"),
        ("LSH256", Metric::Hamming, "float vectors"),
        ("Refine", Metric::L2, "needs an index"),
        ("Flat,,Refine", Metric::L2, "stage 2 is empty"),
        ("KDForest8,Flat", Metric::L2, "unexpected stage"),
    ];
    for (spec, metric, needle) in cases {
        match build_index(spec, 64, *metric) {
            Err(Error::InvalidIndexSpec { spec: s, reason }) => {
                assert_eq!(&s, spec);
                assert!(reason.contains(needle), "{spec}: reason '{reason}' lacks '{needle}'");
            }
            Err(e) => panic!("{spec}: wrong error kind {e}"),
            Ok(ix) => panic!("{spec}: accepted as {}", ix.description()),
        }
    }
    for ok in [
        "Flat",
        "KDTree",
        "KDForest8",
        "LSH256",
        "IVF1024,PQ32",
        "IVF256,SQ8",
        "SQ8",
        "PQ16x8",
        "IVF64,Flat,Refine",
        "PCA32,Flat",
        "PCAW32,IVF16,PQ8,Refine",
    ] {
        let ix = build_index(ok, 64, Metric::L2).unwrap_or_else(|e| panic!("{ok}: {e}"));
        if ok != "PQ16x8" {
            assert_eq!(ix.description(), ok);
        }
    }
}

#[test]
fn bad_vectors_are_typed_errors() {
    for spec in ["KDForest4", "LSH128", "IVF16,PQ4", "PCA8,Flat", "SQ8,Refine"] {
        let mut ix = build_index(spec, 16, Metric::L2).unwrap();
        assert!(ix.add(&[1, 2], VectorsRef::Dense(&[0.0; 20])).is_err(), "{spec}: wrong length");
        let mut v = vec![0.0f32; 16];
        v[3] = f32::NAN;
        assert!(matches!(ix.add(&[1], VectorsRef::Dense(&v)), Err(Error::InvalidVector(_))), "{spec}: NaN");
        let r = ix.search(VectorRef::Dense(&[0.0; 15]), 3, &SearchParams::default(), None);
        assert!(matches!(r, Err(Error::DimensionMismatch { .. })), "{spec}: query dim");
    }
}

/// The approximate indexes behind a real collection: batched inserts (no explicit training),
/// deletes, a reopen from disk.
#[test]
fn collection_with_approximate_indexes_survives_inserts_deletes_and_reopen() {
    use vecdb::{CollectionSchema, Database, Query, Record, SearchRequest, Vector, VectorField};
    let d = clustered(3_000, 0, 16, 8, 16, 9, false);
    let specs = ["IVF16,SQ8,Refine", "PCA8,KDForest4,Refine", "LSH128", "IVF16,PQ4,Refine", "HNSW16,SQ8"];
    let fields: Vec<VectorField> =
        specs.iter().enumerate().map(|(i, s)| VectorField::new(format!("f{i}"), 16, Metric::L2, *s)).collect();
    let dir = tempfile::tempdir().unwrap();
    let check = |col: &vecdb::Collection| {
        for i in [0usize, 100, 1500, 2999] {
            for (f, spec) in specs.iter().enumerate() {
                let req = SearchRequest::new(format!("f{f}"), Query::Vector(Vector::Dense(d.v(i).to_vec())), 5);
                let hits = col.search(&req).unwrap();
                assert_eq!(hits.len(), 5, "{spec}");
                assert_eq!(hits[0].id, i as u64, "{spec}: own vector first");
                assert!(hits.iter().all(|h| !(5..8).contains(&h.id)), "{spec}: deleted id returned");
            }
        }
        let q = SearchRequest::new("f1", Query::Vector(Vector::Dense(d.v(6).to_vec())), 10);
        assert!(col.search(&q).unwrap().iter().all(|h| !(5..8).contains(&h.id)));
        let stats = col.stats();
        for (f, spec) in specs.iter().enumerate() {
            let fs = stats.fields.iter().find(|s| s.name == format!("f{f}")).unwrap();
            assert!(fs.memory_bytes > 0, "{spec}");
            assert_eq!(&fs.index, spec);
        }
    };
    {
        let db = Database::open(dir.path()).unwrap();
        let col = db.create_collection("c", CollectionSchema { fields: fields.clone() }).unwrap();
        for start in (0..3_000).step_by(250) {
            let recs: Vec<Record> = (start..start + 250)
                .map(|i| {
                    (0..specs.len()).fold(Record::new(i as u64), |r, f| {
                        r.with_vector(format!("f{f}"), Vector::Dense(d.v(i).to_vec()))
                    })
                })
                .collect();
            col.insert(recs).unwrap();
        }
        assert_eq!(col.delete(&[5, 6, 7]).unwrap(), 3);
        check(&col);
    }
    let db = Database::open(dir.path()).unwrap();
    let col = db.collection("c").unwrap();
    assert_eq!(col.count(), 2_997);
    check(&col);
}
