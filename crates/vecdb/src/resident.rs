//! How much of a mapped file is resident in memory (page cache), for `db info`'s figures.
//!
//! `mincore(2)` costs time in proportion to the pages asked about (about 7 ms per GiB here),
//! so a column larger than [`EXACT_MAX`] is estimated from [`WINDOWS`] evenly spread windows
//! of [`WINDOW`] bytes: `db info` stays constant-time at any size. The page cache keeps long
//! runs of a file, so the estimate is close (a test checks it within a few percent).

/// Largest slice measured page by page.
const EXACT_MAX: usize = 256 << 20;
/// Windows sampled beyond that.
const WINDOWS: usize = 1024;
/// Bytes per sampled window.
const WINDOW: usize = 64 << 10;

/// Bytes of `data` (a slice of a memory mapping) whose pages are resident, as `mincore(2)`
/// reports them (estimated from a sample of windows beyond [`EXACT_MAX`]); 0 where the call is
/// unavailable or fails.
pub(crate) fn resident_bytes(data: &[u8]) -> usize {
    if data.is_empty() {
        return 0;
    }
    if data.len() <= EXACT_MAX {
        return imp(data);
    }
    let stride = data.len() / WINDOWS;
    let resident: usize = (0..WINDOWS).map(|w| imp(&data[w * stride..w * stride + WINDOW.min(stride)])).sum();
    let sampled = WINDOWS * WINDOW.min(stride);
    (resident as f64 / sampled as f64 * data.len() as f64) as usize
}

#[cfg(unix)]
fn imp(data: &[u8]) -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
    let start = data.as_ptr() as usize;
    let aligned = start - start % page;
    let end = start + data.len();
    let len = end - aligned;
    let pages = len.div_ceil(page);
    let mut vec = vec![0u8; pages];
    // SAFETY: [aligned, aligned + len) lies within one live mapping (the page-aligned start
    // of `data`'s first page through its end), and `vec` holds one byte per page.
    let rc = unsafe { libc::mincore(aligned as *mut libc::c_void, len, vec.as_mut_ptr().cast()) };
    if rc != 0 {
        return 0;
    }
    let mut bytes = 0;
    for (i, &v) in vec.iter().enumerate() {
        if v & 1 == 1 {
            let p0 = (aligned + i * page).max(start);
            let p1 = (aligned + (i + 1) * page).min(end);
            bytes += p1 - p0;
        }
    }
    bytes
}

#[cfg(not(unix))]
fn imp(_data: &[u8]) -> usize {
    0
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// The sampled estimate of a large mapping matches the exact count: all resident after a
    /// read, and about half after the second half was dropped from the mapping.
    #[test]
    fn the_sampled_estimate_matches_the_exact_count() {
        let len = 2 * EXACT_MAX + 12_345;
        let mut map = memmap2::MmapMut::map_anon(len).unwrap();
        map.iter_mut().step_by(4096).for_each(|b| *b = 1);
        let exact = imp(&map);
        assert!(exact >= len - 4096, "{exact} of {len}");
        let est = resident_bytes(&map);
        assert!((est as f64 - exact as f64).abs() < 0.02 * len as f64, "estimate {est}, exact {exact}");
        // Give back the second half's pages.
        let page = 4096;
        let half = (len / 2).next_multiple_of(page);
        // SAFETY: the range lies within the anonymous mapping; its pages are dropped (zeroed).
        unsafe { libc::madvise(map.as_mut_ptr().add(half).cast(), len - half, libc::MADV_DONTNEED) };
        let exact = imp(&map);
        let est = resident_bytes(&map);
        assert!((exact as f64 - half as f64).abs() < 0.01 * len as f64, "exact {exact}, half {half}");
        assert!((est as f64 - exact as f64).abs() < 0.03 * len as f64, "estimate {est}, exact {exact}");
    }
}
