//! Per-thread scratch memory reused across searches: the visited set (a bitset cleared word
//! by word), the candidate pool and a neighbour buffer.

use std::cell::RefCell;

/// Visited marks, one bit per node (a million nodes: 128 KiB, which stays in the L2 cache,
/// where a 16-bit epoch per node would take 2 MiB); the words a search set are listed and
/// cleared by the next [`Visited::reset`], so starting a search costs what the last touched.
pub(crate) struct Visited {
    bits: Vec<u64>,
    touched: Vec<u32>,
}

impl Visited {
    fn new() -> Self {
        Visited { bits: Vec::new(), touched: Vec::new() }
    }

    /// Start a new search over `n` nodes: everything becomes unvisited.
    pub fn reset(&mut self, n: usize) {
        for w in self.touched.drain(..) {
            self.bits[w as usize] = 0;
        }
        let words = n.div_ceil(64);
        if self.bits.len() < words {
            self.bits.resize(words, 0);
        }
    }

    /// Mark `i` visited; returns true when it already was.
    #[inline(always)]
    pub fn check_and_mark(&mut self, i: u32) -> bool {
        let (w, bit) = ((i >> 6) as usize, 1u64 << (i & 63));
        let word = &mut self.bits[w];
        if *word & bit != 0 {
            return true;
        }
        if *word == 0 {
            self.touched.push(w as u32);
        }
        *word |= bit;
        false
    }
}

/// One entry of the candidate pool.
#[derive(Clone, Copy)]
pub(crate) struct Cand {
    pub dist: f32,
    pub id: u32,
    done: bool,
}

/// A sorted, bounded list of the best candidates found so far; it is both HNSW's result set
/// `W` and its candidate queue `C` (the next node to expand is the closest not yet expanded).
pub(crate) struct Pool {
    items: Vec<Cand>,
    cap: usize,
    cursor: usize,
}

impl Pool {
    fn new() -> Self {
        Pool { items: Vec::new(), cap: 1, cursor: 0 }
    }

    /// Empty the pool and bound it to `cap` entries.
    pub fn reset(&mut self, cap: usize) {
        self.items.clear();
        self.cap = cap.max(1);
        self.cursor = 0;
        if self.items.capacity() < self.cap + 1 {
            self.items.reserve(self.cap + 1);
        }
    }

    /// True when `dist` could not enter the pool.
    #[inline(always)]
    pub fn rejects(&self, dist: f32) -> bool {
        self.items.len() == self.cap && dist >= self.items[self.items.len() - 1].dist
    }

    /// Offer a candidate; ignored when the pool is full of closer ones.
    #[inline(always)]
    pub fn insert(&mut self, dist: f32, id: u32) {
        if self.rejects(dist) {
            return;
        }
        let pos = self.items.partition_point(|c| c.dist <= dist);
        if self.items.len() == self.cap {
            self.items.pop();
        }
        self.items.insert(pos, Cand { dist, id, done: false });
        if pos < self.cursor {
            self.cursor = pos;
        }
    }

    /// The closest candidate not yet expanded, now marked expanded.
    #[inline(always)]
    pub fn next(&mut self) -> Option<u32> {
        while self.cursor < self.items.len() {
            let i = self.cursor;
            self.cursor += 1;
            if !self.items[i].done {
                self.items[i].done = true;
                return Some(self.items[i].id);
            }
        }
        None
    }

    /// The closest candidate not yet expanded, left unmarked (what [`Pool::next`] returns
    /// next unless a closer one arrives first).
    #[inline(always)]
    pub fn peek(&self) -> Option<u32> {
        self.items[self.cursor.min(self.items.len())..].iter().find(|c| !c.done).map(|c| c.id)
    }

    /// The pool's content, closest first.
    pub fn items(&self) -> &[Cand] {
        &self.items
    }
}

/// Everything one search needs besides the index.
pub(crate) struct Scratch {
    pub visited: Visited,
    pub pool: Pool,
    pub buf: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::new());
}

impl Scratch {
    fn new() -> Self {
        Scratch { visited: Visited::new(), pool: Pool::new(), buf: Vec::new() }
    }
}

/// Run `f` with this thread's scratch (a fresh one if it is already in use, e.g. when a
/// filter callback searches again).
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    let mut f = Some(f);
    let out = SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => Some((f.take().expect("called once"))(&mut s)),
        Err(_) => None,
    });
    match out {
        Some(r) => r,
        None => (f.take().expect("called once"))(&mut Scratch::new()),
    }
}
