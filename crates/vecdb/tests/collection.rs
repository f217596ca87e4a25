//! Behaviour of the `Database` / `Collection` API: CRUD, bad input, search modes,
//! persistence, locking, index changes, concurrency.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use rand::{Rng, RngExt, SeedableRng};
use serde_json::json;
use vecdb::{CollectionSchema, Database, Error, Filter, Metric, Query, Record, SearchRequest, Vector, VectorField};

const DIM: usize = 16;

fn rng(seed: u64) -> rand::rngs::StdRng {
    rand::rngs::StdRng::seed_from_u64(seed)
}

fn rand_vec(r: &mut impl Rng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

fn multi_schema() -> CollectionSchema {
    CollectionSchema {
        fields: vec![
            VectorField::new("emb", DIM, Metric::L2, "Flat"),
            VectorField::new("cos", DIM, Metric::Cosine, "Flat"),
            VectorField::new("hash", 64, Metric::Hamming, "Flat"),
        ],
    }
}

fn make_record(r: &mut impl Rng, id: u64) -> Record {
    let bits: [u8; 8] = r.random();
    Record::new(id)
        .with_vector("emb", Vector::Dense(rand_vec(r, DIM)))
        .with_vector("cos", Vector::Dense(rand_vec(r, DIM)))
        .with_vector("hash", Vector::Binary(bits.to_vec()))
        .with_metadata(json!({
            "label": (["cat", "dog", "bird"][(id % 3) as usize]),
            "width": id * 10,
            "path": format!("/photos/{}/{id}.jpg", if id.is_multiple_of(2) { "even" } else { "odd" }),
            "tags": ["a", format!("t{}", id % 5)],
        }))
}

fn normalized(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn dense(v: &Vector) -> &[f32] {
    match v {
        Vector::Dense(x) => x,
        Vector::Binary(_) => panic!("expected dense"),
    }
}

fn setup(n: u64) -> (tempfile::TempDir, Database, Arc<vecdb::Collection>, Vec<Record>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", multi_schema()).unwrap();
    let mut r = rng(42);
    let recs: Vec<Record> = (1..=n).map(|id| make_record(&mut r, id)).collect();
    c.insert(recs.clone()).unwrap();
    (dir, db, c, recs)
}

#[test]
fn insert_get_count_and_cosine_normalization() {
    let (_d, _db, c, recs) = setup(50);
    assert_eq!(c.count(), 50);
    assert_eq!(c.ids(), (1..=50).collect::<Vec<_>>());
    for rec in &recs {
        let got = c.get(rec.id).unwrap().expect("stored");
        assert_eq!(got.metadata, rec.metadata);
        assert_eq!(got.vectors["emb"], rec.vectors["emb"]);
        assert_eq!(got.vectors["hash"], rec.vectors["hash"]);
        let want = normalized(dense(&rec.vectors["cos"]));
        for (a, b) in dense(&got.vectors["cos"]).iter().zip(&want) {
            assert!((a - b).abs() < 1e-6);
        }
        assert_eq!(c.get_metadata(rec.id).as_ref(), Some(&rec.metadata));
    }
    assert!(c.get(999).unwrap().is_none());
    assert!(c.get_metadata(999).is_none());
    let mut seen = vec![];
    c.for_each(|r| seen.push(r.id)).unwrap();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());
}

#[test]
fn bad_input_is_rejected_without_partial_write() {
    let (_d, _db, c, _recs) = setup(10);
    let mut r = rng(7);
    let good = |r: &mut rand::rngs::StdRng, id| make_record(r, id);
    type Case = (Record, fn(&Error) -> bool);
    let cases: Vec<Case> = vec![
        (good(&mut r, 100).with_vector("emb", Vector::Dense(vec![0.5; DIM - 1])), |e| {
            matches!(e, Error::DimensionMismatch { expected: DIM, got: 15 })
        }),
        (
            good(&mut r, 101).with_vector(
                "emb",
                Vector::Dense({
                    let mut v = vec![0.5; DIM];
                    v[3] = f32::NAN;
                    v
                }),
            ),
            |e| matches!(e, Error::InvalidVector(m) if m.contains("component 3")),
        ),
        (
            good(&mut r, 102).with_vector(
                "cos",
                Vector::Dense({
                    let mut v = vec![0.5; DIM];
                    v[0] = f32::INFINITY;
                    v
                }),
            ),
            |e| matches!(e, Error::InvalidVector(_)),
        ),
        (
            good(&mut r, 103).with_vector("nope", Vector::Dense(vec![0.0; DIM])),
            |e| matches!(e, Error::UnknownField(f) if f.contains("nope")),
        ),
        (good(&mut r, 104).with_vector("hash", Vector::Dense(vec![0.0; 64])), |e| matches!(e, Error::InvalidVector(_))),
        (good(&mut r, 105).with_vector("cos", Vector::Dense(vec![0.0; DIM])), |e| matches!(e, Error::InvalidVector(_))),
        (
            {
                let mut rec = good(&mut r, 106);
                rec.vectors.remove("hash");
                rec
            },
            |e| matches!(e, Error::InvalidArgument(m) if m.contains("hash")),
        ),
        (good(&mut r, 5), |e| matches!(e, Error::DuplicateId(5))),
    ];
    for (i, (bad, check)) in cases.into_iter().enumerate() {
        // a valid record first in the batch: it must not be written either
        let batch = vec![good(&mut r, 200 + i as u64), bad];
        let err = c.insert(batch.clone()).expect_err("bad batch accepted");
        assert!(check(&err), "case {i}: unexpected error {err:?}");
        assert_eq!(c.count(), 10, "case {i}: partial write");
        assert!(c.get(200 + i as u64).unwrap().is_none());
        if !matches!(err, Error::DuplicateId(_)) {
            assert!(c.upsert(batch).is_err(), "case {i}: upsert accepted bad input");
            assert_eq!(c.count(), 10);
        }
    }
    // duplicate inside one batch
    let err = c.insert(vec![good(&mut r, 300), good(&mut r, 300)]).unwrap_err();
    assert!(matches!(err, Error::DuplicateId(300)));
    assert_eq!(c.count(), 10);
    // bad search input
    let q = |v: Vec<f32>| SearchRequest::new("emb", Query::Vector(Vector::Dense(v)), 3);
    assert!(matches!(c.search(&q(vec![1.0; 3])), Err(Error::DimensionMismatch { .. })));
    assert!(matches!(c.search(&q(vec![f32::NAN; DIM])), Err(Error::InvalidVector(_))));
    let mut unknown = q(vec![1.0; DIM]);
    unknown.field = "zzz".into();
    assert!(matches!(c.search(&unknown), Err(Error::UnknownField(_))));
    assert!(matches!(c.search(&SearchRequest::new("emb", Query::Id(12345), 3)), Err(Error::NotFound(12345))));
    let mut neither = q(vec![1.0; DIM]);
    neither.k = None;
    assert!(matches!(c.search(&neither), Err(Error::InvalidArgument(_))));
    // durable: reopen shows the same 10
    drop((c, _db));
    let db = Database::open(_d.path()).unwrap();
    assert_eq!(db.collection("c").unwrap().count(), 10);
}

#[test]
fn upsert_and_delete() {
    let (_d, _db, c, _recs) = setup(20);
    let mut r = rng(9);
    let new5 = make_record(&mut r, 5).with_metadata(json!({"label": "new"}));
    c.upsert(vec![new5.clone(), make_record(&mut r, 21)]).unwrap();
    assert_eq!(c.count(), 21);
    assert_eq!(c.get(5).unwrap().unwrap().vectors["emb"], new5.vectors["emb"]);
    assert_eq!(c.get_metadata(5).unwrap()["label"], json!("new"));
    // searching for the new vector finds 5 at distance 0, the old vector is gone
    let hits = c.search(&SearchRequest::new("emb", Query::Vector(new5.vectors["emb"].clone()), 1)).unwrap();
    assert_eq!((hits[0].id, hits[0].distance), (5, 0.0));
    assert_eq!(c.delete(&[1, 2, 2, 999]).unwrap(), 2);
    assert_eq!(c.delete(&[1]).unwrap(), 0);
    assert_eq!(c.count(), 19);
    assert!(c.get(1).unwrap().is_none());
    let all = c.search(&SearchRequest::new("emb", Query::Vector(Vector::Dense(vec![0.0; DIM])), 100)).unwrap();
    assert_eq!(all.len(), 19);
    assert!(all.iter().all(|h| h.id != 1 && h.id != 2));
    // re-insert after delete is allowed
    c.insert(vec![make_record(&mut r, 1)]).unwrap();
    assert_eq!(c.count(), 20);
}

fn reference(metric: Metric, q: &Vector, v: &Vector) -> f32 {
    match (q, v) {
        (Vector::Dense(a), Vector::Dense(b)) => match metric {
            Metric::L2 => a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt(),
            Metric::Cosine => {
                let (a, b) = (normalized(a), normalized(b));
                1.0 - a.iter().zip(&b).map(|(x, y)| x * y).sum::<f32>()
            }
            Metric::Dot => -a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>(),
            Metric::Hamming => unreachable!(),
        },
        (Vector::Binary(a), Vector::Binary(b)) => {
            a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum::<u32>() as f32
        }
        _ => unreachable!(),
    }
}

#[test]
fn search_matches_brute_force_for_every_metric() {
    for metric in Metric::ALL {
        let dim = if metric == Metric::Hamming { 64 } else { DIM };
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("m", CollectionSchema::single("v", dim, metric, "Flat")).unwrap();
        let mut r = rng(metric as u64 + 1);
        let mk = |r: &mut rand::rngs::StdRng| {
            if metric == Metric::Hamming {
                Vector::Binary((0..8).map(|_| r.random()).collect())
            } else {
                Vector::Dense(rand_vec(r, dim))
            }
        };
        let stored: BTreeMap<u64, Vector> = (0..300u64).map(|id| (id, mk(&mut r))).collect();
        let recs = stored
            .iter()
            .map(|(&id, v)| Record::new(id).with_vector("v", v.clone()).with_metadata(json!({"odd": id % 2 == 1})))
            .collect();
        c.insert(recs).unwrap();
        c.delete(&[3, 4, 5]).unwrap();
        let live: Vec<(&u64, &Vector)> = stored.iter().filter(|(id, _)| ![3, 4, 5].contains(*id)).collect();
        for _ in 0..5 {
            let q = mk(&mut r);
            let mut want: Vec<(f32, u64)> = live.iter().map(|(id, v)| (reference(metric, &q, v), **id)).collect();
            want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let hits = c.search(&SearchRequest::new("v", Query::Vector(q.clone()), 10)).unwrap();
            assert_eq!(hits.len(), 10);
            for (h, w) in hits.iter().zip(&want) {
                assert!((h.distance - w.0).abs() < 1e-4, "{metric}: {} vs {}", h.distance, w.0);
            }
            // range search: every record within the 20th distance
            let t = want[19].0;
            let range = c.search(&SearchRequest::range("v", Query::Vector(q.clone()), t)).unwrap();
            let expect_n = want.iter().filter(|w| w.0 <= t + 1e-5).count();
            assert!(range.len().abs_diff(expect_n) <= 1, "{metric}: range {} vs {expect_n}", range.len());
            assert!(range.iter().all(|h| h.distance <= t));
            assert!(range.windows(2).all(|w| w[0].distance <= w[1].distance));
            // k + threshold: at most k within threshold
            let both = c.search(&SearchRequest::new("v", Query::Vector(q.clone()), 5).with_threshold(t)).unwrap();
            assert_eq!(both.len(), 5);
            let t2 = want[2].0 + 1e-5;
            let tight = c.search(&SearchRequest::new("v", Query::Vector(q.clone()), 50).with_threshold(t2)).unwrap();
            let n_within = want.iter().filter(|w| w.0 <= t2).count().min(50);
            assert!(tight.len() >= 3 && tight.len().abs_diff(n_within) <= 1, "{metric}: {} vs {n_within}", tight.len());
            assert!(tight.iter().all(|h| h.distance <= t2));
            // filtered: only odd ids, still k of them
            let f = c
                .search(
                    &SearchRequest::new("v", Query::Vector(q.clone()), 10)
                        .with_filter(Filter::parse("odd=true").unwrap()),
                )
                .unwrap();
            let want_odd: Vec<f32> = want.iter().filter(|w| w.1 % 2 == 1).take(10).map(|w| w.0).collect();
            assert_eq!(f.len(), 10);
            assert!(f.iter().all(|h| h.id % 2 == 1));
            for (h, w) in f.iter().zip(&want_odd) {
                assert!((h.distance - w).abs() < 1e-4);
            }
        }
    }
}

#[test]
fn more_like_this_excludes_the_record_and_filters_run_during_search() {
    let (_d, _db, c, recs) = setup(600);
    let hits = c.search(&SearchRequest::new("emb", Query::Id(7), 10)).unwrap();
    assert_eq!(hits.len(), 10);
    assert!(hits.iter().all(|h| h.id != 7));
    let q = recs[6].vectors["emb"].clone();
    let plain = c.search(&SearchRequest::new("emb", Query::Vector(q), 11)).unwrap();
    assert_eq!(plain[0].id, 7);
    assert_eq!(plain[1..].iter().map(|h| h.id).collect::<Vec<_>>(), hits.iter().map(|h| h.id).collect::<Vec<_>>());
    // a filter that keeps 2% of the records still yields k hits
    let f = Filter::parse("label=cat and width<=1500").unwrap(); // ids 3,6,...,150 → 50 records
    let hits = c.search(&SearchRequest::new("emb", Query::Id(1), 10).with_filter(f.clone())).unwrap();
    assert_eq!(hits.len(), 10);
    for h in &hits {
        assert!(h.id % 3 == 0 && h.id <= 150, "id {} does not match", h.id);
        assert!(f.matches(h.metadata.as_ref().unwrap()));
    }
    let f = Filter::from_json(&json!({"path": {"prefix": "/photos/even/"}, "tags": "t1"})).unwrap();
    let hits = c.search(&SearchRequest::new("hash", Query::Id(2), 20).with_filter(f).with_vectors(true)).unwrap();
    assert_eq!(hits.len(), 20);
    for h in &hits {
        assert!(h.id % 2 == 0 && h.id % 5 == 1);
        assert_eq!(h.vectors.as_ref().unwrap().len(), 3);
    }
    // batch = individual
    let reqs: Vec<SearchRequest> = (1..=20).map(|id| SearchRequest::new("cos", Query::Id(id), 5)).collect();
    let batch = c.search_batch(&reqs).unwrap();
    for (req, b) in reqs.iter().zip(&batch) {
        assert_eq!(&c.search(req).unwrap(), b);
    }
    // plain vector queries go through the index's batched search: same results
    for field in ["emb", "cos", "hash"] {
        let reqs: Vec<SearchRequest> =
            recs[..30].iter().map(|r| SearchRequest::new(field, Query::Vector(r.vectors[field].clone()), 7)).collect();
        let batch = c.search_batch(&reqs).unwrap();
        assert_eq!(batch.len(), 30);
        for (req, b) in reqs.iter().zip(&batch) {
            let one = c.search(req).unwrap();
            assert_eq!(one.len(), b.len());
            for (x, y) in one.iter().zip(b) {
                assert!((x.distance - y.distance).abs() < 1e-4, "{field}: {} vs {}", x.distance, y.distance);
                assert_eq!(x.metadata, c.get_metadata(x.id));
                assert_eq!(y.metadata, c.get_metadata(y.id));
            }
        }
    }
    assert!(c.search_batch(&[]).unwrap().is_empty());
}

#[test]
fn collections_are_managed_and_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("new/sub")).unwrap();
    assert!(db.collection_names().is_empty());
    assert!(matches!(db.collection("x"), Err(Error::UnknownCollection(n)) if n == "x"));
    let a = db.create_collection("a", multi_schema()).unwrap();
    db.create_collection("b", CollectionSchema::single("v", 4, Metric::Dot, "Flat")).unwrap();
    assert!(matches!(db.create_collection("a", multi_schema()), Err(Error::CollectionExists(_))));
    for bad in ["", "a/b", "..", ".hidden", "with space"] {
        assert!(matches!(db.create_collection(bad, multi_schema()), Err(Error::InvalidArgument(_))), "{bad:?}");
    }
    let bad_schemas = [
        CollectionSchema { fields: vec![] },
        CollectionSchema::single("v", 0, Metric::L2, "Flat"),
        CollectionSchema {
            fields: vec![VectorField::new("v", 4, Metric::L2, "Flat"), VectorField::new("v", 4, Metric::L2, "Flat")],
        },
    ];
    for s in bad_schemas {
        assert!(matches!(db.create_collection("z", s), Err(Error::InvalidArgument(_))));
    }
    assert!(matches!(
        db.create_collection("z", CollectionSchema::single("v", 4, Metric::L2, "NoSuchIndex")),
        Err(Error::InvalidIndexSpec { .. })
    ));
    assert_eq!(db.collection_names(), vec!["a", "b"]);
    db.drop_collection("a").unwrap();
    assert!(matches!(a.count_checked(), Err(Error::UnknownCollection(_))));
    assert!(matches!(db.drop_collection("a"), Err(Error::UnknownCollection(_))));
    assert_eq!(db.collection_names(), vec!["b"]);
    let path = db.path().to_path_buf();
    // every handle (even of a dropped collection) keeps the database locked
    drop(db);
    assert!(matches!(Database::open(&path), Err(Error::Locked(_))));
    drop(a);
    let db = Database::open(&path).unwrap();
    assert_eq!(db.collection_names(), vec!["b"]);
    assert_eq!(db.collection("b").unwrap().schema().fields[0].metric, Metric::Dot);
}

trait CountChecked {
    fn count_checked(&self) -> vecdb::Result<usize>;
}
impl CountChecked for vecdb::Collection {
    fn count_checked(&self) -> vecdb::Result<usize> {
        self.get(1).map(|_| self.count())
    }
}

#[test]
fn data_persists_across_reopen_checkpoint_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(3);
    let recs: Vec<Record> = (0..400).map(|id| make_record(&mut r, id)).collect();
    let upserted = make_record(&mut r, 10).with_metadata(json!({"v": 2}));
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", multi_schema()).unwrap();
        c.insert(recs[..200].to_vec()).unwrap();
        c.checkpoint().unwrap(); // segment 1
        c.insert(recs[200..].to_vec()).unwrap();
        c.delete(&[0, 1, 250]).unwrap();
        c.upsert(vec![upserted.clone()]).unwrap();
        // closed with data only in the WAL: drop checkpoints it
    }
    let check = |db: &Database| {
        let c = db.collection("c").unwrap();
        assert_eq!(c.count(), 397);
        assert!(c.get(0).unwrap().is_none() && c.get(250).unwrap().is_none());
        assert_eq!(c.get(10).unwrap().unwrap().vectors["emb"], upserted.vectors["emb"]);
        assert_eq!(c.get_metadata(10).unwrap()["v"], json!(2));
        for rec in recs.iter().filter(|x| ![0, 1, 250, 10].contains(&x.id)) {
            let got = c.get(rec.id).unwrap().unwrap();
            assert_eq!(got.vectors["emb"], rec.vectors["emb"]);
            assert_eq!(got.metadata, rec.metadata);
        }
        let hits = c.search(&SearchRequest::new("emb", Query::Vector(recs[300].vectors["emb"].clone()), 1)).unwrap();
        assert_eq!((hits[0].id, hits[0].distance), (300, 0.0));
        c
    };
    {
        let db = Database::open(dir.path()).unwrap();
        let c = check(&db);
        let s = c.stats();
        assert_eq!(s.count, 397);
        assert!(s.deleted >= 3, "deleted rows on disk: {}", s.deleted);
        assert!(s.disk_bytes > 0);
        assert_eq!(s.fields.len(), 3);
        assert_eq!(s.fields[0].index, "Flat");
        c.compact().unwrap();
        let s = c.stats();
        assert_eq!((s.count, s.deleted, s.segments), (397, 0, 1));
        check(&db);
        // write after compaction, then reopen once more
        c.delete(&[399]).unwrap();
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(), 396);
    assert!(c.get(399).unwrap().is_none());
}

#[test]
fn set_index_rebuilds_and_persists() {
    let (d, db, c, _recs) = setup(100);
    assert!(matches!(c.set_index("emb", "Bogus12"), Err(Error::InvalidIndexSpec { .. })));
    assert!(matches!(c.set_index("nope", "Flat"), Err(Error::UnknownField(_))));
    let before = c.search(&SearchRequest::new("emb", Query::Id(3), 5)).unwrap();
    // an index that needs training: trained on the stored vectors
    c.set_index("emb", "IVF4,Flat").unwrap();
    assert_eq!(c.schema().fields[0].index, "IVF4,Flat");
    let all_lists = vecdb::SearchParams { nprobe: Some(4), ..Default::default() };
    let after = c.search(&SearchRequest::new("emb", Query::Id(3), 5).with_params(all_lists.clone())).unwrap();
    // probing every list is exact
    assert_eq!(before.iter().map(|h| h.id).collect::<Vec<_>>(), after.iter().map(|h| h.id).collect::<Vec<_>>());
    let coll_dir = c.path().to_path_buf();
    drop((c, db));
    // a costly index is saved on close and loaded (not rebuilt) on open
    assert!(coll_dir.join("index-emb.json").exists(), "no index snapshot saved");
    assert!(!coll_dir.join("index-cos.json").exists(), "Flat indexes are rebuilt, not saved");
    let db = Database::open(d.path()).unwrap();
    let c = db.collection("c").unwrap();
    let reloaded = c.search(&SearchRequest::new("emb", Query::Id(3), 5).with_params(all_lists.clone())).unwrap();
    assert_eq!(reloaded, after);
    // writes after loading a snapshot reach the index; a stale snapshot is not used
    let mut r = rng(77);
    let extra = make_record(&mut r, 500);
    c.insert(vec![extra.clone()]).unwrap();
    c.delete(&[3]).unwrap();
    drop((c, db));
    let db = Database::open(d.path()).unwrap();
    let c = db.collection("c").unwrap();
    let hits = c
        .search(&SearchRequest::new("emb", Query::Vector(extra.vectors["emb"].clone()), 100).with_params(all_lists))
        .unwrap();
    assert_eq!(hits[0].id, 500);
    assert_eq!(hits.len(), 100);
    assert!(hits.iter().all(|h| h.id != 3));
    assert_eq!(c.schema().fields[0].index, "IVF4,Flat");
    assert!(c.stats().fields[0].index.contains("IVF"), "{:?}", c.stats().fields[0]);
}

#[test]
fn concurrent_writers_and_readers() {
    let (_d, _db, c, _recs) = setup(10);
    std::thread::scope(|s| {
        for t in 0..8u64 {
            let c = c.clone();
            s.spawn(move || {
                let mut r = rng(100 + t);
                for i in 0..40u64 {
                    let id = 1000 + t * 100 + i;
                    c.insert(vec![make_record(&mut r, id)]).unwrap();
                    assert!(c.get(id).unwrap().is_some(), "acknowledged write not visible");
                }
            });
        }
        for _ in 0..2 {
            let c = c.clone();
            s.spawn(move || {
                for _ in 0..50 {
                    let n = c.count();
                    let hits =
                        c.search(&SearchRequest::new("emb", Query::Vector(Vector::Dense(vec![0.1; DIM])), 5)).unwrap();
                    assert_eq!(hits.len(), 5.min(n));
                }
            });
        }
    });
    assert_eq!(c.count(), 10 + 8 * 40);
    // concurrent inserts of the same id: exactly one wins
    let results: Vec<bool> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|t| {
                let c = c.clone();
                s.spawn(move || c.insert(vec![make_record(&mut rng(t), 77_777)]).is_ok())
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.iter().filter(|ok| **ok).count(), 1);
}

const LOCK_CHILD: &str = "VECDB_TEST_LOCK_CHILD";

#[test]
fn second_process_gets_locked_error() {
    if let Ok(path) = std::env::var(LOCK_CHILD) {
        match Database::open(&path) {
            Err(Error::Locked(p)) => println!("CHILD-LOCKED {}", p.display()),
            Err(e) => println!("CHILD-ERROR {e}"),
            Ok(_) => println!("CHILD-OPENED"),
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run_child = || {
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "second_process_gets_locked_error", "--nocapture", "--test-threads=1"])
            .env(LOCK_CHILD, dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let db = Database::open(dir.path()).unwrap();
    let out = run_child();
    assert!(out.contains("CHILD-LOCKED"), "child output: {out}");
    assert!(Database::open(dir.path()).is_err(), "same process, second handle");
    drop(db);
    let out = run_child();
    assert!(out.contains("CHILD-OPENED"), "child output: {out}");
}

#[test]
fn untrained_index_falls_back_to_exact_search_until_it_can_train() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("ivf", CollectionSchema::single("v", DIM, Metric::L2, "IVF16,Flat")).unwrap();
    let mut r = rng(21);
    let first: Vec<Record> =
        (0..5).map(|id| Record::new(id).with_vector("v", Vector::Dense(rand_vec(&mut r, DIM)))).collect();
    c.insert(first.clone()).unwrap();
    assert!(c.stats().fields[0].index.contains("exact scan"), "{:?}", c.stats().fields[0]);
    let hits = c.search(&SearchRequest::new("v", Query::Vector(first[3].vectors["v"].clone()), 5)).unwrap();
    assert_eq!(hits.len(), 5);
    assert_eq!((hits[0].id, hits[0].distance), (3, 0.0));
    assert!(hits.windows(2).all(|w| w[0].distance <= w[1].distance));
    let more: Vec<Record> =
        (5..2000).map(|id| Record::new(id).with_vector("v", Vector::Dense(rand_vec(&mut r, DIM)))).collect();
    c.insert(more.clone()).unwrap();
    assert!(!c.stats().fields[0].index.contains("exact scan"), "{:?}", c.stats().fields[0]);
    let all_lists = vecdb::SearchParams { nprobe: Some(16), ..Default::default() };
    let q = Query::Vector(more[500].vectors["v"].clone());
    let hits = c.search(&SearchRequest::new("v", q, 3).with_params(all_lists)).unwrap();
    assert_eq!((hits[0].id, hits[0].distance), (505, 0.0));
    assert_eq!(c.count(), 2000);
}

/// A batch becomes visible all at once: readers running beside a writer (Flat and HNSW fields)
/// never see part of a batch, whether they count, list ids, filter or search.
#[test]
fn readers_never_see_half_a_batch() {
    const BATCH: u64 = 50;
    const BATCHES: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let schema = CollectionSchema {
        fields: vec![
            VectorField::new("flat", DIM, Metric::L2, "Flat"),
            VectorField::new("graph", DIM, Metric::L2, "HNSW8"),
        ],
    };
    let c = db.create_collection("c", schema).unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let record = |b: u64, i: u64| {
        // Every vector of batch b sits at (b, 0, 0, …) plus a tiny offset: a search around it
        // with k = BATCH + 10 reaches the whole batch.
        let mut v = vec![0.0f32; DIM];
        v[0] = b as f32 * 100.0;
        v[1] = i as f32 * 1e-3;
        Record::new(b * 1000 + i)
            .with_vector("flat", Vector::Dense(v.clone()))
            .with_vector("graph", Vector::Dense(v))
            .with_metadata(json!({"batch": b}))
    };
    std::thread::scope(|s| {
        let (c1, done1) = (c.clone(), &done);
        s.spawn(move || {
            for b in 0..BATCHES {
                c1.insert((0..BATCH).map(|i| record(b, i)).collect()).unwrap();
            }
            done1.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        for t in 0..2u64 {
            let c = c.clone();
            let done = &done;
            s.spawn(move || {
                let mut checks = 0;
                while !done.load(std::sync::atomic::Ordering::SeqCst) || checks < 20 {
                    let n = c.count() as u64;
                    assert_eq!(n % BATCH, 0, "count {n} splits a batch");
                    let ids = c.ids();
                    assert_eq!(ids.len() as u64 % BATCH, 0, "ids() splits a batch");
                    // The newest complete batch, searched in both fields with a metadata filter.
                    let b = (ids.len() as u64 / BATCH).saturating_sub(1 + t % 2);
                    for field in ["flat", "graph"] {
                        let mut q = vec![0.0f32; DIM];
                        q[0] = b as f32 * 100.0;
                        let mut req = SearchRequest::new(field, Query::Vector(Vector::Dense(q)), BATCH as usize + 10);
                        req.filter = Some(Filter::parse(&format!("batch={b}")).unwrap());
                        let hits = c.search(&req).unwrap();
                        let want = if ids.len() as u64 > b * BATCH { BATCH as usize } else { 0 };
                        assert!(
                            hits.len() == want || hits.len() == BATCH as usize,
                            "{field}: {} hits of batch {b}",
                            hits.len()
                        );
                    }
                    checks += 1;
                }
            });
        }
    });
    assert_eq!(c.count() as u64, BATCH * BATCHES);
}

/// A record searched by its own vector is at distance 0, never at the −1e-7 that rounding gives
/// `1 − a·a` for some unit vectors, and no cosine distance leaves `[0, 2]`, with every index kind.
#[test]
fn distances_stay_in_the_metric_range() {
    let mut r = rng(41);
    let dim = 256;
    for index in ["Flat", "HNSW16", "HNSW16,SQ8", "IVF4,SQ8"] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path()).unwrap();
        let schema = CollectionSchema { fields: vec![VectorField::new("v", dim, Metric::Cosine, index)] };
        let c = db.create_collection("c", schema).unwrap();
        let vs: Vec<Vec<f32>> = (0..300).map(|_| rand_vec(&mut r, dim)).collect();
        let recs = vs.iter().enumerate().map(|(i, v)| Record::new(i as u64).with_vector("v", Vector::Dense(v.clone())));
        c.insert(recs.collect()).unwrap();
        // Opposite vectors: cosine distance 2 up to rounding.
        for v in vs.iter().take(100) {
            let neg: Vec<f32> = v.iter().map(|x| -x).collect();
            for q in [v.clone(), neg] {
                for h in c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(q)), 300)).unwrap() {
                    assert!((0.0..=2.0).contains(&h.distance), "{index}: distance {} out of [0, 2]", h.distance);
                }
            }
        }
    }
}
