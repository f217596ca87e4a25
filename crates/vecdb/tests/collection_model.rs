//! A collection behaves like a map from id to record whatever the interleaving of upserts,
//! deletes, checkpoints, compactions and reopens: count, ids, `get`, exact search and filters
//! are checked against a `BTreeMap` model after every step, and a read-only follower opened
//! beside the writer agrees after a refresh. Ids come from a small range so that records are
//! replaced and deleted across segments (the live-row bookkeeping of `rows.rs`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::json;
use vecdb::{CollectionSchema, Database, Filter, Metric, Query, Record, SearchRequest, Vector, VectorField};

const DIM: usize = 4;

#[derive(Debug, Clone)]
enum Op {
    /// Upsert these ids; `seed` varies the vectors.
    Upsert(Vec<u64>, u8),
    Delete(Vec<u64>),
    Checkpoint,
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let ids = || prop::collection::vec(0u64..48, 1..12);
    prop_oneof![
        5 => (ids(), any::<u8>()).prop_map(|(ids, s)| Op::Upsert(ids, s)),
        2 => ids().prop_map(Op::Delete),
        2 => Just(Op::Checkpoint),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

fn vector(id: u64, seed: u8) -> Vec<f32> {
    (0..DIM).map(|d| ((id * 7 + d as u64 * 3 + seed as u64 * 11) % 23) as f32 - 11.0).collect()
}

fn record(id: u64, seed: u8) -> Record {
    Record::new(id)
        .with_vector("v", Vector::Dense(vector(id, seed)))
        .with_metadata(json!({"seed": seed as u64, "even": id.is_multiple_of(2)}))
}

fn schema() -> CollectionSchema {
    CollectionSchema { fields: vec![VectorField::new("v", DIM, Metric::L2, "Flat")] }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>().sqrt()
}

/// Check `coll` against `model` (id → seed).
fn check(coll: &vecdb::Collection, model: &BTreeMap<u64, u8>, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(coll.count(), model.len(), "count {}", what);
    prop_assert_eq!(coll.ids(), model.keys().copied().collect::<Vec<_>>(), "ids {}", what);
    for id in 0..48u64 {
        let got = coll.get(id).unwrap();
        match model.get(&id) {
            None => prop_assert!(got.is_none(), "id {} should be gone {}", id, what),
            Some(&seed) => {
                let rec = got.expect("live record");
                prop_assert_eq!(&rec.vectors["v"], &Vector::Dense(vector(id, seed)), "vector of {} {}", id, what);
                prop_assert_eq!(rec.metadata["seed"].as_u64(), Some(seed as u64));
            }
        }
    }
    // Exact search: every record, in distance order (ties by id), with and without a filter.
    let q = vector(5, 3);
    for filter in [None, Some("even=true")] {
        let mut req = SearchRequest::new("v", Query::Vector(Vector::Dense(q.clone())), 64);
        req.filter = filter.map(|f| Filter::parse(f).unwrap());
        let hits = coll.search(&req).unwrap();
        let mut want: Vec<(f32, u64)> = model
            .iter()
            .filter(|(id, _)| filter.is_none() || id.is_multiple_of(2))
            .map(|(&id, &seed)| (l2(&q, &vector(id, seed)), id))
            .collect();
        want.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let got: Vec<(f32, u64)> = hits.iter().map(|h| (h.distance, h.id)).collect();
        prop_assert_eq!(got.len(), want.len(), "hits {} filter {:?}", what, filter);
        for (g, w) in got.iter().zip(&want) {
            prop_assert!((g.0 - w.0).abs() < 1e-3, "distance {:?} vs {:?} {}", g, w, what);
        }
        let mut got_ids: Vec<u64> = got.iter().map(|g| g.1).collect();
        let mut want_ids: Vec<u64> = want.iter().map(|w| w.1).collect();
        got_ids.sort_unstable();
        want_ids.sort_unstable();
        prop_assert_eq!(got_ids, want_ids, "hit ids {} filter {:?}", what, filter);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn collection_matches_a_map_model(ops in prop::collection::vec(op(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let mut db = Database::open(tmp.path()).unwrap();
        let mut coll = db.create_collection("c", schema()).unwrap();
        let mut model: BTreeMap<u64, u8> = BTreeMap::new();
        for (step, op) in ops.iter().enumerate() {
            match op {
                Op::Upsert(ids, seed) => {
                    let mut ids = ids.clone();
                    ids.sort_unstable();
                    ids.dedup();
                    coll.upsert(ids.iter().map(|&id| record(id, *seed)).collect()).unwrap();
                    for id in ids {
                        model.insert(id, *seed);
                    }
                }
                Op::Delete(ids) => {
                    let live = ids.iter().collect::<std::collections::BTreeSet<_>>().iter().filter(|id| model.contains_key(id)).count();
                    prop_assert_eq!(coll.delete(ids).unwrap(), live);
                    for id in ids {
                        model.remove(id);
                    }
                }
                Op::Checkpoint => coll.checkpoint().unwrap(),
                Op::Compact => coll.compact().unwrap(),
                Op::Reopen => {
                    drop(coll);
                    drop(db);
                    db = Database::open(tmp.path()).unwrap();
                    coll = db.collection("c").unwrap();
                }
            }
            check(&coll, &model, &format!("after step {step} {op:?}"))?;
        }
        // A follower opened from the files (segments + WAL) agrees, and so does a fresh open.
        coll.checkpoint().unwrap();
        let reader = Database::open_read_only(tmp.path()).unwrap();
        check(&reader.collection("c").unwrap(), &model, "in a read-only follower")?;
        coll.upsert(vec![record(47, 200)]).unwrap();
        coll.delete(&[0, 1]).unwrap();
        coll.checkpoint().unwrap();
        model.insert(47, 200);
        model.remove(&0);
        model.remove(&1);
        reader.refresh().unwrap();
        check(&reader.collection("c").unwrap(), &model, "in the follower after a refresh")?;
        drop(coll);
        drop(db);
        let db = Database::open(tmp.path()).unwrap();
        check(&db.collection("c").unwrap(), &model, "after the last reopen")?;
    }
}
