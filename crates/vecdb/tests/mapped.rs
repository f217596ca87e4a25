//! Flat fields search their sealed rows in place (memory-mapped segment columns, format
//! "VDBSEG03") and the memtable on the heap. These tests hold the collection to a decoded
//! reference: a [`FlatIndex`] built from a model of the live records (what a Flat field was
//! before it read the mapping), through upserts, deletes, filters, range and batch searches,
//! across checkpoints (several segments), reopen, compaction, and for a read-only reader that
//! follows the writer.

use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use serde_json::json;
use vecdb::index::flat::FlatIndex;
use vecdb::{
    Collection, CollectionSchema, Database, Filter, Metric, Neighbor, Query, Record, SearchParams, SearchRequest,
    Vector, VectorIndex, VectorRef, VectorsRef,
};

const DIM: usize = 16;

/// The live records as the test wrote them: id → (vector, group).
type Model = BTreeMap<u64, (Vec<f32>, u64)>;

fn random_vec(rng: &mut rand::rngs::StdRng) -> Vec<f32> {
    (0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn put(c: &Collection, model: &mut Model, rng: &mut rand::rngs::StdRng, ids: impl Iterator<Item = u64>) {
    let recs: Vec<Record> = ids
        .map(|id| {
            let v = random_vec(rng);
            let g = rng.random_range(0..3u64);
            model.insert(id, (v.clone(), g));
            Record::new(id).with_vector("v", Vector::Dense(v)).with_metadata(json!({"g": g}))
        })
        .collect();
    c.upsert(recs).unwrap();
}

/// The decoded reference: every live vector copied into a heap `FlatIndex`.
fn reference(model: &Model) -> FlatIndex {
    let mut ix = FlatIndex::new(DIM, Metric::L2);
    let ids: Vec<u64> = model.keys().copied().collect();
    let flat: Vec<f32> = model.values().flat_map(|(v, _)| v.iter().copied()).collect();
    ix.add(&ids, VectorsRef::Dense(&flat)).unwrap();
    ix
}

fn ids_dists(h: &[vecdb::Hit]) -> Vec<(u64, u32)> {
    h.iter().map(|h| (h.id, h.distance.to_bits())).collect()
}
fn ref_ids_dists(n: &[Neighbor]) -> Vec<(u64, u32)> {
    n.iter().map(|n| (n.id, n.distance.to_bits())).collect()
}

/// Every kind of search on `c` answers exactly as the reference over `model`.
fn assert_matches(c: &Collection, model: &Model, what: &str) {
    assert_eq!(c.count(), model.len(), "{what}: count");
    assert_eq!(c.ids(), model.keys().copied().collect::<Vec<_>>(), "{what}: ids");
    let reference = reference(model);
    let p = SearchParams::default();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let queries: Vec<Vec<f32>> = (0..12).map(|_| random_vec(&mut rng)).collect();
    for (qi, q) in queries.iter().enumerate() {
        let qv = VectorRef::Dense(q);
        let req = SearchRequest::new("v", Query::Vector(Vector::Dense(q.clone())), 10);
        let want = reference.search(qv, 10, &p, None).unwrap();
        assert_eq!(ids_dists(&c.search(&req).unwrap()), ref_ids_dists(&want), "{what}: top-10, query {qi}");
        // filter: group 1 only
        let g1 = |id: u64| model.get(&id).is_some_and(|m| m.1 == 1);
        let want = reference.search(qv, 10, &p, Some(&g1)).unwrap();
        let got = c.search(&req.clone().with_filter(Filter::parse("g=1").unwrap())).unwrap();
        assert_eq!(ids_dists(&got), ref_ids_dists(&want), "{what}: filtered, query {qi}");
        for h in &got {
            assert_eq!(h.metadata.as_ref().unwrap()["g"], json!(1), "{what}: metadata of a hit");
        }
        // range, and range with k
        let t = want.get(4).map_or(1.0, |n| n.distance);
        let want = reference.range_search(qv, t, &p, None).unwrap();
        let got = c.search(&SearchRequest::range("v", Query::Vector(Vector::Dense(q.clone())), t)).unwrap();
        assert_eq!(ids_dists(&got), ref_ids_dists(&want), "{what}: range, query {qi}");
        let got = c.search(&req.clone().with_threshold(t)).unwrap();
        let mut want_k = want.clone();
        want_k.truncate(10);
        assert_eq!(ids_dists(&got), ref_ids_dists(&want_k), "{what}: top-k within a threshold, query {qi}");
    }
    // a batch (the matrix-multiply path) answers as single searches do
    let reqs: Vec<SearchRequest> =
        queries.iter().map(|q| SearchRequest::new("v", Query::Vector(Vector::Dense(q.clone())), 7)).collect();
    for (qi, (got, q)) in c.search_batch(&reqs).unwrap().iter().zip(&queries).enumerate() {
        let want = reference.search(VectorRef::Dense(q), 7, &p, None).unwrap();
        assert_eq!(ids_dists(got), ref_ids_dists(&want), "{what}: batch, query {qi}");
    }
    // more like this, get, and the stored vectors themselves
    let some: Vec<u64> = model.keys().copied().step_by(97).collect();
    for &id in &some {
        let (v, g) = &model[&id];
        let rec = c.get(id).unwrap().unwrap();
        assert_eq!(rec.vectors["v"], Vector::Dense(v.clone()), "{what}: get {id}");
        assert_eq!(rec.metadata["g"], json!(g), "{what}: metadata of {id}");
        let not_me = |x: u64| x != id;
        let want = reference.search(VectorRef::Dense(v), 5, &p, Some(&not_me)).unwrap();
        let got = c.search(&SearchRequest::new("v", Query::Id(id), 5)).unwrap();
        assert_eq!(ids_dists(&got), ref_ids_dists(&want), "{what}: more like {id}");
    }
    assert_eq!(c.stats().fields[0].index, "Flat");
}

/// After a checkpoint a Flat field holds nothing on the heap: every vector is in a mapped column.
fn assert_no_heap_copy(c: &Collection, what: &str) {
    let f = &c.stats().fields[0];
    assert_eq!(f.heap_bytes, 0, "{what}: {f:?}");
    assert!(f.disk_bytes >= (c.count() * DIM * 4) as u64, "{what}: {f:?}");
}

#[test]
fn flat_answers_like_a_decoded_copy_across_checkpoints_reopen_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Flat")).unwrap();
        for b in 0..3u64 {
            put(&c, &mut model, &mut rng, b * 1000..(b + 1) * 1000);
            c.checkpoint().unwrap();
        }
        put(&c, &mut model, &mut rng, 3000..3400); // memtable
        put(&c, &mut model, &mut rng, (0..3000).step_by(15)); // upserts of sealed rows
        let gone: Vec<u64> = (0..3400).step_by(11).collect();
        c.delete(&gone).unwrap();
        gone.iter().for_each(|id| {
            model.remove(id);
        });
        assert_eq!(c.stats().segments, 3);
        assert_matches(&c, &model, "segments + memtable");
        c.checkpoint().unwrap();
        assert_matches(&c, &model, "after a checkpoint");
        assert_no_heap_copy(&c, "after a checkpoint");
        let f = &c.stats().fields[0];
        assert!(f.disk_bytes >= (model.len() * DIM * 4) as u64, "column bytes on disk: {}", f.disk_bytes);
    }
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("c").unwrap();
        assert_matches(&c, &model, "after reopen");
        put(&c, &mut model, &mut rng, 5000..5100);
        c.compact().unwrap();
        assert_eq!(c.stats().segments, 1);
        assert_eq!(c.stats().deleted, 0);
        assert_matches(&c, &model, "after compaction");
    }
    let db = Database::open(dir.path()).unwrap();
    assert_matches(&db.collection("c").unwrap(), &model, "after compaction and reopen");
    assert_no_heap_copy(&db.collection("c").unwrap(), "after compaction and reopen");
    let report = vecdb::check::check_database(dir.path());
    drop(db);
    assert!(report.is_err() || report.unwrap().is_healthy());
    assert!(vecdb::check::check_database(dir.path()).unwrap().is_healthy(), "check verifies every block");
}

#[test]
fn a_reader_follows_the_mapped_writer_across_checkpoints_and_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let mut rng = rand::rngs::StdRng::seed_from_u64(8);
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "Flat")).unwrap();
    put(&c, &mut model, &mut rng, 0..1500);
    c.checkpoint().unwrap();
    put(&c, &mut model, &mut rng, 1500..1800);

    let reader = Database::open_read_only(dir.path()).unwrap();
    let r = reader.collection("c").unwrap();
    assert_matches(&r, &model, "reader: segment + WAL");

    // WAL frames, then a checkpoint the reader applies on top
    put(&c, &mut model, &mut rng, (0..1800).step_by(7));
    let gone: Vec<u64> = (0..1800).step_by(13).collect();
    c.delete(&gone).unwrap();
    gone.iter().for_each(|id| {
        model.remove(id);
    });
    r.refresh().unwrap();
    assert_matches(&r, &model, "reader: frames");
    c.checkpoint().unwrap();
    put(&c, &mut model, &mut rng, 2000..2100);
    let rep = r.refresh().unwrap();
    assert_eq!(rep.segments, 1, "{rep:?}");
    assert_matches(&r, &model, "reader: after a checkpoint");

    // a compaction replaces the segments the reader has mapped
    c.compact().unwrap();
    let rep = r.refresh().unwrap();
    assert!(rep.reloaded, "{rep:?}");
    assert_matches(&r, &model, "reader: after compaction");
    assert_no_heap_copy(&r, "reader: after compaction");
    assert_matches(&c, &model, "writer: after compaction");
}

#[test]
fn cosine_and_hamming_fields_scan_their_columns_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let schema = CollectionSchema {
        fields: vec![
            vecdb::VectorField::new("cos", 8, Metric::Cosine, "Flat"),
            vecdb::VectorField::new("bits", 64, Metric::Hamming, "Flat"),
        ],
    };
    let c = db.create_collection("c", schema).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let recs = |rng: &mut rand::rngs::StdRng, ids: std::ops::Range<u64>| -> Vec<Record> {
        ids.map(|id| {
            let v: Vec<f32> = (0..8).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let b: Vec<u8> = (0..8).map(|_| rng.random_range(0..=255u8)).collect();
            Record::new(id).with_vector("cos", Vector::Dense(v)).with_vector("bits", Vector::Binary(b))
        })
        .collect()
    };
    c.insert(recs(&mut rng, 0..800)).unwrap();
    c.checkpoint().unwrap();
    c.insert(recs(&mut rng, 800..1000)).unwrap();
    c.delete(&[3, 805]).unwrap();
    // the reference: the stored (normalized) vectors, decoded into heap indexes
    let mut cos = FlatIndex::new(8, Metric::Cosine);
    let mut bits = FlatIndex::new(64, Metric::Hamming);
    c.for_each(|r| {
        let Vector::Dense(v) = &r.vectors["cos"] else { panic!() };
        let Vector::Binary(b) = &r.vectors["bits"] else { panic!() };
        cos.add(&[r.id], VectorsRef::Dense(v)).unwrap();
        bits.add(&[r.id], VectorsRef::Binary(b)).unwrap();
    })
    .unwrap();
    assert_eq!(cos.len(), 998);
    let p = SearchParams::default();
    for id in [0u64, 10, 500, 900] {
        for (field, ix) in [("cos", &cos), ("bits", &bits)] {
            let stored = c.get(id).unwrap().unwrap().vectors[field].clone();
            let want = ix.search(stored.as_ref(), 10, &p, None).unwrap();
            let got = c.search(&SearchRequest::new(field, Query::Vector(stored), 10)).unwrap();
            // the collection normalizes the (already unit) query again: distances agree to rounding
            let ids = |v: Vec<(u64, f32)>| v.into_iter().map(|x| x.0).collect::<Vec<_>>();
            let got: Vec<(u64, f32)> = got.iter().map(|h| (h.id, h.distance)).collect();
            let want: Vec<(u64, f32)> = want.iter().map(|n| (n.id, n.distance)).collect();
            for (g, w) in got.iter().zip(&want) {
                assert!((g.1 - w.1).abs() <= 1e-6, "{field} near {id}: {got:?} vs {want:?}");
            }
            assert_eq!(ids(got), ids(want), "{field} near {id}");
        }
    }
}
