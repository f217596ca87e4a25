//! HNSW index: recall against exact search, every metric, persistence, removal, inserts after
//! a build, concurrent use, filters and range search. Data is generated here, deterministically.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use vecdb::index::hnsw::HnswIndex;
use vecdb::index::{build_index, load_index};
use vecdb::{Error, Metric, Neighbor, SearchParams, Vector, VectorIndex, VectorRef, VectorsRef};

mod common;
use common::rng::SplitMix64;

/// `n` points in `dim` dimensions around `clusters` centres; within a cluster the points
/// spread over an 8-dimensional subspace (plus a little noise), like real embeddings whose
/// intrinsic dimension is far below their length.
fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    const LATENT: usize = 8;
    let mut r = SplitMix64(seed);
    let mut g = SplitMix64(0xC1A5); // centres and bases are shared between calls
    let centres: Vec<f32> = (0..clusters * dim).map(|_| g.normal_f32() * 4.0).collect();
    let bases: Vec<f32> = (0..clusters * LATENT * dim).map(|_| g.normal_f32() / (LATENT as f32).sqrt()).collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = (r.next_u64() % clusters as u64) as usize;
        let z: Vec<f32> = (0..LATENT).map(|_| r.normal_f32() * 2.0).collect();
        out.extend((0..dim).map(|j| {
            let b = &bases[(c * LATENT) * dim..];
            centres[c * dim + j] + (0..LATENT).map(|l| z[l] * b[l * dim + j]).sum::<f32>() + 0.1 * r.normal_f32()
        }));
    }
    out
}

fn normalize_rows(v: &mut [f32], dim: usize) {
    for row in v.chunks_mut(dim) {
        let n = row.iter().map(|x| x * x).sum::<f32>().sqrt();
        row.iter_mut().for_each(|x| *x /= n);
    }
}

/// Packed `bits`-bit codes: cluster centres with a few bits flipped.
fn binary_codes(n: usize, bits: usize, seed: u64) -> Vec<u8> {
    let bytes = bits / 8;
    let mut r = SplitMix64(seed);
    let centres: Vec<u8> = (0..16 * bytes).map(|_| r.next_u64() as u8).collect();
    let mut out = Vec::with_capacity(n * bytes);
    for _ in 0..n {
        let c = (r.next_u64() % 16) as usize;
        let mut row = centres[c * bytes..(c + 1) * bytes].to_vec();
        for _ in 0..bits / 8 {
            let b = (r.next_u64() % bits as u64) as usize;
            row[b / 8] ^= 1 << (b % 8);
        }
        out.extend(row);
    }
    out
}

fn as_rows(v: &Vector) -> VectorsRef<'_> {
    match v {
        Vector::Dense(x) => VectorsRef::Dense(x.as_slice()),
        Vector::Binary(x) => VectorsRef::Binary(x.as_slice()),
    }
}

fn row(data: VectorsRef<'_>, dim: usize, i: usize) -> VectorRef<'_> {
    data.row(dim, i)
}

/// Exact k nearest ids under `metric`, by the crate's reference distance.
fn exact(metric: Metric, data: VectorsRef<'_>, dim: usize, ids: &[u64], q: VectorRef<'_>, k: usize) -> Vec<Neighbor> {
    let mut all: Vec<Neighbor> = (0..ids.len())
        .map(|i| Neighbor { id: ids[i], distance: metric.distance(q, row(data, dim, i)).unwrap() })
        .collect();
    all.sort_by(|a, b| a.distance.total_cmp(&b.distance).then(a.id.cmp(&b.id)));
    all.truncate(k);
    all
}

/// Fraction of true neighbours found, counting ties at the k-th distance as hits.
fn recall(found: &[Neighbor], truth: &[Neighbor]) -> f64 {
    let kth = truth.last().map_or(0.0, |n| n.distance);
    let ids: HashSet<u64> = truth.iter().map(|n| n.id).collect();
    let hits = found.iter().filter(|n| ids.contains(&n.id) || n.distance <= kth + 1e-4 * kth.abs().max(1.0)).count();
    hits.min(truth.len()) as f64 / truth.len().max(1) as f64
}

fn ef(ef: usize) -> SearchParams {
    SearchParams { ef: Some(ef), ..Default::default() }
}

fn mean_recall(
    idx: &dyn VectorIndex,
    data: VectorsRef<'_>,
    queries: VectorsRef<'_>,
    ids: &[u64],
    k: usize,
    p: &SearchParams,
) -> f64 {
    let dim = idx.dim();
    let nq = queries.rows(dim);
    let mut total = 0.0;
    for i in 0..nq {
        let q = queries.row(dim, i);
        let found = idx.search(q, k, p, None).unwrap();
        assert!(found.windows(2).all(|w| w[0].distance <= w[1].distance), "results are sorted");
        total += recall(&found, &exact(idx.metric(), data, dim, ids, q, k));
    }
    total / nq as f64
}

#[test]
fn recall_floor_on_clustered_data() {
    // 20k × 64 in 50 clusters, HNSW16 (efC 100): recall@10 ≥ 0.95 at ef = 64.
    let (n, dim) = (20_000, 64);
    let data = clustered(n, dim, 50, 1);
    let queries = clustered(200, dim, 50, 2);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 16, 100);
    idx.add(&ids, VectorsRef::Dense(&data)).unwrap();
    assert_eq!(idx.len(), n);
    let r = mean_recall(&idx, VectorsRef::Dense(&data), VectorsRef::Dense(&queries), &ids, 10, &ef(64));
    eprintln!("recall@10 at ef=64: {r}");
    assert!(r >= 0.95, "recall@10 at ef=64 is {r}");
    // A larger ef does not lose recall.
    let r2 = mean_recall(&idx, VectorsRef::Dense(&data), VectorsRef::Dense(&queries), &ids, 10, &ef(256));
    assert!(r2 >= r - 0.01 && r2 >= 0.98, "recall@10 at ef=256 is {r2} (ef=64: {r})");
}

#[test]
fn every_metric_matches_exact_search() {
    let (n, dim, k) = (3_000, 32, 10);
    let ids: Vec<u64> = (0..n as u64).collect();
    for metric in Metric::ALL {
        let (data, queries, d) = match metric {
            Metric::Hamming => (Vector::Binary(binary_codes(n, 256, 3)), Vector::Binary(binary_codes(50, 256, 4)), 256),
            _ => {
                let mut a = clustered(n, dim, 20, 5);
                let mut b = clustered(50, dim, 20, 6);
                if metric == Metric::Cosine {
                    normalize_rows(&mut a, dim);
                    normalize_rows(&mut b, dim);
                }
                (Vector::Dense(a), Vector::Dense(b), dim)
            }
        };
        let (data, queries) = (as_rows(&data), as_rows(&queries));
        let mut idx = build_index("HNSW16", d, metric).unwrap();
        assert_eq!(idx.description(), "HNSW16");
        idx.add(&ids, data).unwrap();
        let r = mean_recall(idx.as_ref(), data, queries, &ids, k, &ef(100));
        eprintln!("{metric}: recall@10 at ef=100: {r}");
        assert!(r >= 0.95, "{metric}: recall@10 {r}");
        // Reported distances are the reference distances of the returned ids.
        for i in 0..5 {
            let q = queries.row(d, i);
            for nb in idx.search(q, k, &ef(100), None).unwrap() {
                let want = metric.distance(q, data.row(d, nb.id as usize)).unwrap();
                assert!(
                    (nb.distance - want).abs() <= 1e-3 * want.abs().max(1.0),
                    "{metric}: {} vs {want}",
                    nb.distance
                );
            }
        }
        assert_eq!(idx.reconstruct(7).unwrap().as_ref(), data.row(d, 7));
    }
}

#[test]
fn persistence_round_trip_gives_identical_results() {
    let (n, dim) = (4_000, 24);
    let data = clustered(n, dim, 10, 7);
    let queries = clustered(40, dim, 10, 8);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 7919).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 12, 80);
    idx.set_ef_search(40);
    idx.add(&ids, VectorsRef::Dense(&data)).unwrap();
    idx.remove(&ids[..100]).unwrap(); // tombstones travel too
    let dir = tempfile::tempdir().unwrap();
    idx.save(dir.path()).unwrap();
    let loaded = load_index(dir.path()).unwrap();
    assert_eq!(loaded.description(), "HNSW12,efC80");
    assert_eq!(loaded.len(), idx.len());
    assert!(loaded.memory_bytes() <= idx.memory_bytes(), "a loaded index takes more memory than the one saved");
    for i in 0..40 {
        let q = VectorRef::Dense(&queries[i * dim..(i + 1) * dim]);
        let p = SearchParams::default();
        assert_eq!(idx.search(q, 10, &p, None).unwrap(), loaded.search(q, 10, &p, None).unwrap());
        assert_eq!(idx.range_search(q, 5.0, &p, None).unwrap(), loaded.range_search(q, 5.0, &p, None).unwrap());
    }
    assert!(!loaded.contains(ids[5]) && loaded.contains(ids[500]));
    // A loaded (memory-mapped) index still takes inserts.
    let mut loaded = HnswIndex::load(dir.path()).unwrap();
    let extra = clustered(10, dim, 10, 9);
    loaded.add(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], VectorsRef::Dense(&extra)).unwrap();
    let hit = loaded.search(VectorRef::Dense(&extra[..dim]), 1, &SearchParams::default(), None).unwrap();
    assert_eq!(hit[0].id, 1);
}

#[test]
fn corrupt_files_give_typed_errors() {
    let dim = 8;
    let data = clustered(300, dim, 3, 10);
    let ids: Vec<u64> = (0..300).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 8, 40);
    idx.add(&ids, VectorsRef::Dense(&data)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    idx.save(dir.path()).unwrap();
    let links = dir.path().join("links0.bin");
    let mut bytes = std::fs::read(&links).unwrap();
    bytes[4] ^= 0xFF;
    std::fs::write(&links, &bytes).unwrap();
    assert!(matches!(HnswIndex::load(dir.path()), Err(Error::Corrupt { .. })));
    std::fs::write(&links, &bytes[..bytes.len() - 4]).unwrap();
    assert!(matches!(HnswIndex::load(dir.path()), Err(Error::Corrupt { .. })));
    // Bad input on add and search.
    assert!(matches!(idx.add(&[1, 2], VectorsRef::Dense(&data[..dim])), Err(Error::InvalidArgument(_))));
    let mut nan = data[..dim].to_vec();
    nan[3] = f32::NAN;
    assert!(matches!(idx.add(&[999], VectorsRef::Dense(&nan)), Err(Error::InvalidVector(_))));
    assert!(matches!(
        idx.search(VectorRef::Dense(&data[..dim - 1]), 3, &SearchParams::default(), None),
        Err(Error::DimensionMismatch { .. })
    ));
    assert!(build_index("HNSW1", 8, Metric::L2).is_err());
    assert!(build_index("HNSWx", 8, Metric::L2).is_err());
    // ef_construction from the factory string, kept through save/load.
    for (spec, want) in
        [("HNSW8,efC64", "HNSW8,efC64"), ("HNSW8,efC64,SQ8", "HNSW8,SQ8,efC64"), ("HNSW8,efC200", "HNSW8")]
    {
        let mut ix = build_index(spec, dim, Metric::L2).unwrap();
        ix.add(&ids, VectorsRef::Dense(&data)).unwrap();
        assert_eq!(ix.description(), want);
        let d = tempfile::tempdir().unwrap();
        ix.save(d.path()).unwrap();
        assert_eq!(load_index(d.path()).unwrap().description(), want);
    }
    for bad in ["HNSW8,efC", "HNSW8,efC0", "HNSW8,SQ8,SQ8", "HNSW8,PQ4"] {
        assert!(matches!(build_index(bad, 8, Metric::L2), Err(Error::InvalidIndexSpec { .. })), "{bad}");
    }
}

/// A parallel build links every node as well as a sequential one: at `ef` = 128 every stored
/// vector finds itself (hnswlib's builds manage the same on this data). Inserts used to
/// publish a node on its upper levels while its level-0 list was still empty; an insert that
/// reached it there came away with a single neighbour, and about one parallel build in ten
/// had a vector that searches missed even at `ef` = 400.
#[test]
fn parallel_builds_find_every_stored_vector() {
    let (n, dim) = (4_000, 32);
    for seed in 0..24 {
        let mut r = SplitMix64(seed);
        let data: Vec<f32> = (0..n * dim).map(|_| r.unit_f32() - 0.5).collect();
        let mut ix = HnswIndex::new(dim, Metric::L2, 16, 200);
        ix.add(&(0..n as u64).collect::<Vec<_>>(), VectorsRef::Dense(&data)).unwrap();
        let unreached: Vec<usize> = (0..n)
            .filter(|&i| {
                let hits = ix.search(VectorRef::Dense(&data[i * dim..(i + 1) * dim]), 1, &ef(128), None).unwrap();
                hits[0].id != i as u64
            })
            .collect();
        assert!(unreached.is_empty(), "build {seed}: searches miss nodes {unreached:?}");
    }
}

#[test]
fn removed_ids_never_appear() {
    let (n, dim) = (6_000, 16);
    let data = clustered(n, dim, 12, 11);
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 16, 100);
    idx.add(&ids, VectorsRef::Dense(&data)).unwrap();
    // 10%: tombstones only; then another 20%: crosses the repair threshold.
    let first: Vec<u64> = ids.iter().copied().filter(|i| i % 10 == 3).collect();
    assert_eq!(idx.remove(&first).unwrap(), first.len());
    assert_eq!(idx.deleted_count(), first.len());
    assert_eq!(idx.remove(&first).unwrap(), 0, "removing twice counts once");
    let check = |idx: &HnswIndex, gone: &HashSet<u64>| {
        let live: Vec<u64> = ids.iter().copied().filter(|i| !gone.contains(i)).collect();
        let live_data: Vec<f32> =
            live.iter().flat_map(|&i| data[i as usize * dim..(i as usize + 1) * dim].to_vec()).collect();
        let mut total = 0.0;
        for i in 0..100 {
            let q = VectorRef::Dense(&data[i * 37 * dim..(i * 37 + 1) * dim]);
            let found = idx.search(q, 10, &ef(64), None).unwrap();
            assert_eq!(found.len(), 10);
            assert!(found.iter().all(|nb| !gone.contains(&nb.id)), "a removed id came back");
            let r = idx.range_search(q, 3.0, &ef(64), None).unwrap();
            assert!(r.iter().all(|nb| !gone.contains(&nb.id) && nb.distance <= 3.0));
            total += recall(&found, &exact(Metric::L2, VectorsRef::Dense(&live_data), dim, &live, q, 10));
        }
        total / 100.0
    };
    let mut gone: HashSet<u64> = first.iter().copied().collect();
    let r = check(&idx, &gone);
    assert!(r >= 0.95, "recall with tombstones {r}");
    let second: Vec<u64> = ids.iter().copied().filter(|i| i % 10 == 5 || i % 10 == 7).collect();
    idx.remove(&second).unwrap();
    gone.extend(&second);
    assert_eq!(idx.deleted_count(), 0, "a repair ran and freed the tombstones");
    assert_eq!(idx.len(), n - gone.len());
    assert!(!idx.contains(3) && idx.contains(4) && idx.reconstruct(5).is_none());
    let r = check(&idx, &gone);
    assert!(r >= 0.95, "recall after repair {r}");
    // Re-adding a removed id makes it findable again; replacing an id moves it.
    idx.add(&[3], VectorsRef::Dense(&data[3 * dim..4 * dim])).unwrap();
    let hit = idx.search(VectorRef::Dense(&data[3 * dim..4 * dim]), 1, &ef(32), None).unwrap();
    assert_eq!(hit[0].id, 3);
    idx.add(&[4], VectorsRef::Dense(&data[5 * dim..6 * dim])).unwrap();
    assert_eq!(idx.len(), n - gone.len() + 1);
    assert_eq!(idx.reconstruct(4), Some(Vector::Dense(data[5 * dim..6 * dim].to_vec())));
}

#[test]
fn inserts_after_build_are_found() {
    let (n, dim) = (5_000, 32);
    let data = clustered(n + 600, dim, 10, 12);
    let ids: Vec<u64> = (0..(n + 600) as u64).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 16, 100);
    idx.add(&ids[..n], VectorsRef::Dense(&data[..n * dim])).unwrap();
    // One at a time, then in batches.
    for i in n..n + 100 {
        idx.add(&ids[i..i + 1], VectorsRef::Dense(&data[i * dim..(i + 1) * dim])).unwrap();
    }
    for s in (n + 100..n + 600).step_by(100) {
        idx.add(&ids[s..s + 100], VectorsRef::Dense(&data[s * dim..(s + 100) * dim])).unwrap();
    }
    assert_eq!(idx.len(), n + 600);
    let mut self_hits = 0;
    for i in n..n + 600 {
        let found = idx.search(VectorRef::Dense(&data[i * dim..(i + 1) * dim]), 1, &ef(64), None).unwrap();
        self_hits += usize::from(found[0].id == i as u64);
    }
    assert!(self_hits >= 597, "{self_hits}/600 inserted vectors are their own nearest neighbour");
}

#[test]
fn concurrent_insert_and_search() {
    let (n, dim) = (4_000, 16);
    let data = Arc::new(clustered(n, dim, 8, 13));
    let mut first = HnswIndex::new(dim, Metric::L2, 12, 60);
    let ids: Vec<u64> = (0..1000).collect();
    first.add(&ids, VectorsRef::Dense(&data[..1000 * dim])).unwrap();
    let idx = Arc::new(RwLock::new(first));
    let mut handles = Vec::new();
    for w in 0..2u64 {
        let (idx, data) = (idx.clone(), data.clone());
        handles.push(std::thread::spawn(move || {
            // writer w adds ids 1000 + w*1500 .. in batches of 50
            for b in 0..30u64 {
                let s = (1000 + w * 1500 + b * 50) as usize;
                let ids: Vec<u64> = (s as u64..s as u64 + 50).collect();
                idx.write().unwrap().add(&ids, VectorsRef::Dense(&data[s * dim..(s + 50) * dim])).unwrap();
            }
        }));
    }
    for r in 0..2usize {
        let (idx, data) = (idx.clone(), data.clone());
        handles.push(std::thread::spawn(move || {
            let mut self_hits = 0;
            for i in 0..300 {
                let qi = (i * 13 + r * 7) % 1000;
                let q = VectorRef::Dense(&data[qi * dim..(qi + 1) * dim]);
                let g = idx.read().unwrap();
                let found = g.search(q, 5, &ef(40), None).unwrap();
                assert_eq!(found.len(), 5);
                assert!(found.windows(2).all(|w| w[0].distance <= w[1].distance));
                assert!(found.iter().all(|nb| g.contains(nb.id)));
                self_hits += usize::from(found[0].id == qi as u64);
            }
            // Vectors present before the inserts stay findable while the graph grows.
            assert!(self_hits >= 295, "{self_hits}/300 found themselves");
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    let idx = idx.read().unwrap();
    assert_eq!(idx.len(), n);
    let found_self = (0..n).step_by(7).filter(|&i| {
        let q = VectorRef::Dense(&data[i * dim..(i + 1) * dim]);
        idx.search(q, 1, &ef(64), None).unwrap()[0].id == i as u64
    });
    let total = (0..n).step_by(7).count();
    assert!(found_self.count() * 100 >= total * 99);
}

#[test]
fn filtered_search_returns_k_results() {
    let (n, dim, k) = (20_000, 16, 10);
    let data = clustered(n, dim, 20, 14);
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 16, 80);
    idx.add(&ids, VectorsRef::Dense(&data)).unwrap();
    for (modulus, floor) in [(100u64, 1.0), (3, 0.95)] {
        let accept = move |id: u64| id % modulus == 7 % modulus;
        let kept: Vec<u64> = ids.iter().copied().filter(|&i| accept(i)).collect();
        let kept_data: Vec<f32> =
            kept.iter().flat_map(|&i| data[i as usize * dim..(i as usize + 1) * dim].to_vec()).collect();
        let mut total = 0.0;
        for i in 0..50 {
            let q = VectorRef::Dense(&data[i * 131 * dim..(i * 131 + 1) * dim]);
            let found = idx.search(q, k, &ef(40), Some(&accept)).unwrap();
            assert_eq!(found.len(), k, "filter 1/{modulus}: k results");
            assert!(found.iter().all(|nb| accept(nb.id)));
            total += recall(&found, &exact(Metric::L2, VectorsRef::Dense(&kept_data), dim, &kept, q, k));
        }
        let r = total / 50.0;
        assert!(r >= floor, "filter 1/{modulus}: recall {r}");
    }
    // A filter accepting fewer than k ids returns exactly those.
    let few = |id: u64| id == 5 || id == 17_000;
    let found = idx.search(VectorRef::Dense(&data[..dim]), k, &ef(40), Some(&few)).unwrap();
    let got: HashSet<u64> = found.iter().map(|n| n.id).collect();
    assert_eq!(got, HashSet::from([5, 17_000]));
}

#[test]
fn range_search_finds_the_ball() {
    let (n, dim) = (5_000, 16);
    let data = clustered(n, dim, 10, 15);
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 16, 100);
    idx.add(&ids, VectorsRef::Dense(&data)).unwrap();
    let mut found_total = 0;
    let mut truth_total = 0;
    for i in 0..30 {
        let q = VectorRef::Dense(&data[i * 101 * dim..(i * 101 + 1) * dim]);
        // A radius holding about 150 points: wider than the default ef.
        let truth = exact(Metric::L2, VectorsRef::Dense(&data), dim, &ids, q, 150);
        let radius = truth.last().unwrap().distance;
        let got = idx.range_search(q, radius, &SearchParams::default(), None).unwrap();
        assert!(got.iter().all(|nb| nb.distance <= radius));
        assert!(got.windows(2).all(|w| w[0].distance <= w[1].distance));
        let t: HashSet<u64> = truth.iter().map(|n| n.id).collect();
        found_total += got.iter().filter(|nb| t.contains(&nb.id)).count();
        truth_total += t.len();
    }
    let r = found_total as f64 / truth_total as f64;
    assert!(r >= 0.95, "range recall {r}");
    assert!(idx.range_search(VectorRef::Dense(&data[..dim]), -1.0, &SearchParams::default(), None).unwrap().is_empty());
}

#[test]
fn memory_is_reported() {
    let (n, dim) = (2_000, 64);
    let data = clustered(n, dim, 5, 16);
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut idx = HnswIndex::new(dim, Metric::L2, 16, 40);
    let empty = idx.memory_bytes();
    idx.add(&ids, VectorsRef::Dense(&data)).unwrap();
    let per = (idx.memory_bytes() - empty) as f64 / n as f64;
    // vectors (256 B) + level-0 links (132 B) + id + a little
    assert!(per >= (dim * 4 + 33 * 4) as f64 && per <= (dim * 4 + 33 * 4 + 80) as f64, "{per} bytes per vector");
}

#[test]
fn sq8_codes_keep_recall_for_dense_metrics() {
    // HNSW16,SQ8 walks the graph on 8-bit codes: recall stays high, the codes take a quarter
    // of the bytes, and `,Refine` puts exact distances back.
    let (n, dim, k) = (6_000, 48, 10);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 5 + 2).collect();
    for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
        let mut data = clustered(n, dim, 30, 21);
        let mut queries = clustered(100, dim, 30, 22);
        if metric == Metric::Cosine {
            normalize_rows(&mut data, dim);
            normalize_rows(&mut queries, dim);
        }
        let (d, q) = (VectorsRef::Dense(&data), VectorsRef::Dense(&queries));
        let mut full = build_index("HNSW16", dim, metric).unwrap();
        full.add(&ids, d).unwrap();
        // The bulk build's temporary codes (a byte per component) are not the float graph.
        full.as_hnsw_mut().unwrap().release_build_codes();
        let mut sq = build_index("HNSW16,SQ8", dim, metric).unwrap();
        assert_eq!(sq.description(), "HNSW16,SQ8");
        assert!(!sq.is_trained());
        sq.add(&ids, d).unwrap(); // trains on this first batch
        assert!(sq.is_trained());
        let r = mean_recall(sq.as_ref(), d, q, &ids, k, &ef(100));
        eprintln!("{metric}: HNSW16,SQ8 recall@10 at ef=100: {r}");
        assert!(r >= 0.9, "{metric}: SQ8 recall@10 {r}");
        let codes_per_row = (sq.memory_bytes() as f64 - (full.memory_bytes() - 4 * dim * n) as f64) / n as f64;
        assert!((codes_per_row - dim as f64).abs() < 2.0, "{metric}: {codes_per_row} bytes of codes per row");
        // Decoded vectors are close to the originals.
        let back = sq.reconstruct(ids[9]).unwrap();
        let orig = &data[9 * dim..10 * dim];
        let err = match back {
            Vector::Dense(v) => v.iter().zip(orig).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt(),
            Vector::Binary(_) => panic!("dense expected"),
        };
        // Half a step per component at most, in the coded (possibly rotated) space, where no
        // component exceeds the longest row: step ≤ 2·max‖x‖ / 255 (l2) or max‖x‖ / 127
        // (inner products), and a rotation keeps the error's length.
        let max_norm = data.chunks_exact(dim).map(|r| r.iter().map(|x| x * x).sum::<f32>().sqrt()).fold(0.0, f32::max);
        let bound = (dim as f32).sqrt() * max_norm / 250.0;
        assert!(err <= bound, "{metric}: decode error {err} (bound {bound})");
        // Refine re-ranks the candidates exactly: distances are the reference ones.
        let mut refined = build_index("HNSW16,SQ8,Refine", dim, metric).unwrap();
        refined.add(&ids, d).unwrap();
        let p = SearchParams { ef: Some(100), rerank: Some(100), ..Default::default() };
        let rr = mean_recall(refined.as_ref(), d, q, &ids, k, &p);
        assert!(rr >= r - 0.005 && rr >= 0.95, "{metric}: refined recall {rr} (codes {r})");
        let qi = q.row(dim, 0);
        for nb in refined.search(qi, k, &p, None).unwrap() {
            let slot = ids.iter().position(|&x| x == nb.id).unwrap();
            assert_eq!(nb.distance, metric.distance(qi, d.row(dim, slot)).unwrap());
        }
    }
}

#[test]
fn sq8_is_lossless_on_grid_data_and_persists() {
    // Values on an 8-bit grid (like image pixels) are coded exactly: SQ8 finds what the full
    // index finds. Saved and loaded, it answers the same and still takes inserts.
    let (n, dim) = (3_000, 32);
    let mut data = clustered(n, dim, 15, 31);
    let lo = data.iter().fold(f32::INFINITY, |m, &x| m.min(x));
    let hi = data.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    data.iter_mut().for_each(|x| *x = ((*x - lo) / (hi - lo) * 255.0).round());
    // One dimension spans the whole grid, so the fitted step is exactly 1.
    data[0] = 0.0;
    data[dim] = 255.0;
    let queries: Vec<f32> = data[..40 * dim].iter().map(|x| (x + 1.0).min(255.0)).collect();
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut sq = HnswIndex::with_sq8(dim, Metric::L2, 12, 100).unwrap();
    sq.add(&ids, VectorsRef::Dense(&data)).unwrap();
    assert_eq!(sq.reconstruct(17), Some(Vector::Dense(data[17 * dim..18 * dim].to_vec())));
    let r = mean_recall(&sq, VectorsRef::Dense(&data), VectorsRef::Dense(&queries), &ids, 10, &ef(64));
    assert!(r >= 0.97, "recall@10 {r}");
    // Exact codes: distances reported are the true Euclidean distances.
    let q = VectorRef::Dense(&data[5 * dim..6 * dim]);
    let hits = sq.search(q, 5, &ef(64), None).unwrap();
    assert_eq!(hits[0], Neighbor { id: 5, distance: 0.0 });
    sq.remove(&[5]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    sq.save(dir.path()).unwrap();
    let mut loaded = load_index(dir.path()).unwrap();
    assert_eq!(loaded.description(), "HNSW12,SQ8,efC100");
    assert!(loaded.memory_bytes() <= sq.memory_bytes(), "a loaded index takes more memory than the one saved");
    for i in 0..40 {
        let q = VectorRef::Dense(&queries[i * dim..(i + 1) * dim]);
        assert_eq!(sq.search(q, 10, &ef(50), None).unwrap(), loaded.search(q, 10, &ef(50), None).unwrap());
    }
    assert!(!loaded.search(q, 10, &ef(50), None).unwrap().iter().any(|h| h.id == 5));
    loaded.add(&[50_000], VectorsRef::Dense(&data[..dim])).unwrap();
    assert_eq!(loaded.search(VectorRef::Dense(&data[..dim]), 2, &ef(50), None).unwrap().len(), 2);
    // A corrupt codec is reported, never used (even in a file whose checksum is right).
    let meta = dir.path().join("index.json");
    let text = String::from_utf8(vecdb::index::file::read(&meta).unwrap()).unwrap();
    let edited = text.replace("\"step\": 1.0", "\"step\": -1.0");
    assert_ne!(edited, text);
    vecdb::index::file::write(&meta, edited.as_bytes()).unwrap();
    assert!(matches!(HnswIndex::load(dir.path()), Err(Error::Corrupt { .. })));
    // SQ8 needs dense vectors; training after coding is refused.
    assert!(build_index("HNSW16,SQ8", 64, Metric::Hamming).is_err());
    assert!(build_index("HNSW16,SQ4", 64, Metric::L2).is_err());
    assert!(sq.train(VectorsRef::Dense(&data)).is_err());
}

/// The reported neighbours of `q` carry the reference distance of the row stored under
/// their id (`rows[id_to_row(id)]`), so a search that skipped the exact re-rank (code
/// distances) fails here.
fn assert_exact_distances(found: &[Neighbor], metric: Metric, q: VectorRef<'_>, row_of: impl Fn(u64) -> Vec<f32>) {
    for nb in found {
        let want = metric.distance(q, VectorRef::Dense(&row_of(nb.id))).unwrap();
        assert_eq!(nb.distance, want, "id {}: distance {} is not the exact {want}", nb.id, nb.distance);
    }
}

#[test]
fn sq8_refine_reranks_only_the_final_candidates() {
    // `HNSW16,SQ8,Refine` walks the codes and re-ranks the `rerank` best candidates with the
    // full vectors: recall reaches the float graph's (floors below), every distance is exact,
    // and a re-rank of only k candidates (no slack) does measurably worse than the default.
    let (n, dim, k) = (6_000, 48, 10);
    let ids: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
    for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
        let mut data = clustered(n, dim, 30, 41);
        let mut queries = clustered(200, dim, 30, 42);
        if metric == Metric::Cosine {
            normalize_rows(&mut data, dim);
            normalize_rows(&mut queries, dim);
        }
        let (d, q) = (VectorsRef::Dense(&data), VectorsRef::Dense(&queries));
        let mut codes = build_index("HNSW16,SQ8", dim, metric).unwrap();
        codes.add(&ids, d).unwrap();
        let mut refined = build_index("HNSW16,SQ8,Refine", dim, metric).unwrap();
        assert_eq!(refined.description(), "HNSW16,SQ8,Refine");
        refined.add(&ids, d).unwrap();
        let at = |ef: usize, rerank: Option<usize>| SearchParams { ef: Some(ef), rerank, ..Default::default() };
        let r_codes = mean_recall(codes.as_ref(), d, q, &ids, k, &at(64, None));
        let r_default = mean_recall(refined.as_ref(), d, q, &ids, k, &at(64, None));
        let r_beam = mean_recall(refined.as_ref(), d, q, &ids, k, &at(64, Some(64)));
        let r_low = mean_recall(refined.as_ref(), d, q, &ids, k, &at(16, None));
        eprintln!(
            "{metric}: codes {r_codes:.4}, refined ef 64 {r_default:.4} (whole beam {r_beam:.4}), ef 16 {r_low:.4}"
        );
        assert!(r_default >= 0.99, "{metric}: refined recall@10 {r_default} at ef 64");
        assert!(r_low >= 0.95, "{metric}: refined recall@10 {r_low} at ef 16");
        assert!(r_default >= r_beam - 0.002, "{metric}: default depth {r_default} vs whole beam {r_beam}");
        assert!(r_default >= r_codes, "{metric}: refined {r_default} below codes only {r_codes}");
        let row_of = |id: u64| {
            let i = ids.iter().position(|&x| x == id).unwrap();
            data[i * dim..(i + 1) * dim].to_vec()
        };
        for i in 0..20 {
            let qi = q.row(dim, i);
            assert_exact_distances(&refined.search(qi, k, &at(64, None), None).unwrap(), metric, qi, row_of);
        }
        assert_eq!(refined.reconstruct(ids[7]), Some(Vector::Dense(row_of(ids[7]))));
        // The full vectors are kept beside the codes: 4 bytes per component more than SQ8.
        let extra = (refined.memory_bytes() - codes.memory_bytes()) as f64 / n as f64;
        assert!((extra - 4.0 * dim as f64).abs() < 2.0, "{metric}: {extra} extra bytes per vector");
    }
}

#[test]
fn sq8_refine_honours_filters_removals_and_persists() {
    let (n, dim, k) = (4_000, 32, 10);
    let data = clustered(n, dim, 20, 51);
    let queries = clustered(50, dim, 20, 52);
    let ids: Vec<u64> = (0..n as u64).collect();
    let (d, q) = (VectorsRef::Dense(&data), VectorsRef::Dense(&queries));
    let mut ix = build_index("HNSW12,SQ8,efC100,Refine", dim, Metric::L2).unwrap();
    assert_eq!(ix.description(), "HNSW12,SQ8,efC100,Refine");
    ix.add(&ids, d).unwrap();
    let row_of = |id: u64| data[id as usize * dim..(id as usize + 1) * dim].to_vec();
    // Removals (a tenth: tombstones) and a filter (odd ids) are honoured; distances stay exact.
    let gone: Vec<u64> = (0..n as u64).filter(|i| i % 10 == 3).collect();
    assert_eq!(ix.remove(&gone).unwrap(), gone.len());
    let odd = |id: u64| id % 2 == 1;
    let p = SearchParams { ef: Some(64), ..Default::default() };
    let live: Vec<u64> = ids.iter().copied().filter(|i| i % 10 != 3).collect();
    let live_odd: Vec<u64> = live.iter().copied().filter(|&i| odd(i)).collect();
    let mut hits = 0.0;
    for i in 0..queries.len() / dim {
        let qi = q.row(dim, i);
        let found = ix.search(qi, k, &p, Some(&odd)).unwrap();
        assert_eq!(found.len(), k);
        assert!(found.iter().all(|h| odd(h.id) && h.id % 10 != 3), "a removed or filtered id came back");
        assert_exact_distances(&found, Metric::L2, qi, row_of);
        let rows: Vec<f32> = live_odd.iter().flat_map(|&id| row_of(id)).collect();
        hits += recall(&found, &exact(Metric::L2, VectorsRef::Dense(&rows), dim, &live_odd, qi, k));
        // A very selective filter is answered by the exact scan of the full vectors.
        let rare = |id: u64| id.is_multiple_of(97) && id % 10 != 3;
        let few = ix.search(qi, k, &p, Some(&rare)).unwrap();
        let rare_ids: Vec<u64> = live.iter().copied().filter(|&i| rare(i)).collect();
        let rows: Vec<f32> = rare_ids.iter().flat_map(|&id| row_of(id)).collect();
        assert_eq!(few, exact(Metric::L2, VectorsRef::Dense(&rows), dim, &rare_ids, qi, k));
    }
    let r = hits / (queries.len() / dim) as f64;
    assert!(r >= 0.97, "filtered refined recall@10 {r}");
    // Range search uses exact distances too.
    let q0 = q.row(dim, 0);
    let ball = ix.range_search(q0, 6.0, &p, None).unwrap();
    assert!(ball.iter().all(|h| h.distance <= 6.0 && h.id % 10 != 3));
    assert_exact_distances(&ball, Metric::L2, q0, row_of);

    // Saved and loaded (version 3, full vectors mapped): the same answers, and inserts work.
    let dir = tempfile::tempdir().unwrap();
    ix.save(dir.path()).unwrap();
    assert!(dir.path().join("exact.bin").is_file());
    let mut loaded = load_index(dir.path()).unwrap();
    assert_eq!(loaded.description(), ix.description());
    assert!(loaded.memory_bytes() <= ix.memory_bytes(), "a loaded index takes more memory than the one saved");
    for i in 0..queries.len() / dim {
        let qi = q.row(dim, i);
        assert_eq!(ix.search(qi, k, &p, None).unwrap(), loaded.search(qi, k, &p, None).unwrap());
        assert_eq!(ix.search(qi, k, &p, Some(&odd)).unwrap(), loaded.search(qi, k, &p, Some(&odd)).unwrap());
    }
    loaded.add(&[90_000], VectorsRef::Dense(&data[..dim])).unwrap();
    let top = loaded.search(VectorRef::Dense(&data[..dim]), 2, &p, None).unwrap();
    assert_eq!(top.iter().map(|h| h.distance).collect::<Vec<_>>(), [0.0, 0.0]);
    // Without its full vectors the index is not loaded.
    std::fs::remove_file(dir.path().join("exact.bin")).unwrap();
    assert!(load_index(dir.path()).is_err());

    // Removing past a quarter consolidates: the full vectors follow their nodes.
    let more: Vec<u64> = (0..n as u64).filter(|i| i % 10 < 3 && i % 10 != 3).collect();
    ix.remove(&more).unwrap();
    assert_eq!(ix.len(), n - gone.len() - more.len());
    for i in 0..10 {
        let qi = q.row(dim, i);
        let found = ix.search(qi, k, &p, None).unwrap();
        assert!(found.iter().all(|h| h.id % 10 > 3), "a removed id came back after consolidation");
        assert_exact_distances(&found, Metric::L2, qi, row_of);
    }
    assert_eq!(ix.reconstruct(9), Some(Vector::Dense(row_of(9))));
}

#[test]
fn version_2_files_still_load() {
    // Indexes saved before version 3 (no `refine` field, no exact.bin; no `in_place` before
    // version 4) read back unchanged.
    let (n, dim) = (1_000, 16);
    let data = clustered(n, dim, 10, 61);
    let ids: Vec<u64> = (0..n as u64).collect();
    for spec in ["HNSW8", "HNSW8,SQ8"] {
        let mut ix = build_index(spec, dim, Metric::L2).unwrap();
        ix.add(&ids, VectorsRef::Dense(&data)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        ix.save(dir.path()).unwrap();
        let meta = dir.path().join("index.json");
        let text = String::from_utf8(vecdb::index::file::read(&meta).unwrap()).unwrap();
        let v2 = text
            .replace("\"version\": 4", "\"version\": 2")
            .replace(",\n  \"refine\": false", "")
            .replace(",\n  \"in_place\": false", "");
        assert!(v2.contains("\"version\": 2") && !v2.contains("refine") && !v2.contains("in_place"), "{spec}: {v2}");
        vecdb::index::file::write(&meta, v2.as_bytes()).unwrap();
        let loaded = load_index(dir.path()).unwrap();
        assert_eq!(loaded.description(), spec);
        let q = VectorRef::Dense(&data[5 * dim..6 * dim]);
        assert_eq!(loaded.search(q, 5, &ef(32), None).unwrap(), ix.search(q, 5, &ef(32), None).unwrap());
        let v9 = text.replace("\"version\": 4", "\"version\": 9");
        vecdb::index::file::write(&meta, v9.as_bytes()).unwrap();
        assert!(matches!(load_index(dir.path()), Err(Error::Corrupt { .. })), "{spec}: version 9 accepted");
    }
}
