//! Every saved index file carries its own footer (length + CRC32, see `vecdb::index::file`):
//! for every index kind, damaging any one file it saved (a flipped byte anywhere, or a cut)
//! makes `load_index` fail with `Error::Corrupt` naming exactly that file — never a panic,
//! never a silently different index. A collection whose snapshot is damaged rebuilds its
//! index from the stored records.

use std::path::{Path, PathBuf};

use vecdb::index::file::FOOTER_LEN;
use vecdb::index::{build_index, load_index};
use vecdb::{
    CollectionSchema, Database, Error, IndexOrigin, Metric, Query, Record, SearchParams, SearchRequest, Vector,
    VectorField, VectorIndex, VectorRef, VectorsRef,
};

mod common;
use common::rng::XorShift64;

const DIM: usize = 16;
const N: u64 = 600;

/// Unit vectors (so that every metric, cosine included, gets valid input).
fn dense(n: usize, rng: &mut XorShift64) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n * DIM).map(|_| rng.centered()).collect();
    for row in v.chunks_exact_mut(DIM) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// An index of `spec`, trained, holding `N` vectors less a few removed ones.
fn built(spec: &str, metric: Metric, rng: &mut XorShift64) -> Box<dyn VectorIndex> {
    let mut index = build_index(spec, if metric == Metric::Hamming { 64 } else { DIM }, metric).expect(spec);
    let ids: Vec<u64> = (0..N).collect();
    if metric == Metric::Hamming {
        let bits: Vec<u8> = (0..N as usize * 8).map(|_| rng.next_u64() as u8).collect();
        index.add(&ids, VectorsRef::Binary(&bits)).expect(spec);
    } else {
        let data = dense(N as usize, rng);
        if !index.is_trained() {
            index.train(VectorsRef::Dense(&data)).expect(spec);
        }
        index.add(&ids, VectorsRef::Dense(&data)).expect(spec);
    }
    index.remove(&[3, 5, 8, 13]).expect(spec);
    index
}

/// The kinds of index, with the metric each is checked under.
const SPECS: &[(&str, Metric)] = &[
    ("Flat", Metric::L2),
    ("Flat", Metric::Hamming),
    ("HNSW8", Metric::Cosine),
    ("HNSW8", Metric::Hamming),
    ("HNSW8,SQ8", Metric::L2),
    ("IVF4,Flat", Metric::L2),
    ("IVF4,PQ4", Metric::L2),
    ("IVF4,SQ8", Metric::Dot),
    ("PQ4", Metric::L2),
    ("SQ8", Metric::Cosine),
    ("LSH64", Metric::L2),
    ("KDForest2", Metric::L2),
    ("KDTree", Metric::Cosine),
    ("PCA8,Flat", Metric::L2),
    ("PCAW8,HNSW8", Metric::L2),
    ("IVF4,PQ4,Refine", Metric::L2),
];

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `load_index(dir)` fails with `Corrupt` naming `file`.
fn assert_corrupt(dir: &Path, file: &Path, what: &str) {
    match load_index(dir) {
        Err(Error::Corrupt { path, .. }) if path == file => {}
        Err(e) => panic!("{what}: expected Corrupt naming {}, got {e:?}", file.display()),
        Ok(_) => panic!("{what}: a damaged {} loaded", file.display()),
    }
}

#[test]
fn every_damaged_index_file_is_reported_as_corrupt_naming_it() {
    let mut rng = XorShift64(0x9E37_79B9_7F4A_7C15);
    for &(spec, metric) in SPECS {
        let index = built(spec, metric, &mut rng);
        let dir = tempfile::tempdir().unwrap();
        index.save(dir.path()).expect(spec);
        let loaded = load_index(dir.path()).unwrap_or_else(|e| panic!("{spec}: clean load: {e}"));
        assert_eq!(loaded.description(), index.description(), "{spec}");
        assert_eq!(loaded.len(), index.len(), "{spec}");
        if metric != Metric::Hamming {
            let q = dense(1, &mut rng);
            let p = SearchParams::default();
            assert_eq!(
                loaded.search(VectorRef::Dense(&q), 10, &p, None).unwrap(),
                index.search(VectorRef::Dense(&q), 10, &p, None).unwrap(),
                "{spec}: the loaded index answers differently"
            );
        }
        let all = files(dir.path());
        assert!(all.iter().any(|f| f.ends_with("index.json")), "{spec}: no index.json");
        for file in &all {
            let good = std::fs::read(file).unwrap();
            assert!(good.len() >= FOOTER_LEN, "{spec}: {} has no footer", file.display());
            let what = |how: String| format!("{spec}: {} {how}", file.display());
            // A flipped bit in the body's first and last byte, the footer's, and a few random ones.
            let mut spots = vec![0, good.len() - 1, good.len() - FOOTER_LEN, good.len().saturating_sub(FOOTER_LEN + 1)];
            spots.extend((0..4).map(|_| rng.below(good.len())));
            for at in spots {
                let mut bad = good.clone();
                bad[at] ^= 1 << rng.below(8);
                std::fs::write(file, &bad).unwrap();
                assert_corrupt(dir.path(), file, &what(format!("with byte {at} of {} flipped", good.len())));
            }
            for cut in [good.len() - 1, good.len() / 2, 0] {
                std::fs::write(file, &good[..cut]).unwrap();
                assert_corrupt(dir.path(), file, &what(format!("cut to {cut} of {} bytes", good.len())));
            }
            let mut longer = good.clone();
            longer.extend_from_slice(&good[good.len() - FOOTER_LEN..]);
            std::fs::write(file, &longer).unwrap();
            assert_corrupt(dir.path(), file, &what("with its footer repeated".into()));
            std::fs::write(file, &good).unwrap();
        }
        assert!(load_index(dir.path()).is_ok(), "{spec}: restored files do not load");
    }
}

#[test]
fn a_collection_rebuilds_an_index_whose_snapshot_is_damaged() {
    let tmp = tempfile::tempdir().unwrap();
    let dbdir = tmp.path().join("db");
    let coll = dbdir.join("collections/c");
    let mut rng = XorShift64(7);
    let data = dense(N as usize, &mut rng);
    let schema = CollectionSchema { fields: vec![VectorField::new("v", DIM, Metric::L2, "HNSW8")] };
    {
        let db = Database::open(&dbdir).unwrap();
        let c = db.create_collection("c", schema).unwrap();
        let records = (0..N)
            .map(|id| {
                let row = &data[id as usize * DIM..(id as usize + 1) * DIM];
                Record::new(id).with_vector("v", Vector::Dense(row.to_vec()))
            })
            .collect();
        c.insert(records).unwrap();
    }
    let origin = |db: &Database| db.collection("c").unwrap().stats().fields[0].origin;
    {
        let db = Database::open(&dbdir).unwrap();
        assert_eq!(origin(&db), IndexOrigin::Snapshot { caught_up: 0 }, "the clean snapshot was not used");
    }
    // Damage the snapshot's graph (a link of node 0, its checksum now wrong).
    let links = coll.join("index-v").join("links0.bin");
    let mut bytes = std::fs::read(&links).unwrap();
    bytes[10] ^= 0x55;
    std::fs::write(&links, &bytes).unwrap();
    // A reader maps the graph in constant time, without reading the checksummed bodies: it
    // serves the damaged snapshot, and its searches stay in bounds and return stored records.
    {
        let db = Database::open_read_only(&dbdir).unwrap();
        assert_eq!(origin(&db), IndexOrigin::Snapshot { caught_up: 0 }, "a reader read the whole graph at open");
        let c = db.collection("c").unwrap();
        for id in (0..N).step_by(37) {
            let q = data[id as usize * DIM..(id as usize + 1) * DIM].to_vec();
            let hits = c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(q)), 5)).unwrap();
            assert!(!hits.is_empty() && hits.iter().all(|h| h.id < N), "{hits:?}");
        }
    }
    // `db check` reads every checksum: it names the damage.
    let report = vecdb::check::check_database(&dbdir).unwrap();
    let finding = report.collections[0].files.iter().find(|f| f.kind == "snapshot").unwrap();
    assert_eq!(finding.status, vecdb::check::Status::Damaged, "{finding:?}");
    assert!(finding.detail.contains("links0.bin") && finding.detail.contains("checksum"), "{finding:?}");
    // A writer verifies the checksums before it would save the graph again: the open must
    // not fail, and must rebuild.
    let db = Database::open(&dbdir).unwrap();
    assert_eq!(origin(&db), IndexOrigin::Built, "a damaged snapshot was used");
    let c = db.collection("c").unwrap();
    for id in (0..N).step_by(37) {
        let q = data[id as usize * DIM..(id as usize + 1) * DIM].to_vec();
        let hits = c.search(&SearchRequest::new("v", Query::Vector(Vector::Dense(q)), 1)).unwrap();
        assert_eq!(hits[0].id, id, "record {id} not found after the rebuild");
    }
}
