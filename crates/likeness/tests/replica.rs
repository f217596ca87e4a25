//! `likeness serve --read-only`: replicas beside a writer process on the same database directory
//! serve what the writer acknowledges (uploads, deletes, across its checkpoints), refuse writes,
//! and keep serving when the writer stops.

mod common;

use std::time::{Duration, Instant};

use common::serve::ServeProcess;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

/// Poll `f` until it returns true; the time it took, or a panic naming `what` after `limit`.
fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
    t.elapsed()
}

fn count(server: &ServeProcess) -> u64 {
    let (status, v) = server.get("/api/collections/images");
    assert_eq!(status, StatusCode::OK, "{v}");
    v["count"].as_u64().unwrap()
}

#[test]
fn replicas_follow_the_writer_and_refuse_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    for (l, n) in &TREE[..6] {
        add_photo(&root, l, n, 300);
    }
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color,phash", "--json"]);

    // The writer checkpoints every second, so the replicas also follow new segments.
    let writer = ServeProcess::start(&db, &["--features", "color,phash", "--snapshot-every", "1"]);
    let replicas: Vec<ServeProcess> =
        (0..2).map(|_| ServeProcess::start(&db, &["--read-only", "--refresh-ms", "50"])).collect();
    for r in &replicas {
        let (_, health) = r.get("/health");
        assert_eq!(health["read_only"], true, "{health}");
        assert_eq!(count(r), 6);
    }
    assert_eq!(writer.get("/health").1["read_only"], false);

    // An upload acknowledged by the writer is served by every replica within a second.
    let coffee = std::fs::read(photo("coffee.png")).unwrap();
    let (status, added) = writer.upload("images", coffee.clone(), "coffee.png");
    assert_eq!(status, StatusCode::CREATED, "{added}");
    let id = added["id"].as_str().unwrap().to_string();
    for r in &replicas {
        let took = wait_until("upload visible on a replica", Duration::from_secs(1), || {
            r.get(&format!("/api/collections/images/records/{id}")).0 == StatusCode::OK
        });
        eprintln!("replica caught up {took:?} after the acknowledgement");
        assert_eq!(count(r), 7);
        // searches on the replica find it, by image and by id
        let (status, hits) = r.search_image("images", coffee.clone(), "color");
        assert_eq!(status, StatusCode::OK, "{hits}");
        assert_eq!(hits["results"][0]["id"], id.as_str(), "{hits}");
        let (status, more) =
            r.post_json("/api/collections/images/search", &json!({"id": id, "feature": "color", "k": 3}));
        assert_eq!(status, StatusCode::OK, "{more}");
        assert_eq!(more["results"].as_array().unwrap().len(), 3);
        // and it shows the uploaded image's thumbnail
        let (status, jpeg) = r.get_bytes(&format!("/thumb/{id}"));
        assert_eq!(status, StatusCode::OK);
        assert!(jpeg.starts_with(&[0xff, 0xd8]));
    }

    // Writes to a replica are refused and change nothing.
    let (status, err) = replicas[0].upload("images", std::fs::read(photo(TREE[7].1)).unwrap(), "x.png");
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert!(err["error"].as_str().unwrap().contains("read-only replica"), "{err}");
    let (status, err) = replicas[1].delete("images", &id);
    assert_eq!(status, StatusCode::FORBIDDEN, "{err}");
    assert_eq!(count(&writer), 7);

    // More writes, across the writer's checkpoints: replicas converge on exactly its records.
    let mut ids = vec![id.clone()];
    for (i, (_, name)) in TREE[6..10].iter().enumerate() {
        let (status, v) = writer.upload("images", std::fs::read(photo(name)).unwrap(), name);
        assert_eq!(status, StatusCode::CREATED, "{v}");
        ids.push(v["id"].as_str().unwrap().to_string());
        std::thread::sleep(Duration::from_millis(300 * (i as u64 % 2)));
    }
    let (status, _) = writer.delete("images", &id);
    assert_eq!(status, StatusCode::OK);
    let want = count(&writer);
    for r in &replicas {
        wait_until("replica converged", Duration::from_secs(2), || {
            count(r) == want && r.get(&format!("/api/collections/images/records/{id}")).0 == StatusCode::NOT_FOUND
        });
        for other in &ids[1..] {
            assert_eq!(r.get(&format!("/api/collections/images/records/{other}")).0, StatusCode::OK);
        }
    }

    // The writer stops (checkpointing on the way out); the replicas keep serving.
    let (status, stderr) = writer.terminate();
    assert!(status.success(), "{stderr}");
    for r in &replicas {
        assert_eq!(count(r), want);
        let (_, health) = r.get("/health");
        assert!(health["refreshed_ms_ago"].as_u64().unwrap() < 2000, "{health}");
    }
    // A replica never wrote to the database: its check is clean.
    run_ok(&["db", "check", s(&db)]);
    drop(replicas);
}

#[test]
fn a_replica_needs_an_existing_database() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nope");
    let out = likeness().args(["serve", "--read-only", "--db", s(&missing), "--addr", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("read-only replica") && err.contains("nope"), "{err}");
    assert!(!missing.exists(), "a replica created the database directory");
}
