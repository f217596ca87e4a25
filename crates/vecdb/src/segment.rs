//! Immutable, checksummed segment files, memory-mapped and read in place.
//!
//! Layout (little-endian; every section starts at a 64-byte aligned offset, the vector
//! columns of "VDBSEG03" files at a 4096-byte (page) aligned one):
//!
//! ```text
//! "VDBSEG03" + zero padding to 64 bytes
//! section ids        : n_rows × u64
//! section field i    : n_rows × bytes_per_vector(field i)      (one per schema field: a row-major column)
//! section meta index : (n_rows + 1) × u64 offsets into the blob
//! section meta blob  : concatenated JSON documents
//! section tombstones : n_tomb × u64 ids deleted from older segments
//! section info       : JSON {schema, wal_gen, compacted, sorted_ids} (see [`SegmentInfo`]; absent in "VDBSEG01" files)
//! section checks     : for every section above, in order, the CRC32 (u32) of each 1 MiB block
//!                      (the last one shorter; none for an empty section) — "VDBSEG03" only
//! footer             : seq u64 | n_rows u64 | n_tomb u64 | n_fields u32 | n_fields × (dim u32, bytes u32)
//!                      | n_sections u32 | n_sections × (offset u64, len u64, crc32 u32)
//! tail               : footer_len u32 | crc32(footer) u32 | "VDBSEGFT"
//! ```
//!
//! Opening a "VDBSEG03" segment costs the same whatever its size: it verifies the tail, the
//! footer, and the CRCs of the tombstones, info and checks sections. The id column, the vector
//! columns and the metadata are searched and read straight from the mapping; their per-block
//! CRCs are verified by [`Segment::verify`] (`vecdb check`, repair), so a damaged block is found
//! without reading the whole file at every open. (The info section says the id column is sorted,
//! so that is not read at open either; a file without the flag has it checked at open.) Segments of the older formats
//! ("VDBSEG01"/"VDBSEG02": no checks section) are still mapped and read in place, but their open
//! verifies every section's CRC (the whole file); the next compaction rewrites them as
//! "VDBSEG03". A damaged segment is reported as [`Error::Corrupt`] naming the file. The info
//! section makes a segment self-describing: without its collection's MANIFEST, the segments that
//! can be verified are enough to rebuild one (see `repair.rs`).

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::filter::Metadata;
use crate::fsutil::{corrupt, crc_ok, Reader};
use crate::schema::CollectionSchema;
use crate::vector::Element;
use crate::vector::{VectorRef, VectorsRef};

/// Magic of segments written before the info section existed (still read).
const MAGIC_V1: &[u8; 8] = b"VDBSEG01";
/// Magic of segments with an info section but no per-block checks (still read).
const MAGIC_V2: &[u8; 8] = b"VDBSEG02";
/// Magic of the current format: page-aligned vector columns, per-block checks.
const MAGIC: &[u8; 8] = b"VDBSEG03";
const TAIL_MAGIC: &[u8; 8] = b"VDBSEGFT";
const ALIGN: u64 = 64;
/// Alignment of the vector columns (one page), so a column maps onto whole pages.
const COLUMN_ALIGN: u64 = 4096;
/// Bytes per checksummed block of a section ("VDBSEG03").
pub(crate) const CHECK_BLOCK: usize = 1 << 20;

/// Format of a segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Format {
    /// "VDBSEG01": no info section.
    V1,
    /// "VDBSEG02": info section, whole-section CRCs only.
    V2,
    /// "VDBSEG03": page-aligned columns, per-block CRCs.
    V3,
}

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
    /// True when the id column is strictly increasing (every segment this version writes): an
    /// open then trusts it instead of reading the whole column to find out (absent in older
    /// files: checked at open).
    #[serde(default)]
    pub sorted_ids: bool,
}

/// Rows to write into a new segment.
pub(crate) trait SegmentSource {
    /// Number of rows.
    fn rows(&self) -> usize;
    /// Id of row `i`.
    fn id(&self, i: usize) -> u64;
    /// Vector of field `f` for row `i`.
    fn vector(&self, i: usize, f: usize) -> VectorRef<'_>;
    /// Append the JSON of row `i`'s metadata to `out`.
    fn metadata_json(&self, i: usize, out: &mut Vec<u8>) -> Result<()>;
}

/// The section being written: its start, whole CRC, and the CRC of its current block.
struct OpenSection {
    start: u64,
    whole: crc32fast::Hasher,
    block: crc32fast::Hasher,
    block_len: usize,
}

struct SectionWriter<W: Write> {
    out: W,
    pos: u64,
    sections: Vec<(u64, u64, u32)>,
    /// Per-block CRCs of every section closed so far, in section order.
    blocks: Vec<u32>,
    cur: Option<OpenSection>,
}

impl<W: Write> SectionWriter<W> {
    fn write(&mut self, mut b: &[u8]) -> std::io::Result<()> {
        self.out.write_all(b)?;
        self.pos += b.len() as u64;
        if let Some(c) = self.cur.as_mut() {
            c.whole.update(b);
            while !b.is_empty() {
                let take = (CHECK_BLOCK - c.block_len).min(b.len());
                c.block.update(&b[..take]);
                c.block_len += take;
                b = &b[take..];
                if c.block_len == CHECK_BLOCK {
                    self.blocks.push(std::mem::replace(&mut c.block, crc32fast::Hasher::new()).finalize());
                    c.block_len = 0;
                }
            }
        }
        Ok(())
    }
    fn begin_aligned(&mut self, align: u64) -> std::io::Result<()> {
        let pad = (align - self.pos % align) % align;
        self.write(&vec![0u8; pad as usize])?;
        let h = crc32fast::Hasher::new;
        self.cur = Some(OpenSection { start: self.pos, whole: h(), block: h(), block_len: 0 });
        Ok(())
    }
    fn begin(&mut self) -> std::io::Result<()> {
        self.begin_aligned(ALIGN)
    }
    fn end(&mut self) {
        let c = self.cur.take().expect("section open");
        if c.block_len > 0 {
            self.blocks.push(c.block.finalize());
        }
        self.sections.push((c.start, self.pos - c.start, c.whole.finalize()));
    }
}

/// Number of [`CHECK_BLOCK`] blocks of a section of `len` bytes.
fn blocks_of(len: usize) -> usize {
    len.div_ceil(CHECK_BLOCK)
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
    write_segment_as(Format::V3, path, seq, schema, src, tombstones, info)
}

/// [`write_segment`] in a given format (the older ones for tests that older files still open).
fn write_segment_as(
    format: Format,
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
    let mut w = SectionWriter {
        out: BufWriter::with_capacity(1 << 20, file),
        pos: 0,
        sections: vec![],
        blocks: vec![],
        cur: None,
    };
    w.write(match format {
        Format::V1 => MAGIC_V1,
        Format::V2 => MAGIC_V2,
        Format::V3 => MAGIC,
    })
    .map_err(io)?;
    // ids
    w.begin().map_err(io)?;
    for i in 0..n {
        w.write(&src.id(i).to_le_bytes()).map_err(io)?;
    }
    w.end();
    // vectors, one section per field
    for f in 0..schema.fields.len() {
        w.begin_aligned(if format == Format::V3 { COLUMN_ALIGN } else { ALIGN }).map_err(io)?;
        for i in 0..n {
            match src.vector(i, f) {
                VectorRef::Dense(x) => w.write(bytemuck::cast_slice(x)).map_err(io)?,
                VectorRef::Binary(b) => w.write(b).map_err(io)?,
            }
        }
        w.end();
    }
    // metadata: serialize once (or copy a segment row's JSON as it is), then index + blob
    let mut blob = Vec::new();
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0u64);
    for i in 0..n {
        src.metadata_json(i, &mut blob)?;
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
    if format >= Format::V2 {
        w.begin().map_err(io)?;
        w.write(&serde_json::to_vec(info).map_err(|e| Error::Metadata(e.to_string()))?).map_err(io)?;
        w.end();
    }
    if format == Format::V3 {
        // per-block checks of every section above
        let blocks = std::mem::take(&mut w.blocks);
        w.begin().map_err(io)?;
        w.write(bytemuck::cast_slice(&blocks)).map_err(io)?;
        w.end();
    }
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

/// An open, memory-mapped segment (see the module doc for what opening verifies).
pub(crate) struct Segment {
    path: PathBuf,
    map: Mmap,
    format: Format,
    n_rows: usize,
    /// (offset, len, crc32) per section.
    sections: Vec<(usize, usize, u32)>,
    /// (element, dim, bytes per vector) per field.
    fields: Vec<(Element, usize, usize)>,
    /// The writer recorded a strictly increasing id column ([`SegmentInfo::sorted_ids`]).
    sorted_ids: bool,
}

/// The parsed, checksum-verified footer of a segment file.
struct Footer {
    format: Format,
    seq: u64,
    n_rows: usize,
    n_tomb: usize,
    /// (dim, bytes per vector) per field.
    fields: Vec<(usize, usize)>,
    /// (offset, len, crc32) per section, bounds checked.
    sections: Vec<(usize, usize, u32)>,
}

/// Verify section `s`'s whole-section checksum.
fn check_section(sections: &[(usize, usize, u32)], map: &[u8], s: usize, path: &Path) -> Result<()> {
    let (off, len, crc) = sections[s];
    if !crc_ok(&map[off..off + len], crc) {
        return Err(corrupt(path, format!("section {s} checksum mismatch")));
    }
    Ok(())
}

impl Footer {
    /// Check the magic, the tail and the footer CRC, and parse the footer.
    fn parse(map: &[u8], path: &Path) -> Result<Footer> {
        let bad = |why: String| corrupt(path, why);
        let len = map.len();
        let format = match map.get(..8) {
            _ if len < ALIGN as usize + 16 => None,
            Some(m) if m == MAGIC => Some(Format::V3),
            Some(m) if m == MAGIC_V2 => Some(Format::V2),
            Some(m) if m == MAGIC_V1 => Some(Format::V1),
            _ => None,
        };
        let Some(format) = format else {
            return Err(bad("not a segment file (bad magic or too short)".into()));
        };
        if &map[len - 8..] != TAIL_MAGIC {
            return Err(bad("missing end marker (truncated file?)".into()));
        }
        let flen = u32::from_le_bytes(map[len - 16..len - 12].try_into().expect("4")) as usize;
        let fcrc = u32::from_le_bytes(map[len - 12..len - 8].try_into().expect("4"));
        if flen > len - 16 - 8 {
            return Err(bad(format!("footer length {flen} exceeds the file")));
        }
        let footer = &map[len - 16 - flen..len - 16];
        if !crc_ok(footer, fcrc) {
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
        let want_sections = n_fields
            + match format {
                Format::V1 => 4,
                Format::V2 => 5,
                Format::V3 => 6,
            };
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
        Ok(Footer { format, seq, n_rows, n_tomb, fields, sections })
    }

    /// Index of the info section (V2, V3).
    fn info_section(&self) -> usize {
        self.fields.len() + 4
    }

    /// The verified info section, if the file has one.
    fn info(&self, map: &[u8], path: &Path) -> Result<Option<SegmentInfo>> {
        if self.format == Format::V1 {
            return Ok(None);
        }
        let s = self.info_section();
        check_section(&self.sections, map, s, path)?;
        let (off, len, _) = self.sections[s];
        let info: SegmentInfo = serde_json::from_slice(&map[off..off + len])
            .map_err(|e| corrupt(path, format!("info section is not valid JSON: {e}")))?;
        info.schema.check_stored(path)?;
        Ok(Some(info))
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
    /// Map the segment at `path` (which must carry sequence number `want_seq`) and check it
    /// against `schema`. A "VDBSEG03" file is verified but for its vector columns and metadata
    /// (see [`Segment::verify`]); an older one is verified whole.
    pub(crate) fn open(path: &Path, want_seq: u64, schema: &CollectionSchema) -> Result<Segment> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: segment files are immutable once renamed into place (they are written to a
        // temporary file, fsynced, then renamed), and a writer never modifies or truncates one:
        // it only removes files a newer MANIFEST no longer lists, which stay readable while
        // mapped. A reader therefore never maps a file that changes under it.
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
        // The id column is not read at open (it is verified block by block with the vectors by
        // `verify`): an open reads nothing proportional to the number of rows.
        let eager: Vec<usize> = match footer.format {
            Format::V3 => vec![n_fields + 3, n_fields + 4, n_fields + 5],
            Format::V1 | Format::V2 => (0..footer.sections.len()).collect(),
        };
        for s in eager {
            check_section(&footer.sections, &map, s, path)?;
        }
        let sorted_ids = footer.info(&map, path)?.is_some_and(|i| i.sorted_ids);
        let sections = footer.sections.clone();
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
        if footer.format == Format::V3 {
            let want: usize = sections[..n_fields + 5].iter().map(|&(_, l, _)| blocks_of(l)).sum();
            expect(n_fields + 5, want * 4, "checks")?;
        }
        let seg =
            Segment { path: path.to_path_buf(), map, format: footer.format, n_rows, sections, fields, sorted_ids };
        if seg.format != Format::V3 {
            seg.check_meta_index()?;
        }
        Ok(seg)
    }

    /// Map the segment and verify all of it: [`Segment::open`], then [`Segment::verify`].
    pub(crate) fn open_verified(path: &Path, want_seq: u64, schema: &CollectionSchema) -> Result<Segment> {
        let seg = Segment::open(path, want_seq, schema)?;
        seg.verify()?;
        Ok(seg)
    }

    /// Verify what [`Segment::open`] left unread: every block of the vector columns and of the
    /// metadata against its CRC, and the metadata index. Reads the whole file.
    pub(crate) fn verify(&self) -> Result<()> {
        if self.format != Format::V3 {
            return Ok(()); // verified whole by `open`
        }
        let n_fields = self.fields.len();
        let checks: &[u32] = bytemuck::try_cast_slice(self.section(n_fields + 5))
            .map_err(|_| corrupt(&self.path, "checks section is not aligned"))?;
        let mut next = 0;
        for s in 0..n_fields + 5 {
            let data = self.section(s);
            for (b, block) in data.chunks(CHECK_BLOCK).enumerate() {
                if !crc_ok(block, checks[next]) {
                    return Err(corrupt(
                        &self.path,
                        format!("section {s} block {b} (bytes {}..) checksum mismatch", b * CHECK_BLOCK),
                    ));
                }
                next += 1;
            }
        }
        self.check_meta_index()
    }

    /// The metadata index must run from 0 to the blob's length without going back.
    fn check_meta_index(&self) -> Result<()> {
        let offs = self.meta_offsets()?;
        let blob_len = self.section(self.fields.len() + 2).len() as u64;
        if offs[0] != 0 || offs.windows(2).any(|w| w[0] > w[1]) || offs[self.n_rows] != blob_len {
            return Err(corrupt(&self.path, "metadata index is not monotonic or does not match the blob"));
        }
        Ok(())
    }

    fn section(&self, s: usize) -> &[u8] {
        let (off, len, _) = self.sections[s];
        &self.map[off..off + len]
    }
    fn meta_offsets(&self) -> Result<&[u64]> {
        bytemuck::try_cast_slice(self.section(self.fields.len() + 1))
            .map_err(|_| corrupt(&self.path, "metadata index is not aligned"))
    }

    /// Number of rows.
    pub(crate) fn rows(&self) -> usize {
        self.n_rows
    }
    /// Row ids.
    pub(crate) fn ids(&self) -> &[u64] {
        bytemuck::cast_slice(self.section(0))
    }
    /// True when the writer recorded a strictly increasing id column.
    pub(crate) fn ids_sorted(&self) -> bool {
        self.sorted_ids
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
    /// Field `f`'s whole column, read in place: `rows × dim` floats or `rows × ⌈dim/8⌉` bytes.
    pub(crate) fn column(&self, f: usize) -> VectorsRef<'_> {
        let b = self.section(1 + f);
        match self.fields[f].0 {
            Element::F32 => VectorsRef::Dense(bytemuck::cast_slice(b)),
            Element::Bit => VectorsRef::Binary(b),
        }
    }
    /// Bytes of field `f`'s column in the file.
    pub(crate) fn column_bytes(&self, f: usize) -> usize {
        self.sections[1 + f].1
    }
    /// Bytes of field `f`'s column now resident in memory (page cache), from `mincore`.
    pub(crate) fn column_resident_bytes(&self, f: usize) -> usize {
        let (off, len, _) = self.sections[1 + f];
        crate::resident::resident_bytes(&self.map[off..off + len])
    }
    /// The JSON of row `row`'s metadata, as stored.
    pub(crate) fn metadata_json(&self, row: usize) -> Result<&[u8]> {
        let offs = self.meta_offsets()?;
        let blob = self.section(self.fields.len() + 2);
        let (a, b) = (offs[row] as usize, offs[row + 1] as usize);
        if a > b || b > blob.len() {
            return Err(corrupt(&self.path, format!("metadata index of row {row} points outside the blob")));
        }
        Ok(&blob[a..b])
    }
    /// Parsed metadata of row `row`.
    pub(crate) fn metadata(&self, row: usize) -> Result<Metadata> {
        serde_json::from_slice(self.metadata_json(row)?)
            .map_err(|e| corrupt(&self.path, format!("metadata of row {row} is not JSON: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metric::Metric;
    use crate::schema::VectorField;
    use crate::vector::Vector;

    struct Rows(Vec<(u64, Vec<Vector>, Metadata)>);

    impl SegmentSource for Rows {
        fn rows(&self) -> usize {
            self.0.len()
        }
        fn id(&self, i: usize) -> u64 {
            self.0[i].0
        }
        fn vector(&self, i: usize, f: usize) -> VectorRef<'_> {
            self.0[i].1[f].as_ref()
        }
        fn metadata_json(&self, i: usize, out: &mut Vec<u8>) -> Result<()> {
            serde_json::to_writer(out, &self.0[i].2).map_err(|e| Error::Metadata(e.to_string()))
        }
    }

    fn schema() -> CollectionSchema {
        CollectionSchema {
            fields: vec![
                VectorField::new("d", 300, Metric::L2, "Flat"),
                VectorField::new("b", 24, Metric::Hamming, "Flat"),
            ],
        }
    }

    /// Rows big enough for the dense column to span several check blocks.
    fn rows(n: u64) -> Rows {
        Rows(
            (0..n)
                .map(|id| {
                    let d: Vec<f32> = (0..300).map(|j| (id * 300 + j) as f32 * 0.25).collect();
                    let b = vec![id as u8, (id >> 8) as u8, 7];
                    let mut m = Metadata::new();
                    m.insert("id".into(), serde_json::json!(id));
                    (id * 3, vec![Vector::Dense(d), Vector::Binary(b)], m)
                })
                .collect(),
        )
    }

    fn write(dir: &Path, format: Format, src: &Rows) -> PathBuf {
        let path = dir.join(segment_file_name(5));
        let info = SegmentInfo { schema: schema(), wal_gen: 2, compacted: false, sorted_ids: false };
        write_segment_as(format, &path, 5, &schema(), src, &[1, 4], &info).unwrap();
        path
    }

    #[test]
    fn every_format_opens_and_reads_the_same_rows_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let src = rows(2000); // 2.4 MB of dense vectors: three check blocks
        for format in [Format::V1, Format::V2, Format::V3] {
            let path = write(dir.path(), format, &src);
            let seg = Segment::open_verified(&path, 5, &schema()).unwrap();
            assert_eq!(seg.format, format);
            assert_eq!(seg.rows(), 2000);
            assert_eq!(seg.tombstones(), &[1, 4]);
            for (row, (id, vs, meta)) in src.0.iter().enumerate().step_by(37) {
                assert_eq!(seg.ids()[row], *id);
                assert_eq!(seg.vector(0, row), vs[0].as_ref());
                assert_eq!(seg.vector(1, row), vs[1].as_ref());
                assert_eq!(&seg.metadata(row).unwrap(), meta);
            }
            let VectorsRef::Dense(col) = seg.column(0) else { panic!("dense column") };
            assert_eq!(col.len(), 2000 * 300);
            if format == Format::V3 {
                let (off, _, _) = seg.sections[1];
                assert_eq!(off % COLUMN_ALIGN as usize, 0, "the column starts on a page");
            }
        }
    }

    #[test]
    fn a_damaged_vector_block_is_found_by_verify_not_by_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), Format::V3, &rows(2000));
        let (col_off, col_len) = {
            let seg = Segment::open(&path, 5, &schema()).unwrap();
            (seg.sections[1].0, seg.sections[1].1)
        };
        let mut bytes = fs::read(&path).unwrap();
        let at = col_off + col_len - 10; // the last (short) block of the dense column
        bytes[at] ^= 1;
        fs::write(&path, &bytes).unwrap();
        let seg = Segment::open(&path, 5, &schema()).expect("open reads no vector block");
        match seg.verify() {
            Err(Error::Corrupt { reason, .. }) => assert!(reason.contains("section 1 block 2"), "{reason}"),
            other => panic!("verify: {other:?}"),
        }
        assert!(Segment::open_verified(&path, 5, &schema()).is_err());
        // an old-format file is verified whole at open
        let path = write(dir.path(), Format::V2, &rows(50));
        let mut bytes = fs::read(&path).unwrap();
        bytes[64 + 50 * 8 + 100] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(Segment::open(&path, 5, &schema()), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn resident_bytes_are_at_most_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), Format::V3, &rows(2000));
        let seg = Segment::open(&path, 5, &schema()).unwrap();
        let VectorsRef::Dense(col) = seg.column(0) else { panic!() };
        let sum: f32 = col.iter().sum(); // touch every page
        assert!(sum > 0.0);
        let r = seg.column_resident_bytes(0);
        assert!(r <= seg.column_bytes(0));
        #[cfg(target_os = "linux")]
        assert_eq!(r, seg.column_bytes(0), "a column just read is resident");
    }
}
