//! How much of a mapped file is resident in memory (page cache), for `db info`'s figures.

/// Bytes of `data` (a slice of a memory mapping) whose pages are resident, as `mincore(2)`
/// reports them; 0 where the call is unavailable or fails.
pub(crate) fn resident_bytes(data: &[u8]) -> usize {
    if data.is_empty() {
        return 0;
    }
    imp(data)
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
