//! Immutable, checksummed segment files, memory-mapped for reading.
//!
//! Layout (little-endian; every section starts at a 64-byte aligned offset):
//!
//! ```text
//! "VDBSEG02" + zero padding to 64 bytes
//! section ids        : n_rows × u64
//! section field i    : n_rows × bytes_per_vector(field i)      (one per schema field)
//! section meta index : (n_rows + 1) × u64 offsets into the blob
//! section meta blob  : concatenated JSON documents
//! section tombstones : n_tomb × u64 ids deleted from older segments
//! section info       : JSON {schema, wal_gen, compacted} (see [`SegmentInfo`]; absent in "VDBSEG01" files)
//! footer             : seq u64 | n_rows u64 | n_tomb u64 | n_fields u32 | n_fields × (dim u32, bytes u32)
//!                      | n_sections u32 | n_sections × (offset u64, len u64, crc32 u32)
//! tail               : footer_len u32 | crc32(footer) u32 | "VDBSEGFT"
//! ```
//!
//! Opening a segment verifies the tail, the footer and the CRC of every section, so a
//! damaged segment is reported as [`Error::Corrupt`] naming the file. The info section makes
//! a segment self-describing: without its collection's MANIFEST, the segments that can be
//! verified are enough to rebuild one (see `repair.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::Metadata;
use crate::fsutil::{corrupt, Reader};
use crate::schema::CollectionSchema;
use crate::vector::Element;
use crate::vector::VectorRef;

/// Magic of segments written before the info section existed (still read).
const MAGIC_V1: &[u8; 8] = b"VDBSEG01";
const MAGIC: &[u8; 8] = b"VDBSEG02";
const TAIL_MAGIC: &[u8; 8] = b"VDBSEGFT";
const ALIGN: u64 = 64;

/// File name of segment `seq`.
pub(crate) fn segment_file_name(seq: u64) -> String {
    format!("seg-{seq:08}.seg")
}

/// What a segment says about itself, so that a collection can be rebuilt from its segments
/// when its MANIFEST is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SegmentInfo {
    /// The collection's schema when the segment was written.
    pub schema: CollectionSchema,
    /// Generation of the WAL that holds the writes made after this segment.
    pub wal_gen: u64,
    /// True when the segment holds every live record (a compaction): older segments are obsolete.
    pub compacted: bool,
}

/// Rows to write into a new segment.
pub(crate) trait SegmentSource {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Id of row `i`.
    fn id(&self, i: usize) -> u64;
    /// Vector of field `f` for row `i`.
    fn vector(&self, i: usize, f: usize) -> VectorRef<'_>;
    /// Metadata of row `i`.
    fn metadata(&self, i: usize) -> &Metadata;
}

struct SectionWriter<W: Write> {
    out: W,
    pos: u64,
    sections: Vec<(u64, u64, u32)>,
    cur: Option<(u64, crc32fast::Hasher)>,
}

impl<W: Write> SectionWriter<W> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        if let Some((_, h)) = self.cur.as_mut() {
            h.update(b);
        }
        self.pos += b.len() as u64;
        Ok(())
    }
    fn begin(&mut self) -> std::io::Result<()> {
        let pad = (ALIGN - self.pos % ALIGN) % ALIGN;
        self.write(&vec![0u8; pad as usize])?;
        self.cur = Some((self.pos, crc32fast::Hasher::new()));
        Ok(())
    }
    fn end(&mut self) {
        let (start, h) = self.cur.take().expect("section open");
        self.sections.push((start, self.pos - start, h.finalize()));
    }
}

/// Write a segment durably to `path` (through a temporary file and a rename; the
/// caller syncs the directory). Returns the file size.
pub(crate) fn write_segment(
    path: &Path,
    seq: u64,
    schema: &CollectionSchema,
    src: &dyn SegmentSource,
    tombstones: &[u64],
    info: &SegmentInfo,
) -> Result<u64> {
    let tmp = path.with_extension("seg.tmp");
    let io = |e| Error::io(&tmp, e);
    let file = OpenOptions::new().write(true).create(true).truncate(true).open(&tmp).map_err(io)?;
    let n = src.rows();
    let mut w = SectionWriter { out: BufWriter::with_capacity(1 << 20, file), pos: 0, sections: vec![], cur: None };
    w.write(MAGIC).map_err(io)?;
    // ids
    w.begin().map_err(io)?;
    for i in 0..n {
        w.write(&src.id(i).to_le_bytes()).map_err(io)?;
    }
    w.end();
    // vectors, one section per field
    for f in 0..schema.fields.len() {
        w.begin().map_err(io)?;
        for i in 0..n {
            match src.vector(i, f) {
                VectorRef::Dense(x) => w.write(bytemuck::cast_slice(x)).map_err(io)?,
                VectorRef::Binary(b) => w.write(b).map_err(io)?,
            }
        }
        w.end();
    }
    // metadata: serialize once, then index + blob
    let mut blob = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u64);
    for i in 0..n {
        serde_json::to_writer(&mut blob, src.metadata(i)).map_err(|e| Error::Metadata(e.to_string()))?;
        offsets.push(blob.len() as u64);
    }
    w.begin().map_err(io)?;
    w.write(bytemuck::cast_slice(&offsets)).map_err(io)?;
    w.end();
    w.begin().map_err(io)?;
    w.write(&blob).map_err(io)?;
    w.end();
    w.begin().map_err(io)?;
    w.write(bytemuck::cast_slice(tombstones)).map_err(io)?;
    w.end();
    w.begin().map_err(io)?;
    w.write(&serde_json::to_vec(info).map_err(|e| Error::Metadata(e.to_string()))?).map_err(io)?;
    w.end();
    // footer
    let mut footer = Vec::new();
    footer.extend_from_slice(&seq.to_le_bytes());
    footer.extend_from_slice(&(n as u64).to_le_bytes());
    footer.extend_from_slice(&(tombstones.len() as u64).to_le_bytes());
    footer.extend_from_slice(&(schema.fields.len() as u32).to_le_bytes());
    for f in &schema.fields {
        footer.extend_from_slice(&(f.dim as u32).to_le_bytes());
        footer.extend_from_slice(&(f.bytes_per_vector() as u32).to_le_bytes());
    }
    footer.extend_from_slice(&(w.sections.len() as u32).to_le_bytes());
    for &(off, len, crc) in &w.sections {
        footer.extend_from_slice(&off.to_le_bytes());
        footer.extend_from_slice(&len.to_le_bytes());
        footer.extend_from_slice(&crc.to_le_bytes());
    }
    w.write(&footer).map_err(io)?;
    w.write(&(footer.len() as u32).to_le_bytes()).map_err(io)?;
    w.write(&crc32fast::hash(&footer).to_le_bytes()).map_err(io)?;
    w.write(TAIL_MAGIC).map_err(io)?;
    let size = w.pos;
    let file = w.out.into_inner().map_err(|e| Error::io(&tmp, e.into_error()))?;
    file.sync_all().map_err(io)?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
    Ok(size)
}

/// An open, verified, memory-mapped segment.
pub(crate) struct Segment {
    path: PathBuf,
    map: Mmap,
    n_rows: usize,
    /// (offset, len) per section.
    sections: Vec<(usize, usize)>,
    /// (element, dim, bytes per vector) per field.
    fields: Vec<(Element, usize, usize)>,
}

/// The parsed, checksum-verified footer of a segment file.
struct Footer {
    /// True for "VDBSEG02" files (with an info section).
    has_info: bool,
    seq: u64,
    n_rows: usize,
    n_tomb: usize,
    /// (dim, bytes per vector) per field.
    fields: Vec<(usize, usize)>,
    /// (offset, len, crc32) per section, bounds checked.
    sections: Vec<(usize, usize, u32)>,
}

impl Footer {
    /// Check the magic, the tail and the footer CRC, and parse the footer.
    fn parse(map: &[u8], path: &Path) -> Result<Footer> {
        let bad = |why: String| corrupt(path, why);
        let len = map.len();
        if len < ALIGN as usize + 16 || (&map[..8] != MAGIC && &map[..8] != MAGIC_V1) {
            return Err(bad("not a segment file (bad magic or too short)".into()));
        }
        let has_info = &map[..8] == MAGIC;
        if &map[len - 8..] != TAIL_MAGIC {
            return Err(bad("missing end marker (truncated file?)".into()));
        }
        let flen = u32::from_le_bytes(map[len - 16..len - 12].try_into().expect("4")) as usize;
        let fcrc = u32::from_le_bytes(map[len - 12..len - 8].try_into().expect("4"));
        if flen > len - 16 - 8 {
            return Err(bad(format!("footer length {flen} exceeds the file")));
        }
        let footer = &map[len - 16 - flen..len - 16];
        if crc32fast::hash(footer) != fcrc {
            return Err(bad("footer checksum mismatch".into()));
        }
        let mut r = Reader::new(footer);
        let short = || corrupt(path, "footer cut short");
        let seq = r.u64().ok_or_else(short)?;
        let n_rows = r.u64().ok_or_else(short)? as usize;
        let n_tomb = r.u64().ok_or_else(short)? as usize;
        let n_fields = r.u32().ok_or_else(short)? as usize;
        let mut fields = Vec::with_capacity(n_fields.min(1024));
        for _ in 0..n_fields {
            let dim = r.u32().ok_or_else(short)? as usize;
            let bpv = r.u32().ok_or_else(short)? as usize;
            fields.push((dim, bpv));
        }
        let n_sections = r.u32().ok_or_else(short)? as usize;
        let want_sections = n_fields + if has_info { 5 } else { 4 };
        if n_sections != want_sections {
            return Err(bad(format!("{n_sections} sections, expected {want_sections}")));
        }
        let data_end = len - 16 - flen;
        let mut sections = Vec::with_capacity(n_sections);
        for s in 0..n_sections {
            let off = r.u64().ok_or_else(short)? as usize;
            let slen = r.u64().ok_or_else(short)? as usize;
            let crc = r.u32().ok_or_else(short)?;
            if !off.is_multiple_of(ALIGN as usize) || off.checked_add(slen).is_none_or(|e| e > data_end) {
                return Err(bad(format!("section {s} (offset {off}, length {slen}) lies outside the data")));
            }
            sections.push((off, slen, crc));
        }
        Ok(Footer { has_info, seq, n_rows, n_tomb, fields, sections })
    }

    /// Verify section `s`'s checksum.
    fn check_section(&self, map: &[u8], s: usize, path: &Path) -> Result<()> {
        let (off, len, crc) = self.sections[s];
        if crc32fast::hash(&map[off..off + len]) != crc {
            return Err(corrupt(path, format!("section {s} checksum mismatch")));
        }
        Ok(())
    }

    /// The verified info section, if the file has one.
    fn info(&self, map: &[u8], path: &Path) -> Result<Option<SegmentInfo>> {
        if !self.has_info {
            return Ok(None);
        }
        let s = self.fields.len() + 4;
        self.check_section(map, s, path)?;
        let (off, len, _) = self.sections[s];
        serde_json::from_slice(&map[off..off + len])
            .map(Some)
            .map_err(|e| corrupt(path, format!("info section is not valid JSON: {e}")))
    }
}

/// Sequence number and self-description of the segment at `path`, reading only its footer and
/// info section (both checksum-verified). `None` for segments written before the info section
/// existed.
pub(crate) fn read_segment_info(path: &Path) -> Result<(u64, Option<SegmentInfo>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: segment files are immutable once renamed into place; see `Segment::open`.
    let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    let footer = Footer::parse(&map, path)?;
    let info = footer.info(&map, path)?;
    Ok((footer.seq, info))
}

impl Segment {
    /// Map and fully verify the segment at `path` (which must carry sequence number
    /// `want_seq`) against `schema`.
    pub(crate) fn open(path: &Path, want_seq: u64, schema: &CollectionSchema) -> Result<Segment> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: segment files are immutable once renamed into place, and the
        // database directory is protected by an exclusive lock, so no one
        // modifies the file while it is mapped.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        let bad = |why: String| corrupt(path, why);
        let footer = Footer::parse(&map, path)?;
        if footer.seq != want_seq {
            return Err(bad(format!("holds segment {}, expected {want_seq}", footer.seq)));
        }
        let (n_rows, n_tomb) = (footer.n_rows, footer.n_tomb);
        let n_fields = footer.fields.len();
        if n_fields != schema.fields.len() {
            return Err(bad(format!("has {n_fields} vector fields, schema has {}", schema.fields.len())));
        }
        let mut fields = Vec::with_capacity(n_fields);
        for (f, &(dim, bpv)) in schema.fields.iter().zip(&footer.fields) {
            if dim != f.dim || bpv != f.bytes_per_vector() {
                return Err(bad(format!("field '{}' has dimension {dim}, schema says {}", f.name, f.dim)));
            }
            fields.push((f.element(), dim, bpv));
        }
        for s in 0..footer.sections.len() {
            footer.check_section(&map, s, path)?;
        }
        if footer.has_info {
            footer.info(&map, path)?;
        }
        let sections: Vec<(usize, usize)> = footer.sections.iter().map(|&(o, l, _)| (o, l)).collect();
        let expect = |s: usize, want: usize, what: &str| -> Result<()> {
            if sections[s].1 != want {
                Err(corrupt(path, format!("{what} section has {} bytes, expected {want}", sections[s].1)))
            } else {
                Ok(())
            }
        };
        expect(0, n_rows.saturating_mul(8), "id")?;
        for (i, &(_, _, bpv)) in fields.iter().enumerate() {
            expect(1 + i, n_rows.saturating_mul(bpv), "vector")?;
        }
        expect(n_fields + 1, n_rows.saturating_add(1).saturating_mul(8), "metadata index")?;
        expect(n_fields + 3, n_tomb.saturating_mul(8), "tombstone")?;
        let seg = Segment { path: path.to_path_buf(), map, n_rows, sections, fields };
        let offs = seg.meta_offsets();
        let blob_len = seg.sections[n_fields + 2].1 as u64;
        if offs[0] != 0 || offs.windows(2).any(|w| w[0] > w[1]) || offs[n_rows] != blob_len {
            return Err(bad("metadata index is not monotonic or does not match the blob".into()));
        }
        Ok(seg)
    }

    fn section(&self, s: usize) -> &[u8] {
        let (off, len) = self.sections[s];
        &self.map[off..off + len]
    }
    fn meta_offsets(&self) -> &[u64] {
        bytemuck::cast_slice(self.section(self.fields.len() + 1))
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.n_rows
    }
    /// Row ids.
    pub(crate) fn ids(&self) -> &[u64] {
        bytemuck::cast_slice(self.section(0))
    }
    /// Ids this segment deletes from older segments.
    pub(crate) fn tombstones(&self) -> &[u64] {
        bytemuck::cast_slice(self.section(self.fields.len() + 3))
    }
    /// Vector of field `f` in row `row`.
    pub(crate) fn vector(&self, f: usize, row: usize) -> VectorRef<'_> {
        let (el, _dim, bpv) = self.fields[f];
        let b = &self.section(1 + f)[row * bpv..(row + 1) * bpv];
        match el {
            Element::F32 => VectorRef::Dense(bytemuck::cast_slice(b)),
            Element::Bit => VectorRef::Binary(b),
        }
    }
    /// Parsed metadata of row `row`.
    pub(crate) fn metadata(&self, row: usize) -> Result<Metadata> {
        let offs = self.meta_offsets();
        let blob = self.section(self.fields.len() + 2);
        let b = &blob[offs[row] as usize..offs[row + 1] as usize];
        serde_json::from_slice(b).map_err(|e| corrupt(&self.path, format!("metadata of row {row} is not JSON: {e}")))
    }
}
