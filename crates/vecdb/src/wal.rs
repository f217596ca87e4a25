//! Write-ahead log: an append-only file of checksummed frames.
//!
//! File layout (little-endian):
//!
//! ```text
//! header : "VDBWAL02" | gen u64 | schema_len u32 | schema JSON | crc32(everything before) u32
//!          ("VDBWAL01" | gen u64 | crc32(magic‖gen) u32, 20 bytes, in logs written before the schema was)
//! frame  : len u32 | lsn u64 | crc32(len‖lsn) u32 | crc32(payload) u32 | payload[len]
//! ```
//!
//! Frames carry consecutive LSNs starting at 1. On replay a frame that is cut
//! short or fails a checksum ends the log if no valid frame follows it (a torn
//! tail: the file is truncated there); if a valid frame follows, the damage is in
//! the middle of acknowledged data and replay fails with [`Error::Corrupt`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::filter::Metadata;
use crate::fsutil::{corrupt, crc_ok, Reader};
use crate::schema::CollectionSchema;
use crate::vector::Vector;

/// Magic of logs written before the header carried the schema (still read).
const MAGIC_V1: &[u8; 8] = b"VDBWAL01";
const MAGIC: &[u8; 8] = b"VDBWAL02";
/// Length of a "VDBWAL01" header.
const HEADER_V1: usize = 20;
/// Largest schema a header may carry (a sanity bound for damaged length fields).
const MAX_SCHEMA: usize = 1 << 24;
const FRAME_HEADER: usize = 20;
/// Largest payload a frame may carry (a sanity bound for damaged length fields).
const MAX_PAYLOAD: usize = 1 << 31;

/// File name of WAL generation `gen`.
pub(crate) fn wal_file_name(gen: u64) -> String {
    format!("wal-{gen:08}.log")
}

/// An open WAL file, positioned at its end.
pub(crate) struct Wal {
    path: PathBuf,
    file: File,
    next_lsn: u64,
    len: u64,
}

/// What replay found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplayReport {
    /// Frames replayed.
    pub frames: u64,
    /// Bytes cut from a torn tail (0 if the log ended cleanly).
    pub truncated_bytes: u64,
}

impl Wal {
    /// Create a new, empty WAL file of generation `gen` whose header records `schema` (durable
    /// when this returns, apart from the directory entry, which the caller syncs).
    pub(crate) fn create(path: &Path, gen: u64, schema: &CollectionSchema) -> Result<Wal> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        let json = serde_json::to_vec(schema).map_err(|e| Error::Metadata(e.to_string()))?;
        let mut h = Vec::with_capacity(24 + json.len());
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&gen.to_le_bytes());
        h.extend_from_slice(&(json.len() as u32).to_le_bytes());
        h.extend_from_slice(&json);
        h.extend_from_slice(&crc32fast::hash(&h).to_le_bytes());
        file.write_all(&h).map_err(|e| Error::io(path, e))?;
        file.sync_all().map_err(|e| Error::io(path, e))?;
        Ok(Wal { path: path.to_path_buf(), file, next_lsn: 1, len: h.len() as u64 })
    }

    /// Open an existing WAL of generation `gen`, call `apply` on every intact
    /// payload in order, cut a torn tail, and return the log ready for appends.
    pub(crate) fn open(
        path: &Path,
        gen: u64,
        mut apply: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<(Wal, ReplayReport)> {
        let mut file = OpenOptions::new().read(true).write(true).open(path).map_err(|e| Error::io(path, e))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
        let header = parse_header(&data, path)?;
        if header.gen != gen {
            return Err(corrupt(path, format!("WAL generation {}, manifest expects {gen}", header.gen)));
        }
        let scan = scan_frames(&data, header.len, path, &mut apply)?;
        let pos = scan.end;
        if let Some(torn) = &scan.torn {
            // A torn tail is an unacknowledged write cut by a crash: logged where an operator sees it.
            tracing::warn!(
                path = %path.display(),
                offset = pos,
                bytes = torn.bytes,
                frames_kept = scan.frames,
                reason = torn.reason,
                "cutting a torn WAL tail ({} bytes from offset {pos} of {}: {}); every earlier record is kept",
                torn.bytes,
                path.display(),
                torn.reason
            );
            file.set_len(pos as u64).map_err(|e| Error::io(path, e))?;
            file.sync_all().map_err(|e| Error::io(path, e))?;
        }
        let truncated = scan.torn.as_ref().map_or(0, |t| t.bytes);
        let lsn = scan.frames + 1;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::Start(pos as u64)).map_err(|e| Error::io(path, e))?;
        let report = ReplayReport { frames: lsn - 1, truncated_bytes: truncated };
        Ok((Wal { path: path.to_path_buf(), file, next_lsn: lsn, len: pos as u64 }, report))
    }

    /// Append one frame per payload with a single `write` (not yet durable: call [`Wal::sync`]).
    pub(crate) fn append(&mut self, payloads: &[Vec<u8>]) -> Result<()> {
        let total: usize = payloads.iter().map(|p| p.len() + FRAME_HEADER).sum();
        let mut buf = Vec::with_capacity(total);
        for p in payloads {
            let mut h = [0u8; 12];
            h[..4].copy_from_slice(&(p.len() as u32).to_le_bytes());
            h[4..].copy_from_slice(&self.next_lsn.to_le_bytes());
            buf.extend_from_slice(&h);
            buf.extend_from_slice(&crc32fast::hash(&h).to_le_bytes());
            buf.extend_from_slice(&crc32fast::hash(p).to_le_bytes());
            buf.extend_from_slice(p);
            self.next_lsn += 1;
        }
        self.file.write_all(&buf).map_err(|e| Error::io(&self.path, e))?;
        self.len += total as u64;
        Ok(())
    }

    /// Make every appended frame durable (fdatasync).
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io(&self.path, e))
    }

    /// Current file length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A parsed WAL file header.
#[derive(Debug, Clone)]
pub(crate) struct WalHeader {
    /// Generation.
    pub gen: u64,
    /// The collection schema when the log was created (`None` in "VDBWAL01" logs).
    pub schema: Option<CollectionSchema>,
    /// Header length in bytes (frames start here).
    pub len: usize,
}

/// Parse and verify the header at the start of `data` (the file `path`).
pub(crate) fn parse_header(data: &[u8], path: &Path) -> Result<WalHeader> {
    if data.len() >= HEADER_V1 && &data[..8] == MAGIC_V1 {
        let gen = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
        let hcrc = u32::from_le_bytes(data[16..20].try_into().expect("4 bytes"));
        if !crc_ok(&data[..16], hcrc) {
            return Err(corrupt(path, "WAL header checksum mismatch"));
        }
        return Ok(WalHeader { gen, schema: None, len: HEADER_V1 });
    }
    if data.len() < 24 || &data[..8] != MAGIC {
        return Err(corrupt(path, "bad WAL header (magic or length)"));
    }
    let gen = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    let slen = u32::from_le_bytes(data[16..20].try_into().expect("4 bytes")) as usize;
    if slen > MAX_SCHEMA || data.len() < 24 + slen {
        return Err(corrupt(path, "WAL header cut short"));
    }
    let end = 20 + slen;
    let hcrc = u32::from_le_bytes(data[end..end + 4].try_into().expect("4 bytes"));
    if !crc_ok(&data[..end], hcrc) {
        return Err(corrupt(path, "WAL header checksum mismatch"));
    }
    let schema: CollectionSchema = serde_json::from_slice(&data[20..end])
        .map_err(|e| corrupt(path, format!("WAL header schema is not valid JSON: {e}")))?;
    schema.check_stored(path)?;
    Ok(WalHeader { gen, schema: Some(schema), len: end + 4 })
}

/// A torn tail found by [`scan_frames`].
#[derive(Debug, Clone)]
pub(crate) struct TornTail {
    /// Bytes from the end of the last intact frame to the end of the file.
    pub bytes: u64,
    /// Why the first bad frame was rejected.
    pub reason: &'static str,
}

/// What [`scan_frames`] found.
#[derive(Debug, Clone)]
pub(crate) struct FrameScan {
    /// Intact frames, in order.
    pub frames: u64,
    /// Offset after the last intact frame.
    pub end: usize,
    /// Set when the file goes on past `end` with bytes that are not an intact frame and no
    /// intact frame follows them.
    pub torn: Option<TornTail>,
}

/// Walk the frames of `data` from `start`, calling `apply` on each intact payload in order.
/// Damage followed by an intact frame is [`Error::Corrupt`] (acknowledged data in the middle);
/// damage at the end is reported as a torn tail. Nothing is written.
pub(crate) fn scan_frames(
    data: &[u8],
    start: usize,
    path: &Path,
    apply: impl FnMut(&[u8]) -> Result<()>,
) -> Result<FrameScan> {
    scan_frames_from(data, start, 1, path, apply)
}

/// [`scan_frames`] where the frame at `start` carries LSN `first_lsn` (`frames` in the result
/// counts the frames read here).
pub(crate) fn scan_frames_from(
    data: &[u8],
    start: usize,
    first_lsn: u64,
    path: &Path,
    mut apply: impl FnMut(&[u8]) -> Result<()>,
) -> Result<FrameScan> {
    let mut pos = start;
    let mut lsn = first_lsn;
    while pos < data.len() {
        match parse_frame(data, pos, Some(lsn)) {
            Ok((payload, next)) => {
                apply(payload)?;
                pos = next;
                lsn += 1;
            }
            Err(why) => {
                if let Some(at) = find_valid_frame(data, pos + 1, lsn) {
                    return Err(corrupt(
                        path,
                        format!(
                            "damaged frame at byte {pos} (LSN {lsn}: {why}) followed by a valid frame at byte {at}"
                        ),
                    ));
                }
                let torn = TornTail { bytes: (data.len() - pos) as u64, reason: why };
                return Ok(FrameScan { frames: lsn - first_lsn, end: pos, torn: Some(torn) });
            }
        }
    }
    Ok(FrameScan { frames: lsn - first_lsn, end: pos, torn: None })
}

/// Where a reader of a WAL that another process appends to has got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WalCursor {
    /// Generation of the log.
    pub gen: u64,
    /// Offset after the last frame read (0 before the header is read).
    pub pos: u64,
    /// LSN of the next frame.
    pub next_lsn: u64,
}

impl WalCursor {
    /// A cursor at the start of WAL generation `gen`.
    pub(crate) fn start(gen: u64) -> Self {
        WalCursor { gen, pos: 0, next_lsn: 1 }
    }
}

/// Read the intact frames after `cursor` of the WAL at `path`, which another process may be
/// appending to, without writing anything: payloads in order and the advanced cursor. A torn
/// tail (perhaps a frame being written right now) ends the read without error; damage
/// followed by an intact frame is [`Error::Corrupt`]; a missing file is an I/O error of kind
/// `NotFound` (the writer moved the log into a segment: read the MANIFEST again).
pub(crate) fn read_frames_after(path: &Path, cursor: WalCursor) -> Result<(Vec<Vec<u8>>, WalCursor)> {
    use std::io::Seek;
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut cur = cursor;
    if cur.pos == 0 {
        let mut data = Vec::new();
        file.read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
        let h = parse_header(&data, path)?;
        if h.gen != cur.gen {
            return Err(corrupt(path, format!("WAL generation {}, expected {}", h.gen, cur.gen)));
        }
        cur.pos = h.len as u64;
        return collect_frames(&data[h.len..], path, cur);
    }
    file.seek(std::io::SeekFrom::Start(cur.pos)).map_err(|e| Error::io(path, e))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(|e| Error::io(path, e))?;
    collect_frames(&data, path, cur)
}

fn collect_frames(data: &[u8], path: &Path, mut cur: WalCursor) -> Result<(Vec<Vec<u8>>, WalCursor)> {
    let mut out = Vec::new();
    let scan = scan_frames_from(data, 0, cur.next_lsn, path, |p| {
        out.push(p.to_vec());
        Ok(())
    })?;
    cur.pos += scan.end as u64;
    cur.next_lsn += scan.frames;
    Ok((out, cur))
}

/// Parse the frame at `pos`; on success the payload and the offset after it.
fn parse_frame(data: &[u8], pos: usize, want_lsn: Option<u64>) -> std::result::Result<(&[u8], usize), &'static str> {
    let h = data.get(pos..pos + FRAME_HEADER).ok_or("frame header cut short")?;
    let len = u32::from_le_bytes(h[0..4].try_into().expect("4 bytes")) as usize;
    let lsn = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
    let hcrc = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    let pcrc = u32::from_le_bytes(h[16..20].try_into().expect("4 bytes"));
    if !crc_ok(&h[..12], hcrc) {
        return Err("frame header checksum mismatch");
    }
    if let Some(w) = want_lsn {
        if lsn != w {
            return Err("unexpected LSN");
        }
    }
    if len > MAX_PAYLOAD {
        return Err("implausible frame length");
    }
    let start = pos + FRAME_HEADER;
    let payload = data.get(start..start + len).ok_or("frame payload cut short")?;
    if !crc_ok(payload, pcrc) {
        return Err("payload checksum mismatch");
    }
    Ok((payload, start + len))
}

/// First offset at or after `from` holding an intact frame with an LSN of at least `min_lsn`.
fn find_valid_frame(data: &[u8], from: usize, min_lsn: u64) -> Option<usize> {
    (from..data.len().saturating_sub(FRAME_HEADER - 1)).find(|&p| {
        let h = &data[p..p + FRAME_HEADER];
        let lsn = u64::from_le_bytes(h[4..12].try_into().expect("8 bytes"));
        lsn >= min_lsn
            && crc_ok(&h[..12], u32::from_le_bytes(h[12..16].try_into().expect("4 bytes")))
            && parse_frame(data, p, None).is_ok()
    })
}

/// One record of a put operation, vectors in schema order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PutRec {
    pub id: u64,
    pub vectors: Vec<Vector>,
    pub metadata: Metadata,
}

/// A logged operation.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum WalOp {
    /// Insert or replace records.
    Put(Vec<PutRec>),
    /// Delete ids.
    Delete(Vec<u64>),
}

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

impl WalOp {
    /// Serialize (vectors as raw little-endian components, metadata as JSON).
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            WalOp::Put(recs) => {
                out.push(OP_PUT);
                out.extend_from_slice(&(recs.len() as u32).to_le_bytes());
                for r in recs {
                    out.extend_from_slice(&r.id.to_le_bytes());
                    for v in &r.vectors {
                        match v {
                            Vector::Dense(x) => out.extend_from_slice(bytemuck::cast_slice(x)),
                            Vector::Binary(b) => out.extend_from_slice(b),
                        }
                    }
                    let meta = serde_json::to_vec(&r.metadata).map_err(|e| Error::Metadata(e.to_string()))?;
                    out.extend_from_slice(&(meta.len() as u32).to_le_bytes());
                    out.extend_from_slice(&meta);
                }
            }
            WalOp::Delete(ids) => {
                out.push(OP_DELETE);
                out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
                for id in ids {
                    out.extend_from_slice(&id.to_le_bytes());
                }
            }
        }
        Ok(out)
    }

    /// Parse a payload written by [`WalOp::encode`] for `schema`; `path` names the file in errors.
    pub(crate) fn decode(payload: &[u8], schema: &CollectionSchema, path: &Path) -> Result<WalOp> {
        let bad = |what: &str| corrupt(path, format!("undecodable WAL record: {what}"));
        let mut r = Reader::new(payload);
        let op = r.u8().ok_or_else(|| bad("empty"))?;
        let n = r.u32().ok_or_else(|| bad("count"))? as usize;
        let op = match op {
            OP_PUT => {
                let mut recs = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    let id = r.u64().ok_or_else(|| bad("id"))?;
                    let mut vectors = Vec::with_capacity(schema.fields.len());
                    for f in &schema.fields {
                        let b = r.bytes(f.bytes_per_vector()).ok_or_else(|| bad("vector"))?;
                        vectors.push(match f.element() {
                            crate::vector::Element::F32 => Vector::Dense(
                                b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4"))).collect(),
                            ),
                            crate::vector::Element::Bit => Vector::Binary(b.to_vec()),
                        });
                    }
                    let ml = r.u32().ok_or_else(|| bad("metadata length"))? as usize;
                    let mb = r.bytes(ml).ok_or_else(|| bad("metadata"))?;
                    let metadata = serde_json::from_slice(mb).map_err(|e| bad(&format!("metadata JSON: {e}")))?;
                    recs.push(PutRec { id, vectors, metadata });
                }
                WalOp::Put(recs)
            }
            OP_DELETE => {
                let mut ids = Vec::with_capacity(n.min(1 << 20));
                for _ in 0..n {
                    ids.push(r.u64().ok_or_else(|| bad("id"))?);
                }
                WalOp::Delete(ids)
            }
            other => return Err(bad(&format!("unknown operation {other}"))),
        };
        if !r.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(op)
    }
}
