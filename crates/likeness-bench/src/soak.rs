//! `likeness-bench soak`: mixed traffic against a real `likeness serve` process.
//!
//! Indexes a folder of images (colour + pHash) into a fresh database, starts `likeness serve` on
//! 127.0.0.1 as a child process, and for each concurrency level sends, from that many keep-alive
//! connections for `--seconds`, a mix of searches by stored id (JSON), searches by image
//! (multipart) and uploads (multipart). Reports per level: requests/s, p50/p99 latency, answers
//! by status (503s are the admission gate refusing work, as designed), transport errors, and the
//! server's resident memory (current and peak, from /proc). Every loop is bounded in time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::http::{read_response, tempfile_dir};

/// Arguments of `likeness-bench soak`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of images: indexed first, then used as query images and uploads.
    #[arg(long)]
    pub images: PathBuf,
    /// Concurrency levels (connections), comma-separated.
    #[arg(long, default_value = "1,16,64,256", value_delimiter = ',')]
    pub concurrency: Vec<usize>,
    /// Seconds of traffic per level.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Share of requests, in percent: searches by id, searches by image, uploads.
    #[arg(long, default_value = "60,30,10", value_delimiter = ',')]
    pub mix: Vec<u32>,
    /// The `likeness` binary (default: the one beside this program).
    #[arg(long)]
    pub likeness: Option<PathBuf>,
    /// Extra arguments for `likeness serve` (e.g. "--workers 2 --queue 8").
    #[arg(long, default_value = "")]
    pub serve_args: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

/// Resident and peak resident memory of `pid`, in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn multipart(boundary: &str, file: &[u8], name: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(file.len() + 512);
    b.extend_from_slice(
        format!(
            "--{boundary}\r\ncontent-disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n\
             content-type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    b.extend_from_slice(file);
    for (k, v) in fields {
        b.extend_from_slice(
            format!("\r\n--{boundary}\r\ncontent-disposition: form-data; name=\"{k}\"\r\n\r\n{v}").as_bytes(),
        );
    }
    b.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    b
}

fn request(addr: SocketAddr, path: &str, ctype: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Index `images` into a fresh database and start `likeness serve` on it.
fn start(likeness: &Path, images: &Path, db: &Path, extra: &str) -> Result<Server> {
    let out = Command::new(likeness)
        .args(["index"])
        .arg(images)
        .arg("--db")
        .arg(db)
        .args(["--features", "color,phash", "--json"])
        .output()
        .with_context(|| format!("cannot run {}", likeness.display()))?;
    if !out.status.success() {
        bail!("likeness index failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let mut child = Command::new(likeness)
        .args(["serve", "--addr", "127.0.0.1:0", "--features", "color,phash", "--rate-limit", "0", "--db"])
        .arg(db)
        .args(extra.split_whitespace())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().context("stdout")?), &mut line)?;
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|r| r.trim().trim_end_matches('/').parse().ok())
        .with_context(|| format!("serve did not start: {line:?}"))?;
    Ok(Server { child, addr })
}

/// One level: `conns` connections for `secs`; (latencies, statuses, transport errors).
async fn level(reqs: Arc<Vec<Vec<u8>>>, addr: SocketAddr, conns: usize, secs: u64) -> (Vec<Duration>, Vec<u16>, usize) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let reqs = reqs.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut statuses, mut errors) = (Vec::new(), Vec::new(), 0usize);
            let mut stream: Option<BufReader<TcpStream>> = None;
            let mut i = c * 7919;
            while Instant::now() < deadline {
                let r = &reqs[i % reqs.len()];
                i += 1;
                if stream.is_none() {
                    match TcpStream::connect(addr).await {
                        Ok(s) => stream = Some(BufReader::new(s)),
                        Err(_) => {
                            errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
                let s = stream.as_mut().expect("connected");
                let t = Instant::now();
                let left = deadline.saturating_duration_since(t) + Duration::from_secs(30);
                let res = tokio::time::timeout(left, async {
                    s.get_mut().write_all(r).await?;
                    read_response(s).await
                })
                .await;
                match res {
                    Ok(Ok(status)) => {
                        lat.push(t.elapsed());
                        statuses.push(status);
                    }
                    _ => {
                        errors += 1;
                        stream = None;
                    }
                }
            }
            (lat, statuses, errors)
        }));
    }
    let (mut lat, mut statuses, mut errors) = (Vec::new(), Vec::new(), 0);
    for t in tasks {
        if let Ok((l, s, e)) = t.await {
            lat.extend(l);
            statuses.extend(s);
            errors += e;
        }
    }
    (lat, statuses, errors)
}

/// Run the benchmark.
pub fn run(args: &Args) -> Result<()> {
    if args.mix.len() != 3 {
        bail!("--mix takes three percentages: id searches, image searches, uploads");
    }
    let likeness = match &args.likeness {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("likeness"),
    };
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&args.images)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && features::decode::is_image_path(e.path()))
        .map(|e| e.into_path())
        .collect();
    files.sort();
    files.truncate(64);
    if files.is_empty() {
        bail!("no images under {}", args.images.display());
    }
    let dir = tempfile_dir()?;
    let server = start(&likeness, &args.images, &dir.join("db"), &args.serve_args)?;
    let addr = server.addr;
    let ids: Vec<String> = {
        let db = vecdb::Database::open_read_only(dir.join("db"))?;
        db.collection("images")?.ids().iter().map(u64::to_string).collect()
    };
    // The request mix, 100 requests in the stated shares, cycled.
    let boundary = "likenessbenchboundary7f3a";
    let ctype = format!("multipart/form-data; boundary={boundary}");
    let mut reqs = Vec::new();
    for i in 0..100usize {
        let f = &files[i % files.len()];
        let bytes = std::fs::read(f)?;
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let kind = if i < args.mix[0] as usize {
            0
        } else if i < (args.mix[0] + args.mix[1]) as usize {
            1
        } else {
            2
        };
        reqs.push(match kind {
            0 => {
                let body = json!({"id": ids[i % ids.len().max(1)], "feature": "color", "k": 10}).to_string();
                request(addr, "/api/collections/images/search", "application/json", body.as_bytes())
            }
            1 => request(
                addr,
                "/api/collections/images/search/image",
                &ctype,
                &multipart(boundary, &bytes, &name, &[("feature", "color")]),
            ),
            _ => request(addr, "/api/collections/soak/images", &ctype, &multipart(boundary, &bytes, &name, &[])),
        });
    }
    let reqs = Arc::new(reqs);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let mut levels = Vec::new();
    for &conns in &args.concurrency {
        let (mut lat, statuses, errors) = rt.block_on(level(reqs.clone(), addr, conns.max(1), args.seconds));
        lat.sort_unstable();
        let ms = |p: f64| lat.get(((lat.len().max(1) - 1) as f64 * p) as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
        let count = |f: &dyn Fn(u16) -> bool| statuses.iter().filter(|s| f(**s)).count();
        let (rss_now, rss_peak) = rss(server.child.id());
        let row = json!({
            "concurrency": conns, "seconds": args.seconds, "requests": lat.len(),
            "requests_per_second": lat.len() as f64 / args.seconds as f64,
            "p50_ms": ms(0.5), "p99_ms": ms(0.99),
            "ok_2xx": count(&|s| (200..300).contains(&s)), "busy_503": count(&|s| s == 503),
            "other_4xx": count(&|s| (400..500).contains(&s)), "other_5xx": count(&|s| s >= 500 && s != 503),
            "transport_errors": errors, "server_rss_mb": rss_now >> 20, "server_peak_rss_mb": rss_peak >> 20,
        });
        if !args.json {
            println!(
                "{conns:>4} connections: {:>6.0} req/s  p50 {:>8.1} ms  p99 {:>8.1} ms  2xx {:>6}  503 {:>6}  4xx {:>4}  \
                 5xx {:>3}  errors {:>3}  server RSS {} MB (peak {} MB)",
                row["requests_per_second"].as_f64().unwrap_or(0.0),
                ms(0.5),
                ms(0.99),
                row["ok_2xx"],
                row["busy_503"],
                row["other_4xx"],
                row["other_5xx"],
                errors,
                rss_now >> 20,
                rss_peak >> 20
            );
        }
        levels.push(row);
    }
    drop(server);
    std::fs::remove_dir_all(&dir).ok();
    if args.json {
        println!("{}", json!({"images": files.len(), "mix": args.mix, "levels": levels}));
    }
    Ok(())
}
