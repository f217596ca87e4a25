//! A graph array in memory or mapped from a saved index file.
//!
//! An opened graph does not copy its files: each array ([`Column`]) maps the file's body
//! copy-on-write (`MAP_PRIVATE`) once its checksum is verified, so its pages are the page
//! cache's (memory the kernel may drop, shared by every process that opens the index, not
//! heap), and a writer that changes links in place only copies the pages it writes.
//! The first call that needs the array to grow ([`Column::vec_mut`]) copies it into memory.
//! Index files are replaced by rename ([`crate::index::file::write`]), so a mapped file never
//! changes under its reader.

use std::fs;
use std::path::Path;
use std::sync::atomic::AtomicU32;

use crate::error::{Error, Result};
use crate::fsutil::corrupt;

/// A value that is plain bytes: any bit pattern of its size is a valid value, and its
/// alignment divides a page.
///
/// # Safety
/// Implementors must have no padding, no invalid bit patterns and no pointers.
pub(crate) unsafe trait Plain: Sized + Send + Sync {}
// SAFETY: integers and an atomic integer (same layout as `u32`, interior mutability through
// `UnsafeCell`) are plain bytes.
unsafe impl Plain for u8 {}
unsafe impl Plain for u32 {}
unsafe impl Plain for u64 {}
unsafe impl Plain for AtomicU32 {}

/// An array of `T`: a `Vec`, or a saved file's body mapped copy-on-write.
pub(crate) enum Column<T: Plain> {
    Owned(Vec<T>),
    Mapped {
        /// Start of the values in `map` (writable: the mapping is private).
        ptr: *mut T,
        len: usize,
        /// Holds the mapping while `ptr` points into it.
        _map: memmap2::MmapMut,
    },
}

// SAFETY: a mapped column is a private mapping owned by the column; `T: Send + Sync`, and
// shared access only hands out `&[T]` (writes through `&` go through `T`'s own atomics).
unsafe impl<T: Plain> Send for Column<T> {}
unsafe impl<T: Plain> Sync for Column<T> {}

impl<T: Plain> Default for Column<T> {
    fn default() -> Self {
        Column::Owned(Vec::new())
    }
}

impl<T: Plain> From<Vec<T>> for Column<T> {
    fn from(v: Vec<T>) -> Self {
        Column::Owned(v)
    }
}

impl<T: Plain> std::ops::Deref for Column<T> {
    type Target = [T];
    #[inline(always)]
    fn deref(&self) -> &[T] {
        match self {
            Column::Owned(v) => v,
            // SAFETY: `ptr` points at `len` values inside the mapping held by `_map`, aligned
            // (checked when mapped); every bit pattern is a valid `T` (`Plain`).
            Column::Mapped { ptr, len, .. } => unsafe { std::slice::from_raw_parts(*ptr, *len) },
        }
    }
}

/// A copy of `src` in a new `Vec` (plain bytes: a byte copy is a valid copy).
fn copy_plain<T: Plain>(src: &[T]) -> Vec<T> {
    copy_plain_into(src, Vec::with_capacity(src.len()))
}

/// `src` copied into `out`, an empty `Vec` with room for it.
fn copy_plain_into<T: Plain>(src: &[T], mut out: Vec<T>) -> Vec<T> {
    assert!(out.is_empty() && out.capacity() >= src.len(), "copy_plain_into needs an empty Vec with room");
    // SAFETY: `out` has room for `src.len()` values; `T` is plain bytes, so the copied bytes
    // are valid values, and the two buffers do not overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(src.as_ptr(), out.as_mut_ptr(), src.len());
        out.set_len(src.len());
    }
    out
}

impl<T: Plain> Clone for Column<T> {
    /// A copy in memory (a mapped column is copied too: the two may then change apart).
    fn clone(&self) -> Self {
        Column::Owned(copy_plain(self))
    }
}

impl<T: Plain> Column<T> {
    /// Map the body of index file `path`, which must hold `len` values, after checking its
    /// footer, and with `checksum` its checksum too ([`crate::index::file::verify`]: one
    /// sequential read of the file, proportional to its size, which leaves its pages in the
    /// page cache for the searches that follow); without, only the footer's last page is read.
    pub(crate) fn map(path: &Path, len: usize, checksum: bool) -> Result<Column<T>> {
        let want = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| corrupt(path, "length overflows"))?;
        let f = fs::File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: a private (copy-on-write) mapping; index files are replaced by rename, never
        // rewritten in place, so the file does not change while mapped.
        let mut map = unsafe { memmap2::MmapOptions::new().map_copy(&f) }.map_err(|e| Error::io(path, e))?;
        let body = crate::index::file::body(path, &map, checksum)?.len();
        if body != want {
            return Err(corrupt(path, format!("{body} bytes, expected {want}")));
        }
        if want == 0 {
            return Ok(Column::Owned(Vec::new()));
        }
        let ptr = map.as_mut_ptr() as *mut T;
        if !(ptr as usize).is_multiple_of(std::mem::align_of::<T>()) {
            return Err(corrupt(path, "mapping is not aligned"));
        }
        Ok(Column::Mapped { ptr, len, _map: map })
    }

    /// The values as a `Vec` that may grow, copied into memory first if mapped.
    pub(crate) fn vec_mut(&mut self) -> &mut Vec<T> {
        if let Column::Mapped { .. } = self {
            *self = Column::Owned(copy_plain(self));
        }
        match self {
            Column::Owned(v) => v,
            Column::Mapped { .. } => unreachable!("copied above"),
        }
    }

    /// Room for `additional` more values, as [`Vec::reserve`] (doubling), but a large array
    /// moves into a new allocation advised for huge pages before anything is copied in
    /// ([`crate::hugepages`]): the graph's lists are read at random.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let v = self.vec_mut();
        let Some(cap) = crate::hugepages::grown_capacity::<T>(v.len(), v.capacity(), additional) else {
            v.reserve(additional);
            return;
        };
        *v = copy_plain_into(v, crate::hugepages::with_capacity(cap));
    }

    /// Bytes of heap memory the values take (a mapped column takes none: its pages are the
    /// file's, in the page cache, until written).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Column::Owned(v) => std::mem::size_of_val(v.as_slice()),
            Column::Mapped { .. } => 0,
        }
    }

    /// Whether the values are mapped from a file.
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Column::Mapped { .. })
    }
}
