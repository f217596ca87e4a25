//! Hostile load on `likeness serve`: many concurrent searches with huge images are admitted a
//! few at a time (the rest get 503 + Retry-After at once), the server's memory stays bounded,
//! and an upload over the per-request pixel budget is refused before it is decoded.

mod common;

use std::io::Cursor;
use std::sync::Arc;

use common::serve::ServeProcess;
use common::*;
use image::{GrayImage, ImageFormat, Luma};
use reqwest::blocking::multipart::{Form, Part};
use reqwest::StatusCode;

/// A 10,000 × 10,000 PNG (100 million pixels) that compresses to a few hundred KB.
fn huge_png() -> Vec<u8> {
    let img = GrayImage::from_fn(10_000, 10_000, |x, y| Luma([((x / 100 + y / 100) % 2 * 200) as u8]));
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Peak resident memory of process `pid`, in bytes (`VmHWM`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn sixty_four_searches_with_huge_images_get_200_or_503_and_memory_stays_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    for (l, n) in &TREE[..4] {
        add_photo(&root, l, n, 300);
    }
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color", "--json"]);
    let png = Arc::new(huge_png());
    assert!(png.len() < 2_000_000, "{} bytes", png.len());

    // Refused before decoding by default (the upload budget is 50 million pixels).
    let strict = ServeProcess::start(&db, &[]);
    let (status, err) = strict.search_image("images", png.to_vec(), "color");
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert!(err["error"].as_str().unwrap().contains("pixels"), "{err}");
    drop(strict);

    // Allowed, 64 at once: two decode, eight wait, the rest are told to come back.
    let server = Arc::new(ServeProcess::start(
        &db,
        &["--workers", "2", "--queue", "8", "--queue-wait-s", "60", "--max-upload-pixels", "100000000"],
    ));
    let base = server.base.clone();
    let threads: Vec<_> = (0..64)
        .map(|_| {
            let (png, base) = (png.clone(), base.clone());
            std::thread::spawn(move || {
                let form =
                    Form::new().part("image", Part::bytes(png.to_vec()).file_name("huge.png")).text("feature", "color");
                let res = reqwest::blocking::Client::builder()
                    .timeout(std::time::Duration::from_secs(120))
                    .build()
                    .unwrap()
                    .post(format!("{base}/api/collections/images/search/image"))
                    .multipart(form)
                    .send()
                    .unwrap();
                let retry = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                (res.status(), retry, res.text().unwrap())
            })
        })
        .collect();
    let answers: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let ok = answers.iter().filter(|(s, _, _)| *s == StatusCode::OK).count();
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == StatusCode::SERVICE_UNAVAILABLE).collect();
    for (status, _, body) in &answers {
        assert!(*status == StatusCode::OK || *status == StatusCode::SERVICE_UNAVAILABLE, "{status}: {body}");
    }
    assert!(ok >= 2, "only {ok} searches answered");
    assert!(!busy.is_empty(), "64 concurrent huge searches were all admitted");
    for (_, retry, body) in &busy {
        assert_eq!(retry.as_deref(), Some("1"), "{body}");
        assert!(body.contains("busy"), "{body}");
    }
    let peak = peak_rss(server.pid());
    eprintln!("{ok} answered, {} refused; peak RSS {} MB", busy.len(), peak >> 20);
    assert!(peak < 1536 << 20, "peak RSS {} MB", peak >> 20);
    // The server is still well and answers the next search.
    let (status, _) = server.search_image("images", std::fs::read(photo(TREE[0].1)).unwrap(), "color");
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn request_rate_connections_and_time_are_capped() {
    use std::io::{Read, Write};
    use std::time::Duration;

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("photos");
    for (l, n) in &TREE[..2] {
        add_photo(&root, l, n, 300);
    }
    let db = tmp.path().join("db");
    run_json(&["index", s(&root), "--db", s(&db), "--features", "color", "--json"]);

    // 5 requests per second, bursts of 10: the 11th at once is a 429 with Retry-After; /health stays open.
    let server = ServeProcess::start(&db, &["--rate-limit", "5"]);
    let statuses: Vec<StatusCode> = (0..15).map(|_| server.get("/api/collections").0).collect();
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 10, "{statuses:?}");
    let res = reqwest::blocking::get(format!("{}/api/collections", server.base)).unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.text().unwrap().contains("too many requests"));
    assert_eq!(server.get("/health").0, StatusCode::OK);
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(server.get("/api/collections").0, StatusCode::OK, "tokens come back");
    drop(server);

    // Two connections at most: a third waits until one closes.
    let server = ServeProcess::start(&db, &["--max-connections", "2"]);
    let addr = server.base.trim_start_matches("http://").to_string();
    let idle: Vec<std::net::TcpStream> = (0..2).map(|_| std::net::TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = std::net::TcpStream::connect(&addr).unwrap(); // the kernel queues it
    third.set_read_timeout(Some(Duration::from_millis(700))).unwrap();
    third.write_all(format!("GET /health HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 64];
    assert!(third.read(&mut buf).is_err(), "a third connection was served while two were open");
    drop(idle);
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut answer = String::new();
    third.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    drop(server);

    // A request over --request-timeout-s gets a 503 (decoding 100 million pixels takes longer).
    let server = ServeProcess::start(&db, &["--request-timeout-s", "1", "--max-upload-pixels", "100000000"]);
    let (status, err) = server.search_image("images", huge_png(), "color");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{err}");
}
