//! Saving and loading an [`HnswIndex`]: `index.json` plus flat little-endian files, each
//! checksummed by its footer ([`crate::index::file`]). [`load`] validates every link before
//! use; [`open`] maps the arrays and checks their footers (with [`Verify::Checksums`] their
//! checksums too), not the links.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicU32;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::column::{Column, Plain};
use super::graph::{Graph, NONE};
use super::sq8::Sq8Codec;
use super::{Bits, HnswIndex, InPlaceRows, Rows, MAX_LEVEL, MAX_M};
use crate::error::{Error, Result};
use crate::fsutil::{corrupt, create_dir};
use crate::index::file::{self, read_meta, write_meta, META_FILE};
use crate::metric::Metric;
use crate::vector::Element;

/// 4: a graph that reads its rows in place (`in_place`) saves no `vectors.bin`, only the rows
///    the storage engine does not keep (`inline_slots.bin`, `inline.bin`).
/// 3: `HNSW<M>,SQ8,Refine` keeps its full vectors in `exact.bin` (`refine` in `index.json`).
/// 2: the files carry their own checksums (version 1 kept them in `index.json`); still read.
const VERSION: u32 = 4;
/// The oldest version [`load`] reads.
const OLDEST: u32 = 2;

/// The `index.json` document.
#[derive(Serialize, Deserialize)]
struct Meta {
    kind: String,
    version: u32,
    dim: usize,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    ef_search: usize,
    nodes: usize,
    upper_words: usize,
    entry: Option<(u32, usize)>,
    deleted: usize,
    rng: u64,
    /// `HNSW<M>,SQ8`: `vectors.bin` holds 8-bit codes (absent in older files: full vectors).
    #[serde(default)]
    quantized: bool,
    /// The trained codec of a quantized index.
    #[serde(default)]
    sq8: Option<Sq8Codec>,
    /// `HNSW<M>,SQ8,Refine`: `exact.bin` holds the full vectors (absent before version 3).
    #[serde(default)]
    refine: bool,
    /// The rows live in the storage engine: the loaded index waits for them
    /// ([`HnswIndex::resolve_rows`]); only removed nodes' and private rows are saved here.
    #[serde(default)]
    in_place: bool,
}

fn u32s(v: impl Iterator<Item = u32>) -> Vec<u8> {
    v.flat_map(u32::to_le_bytes).collect()
}

/// Write the index files into `dir`.
pub(super) fn save(idx: &HnswIndex, dir: &Path) -> Result<()> {
    create_dir(dir)?;
    let g = &idx.graph;
    let load = |a: &AtomicU32| a.load(std::sync::atomic::Ordering::Relaxed);
    let write = |name: &str, bytes: &[u8]| file::write(&dir.join(name), bytes);
    match &idx.rows {
        Rows::InPlace(r) => {
            // The engine keeps the live rows; save those it may not (removed nodes, copies).
            let slots: Vec<u32> =
                (0..g.len() as u32).filter(|&s| r.addr(s) != 0 && (idx.deleted.get(s) || r.is_owned(s))).collect();
            let mut rows = Vec::with_capacity(slots.len() * idx.dim);
            for &s in &slots {
                rows.extend_from_slice(r.row(s));
            }
            write("inline_slots.bin", bytemuck::cast_slice(&slots))?;
            write("inline.bin", bytemuck::cast_slice(&rows))?;
        }
        rows => write("vectors.bin", rows.bytes())?,
    }
    if let Some(exact) = &idx.exact {
        write("exact.bin", exact.bytes())?;
    }
    write("ids.bin", bytemuck::cast_slice(&idx.ids[..]))?;
    write("levels.bin", &g.levels[..])?;
    write("links0.bin", &u32s(g.links0.iter().map(load)))?;
    write("upper_off.bin", bytemuck::cast_slice(&g.upper_off[..]))?;
    write("upper.bin", &u32s(g.upper.iter().map(load)))?;
    write("deleted.bin", bytemuck::cast_slice(&idx.deleted.0))?;
    let meta = Meta {
        kind: "hnsw".into(),
        version: VERSION,
        dim: idx.dim,
        metric: idx.metric,
        m: idx.m,
        ef_construction: idx.ef_construction,
        ef_search: idx.ef_search,
        nodes: g.len(),
        upper_words: g.upper.len(),
        entry: g.entry(),
        deleted: idx.n_deleted,
        rng: idx.rng,
        quantized: idx.quantized,
        sq8: idx.sq8.clone(),
        refine: idx.exact.is_some(),
        in_place: matches!(idx.rows, Rows::InPlace(_)),
    };
    // The description goes last: a directory without it is not a complete index.
    write_meta(dir, &meta)
}

/// Read and check one data file, which must hold `want` values.
fn read<T: bytemuck::Pod>(dir: &Path, name: &str, want: usize) -> Result<Vec<T>> {
    let p = dir.join(name);
    let values = file::read_pod(&p)?;
    check_len(&p, std::mem::size_of_val(values.as_slice()), want.saturating_mul(std::mem::size_of::<T>()))?;
    Ok(values)
}

fn check_len(p: &Path, len: usize, want_len: usize) -> Result<()> {
    if len != want_len {
        return Err(corrupt(p, format!("{len} bytes, expected {want_len}")));
    }
    Ok(())
}

/// Map a rows file of `n` rows of `row_bytes` (memory-mapped: the body starts at offset 0,
/// so mapped floats are aligned); `floats`: the rows are `f32`; `checksum`: verify the body.
fn map_rows(vp: &Path, n: usize, row_bytes: usize, floats: bool, checksum: bool) -> Result<Rows> {
    let f = fs::File::open(vp).map_err(|e| Error::io(vp, e))?;
    // SAFETY: the file is private to this index directory and replaced by rename, never
    // rewritten in place.
    let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io(vp, e))?;
    let len = file::body(vp, &map, checksum)?.len();
    check_len(vp, len, n.saturating_mul(row_bytes))?;
    if n == 0 {
        return Ok(if floats { Rows::F32(Vec::new()) } else { Rows::Bits(Vec::new()) });
    }
    if floats && bytemuck::try_cast_slice::<u8, f32>(&map[..len]).is_err() {
        return Err(corrupt(vp, "mapping is not 4-byte aligned"));
    }
    Ok(Rows::Mapped { map: std::sync::Arc::new(map), len })
}

/// How much of a saved index [`open`] reads before it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verify {
    /// Every file's checksum: one sequential read of the whole index, proportional to its
    /// size (0.13 s of a 0.26 s `db info` at 10 M nodes of `HNSW16`, from the page cache). For a writer, which
    /// saves the graph again: damage must not get a fresh checksum.
    Checksums,
    /// Footers, lengths and parameters only: constant time (a reader's open). Damage inside
    /// a file's body is then `db check`'s to find ([`load`]); a damaged graph never makes a
    /// search read out of bounds, but its answers are unspecified.
    Footers,
}

/// How much of a saved index [`read_index`] checks.
#[derive(Clone, Copy, PartialEq)]
enum Checks {
    /// Every checksum, every link, every id ([`load`]).
    Full,
    /// Lengths and parameters, and the checksums as [`Verify`] says ([`open`]): the arrays
    /// are mapped, the links are not walked, the id map waits for its first use.
    Open(Verify),
}

impl Checks {
    /// Whether file bodies are checksummed.
    fn checksums(self) -> bool {
        !matches!(self, Checks::Open(Verify::Footers))
    }
}

/// Load an index saved by [`save`], checking everything: every file's checksum, every link
/// (a real node that has the link's level), every id live once.
pub(super) fn load(dir: &Path) -> Result<HnswIndex> {
    read_index(dir, Checks::Full)
}

/// Open an index saved by [`save`] for searching at once: the graph arrays and the ids are
/// mapped copy-on-write ([`Column`]) once their footers (and, as `verify` says, checksums)
/// are right, the links are not walked (a file that holds a bad link never makes a search
/// read out of bounds: such links are skipped), the in-degrees and the id map wait for their
/// first use. For snapshots the engine wrote itself; `db check` verifies them with [`load`].
pub(super) fn open(dir: &Path, verify: Verify) -> Result<HnswIndex> {
    read_index(dir, Checks::Open(verify))
}

/// An array file of `n` values, its footer (and as `checks` says its checksum) verified:
/// mapped ([`Checks::Open`]), or copied into memory ([`Checks::Full`]: a loaded index holds
/// its arrays).
fn column<T: Plain>(dir: &Path, name: &str, n: usize, checks: Checks) -> Result<Column<T>> {
    let mut c = Column::map(&dir.join(name), n, checks.checksums())?;
    if checks == Checks::Full {
        c.vec_mut();
    }
    Ok(c)
}

fn read_index(dir: &Path, checks: Checks) -> Result<HnswIndex> {
    let mp = dir.join(META_FILE);
    let meta: Meta = read_meta(dir)?;
    if meta.kind != "hnsw" {
        return Err(corrupt(&mp, format!("kind is '{}', not 'hnsw'", meta.kind)));
    }
    if !(OLDEST..=VERSION).contains(&meta.version) {
        return Err(corrupt(&mp, format!("unsupported version {}", meta.version)));
    }
    if !(2..=MAX_M).contains(&meta.m) || meta.dim == 0 || meta.nodes >= NONE as usize {
        return Err(corrupt(&mp, format!("bad parameters m={} dim={} nodes={}", meta.m, meta.dim, meta.nodes)));
    }
    let n = meta.nodes;
    let (m, m0) = (meta.m, 2 * meta.m);
    let element = meta.metric.element();
    if meta.quantized && element != Element::F32 {
        return Err(corrupt(&mp, format!("SQ8 codes with metric {}", meta.metric)));
    }
    match (&meta.sq8, meta.quantized) {
        (Some(c), true) => c.validate(meta.dim, meta.metric).map_err(|r| corrupt(&mp, r))?,
        (None, true) if meta.nodes > 0 => return Err(corrupt(&mp, "SQ8 codes without a codec")),
        (Some(_), false) => return Err(corrupt(&mp, "an SQ8 codec on an index of full vectors")),
        _ => {}
    }
    if meta.refine && !meta.quantized {
        return Err(corrupt(&mp, "full vectors for re-ranking beside full vectors"));
    }
    let floats = element == Element::F32 && !meta.quantized;
    let row_bytes = if meta.quantized { meta.dim } else { element.bytes_per_vector(meta.dim) };

    if meta.in_place && !floats {
        return Err(corrupt(&mp, "rows read in place on an index that is not a float graph"));
    }
    let rows = if meta.in_place {
        let slots: Vec<u32> = file::read_pod(&dir.join("inline_slots.bin"))?;
        let data: Vec<f32> = read(dir, "inline.bin", slots.len().saturating_mul(meta.dim))?;
        let mut seen = Bits::default();
        seen.resize(n);
        for &s in &slots {
            if s as usize >= n || seen.get(s) {
                return Err(corrupt(&dir.join("inline_slots.bin"), format!("slot {s} out of range or repeated")));
            }
            seen.set(s);
        }
        let inline: Vec<(u32, &[f32])> = slots.iter().zip(data.chunks_exact(meta.dim)).map(|(&s, r)| (s, r)).collect();
        Rows::InPlace(InPlaceRows::with_unresolved(meta.dim, n, &inline))
    } else {
        map_rows(&dir.join("vectors.bin"), n, row_bytes, floats, checks.checksums())?
    };
    let exact = match meta.refine {
        true => Some(map_rows(&dir.join("exact.bin"), n, 4 * meta.dim, true, checks.checksums())?),
        false => None,
    };

    let ids: Column<u64> = column(dir, "ids.bin", n, checks)?;
    let levels: Column<u8> = column(dir, "levels.bin", n, checks)?;
    let links0: Column<AtomicU32> = column(dir, "links0.bin", n * (m0 + 1), checks)?;
    let upper_off: Column<u32> = column(dir, "upper_off.bin", n, checks)?;
    let upper: Column<AtomicU32> = column(dir, "upper.bin", meta.upper_words, checks)?;
    let deleted = Bits(read(dir, "deleted.bin", n.div_ceil(64))?);

    if checks == Checks::Full {
        check_links(dir, m, n, &levels, &links0, &upper_off, &upper)?;
    }
    match meta.entry {
        None if n > 0 => return Err(corrupt(&mp, "no entry point in a non-empty graph")),
        Some((e, l)) if e as usize >= n || levels[e as usize] as usize != l || l > MAX_LEVEL => {
            return Err(corrupt(&mp, format!("entry point {e} at level {l} is not a node of that level")));
        }
        _ => {}
    }
    let counted: usize = deleted.0.iter().map(|w| w.count_ones() as usize).sum();
    if counted != meta.deleted || deleted.0.last().is_some_and(|&w| !n.is_multiple_of(64) && w >> (n % 64) != 0) {
        return Err(corrupt(&dir.join("deleted.bin"), "removed count does not match index.json"));
    }
    let slot_of = OnceLock::new();
    if checks == Checks::Full {
        let mut map = HashMap::with_capacity(n);
        for (slot, &id) in ids.iter().enumerate() {
            if !deleted.get(slot as u32) && map.insert(id, slot as u32).is_some() {
                return Err(corrupt(&dir.join("ids.bin"), format!("id {id} is live twice")));
            }
        }
        let _ = slot_of.set(map);
    }

    let graph = Graph::from_parts(m, links0, levels, upper_off, upper, meta.entry);
    Ok(HnswIndex {
        dim: meta.dim,
        metric: meta.metric,
        m,
        ef_construction: meta.ef_construction.max(1),
        ef_search: meta.ef_search.max(1),
        rows,
        quantized: meta.quantized,
        sq8: meta.sq8,
        exact,
        graph,
        ids,
        slot_of,
        deleted,
        n_deleted: meta.deleted,
        rng: meta.rng,
        unwalked: 0,
        reorder: true,
        build_codes: Default::default(),
    })
}

/// Structure checks: every block in bounds, every link a real node that has the link's level
/// (a search follows a level-l link to that node's level-l block), every level possible.
fn check_links(
    dir: &Path,
    m: usize,
    n: usize,
    levels: &[u8],
    links0: &[AtomicU32],
    upper_off: &[u32],
    upper: &[AtomicU32],
) -> Result<()> {
    let m0 = 2 * m;
    let gp = dir.join("links0.bin");
    let load = |a: &AtomicU32| a.load(std::sync::atomic::Ordering::Relaxed);
    // (`v`, `level` name the block in an error; nothing is formatted while the blocks are fine.)
    let check_block = |block: &[AtomicU32], cap: usize, v: usize, level: usize| -> Result<()> {
        let c = load(&block[0]) as usize;
        if c > cap {
            return Err(corrupt(&gp, format!("node {v} level {level}: {c} links, at most {cap} allowed")));
        }
        if let Some(bad) =
            block[1..=c].iter().map(load).find(|&x| x as usize >= n || (levels[x as usize] as usize) < level)
        {
            return Err(corrupt(
                &gp,
                format!("node {v} level {level}: link to node {bad} of {n}, which is not on that level"),
            ));
        }
        Ok(())
    };
    for v in 0..n {
        let level = levels[v] as usize;
        if level > MAX_LEVEL {
            return Err(corrupt(&dir.join("levels.bin"), format!("node {v} has level {level}")));
        }
        check_block(&links0[v * (m0 + 1)..(v + 1) * (m0 + 1)], m0, v, 0)?;
        let off = upper_off[v];
        if level == 0 {
            continue;
        }
        let end = off as usize + level * (m + 1);
        if off == NONE || end > upper.len() {
            return Err(corrupt(&dir.join("upper_off.bin"), format!("node {v}: upper block out of bounds")));
        }
        for l in 1..=level {
            let s = off as usize + (l - 1) * (m + 1);
            check_block(&upper[s..s + m + 1], m, v, l)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{SearchParams, VectorIndex};
    use crate::vector::{VectorRef, VectorsRef};

    /// A graph that reads its rows in place saves no vectors; loaded, it refuses searches until
    /// its rows are attached (an error, never a read of a missing row), and damaged inline
    /// rows are reported as corrupt.
    #[test]
    fn an_in_place_graph_loads_unresolved_and_bad_inline_slots_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (500usize, 4usize);
        let data: std::sync::Arc<Vec<f32>> = std::sync::Arc::new((0..n * dim).map(|i| (i * 13 % 97) as f32).collect());
        let mut ix = HnswIndex::new(dim, Metric::L2, 8, 50);
        assert!(ix.read_rows_in_place());
        let addrs: Vec<usize> = (0..n).map(|i| data.as_ptr() as usize + i * 4 * dim).collect();
        // SAFETY: the rows are `dim` floats of `data`, which the index holds.
        unsafe { ix.add_in_place(&(0..n as u64).collect::<Vec<_>>(), &addrs, data.clone()).unwrap() };
        ix.remove(&[3]).unwrap();
        ix.save(dir.path()).unwrap();
        assert!(!dir.path().join("vectors.bin").exists());
        let mut loaded = load(dir.path()).unwrap();
        let q = VectorRef::Dense(&data[8..12]);
        assert!(loaded.search(q, 3, &SearchParams::default(), None).is_err(), "searched without its rows");
        let want = loaded.unresolved_rows();
        assert_eq!(want.len(), n - 1, "every live node waits for its row; the removed one was saved");
        let rows: Vec<(u32, usize)> = want.iter().map(|&(slot, id)| (slot, addrs[id as usize])).collect();
        // SAFETY: as above.
        unsafe { loaded.resolve_rows(&rows, vec![data.clone()]).unwrap() };
        assert_eq!(
            loaded.search(q, 3, &SearchParams::default(), None).unwrap(),
            ix.search(q, 3, &SearchParams::default(), None).unwrap()
        );
        // A repeated or out-of-range inline slot is corrupt.
        file::write(&dir.path().join("inline_slots.bin"), bytemuck::cast_slice(&[n as u32 + 5])).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Corrupt { .. })));
    }

    /// `open` maps the graph instead of reading it and answers as `load` does; the id map is
    /// built on first use, and the first insert or removal copies the mapped arrays into memory
    /// (the files stay as saved).
    #[test]
    fn open_maps_the_graph_and_answers_as_load_does() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (2_000usize, 8usize);
        let data: Vec<f32> = (0..n * dim).map(|i| ((i * 7919) % 1013) as f32).collect();
        let mut ix = HnswIndex::new(dim, Metric::L2, 8, 64);
        ix.add(&(0..n as u64).collect::<Vec<_>>(), VectorsRef::Dense(&data)).unwrap();
        ix.remove(&[5, 77]).unwrap();
        ix.save(dir.path()).unwrap();
        let loaded = load(dir.path()).unwrap();
        let mut opened = open(dir.path(), Verify::Footers).unwrap();
        assert!(opened.graph.links0.is_mapped() && opened.ids.is_mapped() && opened.graph.upper.is_mapped());
        assert!(opened.slot_of.get().is_none(), "the id map waits for its first use");
        assert!(opened.memory_bytes() < loaded.memory_bytes() / 4, "mapped arrays are not heap");
        let p = SearchParams::default();
        for q in 0..50 {
            let q = VectorRef::Dense(&data[q * 37 % n * dim..][..dim]);
            assert_eq!(opened.search(q, 10, &p, None).unwrap(), loaded.search(q, 10, &p, None).unwrap());
        }
        assert!(opened.contains(9) && !opened.contains(5));
        // Changes copy the mapped arrays; the answers follow the changes.
        opened.remove(&[9]).unwrap();
        let extra: Vec<f32> = (0..dim).map(|i| 5000.0 + i as f32).collect();
        opened.add(&[n as u64 + 1], VectorsRef::Dense(&extra)).unwrap();
        assert!(!opened.graph.links0.is_mapped());
        let top = opened.search(VectorRef::Dense(&extra), 1, &p, None).unwrap();
        assert_eq!((top[0].id, top[0].distance), (n as u64 + 1, 0.0));
        let q9 = VectorRef::Dense(&data[9 * dim..10 * dim]);
        assert!(opened.search(q9, 10, &p, None).unwrap().iter().all(|h| h.id != 9));
        // The saved files did not change under the mapping.
        let again = load(dir.path()).unwrap();
        assert!(again.contains(9) && !again.contains(n as u64 + 1));
    }

    /// A damaged link — to a node that does not exist, or on an upper level to a node that is
    /// not on it — is corrupt for `load`; `open` does not read the links, and its searches
    /// (and an insert) skip the bad link instead of reading out of bounds.
    #[test]
    fn open_skips_damaged_links_that_load_rejects() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (400usize, 2usize);
        let data: Vec<f32> = (0..n * dim).map(|i| (i * 7 % 31) as f32).collect();
        let mut ix = HnswIndex::new(dim, Metric::L2, 4, 50);
        ix.add(&(0..n as u64).collect::<Vec<_>>(), VectorsRef::Dense(&data)).unwrap();
        ix.save(dir.path()).unwrap();
        point_an_upper_link_below_its_level(dir.path(), &ix);
        let mut links0: Vec<u32> = file::read_pod(&dir.path().join("links0.bin")).unwrap();
        for v in 0..n {
            links0[v * 9 + 1] = (n + v) as u32; // every node's first level-0 link
        }
        file::write_pod(&dir.path().join("links0.bin"), &links0).unwrap();
        assert!(matches!(load(dir.path()), Err(Error::Corrupt { .. })));
        let mut opened = open(dir.path(), Verify::Footers).unwrap();
        let p = SearchParams::default();
        for q in 0..n {
            let hits = opened.search(VectorRef::Dense(&data[q * dim..(q + 1) * dim]), 5, &p, None).unwrap();
            assert!(hits.iter().all(|h| (h.id as usize) < n));
        }
        opened.add(&[n as u64], VectorsRef::Dense(&[3.0, 4.0])).unwrap();
        opened.remove(&[0, 1, 2]).unwrap();
    }

    /// Fuzzing (index_snapshot): an upper-level link to a node that is not on that level passed
    /// the load checks; the search then followed it and indexed that node's (absent) upper
    /// block out of bounds. Now corrupt.
    #[test]
    fn an_upper_link_to_a_node_below_that_level_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let (n, dim) = (300usize, 2usize);
        let data: Vec<f32> = (0..n * dim).map(|i| (i * 7 % 31) as f32).collect();
        let mut ix = HnswIndex::new(dim, Metric::L2, 4, 50);
        ix.add(&(0..n as u64).collect::<Vec<_>>(), VectorsRef::Dense(&data)).unwrap();
        ix.save(dir.path()).unwrap();
        let loaded = load(dir.path()).unwrap();
        assert_eq!(loaded.search(VectorRef::Dense(&[1.0, 2.0]), 3, &SearchParams::default(), None).unwrap().len(), 3);
        point_an_upper_link_below_its_level(dir.path(), &ix);
        assert!(matches!(load(dir.path()), Err(Error::Corrupt { .. })));
    }

    /// Damage the index `ix` saved in `dir`: its entry point's level-1 list becomes one link, to
    /// a node that has no level 1.
    fn point_an_upper_link_below_its_level(dir: &Path, ix: &HnswIndex) {
        let (ep, top) = ix.graph.entry().unwrap();
        assert!(top >= 1, "a few hundred nodes with M=4 have upper levels");
        let levels: Vec<u8> = file::read_pod(&dir.join("levels.bin")).unwrap();
        let low = levels.iter().position(|&l| l == 0).unwrap() as u32;
        let offs: Vec<u32> = file::read_pod(&dir.join("upper_off.bin")).unwrap();
        let mut upper: Vec<u32> = file::read_pod(&dir.join("upper.bin")).unwrap();
        let s = offs[ep as usize] as usize; // the entry point's level-1 block
        upper[s] = 1;
        upper[s + 1] = low;
        file::write_pod(&dir.join("upper.bin"), &upper).unwrap();
    }
}
