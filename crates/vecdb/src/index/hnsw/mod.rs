//! Hierarchical Navigable Small World graph index (Malkov & Yashunin, 2016).
//!
//! * Build: `add` with many ids links them in parallel (rayon), one lock per node; later
//!   `add` calls insert into the existing graph without a rebuild. An insert sets the new
//!   node's lists on every level before any link to it is added, so no concurrent insert
//!   reaches a half-linked node. After each batch, nodes left with no in-link are linked back
//!   in; once the nodes added since the last check reach 1/16 of the graph, a walk from the
//!   entry point also relinks any node (or island of nodes) it cannot reach. Large batches
//!   into a float graph search and prune on temporary 8-bit codes of the rows and select
//!   each node's own neighbours on exact distances ([`build_codes`]).
//! * Search: greedy descent through the upper levels, then a beam search of width `ef`
//!   (`SearchParams::ef`, default [`HnswIndex::ef_search`]) on level 0, with the candidate
//!   pool kept as one sorted array, per-thread visited marks reused across queries and the
//!   next rows prefetched before their distances are computed.
//! * Metrics: `l2` (squared internally), `cosine` and `dot` (negated inner product
//!   internally), `hamming` on packed bits; results are converted to user units.
//! * `HNSW<M>,SQ8` ([`HnswIndex::with_sq8`]) stores 8-bit codes instead of the vectors
//!   (a quarter of the bytes) and walks the graph with integer distances ([`sq8`]); the
//!   codec is fitted by [`VectorIndex::train`] or on the first batch added.
//! * `HNSW<M>,SQ8,Refine` ([`HnswIndex::with_sq8_refine`]) also keeps the full vectors, by
//!   slot: the beam of width `ef` walks the 8-bit codes, and only its `rerank` closest
//!   candidates (`SearchParams::rerank`, default [`default_rerank`]) are re-ranked with
//!   exact float distances ([`refine`]), not the whole beam.
//! * Remove: tombstones (never returned, still used to navigate); once a quarter of the
//!   nodes are tombstones the graph is repaired — every neighbour list that points at a
//!   removed node is rebuilt from its live neighbours and their neighbours — and the
//!   removed nodes are dropped ([`HnswIndex::consolidate`]).
//! * Filters: a sample of the nodes estimates the filter's selectivity; a very selective
//!   filter is answered exactly by scanning the accepted rows, otherwise the graph walk keeps
//!   expanding until `ef` accepted nodes are found, and falls back to the scan when it
//!   finds fewer than `k`.
//! * Persistence: `index.json` plus flat little-endian files, each checksummed by its footer
//!   ([`crate::index::file`]); vectors are memory-mapped on load (and checked) and copied
//!   into memory on the first insert.

mod build_codes;
mod column;
mod graph;
mod in_place;
mod maintain;
mod persist;
mod refine;
mod reorder;
mod scratch;
mod space;
mod sq8;

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::index::topk::TopK;
use crate::index::{IdFilter, Neighbor, SearchParams, VectorIndex};
use crate::metric::Metric;
use crate::vector::Element;
use crate::vector::{Vector, VectorRef, VectorsRef};

use build_codes::{BuildCodes, BuildCodesCell};
use column::Column;
use graph::{Graph, Locks, Scored};
use in_place::InPlaceRows;
use scratch::with_scratch;
use space::Space;
use sq8::Sq8Codec;

pub use in_place::KeepAlive;
pub use persist::Verify;
pub use refine::default_rerank;

/// Default `ef` for searches that do not set [`SearchParams::ef`].
pub const DEFAULT_EF_SEARCH: usize = 64;
/// `ef_construction` of factory specs without an `efC<n>` stage.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
/// Largest accepted `M`.
pub const MAX_M: usize = 256;
/// Highest level a node may get.
const MAX_LEVEL: usize = 31;
/// Batches at least this large are linked in parallel.
const PARALLEL_MIN: usize = 64;

/// Run `$body` with `$s` bound to the index's distance space (monomorphized per metric).
macro_rules! with_space {
    ($idx:expr, $s:ident => $body:expr) => {{
        let idx = &$idx;
        match (&idx.sq8, idx.metric) {
            (Some(codec), $crate::metric::Metric::L2) => {
                let $s = $crate::index::hnsw::space::Sq8L2Space { data: idx.rows.bytes(), dim: idx.dim, codec };
                $body
            }
            (Some(codec), _) if codec.signed => {
                let $s = $crate::index::hnsw::space::Sq8IpSpace { data: idx.rows.bytes(), dim: idx.dim, codec };
                $body
            }
            (Some(codec), _) => {
                let $s = $crate::index::hnsw::space::Sq8UIpSpace { data: idx.rows.bytes(), dim: idx.dim, codec };
                $body
            }
            (None, $crate::metric::Metric::L2) => match &idx.rows {
                $crate::index::hnsw::Rows::InPlace(rows) => {
                    let $s = $crate::index::hnsw::space::InPlaceL2Space { rows, dim: idx.dim };
                    $body
                }
                _ => {
                    let $s = $crate::index::hnsw::space::L2Space { data: idx.rows.f32s(), dim: idx.dim };
                    $body
                }
            },
            (None, $crate::metric::Metric::Cosine | $crate::metric::Metric::Dot) => match &idx.rows {
                $crate::index::hnsw::Rows::InPlace(rows) => {
                    let $s = $crate::index::hnsw::space::InPlaceIpSpace { rows, dim: idx.dim };
                    $body
                }
                _ => {
                    let $s = $crate::index::hnsw::space::IpSpace { data: idx.rows.f32s(), dim: idx.dim };
                    $body
                }
            },
            (None, $crate::metric::Metric::Hamming) => {
                let $s = $crate::index::hnsw::space::BitSpace { data: idx.rows.bytes(), bytes: idx.row_bytes() };
                $body
            }
        }
    }};
}
pub(crate) use with_space;

/// Stored rows: in memory, or memory-mapped from a saved index until the first change
/// (shared by the copies [`VectorIndex::clone_index`] makes).
#[derive(Clone)]
enum Rows {
    F32(Vec<f32>),
    /// Packed bits (hamming) or 8-bit codes (`SQ8`).
    Bits(Vec<u8>),
    /// A mapped index file; the rows are its first `len` bytes (the body before the footer).
    Mapped {
        map: std::sync::Arc<memmap2::Mmap>,
        len: usize,
    },
    /// Float rows read in place from a storage engine's mapped columns ([`in_place`]).
    InPlace(InPlaceRows),
}

impl Rows {
    fn f32s(&self) -> &[f32] {
        match self {
            Rows::F32(v) => v,
            Rows::Bits(_) | Rows::InPlace(_) => &[],
            Rows::Mapped { map, len } => bytemuck::cast_slice(&map[..*len]),
        }
    }
    fn bytes(&self) -> &[u8] {
        match self {
            Rows::F32(v) => bytemuck::cast_slice(v),
            Rows::Bits(v) => v,
            Rows::Mapped { map, len } => &map[..*len],
            Rows::InPlace(_) => &[],
        }
    }
    /// Bytes of memory the rows take (an in-place index: its address table and copies).
    fn byte_len(&self) -> usize {
        match self {
            Rows::InPlace(r) => r.heap_bytes(),
            _ => self.bytes().len(),
        }
    }
    /// Copy mapped rows into memory so they can grow (`floats`: the rows are `f32`).
    fn make_owned(&mut self, floats: bool) {
        if let Rows::Mapped { .. } = self {
            *self = if floats { Rows::F32(self.f32s().to_vec()) } else { Rows::Bits(self.bytes().to_vec()) };
        }
    }
}

/// A set of node slots, one bit each.
#[derive(Default, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    #[inline(always)]
    fn get(&self, i: u32) -> bool {
        self.0.get(i as usize / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
    fn set(&mut self, i: u32) {
        let w = i as usize / 64;
        if self.0.len() <= w {
            self.0.resize(w + 1, 0);
        }
        self.0[w] |= 1 << (i % 64);
    }
    fn resize(&mut self, n: usize) {
        self.0.resize(n.div_ceil(64), 0);
    }
}

/// HNSW graph index over dense (`l2`, `cosine`, `dot`) or binary (`hamming`) vectors.
#[derive(Clone)]
pub struct HnswIndex {
    dim: usize,
    metric: Metric,
    m: usize,
    ef_construction: usize,
    ef_search: usize,
    rows: Rows,
    /// `HNSW<M>,SQ8`: rows are 8-bit codes.
    quantized: bool,
    /// The codec of a quantized index once trained (`None` before, and for full vectors).
    sq8: Option<Sq8Codec>,
    /// `HNSW<M>,SQ8,Refine`: the full `f32` vectors by slot, for the exact re-rank of the
    /// final candidates (`None` for every other kind).
    exact: Option<Rows>,
    graph: Graph,
    /// Caller id of each slot.
    ids: Column<u64>,
    /// Live slot of each caller id, built on first use ([`HnswIndex::slot_map`]): a loaded
    /// index that only answers searches never needs it.
    slot_of: OnceLock<HashMap<u64, u32>>,
    deleted: Bits,
    n_deleted: usize,
    /// Level generator state (splitmix64).
    rng: u64,
    /// Nodes added since the last walk that checked every node is reachable.
    unwalked: usize,
    /// Renumber the nodes for locality after a bulk build into an empty index
    /// ([`HnswIndex::reorder_for_locality`]; not saved: a loaded index keeps its order).
    reorder: bool,
    /// 8-bit codes of a float graph's rows that large batches are linked through
    /// ([`build_codes`]; in memory only).
    build_codes: BuildCodesCell,
}

impl HnswIndex {
    /// An empty index for `dim`-component vectors: `m` links per node (`2·m` on level 0;
    /// clamped to `2..=`[`MAX_M`]) and a candidate list of `ef_construction` while linking.
    pub fn new(dim: usize, metric: Metric, m: usize, ef_construction: usize) -> HnswIndex {
        let m = m.clamp(2, MAX_M);
        HnswIndex {
            dim,
            metric,
            m,
            ef_construction: ef_construction.max(m),
            ef_search: DEFAULT_EF_SEARCH,
            rows: match metric.element() {
                Element::F32 => Rows::F32(Vec::new()),
                Element::Bit => Rows::Bits(Vec::new()),
            },
            quantized: false,
            sq8: None,
            exact: None,
            graph: Graph::new(m),
            ids: Column::default(),
            slot_of: OnceLock::from(HashMap::new()),
            deleted: Bits::default(),
            n_deleted: 0,
            rng: 0x9E37_79B9_7F4A_7C15,
            unwalked: 0,
            reorder: true,
            build_codes: BuildCodesCell::default(),
        }
    }

    /// Like [`HnswIndex::new`], but the graph keeps 8-bit codes instead of the vectors and
    /// compares them with integer kernels (`HNSW<M>,SQ8`). Dense metrics only. The codec is
    /// fitted by [`VectorIndex::train`], or on the first batch given to [`VectorIndex::add`]
    /// (which should then be representative of the data: values outside the fitted range are
    /// clamped). [`VectorIndex::reconstruct`] returns the decoded, approximate vector.
    pub fn with_sq8(dim: usize, metric: Metric, m: usize, ef_construction: usize) -> Result<HnswIndex> {
        if metric.element() != Element::F32 {
            return Err(Error::InvalidIndexSpec {
                spec: format!("HNSW{m},SQ8"),
                reason: format!("SQ8 codes need a dense metric (l2, cosine, dot), not {metric}"),
            });
        }
        let mut idx = HnswIndex::new(dim, metric, m, ef_construction);
        idx.quantized = true;
        idx.rows = Rows::Bits(Vec::new());
        Ok(idx)
    }

    /// Like [`HnswIndex::with_sq8`], but the full vectors are kept too (`HNSW<M>,SQ8,Refine`):
    /// the graph is walked on the codes, then the `rerank` closest candidates of the beam
    /// (`SearchParams::rerank`, default [`default_rerank`]`(k)`) are re-ranked with exact
    /// distances. Reported distances are exact; [`VectorIndex::reconstruct`] returns the
    /// stored vector.
    pub fn with_sq8_refine(dim: usize, metric: Metric, m: usize, ef_construction: usize) -> Result<HnswIndex> {
        let mut idx = HnswIndex::with_sq8(dim, metric, m, ef_construction)?;
        idx.exact = Some(Rows::F32(Vec::new()));
        Ok(idx)
    }

    /// Read an index written by [`VectorIndex::save`] into `dir` (vectors are memory-mapped).
    /// Every file's checksum, every link and every id are checked first.
    pub fn load(dir: &Path) -> Result<HnswIndex> {
        persist::load(dir)
    }

    /// Open an index written by [`VectorIndex::save`]: the graph arrays and ids are mapped
    /// copy-on-write; footers, lengths and parameters are checked, and the files' checksums
    /// when `verify` is [`Verify::Checksums`] (with [`Verify::Footers`] the open takes time
    /// independent of the index's size). Use [`HnswIndex::load`] to verify a file of unknown
    /// origin. A damaged file never makes a search read out of bounds, but its answers are
    /// unspecified.
    pub fn open(dir: &Path, verify: Verify) -> Result<HnswIndex> {
        persist::open(dir, verify)
    }

    /// Links per node (`M`).
    pub fn m(&self) -> usize {
        self.m
    }

    /// Candidate-list size used while linking.
    pub fn ef_construction(&self) -> usize {
        self.ef_construction
    }

    /// Default `ef` of searches that do not set one.
    pub fn ef_search(&self) -> usize {
        self.ef_search
    }

    /// Change the default search `ef` (saved with the index).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = ef.max(1);
    }

    /// Whether a bulk build into an empty index (at least 4,096 vectors in one
    /// [`VectorIndex::add`]) renumbers the nodes for locality afterwards (default on; off
    /// to measure what the renumbering buys).
    pub fn set_reorder_after_build(&mut self, on: bool) {
        self.reorder = on;
    }

    /// Read float rows in place from now on: [`HnswIndex::add_in_place`] links rows a storage
    /// engine keeps (memory-mapped columns) without copying them, and [`VectorIndex::add`]
    /// copies its rows into chunks the index owns. Only an empty float graph (not `SQ8`, not
    /// `hamming`) switches; returns whether this index reads its rows in place.
    pub fn read_rows_in_place(&mut self) -> bool {
        if self.graph.len() == 0 && self.stores_floats() && self.exact.is_none() {
            self.rows = Rows::InPlace(InPlaceRows::new(self.dim));
        }
        self.reads_in_place()
    }

    /// Turn a float graph that holds its own rows (one loaded from an older snapshot) into one
    /// that reads them in place: the rows of removed nodes are kept as copies, the live ones
    /// wait for [`HnswIndex::resolve_rows`]. Returns whether this index now reads in place.
    pub fn convert_to_in_place(&mut self) -> bool {
        if self.reads_in_place() || !self.stores_floats() || self.exact.is_some() {
            return self.reads_in_place();
        }
        let (dim, src) = (self.dim, self.rows.f32s());
        let inline: Vec<(u32, &[f32])> = (0..self.graph.len() as u32)
            .filter(|&s| self.deleted.get(s))
            .map(|s| (s, &src[s as usize * dim..(s as usize + 1) * dim]))
            .collect();
        let rows = InPlaceRows::with_unresolved(dim, self.graph.len(), &inline);
        self.rows = Rows::InPlace(rows);
        true
    }

    /// True when the rows are read in place ([`HnswIndex::read_rows_in_place`]).
    pub fn reads_in_place(&self) -> bool {
        matches!(self.rows, Rows::InPlace(_))
    }

    /// Link rows the caller stores: `rows[i]` is the address of id `ids[i]`'s `dim` floats.
    /// An id already present is replaced, as with [`VectorIndex::add`].
    ///
    /// # Safety
    /// The index must read in place ([`HnswIndex::read_rows_in_place`]); every address
    /// points at `dim` aligned, finite `f32`s that stay valid and unchanged while `keep` is
    /// held (the index holds it until a [`HnswIndex::relocate_rows`] drops it).
    pub unsafe fn add_in_place(&mut self, ids: &[u64], rows: &[usize], keep: KeepAlive) -> Result<()> {
        if ids.len() != rows.len() {
            return Err(Error::InvalidArgument(format!("{} ids but {} rows", ids.len(), rows.len())));
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.check_capacity(ids.len())?;
        let start = self.graph.len();
        match &mut self.rows {
            Rows::InPlace(r) => r.push_in_place(rows, keep),
            _ => return Err(Error::InvalidArgument("this HNSW index does not read rows in place".into())),
        }
        self.link_new(start, ids)
    }

    /// The slots of a loaded in-place index that wait for their rows, with their ids (live
    /// nodes: the snapshot saved the rows of removed ones).
    pub fn unresolved_rows(&self) -> Vec<(u32, u64)> {
        match &self.rows {
            Rows::InPlace(r) if r.unresolved > 0 => {
                (0..r.len() as u32).filter(|&s| r.addr(s) == 0).map(|s| (s, self.ids[s as usize])).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Supply the rows [`HnswIndex::unresolved_rows`] listed (`(slot, address)`); an error when
    /// some are still missing.
    ///
    /// # Safety
    /// As [`HnswIndex::add_in_place`], for every address and the handles in `keep`.
    pub unsafe fn resolve_rows(&mut self, rows: &[(u32, usize)], keep: Vec<KeepAlive>) -> Result<()> {
        let Rows::InPlace(r) = &mut self.rows else {
            return Ok(());
        };
        match r.resolve(rows, keep) {
            0 => Ok(()),
            left => Err(Error::InvalidArgument(format!("{left} rows of the HNSW index were not found in storage"))),
        }
    }

    /// Supply the rows of the slots [`HnswIndex::unresolved_rows`] would list, one pass over
    /// the slots without listing them: `at(slot)` returns a row's address, or `None` to leave
    /// the slot waiting. Returns how many still wait.
    ///
    /// # Safety
    /// As [`HnswIndex::add_in_place`], for every address `at` returns and the handles in `keep`.
    pub unsafe fn resolve_rows_by(&mut self, at: impl FnMut(u32) -> Option<usize>, keep: Vec<KeepAlive>) -> usize {
        match &mut self.rows {
            Rows::InPlace(r) if r.unresolved > 0 => r.resolve_by(at, keep),
            _ => 0,
        }
    }

    /// The address of each slot's row of an in-place graph (0: not attached yet), `None`
    /// for a graph that holds its rows. A storage engine saves where they are
    /// ([`HnswIndex::resolve_rows_by`] on the next open).
    pub fn row_addresses(&self) -> Option<std::borrow::Cow<'_, [usize]>> {
        match &self.rows {
            Rows::InPlace(r) => Some(r.addresses()),
            _ => None,
        }
    }

    /// Number of slots of an in-place graph (live and removed nodes), `None` for a graph that
    /// holds its rows.
    pub fn in_place_slots(&self) -> Option<usize> {
        match &self.rows {
            Rows::InPlace(r) => Some(r.len()),
            _ => None,
        }
    }

    /// Let a loaded in-place graph find each row when first read from the row hints saved in
    /// index file `path` (`segment << 32 | row` per slot, [`crate::index::file::write`]'s
    /// format; only its footer is checked), where `columns[segment]` is the address of that
    /// segment column's first row and its number of rows: opening reads nothing proportional
    /// to the graph. A hint that names no row reads a row of zeros (a damaged file: `db
    /// check` verifies it). Returns false, changing nothing, when the graph does not wait for
    /// its rows or the file does not hold one hint per slot.
    ///
    /// # Safety
    /// As [`HnswIndex::add_in_place`], for every row of every column in `columns` and the
    /// handles in `keep`.
    pub(crate) unsafe fn attach_row_hints(
        &mut self,
        path: &std::path::Path,
        columns: Vec<(usize, usize)>,
        keep: Vec<KeepAlive>,
    ) -> bool {
        let Rows::InPlace(r) = &mut self.rows else { return false };
        match column::Column::<u64>::map(path, r.len(), false) {
            Ok(hints) => r.attach_hints(in_place::RowHints { hints, columns }, keep),
            Err(_) => false,
        }
    }

    /// Re-point every row after the storage moved: `to(id, removed, address)` returns the
    /// row's address now (the same one when it did not move) or `None` to keep a private copy
    /// (a removed node whose row went away, a record not in mapped storage). The index then
    /// holds exactly the handles in `keep` (and its copies).
    ///
    /// # Safety
    /// As [`HnswIndex::add_in_place`], for every address `to` returns and the handles in
    /// `keep`; the current rows must still be valid during the call.
    pub unsafe fn relocate_rows(
        &mut self,
        mut to: impl FnMut(u64, bool, usize) -> Option<usize>,
        keep: Vec<KeepAlive>,
    ) {
        let (ids, deleted) = (&self.ids, &self.deleted);
        if let Rows::InPlace(r) = &mut self.rows {
            r.relocate(|slot, p| to(ids[slot as usize], deleted.get(slot), p), keep);
        }
    }

    /// An error while a loaded in-place index waits for its rows.
    fn check_resolved(&self) -> Result<()> {
        match &self.rows {
            Rows::InPlace(r) if r.unresolved > 0 => Err(Error::InvalidArgument(format!(
                "the HNSW index reads its rows from storage and {} of them are not attached",
                r.unresolved
            ))),
            _ => Ok(()),
        }
    }

    /// The live slot of each id, built from the ids and tombstones on first use (a later
    /// slot wins over an earlier one with the same id, which only a damaged file holds).
    fn slot_map(&self) -> &HashMap<u64, u32> {
        self.slot_of.get_or_init(|| {
            let mut map = HashMap::with_capacity(self.ids.len() - self.n_deleted.min(self.ids.len()));
            for (slot, &id) in self.ids.iter().enumerate() {
                if !self.deleted.get(slot as u32) {
                    map.insert(id, slot as u32);
                }
            }
            map
        })
    }

    /// [`HnswIndex::slot_map`], to change.
    fn slot_map_mut(&mut self) -> &mut HashMap<u64, u32> {
        self.slot_map();
        self.slot_of.get_mut().expect("built just above")
    }

    /// Removed nodes still held as tombstones.
    pub fn deleted_count(&self) -> usize {
        self.n_deleted
    }

    fn row_bytes(&self) -> usize {
        if self.quantized {
            self.dim
        } else {
            self.metric.element().bytes_per_vector(self.dim)
        }
    }

    /// The rows are full `f32` vectors (not bits, not codes).
    fn stores_floats(&self) -> bool {
        !self.quantized && self.metric.element() == Element::F32
    }

    #[inline(always)]
    fn is_deleted(&self, slot: u32) -> bool {
        self.n_deleted > 0 && self.deleted.get(slot)
    }

    /// Draw a level from the geometric distribution with mean `1/ln(M)`.
    fn random_level(&mut self) -> usize {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let u = ((z >> 11) as f64 + 1.0) / (1u64 << 53) as f64; // (0, 1]
        let ml = 1.0 / (self.m as f64).ln();
        ((-u.ln() * ml) as usize).min(MAX_LEVEL)
    }

    /// Convert an internal distance into user units.
    #[inline]
    fn to_user(&self, d: f32) -> f32 {
        match self.metric {
            Metric::L2 => d.max(0.0).sqrt(),
            Metric::Cosine => 1.0 + d,
            Metric::Dot | Metric::Hamming => d,
        }
    }

    fn check_query(&self, q: VectorRef<'_>) -> Result<()> {
        q.validate(self.metric.element(), self.dim)
    }

    /// Mark `slot` removed; returns false when it already was.
    fn tombstone(&mut self, slot: u32) -> bool {
        if self.deleted.get(slot) {
            return false;
        }
        self.deleted.set(slot);
        self.n_deleted += 1;
        true
    }

    /// Repair the graph when a quarter of its nodes are tombstones.
    fn maybe_consolidate(&mut self) {
        if self.n_deleted > 0 && self.n_deleted * 4 >= self.graph.len() && self.check_resolved().is_ok() {
            self.consolidate();
        }
    }

    /// Up to `k` nearest accepted nodes (internal distances), closest first.
    fn knn<S: Space>(&self, s: &S, q: &S::Row, k: usize, ef: usize, filter: Option<IdFilter<'_>>) -> Vec<Scored> {
        if k == 0 || self.is_empty() {
            return Vec::new();
        }
        let ef = ef.max(k);
        if filter.is_none() && self.n_deleted == 0 {
            return with_scratch(|sc| {
                let Some(cur) = self.graph.descend(s, q, 0) else {
                    return Vec::new();
                };
                self.graph.search_layer(s, q, &[cur], ef, 0, sc);
                sc.pool.items().iter().take(k).map(|c| Scored(c.dist, c.id)).collect()
            });
        }
        let accept = |slot: u32| !self.is_deleted(slot) && filter.is_none_or(|f| f(self.ids[slot as usize]));
        let n = self.graph.len();
        if filter.is_some() {
            // Estimate how many nodes the filter accepts from an evenly spread sample.
            let sample = n.min(256);
            let hits = (0..sample).filter(|&i| accept((i * n / sample) as u32)).count();
            let estimate = hits * n / sample.max(1);
            if estimate <= ef * self.graph.m0 / 2 {
                return self.brute(s, q, k, &accept);
            }
        }
        let found = with_scratch(|sc| {
            let Some(cur) = self.graph.descend(s, q, 0) else {
                return Vec::new();
            };
            self.graph.search_layer_accept(s, q, &[cur], ef, &accept, sc)
        });
        if found.len() >= k {
            found.into_iter().take(k).collect()
        } else {
            self.brute(s, q, k, &accept)
        }
    }

    /// Exact scan over the accepted nodes (ties by slot, like the graph search).
    fn brute<S: Space>(&self, s: &S, q: &S::Row, k: usize, accept: &dyn Fn(u32) -> bool) -> Vec<Scored> {
        let mut top: TopK<u32> = TopK::new(k);
        for slot in 0..self.graph.len() as u32 {
            if accept(slot) {
                top.push(s.dist(q, s.row(slot)), slot);
            }
        }
        top.into_sorted_pairs().into_iter().map(|(d, slot)| Scored(d, slot)).collect()
    }

    fn to_neighbors(&self, found: Vec<Scored>) -> Vec<Neighbor> {
        found.into_iter().map(|c| Neighbor { id: self.ids[c.1 as usize], distance: self.to_user(c.0) }).collect()
    }

    /// Append rows (already validated) and link them into the graph.
    fn add_validated(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let start = self.graph.len();
        self.check_capacity(ids.len())?;
        self.rows.make_owned(self.stores_floats());
        if let (Some(exact), VectorsRef::Dense(d)) = (&mut self.exact, vectors) {
            exact.make_owned(true);
            if let Rows::F32(v) = exact {
                v.extend_from_slice(&d[..ids.len() * self.dim]);
            }
        }
        if let (true, None, VectorsRef::Dense(d)) = (self.quantized, &self.sq8, vectors) {
            self.sq8 = Some(Sq8Codec::train(&d[..ids.len() * self.dim], self.dim, self.metric)?);
        }
        match (&mut self.rows, vectors, &self.sq8) {
            (Rows::F32(v), VectorsRef::Dense(d), None) => v.extend_from_slice(&d[..ids.len() * self.dim]),
            (Rows::InPlace(r), VectorsRef::Dense(d), None) => r.push_owned(&d[..ids.len() * self.dim]),
            (Rows::Bits(v), VectorsRef::Dense(d), Some(codec)) => {
                codec.encode_rows(&d[..ids.len() * self.dim], self.dim, v)
            }
            (Rows::Bits(v), VectorsRef::Binary(d), None) => {
                let b = Element::Bit.bytes_per_vector(self.dim);
                v.extend_from_slice(&d[..ids.len() * b])
            }
            _ => return Err(Error::InvalidVector(format!("expected {:?} vectors", self.metric.element()))),
        }
        self.link_new(start, ids)
    }

    /// Check that `more` nodes fit the graph's 32-bit slot numbers.
    fn check_capacity(&self, more: usize) -> Result<()> {
        let start = self.graph.len();
        if start + more >= graph::NONE as usize {
            return Err(Error::InvalidArgument(format!(
                "HNSW index holds at most {} nodes; {} + {} given",
                graph::NONE - 1,
                start,
                more
            )));
        }
        Ok(())
    }

    /// Link the stored nodes `slots` into the graph, searching for candidates in `t`
    /// (`s` itself, or the rows' build codes with `rescore`: [`Graph::insert`]).
    fn link_range<S: Space, T: Space>(
        &self,
        s: &S,
        t: &T,
        rescore: bool,
        slots: std::ops::Range<usize>,
        locks: &Locks,
        is_deleted: &(dyn Fn(u32) -> bool + Sync),
    ) {
        let efc = self.ef_construction;
        let link =
            |slot: usize| with_scratch(|sc| self.graph.insert(s, t, rescore, slot as u32, efc, locks, is_deleted, sc));
        let (mut first, end) = (slots.start, slots.end);
        // Link a first few nodes one by one so the parallel phase starts from a real graph.
        while first < end && (first < PARALLEL_MIN || end - first < PARALLEL_MIN) {
            link(first);
            first += 1;
        }
        (first..end).into_par_iter().for_each(link);
    }

    /// The float row of `slot` (a float index: full vectors, mapped or read in place).
    fn float_row(&self, slot: u32) -> &[f32] {
        match &self.rows {
            Rows::InPlace(r) => r.row(slot),
            rows => &rows.f32s()[slot as usize * self.dim..][..self.dim],
        }
    }

    /// Before linking a batch of `batch` rows into a float graph: fit the build codes when
    /// the batch is large ([`build_codes::BULK_MIN`]) and code every row not coded yet.
    fn prepare_build_codes(&mut self, batch: usize) {
        let dense = !self.quantized && self.metric.element() == Element::F32;
        if !dense || (self.build_codes.0.is_none() && batch < build_codes::BULK_MIN) {
            return;
        }
        let n = self.graph.len();
        let mut codes = self.build_codes.0.take();
        {
            let this = &*self;
            let row = |i: u32| this.float_row(i);
            if codes.is_none() {
                // Cannot fail for a float index with rows (`dim` ≥ 1, a dense metric).
                codes = BuildCodes::fit(&row, n, this.dim, this.metric).ok();
            }
            if let Some(c) = &mut codes {
                c.extend_to(&row, n);
            }
        }
        self.build_codes.0 = codes;
    }

    /// Drop the 8-bit codes large batches were linked through ([`build_codes`]): a bulk
    /// load is over. A later large batch makes them again.
    pub fn release_build_codes(&mut self) {
        self.build_codes.0 = None;
    }

    /// Give `ids` the slots `start..` whose rows were just stored, and link them into the graph.
    fn link_new(&mut self, start: usize, ids: &[u64]) -> Result<()> {
        let levels: Vec<usize> = ids.iter().map(|_| self.random_level()).collect();
        let upper_words: usize = levels.iter().map(|&l| l * (self.m + 1)).sum();
        self.graph.reserve(ids.len(), upper_words);
        self.graph.track_in_degrees();
        self.ids.vec_mut().reserve(ids.len());
        self.slot_map_mut().reserve(ids.len());
        for (i, (&id, &level)) in ids.iter().zip(&levels).enumerate() {
            let slot = (start + i) as u32;
            if let Some(old) = self.slot_map_mut().insert(id, slot) {
                self.tombstone(old);
            }
            if !self.graph.push_node(level) {
                return Err(Error::InvalidArgument("HNSW upper levels outgrew 32-bit offsets".into()));
            }
            self.ids.vec_mut().push(id);
        }
        self.deleted.resize(self.graph.len());
        let locks = Locks::new(self.graph.len());
        let efc = self.ef_construction;
        // Parallel inserts can leave a few nodes, or a small island of nodes linked only to
        // each other, out of reach. A walk of the whole graph finds them; it runs once the
        // nodes added since the last walk reach 1/16 of the graph (so it costs a bounded
        // share of the inserts), and a scan for nodes with no in-link runs after every batch.
        self.unwalked += ids.len();
        let walk = self.unwalked * 16 >= self.graph.len();
        if walk {
            self.unwalked = 0;
        }
        self.prepare_build_codes(ids.len());
        let this = &*self;
        let is_deleted = |slot: u32| this.is_deleted(slot);
        let end = this.graph.len();
        with_space!(this, s => {
            match &this.build_codes.0 {
                Some(bc) => {
                    let (data, dim, codec) = (&bc.codes[..], this.dim, &bc.codec);
                    match this.metric {
                        Metric::L2 => this.link_range(&s, &space::Sq8L2Space { data, dim, codec }, true, start..end, &locks, &is_deleted),
                        _ if codec.signed => this.link_range(&s, &space::Sq8IpSpace { data, dim, codec }, true, start..end, &locks, &is_deleted),
                        _ => this.link_range(&s, &space::Sq8UIpSpace { data, dim, codec }, true, start..end, &locks, &is_deleted),
                    }
                }
                None => this.link_range(&s, &s, false, start..end, &locks, &is_deleted),
            }
            with_scratch(|sc| this.graph.repair_unreachable(&s, efc, &is_deleted, sc, walk));
        });
        if self.reorder && start == 0 && ids.len() >= reorder::REORDER_MIN {
            self.reorder_for_locality();
        }
        self.maybe_consolidate();
        Ok(())
    }
}

impl VectorIndex for HnswIndex {
    fn description(&self) -> String {
        let sq8 = match (self.quantized, self.exact.is_some()) {
            (true, true) => ",SQ8,Refine",
            (true, false) => ",SQ8",
            _ => "",
        };
        let efc = if self.ef_construction == DEFAULT_EF_CONSTRUCTION {
            String::new()
        } else {
            format!(",efC{}", self.ef_construction)
        };
        // `efC` is a stage of the graph: it comes before `Refine`, which wraps everything.
        match sq8.strip_suffix(",Refine") {
            Some(codes) => format!("HNSW{}{codes}{efc},Refine", self.m),
            None => format!("HNSW{}{sq8}{efc}", self.m),
        }
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn metric(&self) -> Metric {
        self.metric
    }
    fn len(&self) -> usize {
        self.graph.len() - self.n_deleted
    }
    fn is_trained(&self) -> bool {
        !self.quantized || self.sq8.is_some()
    }
    fn train(&mut self, sample: VectorsRef<'_>) -> Result<()> {
        if !self.quantized {
            return Ok(());
        }
        if self.graph.len() > 0 {
            return Err(Error::InvalidArgument(format!(
                "{}: the codec cannot be refitted once {} vectors are coded",
                self.description(),
                self.graph.len()
            )));
        }
        let d = crate::index::common::dense_sample(sample, self.dim)?;
        self.sq8 = Some(Sq8Codec::train(d, self.dim, self.metric)?);
        Ok(())
    }
    fn add(&mut self, ids: &[u64], vectors: VectorsRef<'_>) -> Result<()> {
        let rows = vectors.rows(self.dim);
        let whole = match vectors {
            VectorsRef::Dense(d) => d.len() == rows * self.dim,
            VectorsRef::Binary(d) => d.len() == rows * self.row_bytes(),
        };
        if rows != ids.len() || !whole {
            return Err(Error::InvalidArgument(format!(
                "HNSW add: {} ids but the vector buffer holds {} rows of dimension {}{}",
                ids.len(),
                rows,
                self.dim,
                if whole { "" } else { " plus a partial row" }
            )));
        }
        for (i, id) in ids.iter().enumerate() {
            vectors.row(self.dim, i).validate(self.metric.element(), self.dim).map_err(|e| match e {
                Error::InvalidVector(m) => Error::InvalidVector(format!("row {i} (id {id}): {m}")),
                other => other,
            })?;
        }
        if ids.is_empty() {
            return Ok(());
        }
        self.check_resolved()?;
        self.add_validated(ids, vectors)
    }
    fn remove(&mut self, ids: &[u64]) -> Result<usize> {
        let mut removed = 0;
        for id in ids {
            if let Some(slot) = self.slot_map_mut().remove(id) {
                if self.tombstone(slot) {
                    removed += 1;
                }
            }
        }
        self.maybe_consolidate();
        Ok(removed)
    }
    fn contains(&self, id: u64) -> bool {
        self.slot_map().contains_key(&id)
    }
    fn search(
        &self,
        query: VectorRef<'_>,
        k: usize,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        self.check_query(query)?;
        self.check_resolved()?;
        if self.graph.len() == 0 {
            return Ok(Vec::new());
        }
        let ef = params.ef.unwrap_or(self.ef_search);
        if self.exact.is_some() {
            let depth = params.rerank.unwrap_or_else(|| default_rerank(k));
            let found = self.knn_refined(query, k, ef, depth, filter)?;
            return Ok(self.to_neighbors(found));
        }
        let found = with_space!(self, s => {
            let q = s.query(query).ok_or_else(|| Error::InvalidVector("query kind does not match the index".into()))?;
            self.knn(&s, &q, k, ef, filter)
        });
        Ok(self.to_neighbors(found))
    }
    fn range_search(
        &self,
        query: VectorRef<'_>,
        radius: f32,
        params: &SearchParams,
        filter: Option<IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>> {
        self.check_query(query)?;
        self.check_resolved()?;
        if radius.is_nan() {
            return Err(Error::InvalidArgument("range search radius is NaN".into()));
        }
        if self.graph.len() == 0 {
            return Ok(Vec::new());
        }
        let live = self.len();
        let mut k = params.ef.unwrap_or(self.ef_search).max(16);
        loop {
            // Search wider until the k-th result lies outside the radius.
            let exact = k * 4 >= live;
            let found = if self.exact.is_some() {
                let VectorRef::Dense(q) = query else {
                    return Err(Error::InvalidVector("expected a dense query".into()));
                };
                if exact {
                    let accept =
                        |slot: u32| !self.is_deleted(slot) && filter.is_none_or(|f| f(self.ids[slot as usize]));
                    self.brute_exact(q, live, &accept)
                } else {
                    self.knn_refined(query, k, k, k, filter)?
                }
            } else {
                with_space!(self, s => {
                    let q = s.query(query).ok_or_else(|| Error::InvalidVector("query kind does not match the index".into()))?;
                    if exact {
                        let accept = |slot: u32| !self.is_deleted(slot) && filter.is_none_or(|f| f(self.ids[slot as usize]));
                        self.brute(&s, &q, live, &accept)
                    } else {
                        self.knn(&s, &q, k, k, filter)
                    }
                })
            };
            let hits = self.to_neighbors(found);
            let full = hits.len() >= k;
            let inside: Vec<Neighbor> = hits.into_iter().filter(|n| n.distance <= radius).collect();
            if exact || !full || inside.len() < k {
                return Ok(inside);
            }
            k *= 4;
        }
    }
    fn reconstruct(&self, id: u64) -> Option<Vector> {
        let slot = *self.slot_map().get(&id)? as usize;
        let b = self.row_bytes();
        if let Some(exact) = &self.exact {
            return Some(Vector::Dense(exact.f32s()[slot * self.dim..(slot + 1) * self.dim].to_vec()));
        }
        if let Some(codec) = &self.sq8 {
            return Some(Vector::Dense(codec.decode(&self.rows.bytes()[slot * b..(slot + 1) * b])));
        }
        if let Rows::InPlace(r) = &self.rows {
            return (r.addr(slot as u32) != 0).then(|| Vector::Dense(r.row(slot as u32).to_vec()));
        }
        Some(match self.metric.element() {
            Element::F32 => Vector::Dense(self.rows.f32s()[slot * self.dim..(slot + 1) * self.dim].to_vec()),
            Element::Bit => Vector::Binary(self.rows.bytes()[slot * b..(slot + 1) * b].to_vec()),
        })
    }
    fn memory_bytes(&self) -> usize {
        let g = &self.graph;
        self.rows.byte_len()
            + self.exact.as_ref().map_or(0, Rows::byte_len)
            + g.links0.heap_bytes()
            + g.upper.heap_bytes()
            + g.upper_off.heap_bytes()
            + 4 * g.indeg0.len()
            + g.levels.heap_bytes()
            + self.ids.heap_bytes()
            // the id map: 16-byte entries, one control byte, kept at most 7/8 full
            + self.slot_of.get().map_or(0, |m| m.len() * 17 * 8 / 7)
            + 8 * self.deleted.0.len()
            + self.sq8.as_ref().map_or(0, Sq8Codec::memory_bytes)
            + self.build_codes.0.as_ref().map_or(0, BuildCodes::memory_bytes)
    }
    fn clone_index(&self) -> Option<Box<dyn VectorIndex>> {
        Some(Box::new(self.clone()))
    }
    fn as_hnsw_mut(&mut self) -> Option<&mut HnswIndex> {
        Some(self)
    }
    fn as_hnsw(&self) -> Option<&HnswIndex> {
        Some(self)
    }
    fn save(&self, dir: &Path) -> Result<()> {
        persist::save(self, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The walk from the entry point relinks an island: two nodes that link only to each
    /// other, which the in-degree scan alone cannot see (each has an in-link).
    #[test]
    fn the_reachability_walk_relinks_an_island() {
        let (n, dim) = (600usize, 8usize);
        let mut rng = crate::index::common::Rng::new(0x2545_F491);
        let data: Vec<f32> = (0..n * dim).map(|_| rng.unit() as f32).collect();
        let mut ix = HnswIndex::new(dim, Metric::L2, 8, 100);
        ix.add(&(0..n as u64).collect::<Vec<_>>(), VectorsRef::Dense(&data)).unwrap();
        let (ep, _) = ix.graph.entry().unwrap();
        let (a, b) = if ep < 2 { (2u32, 3u32) } else { (0, 1) };
        // Cut every link into `a` and `b` on every level, then link them to each other only.
        for v in 0..n as u32 {
            for level in 0..=ix.graph.levels[v as usize] as usize {
                let kept: Vec<u32> = ix.graph.neighbors(v, level).filter(|&x| x != a && x != b).collect();
                ix.graph.set_neighbors(v, level, &kept);
            }
        }
        ix.graph.set_neighbors(a, 0, &[b]);
        ix.graph.set_neighbors(b, 0, &[a]);
        let found = |ix: &HnswIndex, v: u32| {
            let q = &data[v as usize * dim..(v as usize + 1) * dim];
            let p = SearchParams { ef: Some(n), ..Default::default() };
            ix.search(VectorRef::Dense(q), 1, &p, None).unwrap()[0].id == v as u64
        };
        assert!(!found(&ix, a) && !found(&ix, b), "the island is reachable before the repair");

        let is_deleted = |_: u32| false;
        with_space!(ix, s => with_scratch(|sc| ix.graph.repair_unreachable(&s, 100, &is_deleted, sc, false)));
        assert!(!found(&ix, a), "the in-degree scan alone relinked the island");
        with_space!(ix, s => with_scratch(|sc| ix.graph.repair_unreachable(&s, 100, &is_deleted, sc, true)));
        assert!(found(&ix, a) && found(&ix, b), "the walk left the island unreachable");
    }
    /// A large batch into a float graph is linked through build codes that stay equal to
    /// the codes of every slot's row through the renumbering after the build and a later
    /// batch; the graph they built answers as well as a brute-force scan; a release and a
    /// compaction drop them; small batches and 8-bit graphs never make them.
    #[test]
    fn build_codes_follow_the_slots_and_the_graph_they_build_finds_neighbours() {
        let dim = 16usize;
        let mut rng = crate::index::common::Rng::new(0x5EED_C0DE);
        let data: Vec<f32> = (0..9_000 * dim).map(|_| rng.unit() as f32).collect();
        let ids: Vec<u64> = (0..9_000).collect();
        let coded_right = |ix: &HnswIndex| {
            let bc = ix.build_codes.0.as_ref().expect("build codes");
            let mut want = vec![0u8; dim];
            (0..ix.graph.len() as u32).all(|slot| {
                bc.codec.encode(ix.float_row(slot), &mut want);
                bc.codes[slot as usize * dim..][..dim] == want[..]
            })
        };

        let mut small = HnswIndex::new(dim, Metric::L2, 8, 64);
        small.add(&ids[..1000], VectorsRef::Dense(&data[..1000 * dim])).unwrap();
        assert!(small.build_codes.0.is_none(), "a batch under BULK_MIN made codes");
        let mut sq8 = HnswIndex::with_sq8(dim, Metric::L2, 8, 64).unwrap();
        sq8.add(&ids[..6000], VectorsRef::Dense(&data[..6000 * dim])).unwrap();
        assert!(sq8.build_codes.0.is_none(), "an 8-bit graph made build codes");

        let mut ix = HnswIndex::new(dim, Metric::L2, 8, 64);
        ix.add(&ids[..6000], VectorsRef::Dense(&data[..6000 * dim])).unwrap();
        assert!(coded_right(&ix), "codes do not match the rows after the renumbering");
        ix.add(&ids[6000..6010], VectorsRef::Dense(&data[6000 * dim..6010 * dim])).unwrap();
        ix.add(&ids[6010..], VectorsRef::Dense(&data[6010 * dim..])).unwrap();
        assert!(coded_right(&ix), "codes do not match the rows after later batches");

        let (mut hits, mut top1, queries) = (0usize, 0usize, 200usize);
        let p = SearchParams { ef: Some(64), ..Default::default() };
        for _ in 0..queries {
            let q: Vec<f32> = (0..dim).map(|_| rng.unit() as f32).collect();
            let mut exact: Vec<(f32, u64)> =
                (0..9_000).map(|i| (crate::distance::l2_sq(&q, &data[i * dim..(i + 1) * dim]), i as u64)).collect();
            exact.sort_by(|a, b| a.0.total_cmp(&b.0));
            let got = ix.search(VectorRef::Dense(&q), 10, &p, None).unwrap();
            hits += got.iter().filter(|n| exact[..10].iter().any(|e| e.1 == n.id)).count();
            top1 += usize::from(got[0].id == exact[0].1 && (got[0].distance - exact[0].0.sqrt()).abs() < 1e-4);
        }
        let recall = hits as f64 / (10 * queries) as f64;
        assert!(recall >= 0.95, "recall@10 {recall} of the graph built through codes");
        assert!(top1 * 100 >= queries * 98, "nearest found, with its exact distance, for {top1} of {queries}");

        let before = ix.memory_bytes();
        ix.release_build_codes();
        assert!(ix.build_codes.0.is_none(), "release kept the codes");
        assert!(ix.memory_bytes() + 9000 * dim <= before, "the codes were not counted in memory_bytes");
        // Replacing 2,500 records leaves tombstones (under the quarter that compacts).
        ix.add(&ids[..2500], VectorsRef::Dense(&data[..2500 * dim])).unwrap();
        assert!(ix.build_codes.0.is_some(), "a later large batch made no codes");
        ix.remove(&ids[3000..6000]).unwrap();
        ix.consolidate();
        assert!(ix.build_codes.0.is_none(), "compaction kept codes of renumbered slots");
    }
}
