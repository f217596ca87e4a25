//! A collection's float `HNSW` graph reads its vectors in place from the mapped segment
//! columns: no copy on the heap, none in its snapshot. It must answer exactly as a graph with
//! its own copy would — through writes, deletes, replacements, checkpoints, merges, a
//! compaction, a reopen from its snapshot, a reopen after a crash and a read-only follower.

use vecdb::index::VectorIndex;
use vecdb::{CollectionSchema, Database, IndexOrigin, Metric, Query, Record, SearchRequest, Vector};

const DIM: usize = 24;

/// A deterministic vector per (id, version), spread out.
fn vector_of(id: u64, version: u64) -> Vec<f32> {
    (0..DIM as u64)
        .map(|j| {
            let x = (id.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                ^ j.wrapping_mul(0xBF58_476D_1CE4_E5B9)
                ^ version.wrapping_mul(0x94D0_49BB_1331_11EB))
            .rotate_left((j * 7) as u32);
            (x % 100_003) as f32 / 1_000.0
        })
        .collect()
}

fn record(id: u64, version: u64) -> Record {
    Record::new(id).with_vector("v", Vector::Dense(vector_of(id, version)))
}

fn top(c: &vecdb::Collection, q: Vec<f32>, k: usize) -> Vec<(u64, f32)> {
    let mut req = SearchRequest::new("v", Query::Vector(Vector::Dense(q)), k);
    req.params.ef = Some(200);
    c.search(&req).unwrap().into_iter().map(|h| (h.id, h.distance)).collect()
}

/// Every live record (`live`: id → version) is its own nearest neighbour at distance 0, a
/// removed one is not found, and every distance reported is the exact distance to the
/// record's current vector (the graph reads the right rows).
fn check(c: &vecdb::Collection, live: &std::collections::BTreeMap<u64, u64>, removed: &[u64], when: &str) {
    assert_eq!(c.count(), live.len(), "{when}: count");
    for (&id, &ver) in live.iter().step_by(7) {
        let q = vector_of(id, ver);
        let hits = top(c, q.clone(), 5);
        assert_eq!(hits[0], (id, 0.0), "{when}: id {id} v{ver} is not its own nearest");
        for &(hid, d) in &hits {
            let v = vector_of(hid, live[&hid]);
            let exact: f32 = q.iter().zip(&v).map(|(a, b)| (a - b) * (a - b)).sum::<f32>().sqrt();
            assert!((d - exact).abs() <= 1e-3 * exact.max(1.0), "{when}: id {hid}: reported {d}, exact {exact}");
        }
    }
    for &id in removed {
        let hits = top(c, vector_of(id, 0), 3);
        assert!(hits.iter().all(|h| h.0 != id), "{when}: removed id {id} found");
    }
}

/// Mappings of files under `dir` that were deleted (a replaced segment still held).
fn deleted_mappings(dir: &std::path::Path) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let d = dir.to_string_lossy().into_owned();
    maps.lines().filter(|l| l.contains(&d) && l.ends_with("(deleted)")).map(str::to_string).collect()
}

fn field(c: &vecdb::Collection) -> vecdb::FieldStats {
    c.stats().fields.into_iter().next().unwrap()
}

#[test]
fn a_graph_over_the_mapped_columns_answers_through_every_storage_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = std::collections::BTreeMap::new();
    let mut removed = Vec::new();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "HNSW16")).unwrap();
        // Several segments (a checkpoint after each batch), then writes left in the WAL.
        for b in 0..5u64 {
            c.insert((b * 1000..(b + 1) * 1000).map(|id| record(id, 0)).collect()).unwrap();
            c.checkpoint().unwrap();
        }
        (0..5000).for_each(|id| {
            live.insert(id, 0);
        });
        check(&c, &live, &removed, "after five checkpoints");
        // The same graph holding its own copy takes the raw vectors more (less the 8-byte
        // address per row the in-place graph keeps).
        let s = field(&c);
        let raw = 5000 * DIM * 4;
        let mut own = vecdb::index::hnsw::HnswIndex::new(DIM, Metric::L2, 16, 200);
        let data: Vec<f32> = (0..5000).flat_map(|id| vector_of(id, 0)).collect();
        own.add(&(0..5000).collect::<Vec<u64>>(), vecdb::VectorsRef::Dense(&data)).unwrap();
        let owned = own.memory_bytes() as u64;
        assert!(
            s.heap_bytes + (raw * 8 / 10) as u64 <= owned,
            "the graph holds a copy of the vectors: heap {} B, a graph with its own copy {owned} B, raw {raw} B",
            s.heap_bytes
        );

        // Replace some, delete some (in the WAL, then checkpointed and merged).
        c.upsert((0..5000).step_by(11).map(|id| record(id, 1)).collect()).unwrap();
        (0..5000).step_by(11).for_each(|id| {
            live.insert(id, 1);
        });
        let gone: Vec<u64> = (3..5000).step_by(13).filter(|id| id % 11 != 0).collect();
        assert_eq!(c.delete(&gone).unwrap(), gone.len());
        for id in &gone {
            live.remove(id);
        }
        removed.extend(&gone);
        c.insert((5000..5600).map(|id| record(id, 0)).collect()).unwrap();
        (5000..5600).for_each(|id| {
            live.insert(id, 0);
        });
        check(&c, &live, &removed, "with the changes in the WAL");
        c.checkpoint().unwrap();
        check(&c, &live, &removed, "after the checkpoint");
        c.compact().unwrap();
        check(&c, &live, &removed, "after the compaction");
        // The graph moved to the new segment: the replaced ones are unmapped.
        assert_eq!(deleted_mappings(dir.path()), Vec::<String>::new(), "replaced segments still mapped");
        c.upsert((0..300).map(|id| record(id, 2)).collect()).unwrap();
        (0..300).for_each(|id| {
            live.insert(id, 2);
        });
        removed.retain(|&id| id >= 300);
        c.checkpoint().unwrap();
        check(&c, &live, &removed, "after the compaction and more writes");
    }
    // The snapshot holds the graph, not the vectors.
    let snap = dir.path().join("collections/c/index-v");
    assert!(snap.join("index.json").exists(), "no snapshot at {}", snap.display());
    assert!(!snap.join("vectors.bin").exists(), "the snapshot saved a copy of the vectors");
    // Only the rows of removed nodes (still walked through) are saved with it.
    let inline = std::fs::metadata(snap.join("inline.bin")).unwrap().len();
    assert!(inline < (live.len() * DIM * 4 / 2) as u64, "the snapshot saved {inline} B of rows");
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("c").unwrap();
        assert!(matches!(field(&c).origin, IndexOrigin::Snapshot { .. }), "{:?}", field(&c).origin);
        check(&c, &live, &removed, "reopened from the snapshot");
        // A follower loads the same snapshot and reads the same rows.
        let ro = Database::open_read_only(dir.path()).unwrap();
        check(&ro.collection("c").unwrap(), &live, &removed, "read-only follower");
        // Writes after the snapshot, left in the WAL: a new reader loads the snapshot and
        // replays them (as an open after a crash does); the follower catches up.
        c.upsert((300..400).map(|id| record(id, 3)).collect()).unwrap();
        (300..400).for_each(|id| {
            live.insert(id, 3);
        });
        assert_eq!(c.delete(&[1000, 1001]).unwrap(), 2);
        live.remove(&1000);
        live.remove(&1001);
        removed.extend([1000, 1001]);
        let fresh = Database::open_read_only(dir.path()).unwrap();
        check(&fresh.collection("c").unwrap(), &live, &removed, "a reader opened with writes in the WAL");
        ro.refresh().unwrap();
        check(&ro.collection("c").unwrap(), &live, &removed, "the follower after a refresh");
        c.checkpoint().unwrap();
        ro.refresh().unwrap();
        check(&ro.collection("c").unwrap(), &live, &removed, "the follower after the checkpoint");
        c.compact().unwrap();
        ro.refresh().unwrap();
        check(&ro.collection("c").unwrap(), &live, &removed, "the follower after a compaction");
        drop(fresh);
        assert_eq!(deleted_mappings(dir.path()), Vec::<String>::new(), "replaced segments still mapped");
    }
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    check(&c, &live, &removed, "reopened at the end");
}

/// Removed nodes keep their rows (the graph still walks through them) after the segment that
/// held them is compacted away, and the live ones move to the new segment.
#[test]
fn removed_nodes_survive_the_compaction_of_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "HNSW8")).unwrap();
    c.insert((0..3000).map(|id| record(id, 0)).collect()).unwrap();
    c.checkpoint().unwrap();
    // Fewer than a quarter removed: the graph keeps them as tombstones.
    let gone: Vec<u64> = (0..3000).step_by(5).collect();
    c.delete(&gone).unwrap();
    c.compact().unwrap();
    let live: std::collections::BTreeMap<u64, u64> = (0..3000).filter(|id| id % 5 != 0).map(|id| (id, 0)).collect();
    check(&c, &live, &gone, "after compacting the deleted rows away");
    drop(c);
    drop(db);
    let db = Database::open(dir.path()).unwrap();
    check(&db.collection("c").unwrap(), &live, &gone, "reopened");
}

/// A snapshot saved by an older version (the graph with its own `vectors.bin`) is loaded, drops
/// its copy and reads the segments in place; the next snapshot has no `vectors.bin`.
#[test]
fn an_older_snapshot_with_its_own_vectors_is_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let n = 3000u64;
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "HNSW16")).unwrap();
        c.insert((0..n).map(|id| record(id, 0)).collect()).unwrap();
        c.checkpoint().unwrap();
    }
    // Replace the snapshot by a graph holding its own rows (what versions before 4 saved),
    // with a removed node (id 7's first row, replaced by the same vector).
    let snap = dir.path().join("collections/c/index-v");
    std::fs::remove_dir_all(&snap).unwrap();
    let mut own = vecdb::index::hnsw::HnswIndex::new(DIM, Metric::L2, 16, 200);
    let data: Vec<f32> = (0..n).flat_map(|id| vector_of(id, 0)).collect();
    own.add(&(0..n).collect::<Vec<u64>>(), vecdb::VectorsRef::Dense(&data)).unwrap();
    own.add(&[7], vecdb::VectorsRef::Dense(&vector_of(7, 0))).unwrap();
    assert_eq!(own.deleted_count(), 1);
    own.save(&snap).unwrap();
    assert!(snap.join("vectors.bin").exists());
    let mut live: std::collections::BTreeMap<u64, u64> = (0..n).map(|id| (id, 0)).collect();
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    assert!(matches!(field(&c).origin, IndexOrigin::Snapshot { .. }), "{:?}", field(&c).origin);
    // Its heap is the graph's: no copy of the vectors (3000 × 96 B) beside it.
    assert!(field(&c).memory_bytes < own.memory_bytes() - 3000 * DIM * 4 * 8 / 10, "{:?}", field(&c));
    check(&c, &live, &[], "loaded from the older snapshot");
    c.insert(vec![record(n, 0)]).unwrap();
    live.insert(n, 0);
    c.checkpoint().unwrap();
    check(&c, &live, &[], "after a write and a checkpoint");
    assert!(!snap.join("vectors.bin").exists(), "the new snapshot still holds the vectors");
    assert!(snap.join("inline.bin").exists());
}

/// A reopened graph attaches its rows where the snapshot's `rows.bin` says (one pass, no
/// lookup by id): answers stay exact across segments, deletes and replacements; without the
/// file it finds them by id; and the file is what the open follows (hints moved to other rows
/// give other distances — which is why `db check` verifies the snapshot's checksums).
#[test]
fn a_reopened_graph_attaches_its_rows_from_the_saved_hints() {
    let dir = tempfile::tempdir().unwrap();
    let mut live = std::collections::BTreeMap::new();
    {
        let db = Database::open(dir.path()).unwrap();
        let c = db.create_collection("c", CollectionSchema::single("v", DIM, Metric::L2, "HNSW16")).unwrap();
        for b in 0..3u64 {
            c.insert((b * 1000..(b + 1) * 1000).map(|id| record(id, 0)).collect()).unwrap();
            c.checkpoint().unwrap();
        }
        (0..3000).for_each(|id| {
            live.insert(id, 0);
        });
        // A replacement and a delete land in a newer segment than the first rows.
        c.upsert((0..3000).step_by(11).map(|id| record(id, 1)).collect()).unwrap();
        (0..3000).step_by(11).for_each(|id| {
            live.insert(id, 1);
        });
        c.delete(&[1, 2, 3]).unwrap();
        (1..4).for_each(|id| {
            live.remove(&id);
        });
        c.checkpoint().unwrap();
    }
    let snap = dir.path().join("collections/c/index-v");
    let hints = snap.join("rows.bin");
    assert!(hints.exists(), "the snapshot says where its rows are");
    let reopen = |when: &str| {
        let db = Database::open(dir.path()).unwrap();
        let c = db.collection("c").unwrap();
        assert!(matches!(field(&c).origin, IndexOrigin::Snapshot { .. }), "{when}: {:?}", field(&c).origin);
        check(&c, &live, &[1, 2, 3], when);
    };
    reopen("reopened with row hints");
    // A reader maps the hints and finds each row when first read: the same answers, and no
    // address table (8 B per node) on its heap.
    let writer_heap = {
        let db = Database::open(dir.path()).unwrap();
        let heap = field(&db.collection("c").unwrap()).memory_bytes;
        let ro = Database::open_read_only(dir.path()).unwrap();
        let rc = ro.collection("c").unwrap();
        assert!(matches!(field(&rc).origin, IndexOrigin::Snapshot { .. }), "{:?}", field(&rc).origin);
        check(&rc, &live, &[1, 2, 3], "read-only, rows found from the hints");
        let reader_heap = field(&rc).memory_bytes;
        assert!(reader_heap + 3000 * 8 * 9 / 10 <= heap, "reader heap {reader_heap} B, writer heap {heap} B");
        heap
    };
    assert!(writer_heap > 0);
    let saved = std::fs::read(&hints).unwrap();
    std::fs::remove_file(&hints).unwrap();
    reopen("reopened without row hints");
    // The writer's open saved them again: the same for every live row (a removed node's row is
    // kept in the snapshot itself, so its hint is empty now).
    let again = std::fs::read(&hints).unwrap();
    assert_eq!(again.len(), saved.len());
    let word = |b: &[u8], i: usize| u64::from_le_bytes(b[i * 8..][..8].try_into().unwrap());
    let slots = (saved.len() - 20) / 8; // less the 20-byte file footer
    let same = (0..slots).filter(|&i| word(&again, i) == word(&saved, i)).count();
    let empty = (0..slots).filter(|&i| word(&again, i) == u64::MAX).count();
    assert_eq!(same + empty, slots, "a live row's hint changed");
    assert!(same >= live.len(), "{same} hints saved again for {} live rows", live.len());
    // Every hint moved one row on (within its segment's first rows): the open follows them.
    let body = vecdb::index::file::read(&{
        std::fs::write(&hints, &saved).unwrap();
        hints.clone()
    })
    .unwrap();
    let moved: Vec<u8> = body
        .chunks_exact(8)
        .flat_map(|h| {
            let h = u64::from_le_bytes(h.try_into().unwrap());
            let h = if h == u64::MAX { h } else { (h & !0xffff_ffff) | (((h & 0xffff_ffff) + 1) % 500) };
            h.to_le_bytes()
        })
        .collect();
    vecdb::index::file::write(&hints, &moved).unwrap();
    {
        // A reader follows them too (it maps the file; only its footer is checked).
        let ro = Database::open_read_only(dir.path()).unwrap();
        let rc = ro.collection("c").unwrap();
        let off = live.keys().filter(|&&id| top(&rc, vector_of(id, live[&id]), 1)[0].1 != 0.0).count();
        assert!(off > 0, "the reader did not follow the saved hints");
    }
    // Hints that name no row (a segment or a row out of range, checksum made to match): a
    // reader stays in bounds (a row of zeros) and answers with stored ids.
    let wild: Vec<u8> = body
        .chunks_exact(8)
        .enumerate()
        .flat_map(|(i, h)| {
            let h = u64::from_le_bytes(h.try_into().unwrap());
            let h = match i % 3 {
                0 => (77u64 << 32) | 5,
                1 if h != u64::MAX => h | 0xffff_fff0,
                _ => h,
            };
            h.to_le_bytes()
        })
        .collect();
    vecdb::index::file::write(&hints, &wild).unwrap();
    {
        let ro = Database::open_read_only(dir.path()).unwrap();
        let rc = ro.collection("c").unwrap();
        for id in (0..3000).step_by(97) {
            for (hid, d) in top(&rc, vector_of(id, 0), 10) {
                assert!(live.contains_key(&hid) && d.is_finite(), "id {hid} at {d}");
            }
        }
    }
    vecdb::index::file::write(&hints, &moved).unwrap();
    let db = Database::open(dir.path()).unwrap();
    let c = db.collection("c").unwrap();
    let off = live.keys().filter(|&&id| top(&c, vector_of(id, live[&id]), 1)[0].1 != 0.0).count();
    assert!(off > 0, "the open did not follow the saved hints");
}
