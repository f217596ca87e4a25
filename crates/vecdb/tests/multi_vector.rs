//! Multi-vector fields: a record holds several vectors of one field (an image's regional
//! descriptors), a query one or several, and a search scores each record by its best pair and
//! returns records — through the exact scan of the stored rows, a graph index, the automatic
//! policy's background build, after a checkpoint and reopen, with deletes, filters and range
//! searches. Bad rows and queries are refused with errors that say what is wrong.

use std::time::{Duration, Instant};

use vecdb::{CollectionSchema, Database, Filter, Metric, Query, Record, SearchRequest, Vector, VectorField};

const DIM: usize = 12;
const PER: usize = 4;

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= n);
    v
}

/// Vector `j` of record `id`: deterministic, spread out.
fn part(id: u64, j: usize) -> Vec<f32> {
    unit(
        (0..DIM as u64)
            .map(|c| {
                let x = (id.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ ((j as u64 + 1) << 20)
                    ^ c.wrapping_mul(0xBF58_476D_1CE4_E5B9))
                .rotate_left((c * 7 + j as u64) as u32);
                (x % 10_007) as f32 / 10_007.0 - 0.5
            })
            .collect(),
    )
}

fn row(id: u64) -> Vec<f32> {
    (0..PER).flat_map(|j| part(id, j)).collect()
}

fn record(id: u64) -> Record {
    Record::new(id).with_vector("regions", Vector::Dense(row(id))).with_metadata(serde_json::json!({"odd": id % 2}))
}

fn schema(index: &str) -> CollectionSchema {
    CollectionSchema {
        fields: vec![VectorField::new("regions", DIM, Metric::Cosine, index).with_vectors_per_record(PER)],
    }
}

/// The exact answer over `ids`: each record's best pair with the query's vectors.
fn brute(ids: impl Iterator<Item = u64>, q: &[f32], k: usize) -> Vec<(u64, f32)> {
    let mut all: Vec<(u64, f32)> = ids
        .map(|id| {
            let r = row(id);
            let best = q
                .chunks(DIM)
                .flat_map(|qv| r.chunks(DIM).map(move |rv| 1.0 - qv.iter().zip(rv).map(|(a, b)| a * b).sum::<f32>()))
                .fold(f32::INFINITY, f32::min);
            (id, best)
        })
        .collect();
    all.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

fn search(c: &vecdb::Collection, q: &[f32], k: usize) -> Vec<(u64, f32)> {
    let req = SearchRequest::new("regions", Query::Vector(Vector::Dense(q.to_vec())), k);
    c.search(&req).unwrap().into_iter().map(|h| (h.id, h.distance)).collect()
}

fn assert_same(got: &[(u64, f32)], want: &[(u64, f32)]) {
    assert_eq!(got.len(), want.len(), "{got:?}\n{want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g.1 - w.1).abs() < 1e-4, "{got:?}\n{want:?}");
    }
    // Ids in order, equal distances (to rounding) in id order.
    let ids = |v: &[(u64, f32)]| {
        let mut v: Vec<(i64, u64)> = v.iter().map(|h| ((h.1 * 1e4).round() as i64, h.0)).collect();
        v.sort_unstable();
        v.into_iter().map(|h| h.1).collect::<Vec<_>>()
    };
    assert_eq!(ids(got), ids(want));
}

/// Queries: one stored part (found at distance 0), a part plus noise, and three vectors.
fn queries() -> Vec<Vec<f32>> {
    let noisy: Vec<f32> = unit(part(17, 2).iter().zip(part(900, 0)).map(|(a, b)| a + 0.4 * b).collect());
    vec![part(42, 3), noisy, [part(1234, 0), part(7, 1), part(55, 2)].concat()]
}

#[test]
fn exact_answers_through_scan_graph_checkpoint_reopen_deletes_filters_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let n = 600u64;
    for spec in ["Flat", "HNSW16"] {
        let name = format!("c{}", spec.len());
        let live = |deleted: &[u64]| (0..n).filter(move |id| !deleted.contains(id)).collect::<Vec<_>>();
        {
            let db = Database::open(dir.path()).unwrap();
            let c = db.create_collection(&name, schema(spec)).unwrap();
            // Half sealed in a segment, half in the memtable.
            c.insert((0..n / 2).map(record).collect()).unwrap();
            c.checkpoint().unwrap();
            c.insert((n / 2..n).map(record).collect()).unwrap();
            for q in queries() {
                assert_same(&search(&c, &q, 10), &brute(0..n, &q, 10));
            }
            // A stored part is found at distance 0 under its record's id, once.
            let hits = search(&c, &part(42, 3), 5);
            assert_eq!(hits[0].0, 42);
            assert!(hits[0].1.abs() < 1e-5);
            assert_eq!(hits.iter().filter(|h| h.0 == 42).count(), 1);
            // Deletes, and a replaced record answering with its new vectors.
            assert_eq!(c.delete(&[42, 43]).unwrap(), 2);
            c.upsert(vec![Record::new(7).with_vector("regions", Vector::Dense(row(5000)))]).unwrap();
            let hits = search(&c, &part(5000, 1), 1);
            assert_eq!(hits[0].0, 7);
            assert!(search(&c, &part(42, 3), 5).iter().all(|h| h.0 != 42));
            c.checkpoint().unwrap();
        }
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection(&name).unwrap();
        let ids: Vec<u64> = live(&[42, 43, 7]);
        for q in queries() {
            let mut want = brute(ids.iter().copied(), &q, 10);
            // Record 7 now holds record 5000's vectors.
            want.extend(brute(std::iter::once(5000), &q, 1).into_iter().map(|(_, d)| (7, d)));
            want.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            want.truncate(10);
            assert_same(&search(&c, &q, 10), &want);
        }
        // Filters choose records; a range search returns each record once.
        let q = &queries()[2];
        let req = SearchRequest::new("regions", Query::Vector(Vector::Dense(q.clone())), 5)
            .with_filter(Filter::parse("odd = 1").unwrap());
        let hits = c.search(&req).unwrap();
        assert!(hits.len() == 5 && hits.iter().all(|h| h.id % 2 == 1), "{spec}: {hits:?}");
        let want: Vec<(u64, f32)> = brute(ids.iter().copied().filter(|id| id % 2 == 1), q, 5).into_iter().collect();
        assert_same(&hits.iter().map(|h| (h.id, h.distance)).collect::<Vec<_>>(), &want);
        let mut req = SearchRequest::new("regions", Query::Vector(Vector::Dense(q.clone())), 1);
        req.k = None;
        let hits = c.search(&req.with_threshold(0.05)).unwrap();
        let got: Vec<u64> = hits.iter().map(|h| h.id).collect();
        assert!(got.contains(&55) && !got.contains(&7), "{spec}: {got:?}");
        let mut within: Vec<u64> = brute(ids.iter().copied(), q, ids.len())
            .into_iter()
            .chain(brute(std::iter::once(5000), q, 1).into_iter().map(|(_, d)| (7, d)))
            .filter(|h| h.1 <= 0.05)
            .map(|h| h.0)
            .collect();
        within.sort_unstable();
        let mut uniq = got.clone();
        uniq.sort_unstable();
        uniq.dedup();
        assert_eq!(uniq.len(), got.len(), "{spec}: a record came back twice");
        assert_eq!(uniq, within, "{spec}");
        // Search by a stored record: its own vectors are the query.
        let req = SearchRequest::new("regions", Query::Id(100), 3);
        let hits = c.search(&req).unwrap();
        assert!(hits.iter().all(|h| h.id != 100) && hits.len() == 3);
        // The record's whole row comes back.
        let Vector::Dense(back) = c.get(100).unwrap().unwrap().vectors["regions"].clone() else { panic!() };
        assert_eq!(back.len(), DIM * PER);
        assert!(back.iter().zip(row(100)).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}

#[test]
fn the_automatic_policy_builds_its_graph_over_every_vector_of_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", schema("Auto,threshold=200")).unwrap();
    c.insert((0..800).map(record).collect()).unwrap();
    let t = Instant::now();
    c.wait_for_index_builds(|_| assert!(t.elapsed() < Duration::from_secs(120), "the build never ends"));
    let s = c.stats().fields.into_iter().next().unwrap();
    assert_eq!(s.index, "HNSW32", "{s:?}");
    for id in (0..800).step_by(41) {
        for j in 0..PER {
            let hits = search(&c, &part(id, j), 1);
            assert_eq!(hits[0].0, id, "record {id} vector {j}");
        }
    }
    for q in queries() {
        let got = search(&c, &q, 10);
        let want = brute(0..800, &q, 10);
        let overlap = got.iter().filter(|g| want.iter().any(|w| w.0 == g.0)).count();
        assert!(overlap >= 9, "recall@10 {overlap}/10: {got:?} vs {want:?}");
    }
}

#[test]
fn bad_rows_queries_and_schemas_are_refused_with_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", schema("Flat")).unwrap();
    // A row must hold exactly PER vectors.
    let short = Record::new(1).with_vector("regions", Vector::Dense(row(1)[..DIM * (PER - 1)].to_vec()));
    let e = c.insert(vec![short]).unwrap_err().to_string();
    assert!(e.contains(&format!("{}", DIM * PER)), "{e}");
    let mut zero = row(2);
    zero[DIM..2 * DIM].iter_mut().for_each(|x| *x = 0.0);
    let e = c.insert(vec![Record::new(2).with_vector("regions", Vector::Dense(zero))]).unwrap_err().to_string();
    assert!(e.contains("vector 1 of the row"), "{e}");
    assert_eq!(c.count(), 0);
    c.insert((0..10).map(record).collect()).unwrap();
    // A query must be whole vectors of the field's dimension.
    let req = SearchRequest::new("regions", Query::Vector(Vector::Dense(vec![0.5; DIM + 3])), 3);
    assert!(c.search(&req).is_err());
    let req = SearchRequest::new("regions", Query::Vector(Vector::Dense(vec![0.5; DIM * 1025])), 3);
    let e = c.search(&req).unwrap_err().to_string();
    assert!(e.contains("at most 1024"), "{e}");
    // Bits cannot hold several vectors per record; nor can a field hold none or too many.
    for (metric, n) in [(Metric::Hamming, 2), (Metric::Cosine, 0), (Metric::Cosine, 10_000)] {
        let s = CollectionSchema { fields: vec![VectorField::new("v", 64, metric, "Flat").with_vectors_per_record(n)] };
        let e = db.create_collection("bad", s).unwrap_err().to_string();
        assert!(e.contains("vectors per record") || e.contains("multi-vector"), "{e}");
    }
    // The schema says so, and a one-vector field's JSON stays as it was.
    let json = serde_json::to_string(&c.schema().fields[0]).unwrap();
    assert!(json.contains("\"vectors_per_record\":4"), "{json}");
    let one = serde_json::to_string(&VectorField::new("v", 8, Metric::L2, "Flat")).unwrap();
    assert!(!one.contains("vectors_per_record"), "{one}");
}
