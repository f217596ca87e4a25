//! Crash safety: a child process ingests (and deletes, checkpoints, compacts) in a
//! loop and prints every acknowledged operation; the parent SIGKILLs it at random
//! moments, reopens the database and checks that every acknowledged write is there
//! with the right vectors and metadata and that no partial batch is visible.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use serde_json::json;
use vecdb::{CollectionSchema, Database, Metric, Record, Vector, VectorField};

const CHILD_ENV: &str = "VECDB_CRASH_CHILD_DIR";
const START_ENV: &str = "VECDB_CRASH_CHILD_START";
const DIM: usize = 24;

fn dense_of(id: u64) -> Vec<f32> {
    (0..DIM)
        .map(|j| {
            // modulo a prime far above any id the test reaches, so distinct ids never share a vector
            ((id.wrapping_mul(2_654_435_761).wrapping_add(j as u64 * 97)) % 1_000_003) as f32 / 10_000.0 - 50.0
        })
        .collect()
}
fn bits_of(id: u64) -> Vec<u8> {
    (id ^ 0x5555_aaaa_1234_8765).to_le_bytes().to_vec()
}
fn record_of(id: u64) -> Record {
    Record::new(id)
        .with_vector("v", Vector::Dense(dense_of(id)))
        .with_vector("h", Vector::Binary(bits_of(id)))
        .with_metadata(json!({"id": id, "name": format!("record-{id}"), "tags": ["x", format!("m{}", id % 7)]}))
}
fn schema() -> CollectionSchema {
    CollectionSchema {
        // "v" needs training (exact scans until it can be trained) and is saved as a
        // snapshot on close, so reopening exercises snapshot + WAL replay.
        fields: vec![
            VectorField::new("v", DIM, Metric::L2, "IVF4,Flat"),
            VectorField::new("h", 64, Metric::Hamming, "Flat"),
        ],
    }
}

/// The child: ingest forever, printing `B a b` before and `I a b` after each insert batch,
/// `d id` / `D id` around deletes.
fn child(dir: &str, start: u64) {
    let db = Database::open(dir).unwrap();
    let c = match db.collection("c") {
        Ok(c) => c,
        Err(_) => db.create_collection("c", schema()).unwrap(),
    };
    println!("READY");
    let mut r = rand::rngs::StdRng::seed_from_u64(start);
    let mut next = start;
    let mut mine: Vec<u64> = Vec::new();
    for round in 0u64.. {
        let n = r.random_range(1..40u64);
        let (a, b) = (next, next + n - 1);
        next += n;
        println!("B {a} {b}");
        c.insert((a..=b).map(record_of).collect()).unwrap();
        println!("I {a} {b}");
        mine.extend(a..=b);
        if round % 3 == 2 && !mine.is_empty() {
            let id = mine.swap_remove(r.random_range(0..mine.len()));
            println!("d {id}");
            assert_eq!(c.delete(&[id]).unwrap(), 1);
            println!("D {id}");
        }
        if round % 9 == 8 {
            c.checkpoint().unwrap();
        }
        if round % 31 == 30 {
            c.compact().unwrap();
        }
    }
}

#[test]
fn sigkill_never_loses_acknowledged_writes() {
    if let (Ok(dir), Ok(start)) = (std::env::var(CHILD_ENV), std::env::var(START_ENV)) {
        child(&dir, start.parse().unwrap());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    // What must be true, built from the children's acknowledgements.
    let mut live: BTreeSet<u64> = BTreeSet::new();
    let mut next_id = 1u64;
    let t0 = Instant::now();
    let rounds = 24;
    let mut total_acked = 0usize;
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "sigkill_never_loses_acknowledged_writes", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .env(START_ENV, next_id.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // wait until the child is up, then let it run for a random time
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let l = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("child did not start");
            let ready = l.ends_with("READY");
            lines.push(l);
            if ready {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(5..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());

        // replay the acknowledgements
        let mut in_flight_insert: Option<(u64, u64)> = None;
        let mut in_flight_delete: Option<u64> = None;
        for l in &lines {
            let p: Vec<&str> = l.split_whitespace().collect();
            match p.as_slice() {
                ["B", a, b] => {
                    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
                    next_id = next_id.max(b + 1);
                    in_flight_insert = Some((a, b));
                }
                ["I", a, b] => {
                    let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
                    live.extend(a..=b);
                    total_acked += (b - a + 1) as usize;
                    in_flight_insert = None;
                }
                ["d", id] => in_flight_delete = Some(id.parse().unwrap()),
                ["D", id] => {
                    live.remove(&id.parse::<u64>().unwrap());
                    in_flight_delete = None;
                }
                _ => {}
            }
        }

        // reopen and verify
        let db = Database::open(dir.path()).unwrap_or_else(|e| panic!("round {round}: reopen failed: {e}"));
        let c = db.collection("c").unwrap();
        let present: BTreeSet<u64> = c.ids().into_iter().collect();
        for id in &live {
            if Some(*id) == in_flight_delete {
                continue;
            }
            assert!(present.contains(id), "round {round}: acknowledged id {id} lost");
        }
        if let Some((a, b)) = in_flight_insert {
            let n = (a..=b).filter(|id| present.contains(id)).count();
            assert!(n == 0 || n == (b - a + 1) as usize, "round {round}: partial batch {a}..={b} ({n} present)");
            if n > 0 {
                live.extend(a..=b);
            }
        }
        if let Some(id) = in_flight_delete {
            if !present.contains(&id) {
                live.remove(&id);
            }
        }
        assert_eq!(present, live, "round {round}: stored ids differ from acknowledged ones");
        let mut checked = 0;
        c.for_each(|rec| {
            assert_eq!(rec.vectors["v"], Vector::Dense(dense_of(rec.id)), "round {round}: vector of {}", rec.id);
            assert_eq!(rec.vectors["h"], Vector::Binary(bits_of(rec.id)));
            assert_eq!(rec.metadata, record_of(rec.id).metadata);
            checked += 1;
        })
        .unwrap();
        assert_eq!(checked, live.len());
        // the index agrees with the store
        let all_lists = vecdb::SearchParams { nprobe: Some(4), ..Default::default() };
        for &id in live.iter().rev().step_by(7).take(20) {
            let q = vecdb::Query::Vector(Vector::Dense(dense_of(id)));
            let hits = c.search(&vecdb::SearchRequest::new("v", q, 1).with_params(all_lists.clone())).unwrap();
            assert_eq!((hits[0].id, hits[0].distance), (id, 0.0), "round {round}: index lost {id}");
            let q = vecdb::Query::Vector(Vector::Binary(bits_of(id)));
            let hits = c.search(&vecdb::SearchRequest::new("h", q, 1)).unwrap();
            assert_eq!((hits[0].id, hits[0].distance), (id, 0.0));
        }
        let n_hits = c
            .search(
                &vecdb::SearchRequest::new("v", vecdb::Query::Vector(Vector::Dense(vec![0.0; DIM])), 100_000)
                    .with_params(all_lists),
            )
            .unwrap()
            .len();
        assert_eq!(n_hits, live.len(), "round {round}: index holds a different number of records");
        drop(c);
        drop(db);
    }
    assert!(total_acked > 0, "children never acknowledged anything");
    eprintln!("{rounds} rounds, {total_acked} acknowledged records, {} live, {:?}", live.len(), t0.elapsed());
}
