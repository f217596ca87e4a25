//! Transparent huge pages for the large arrays a graph build reads at random.
//!
//! A bulk build touches its neighbour lists and row codes at random over hundreds of
//! megabytes: with 4 KiB pages nearly every access also misses the TLB and walks the page
//! tables. Where the kernel gives huge pages only on request (`transparent_hugepage` set to
//! `madvise`, a common default), arrays allocated through [`with_capacity`] ask for them
//! before any of their pages is touched. Elsewhere, and for arrays under [`MIN_BYTES`], this
//! does nothing.

/// Arrays smaller than this stay on normal pages (a few huge pages would cover them).
pub(crate) const MIN_BYTES: usize = 8 << 20;
const HUGE: usize = 2 << 20;

/// An empty `Vec` with room for `cap` values, whose pages the kernel backs with huge pages
/// when it can (advice only: never an error).
pub(crate) fn with_capacity<T>(cap: usize) -> Vec<T> {
    let v = Vec::with_capacity(cap);
    advise(v.as_ptr() as usize, cap * std::mem::size_of::<T>());
    v
}

/// The capacity an array of `len` values with room for `cap` grows to for `additional` more,
/// as [`Vec::reserve`] would (doubling), when that growth should be a new allocation advised
/// here; `None` when there is room left or the grown array stays under [`MIN_BYTES`] (a plain
/// `reserve` then).
pub(crate) fn grown_capacity<T>(len: usize, cap: usize, additional: usize) -> Option<usize> {
    let grown = (len + additional).max(2 * cap);
    (cap - len < additional && grown * std::mem::size_of::<T>() >= MIN_BYTES).then_some(grown)
}

/// Grow `v` to room for `additional` more values the way [`Vec::reserve`] does, but a large
/// array moves into a new allocation advised before the old values are copied in.
pub(crate) fn reserve<T: Copy>(v: &mut Vec<T>, additional: usize) {
    match grown_capacity::<T>(v.len(), v.capacity(), additional) {
        None => v.reserve(additional),
        Some(cap) => {
            let mut grown = with_capacity(cap);
            grown.extend_from_slice(v);
            *v = grown;
        }
    }
}

#[cfg(target_os = "linux")]
fn advise(start: usize, bytes: usize) {
    if bytes < MIN_BYTES {
        return;
    }
    let (a, b) = ((start + HUGE - 1) & !(HUGE - 1), (start + bytes) & !(HUGE - 1));
    if b > a {
        // SAFETY: [a, b) lies inside the allocation just made (rounded inwards to whole huge
        // pages); MADV_HUGEPAGE changes how future faults are served, never the contents.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE) };
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_start: usize, _bytes: usize) {}

#[cfg(test)]
mod tests {
    #[test]
    fn reserve_keeps_the_values_and_grows_like_vec() {
        let mut v: Vec<u32> = (0..1000).collect();
        super::reserve(&mut v, 4 << 20); // 16 MiB of u32: a new advised allocation
        assert!(v.capacity() >= 1000 + (4 << 20));
        assert_eq!(v, (0..1000).collect::<Vec<u32>>());
        let cap = v.capacity();
        super::reserve(&mut v, 10);
        assert_eq!(v.capacity(), cap, "room left: no new allocation");
    }
}
