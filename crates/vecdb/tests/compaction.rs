//! The compaction policy: frequent checkpoints (as `serve --snapshot-every 2s` makes) do not
//! pile up segments, and deleted rows are reclaimed once they pass a share of the stored rows;
//! every record survives merges, reopens and a repair.

use std::collections::BTreeMap;

use serde_json::json;
use vecdb::{CollectionSchema, Database, Metric, Query, Record, SearchRequest, Vector};

fn rec(id: u64, version: u64) -> Record {
    Record::new(id)
        .with_vector("v", Vector::Dense(vec![id as f32, (id % 13) as f32, version as f32]))
        .with_metadata(json!({"version": version}))
}

fn contents(c: &vecdb::Collection) -> BTreeMap<u64, u64> {
    let mut out = BTreeMap::new();
    c.for_each(|r| {
        out.insert(r.id, r.metadata["version"].as_u64().unwrap());
    })
    .unwrap();
    out
}

#[test]
fn frequent_checkpoints_keep_few_segments_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", 3, Metric::L2, "HNSW8")).unwrap();
    let mut want = BTreeMap::new();
    let mut max_segments = 0;
    for round in 0..60u64 {
        // a few new records, an update of an old one, a delete now and then
        let recs: Vec<Record> = (0..5).map(|i| rec(round * 5 + i, round)).collect();
        for r in &recs {
            want.insert(r.id, round);
        }
        c.insert(recs).unwrap();
        if round > 3 {
            c.upsert(vec![rec(round * 2, round)]).unwrap();
            want.insert(round * 2, round);
        }
        if round % 7 == 3 {
            c.delete(&[round]).unwrap();
            want.remove(&round);
        }
        c.checkpoint().unwrap();
        let s = c.stats();
        max_segments = max_segments.max(s.segments);
        assert!(s.segments <= 9, "round {round}: {} segments", s.segments);
    }
    assert!(max_segments >= 8, "the policy never had to merge ({max_segments})");
    assert_eq!(contents(&c), want);
    let hits = c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(vec![100.0, 9.0, 50.0])), 1)).unwrap();
    assert_eq!(hits[0].id, 100);
    drop((c, db));
    assert!(vecdb::check::check_database(dir.path()).unwrap().is_healthy());
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(contents(&db.collection("c").unwrap()), want);
    drop(db);
    // the segments alone still describe the collection after merges
    std::fs::remove_file(dir.path().join("collections/c/MANIFEST")).unwrap();
    vecdb::repair::repair_database(dir.path(), &Default::default()).unwrap();
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(contents(&db.collection("c").unwrap()), want);
}

#[test]
fn deleted_rows_are_reclaimed_past_a_share() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", 3, Metric::L2, "Flat")).unwrap();
    c.insert((0..4000).map(|i| rec(i, 0)).collect()).unwrap();
    c.checkpoint().unwrap();
    // 20% deleted: kept (below the share)
    c.delete(&(0..800).collect::<Vec<_>>()).unwrap();
    c.checkpoint().unwrap();
    let s = c.stats();
    assert_eq!((s.deleted, s.segments), (800, 2));
    // past 25%: the next checkpoint compacts everything
    c.delete(&(800..1200).collect::<Vec<_>>()).unwrap();
    c.checkpoint().unwrap();
    let s = c.stats();
    assert_eq!((s.count, s.deleted, s.segments), (2800, 0, 1));
    let ids = c.ids();
    assert_eq!(ids.first(), Some(&1200));
    drop((c, db));
    let db = Database::open(dir.path()).unwrap();
    assert_eq!(db.collection("c").unwrap().count(), 2800);
}
