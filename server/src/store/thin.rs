//! [`ThinBytes`]: an owned, immutable-length byte string behind one 8-byte pointer.
//!
//! Why: the keyspace holds one of these per key. `Box<[u8]>` is a 16-byte fat
//! pointer; with hash tables kept between 44% and 87% full, the 8 extra bytes per
//! slot cost ~12–18 bytes per key, about 15% of the whole budget for a small
//! key/value pair (issue 5 bounds bytes per key against Redis). Storing the length
//! in the allocation itself instead keeps a slot at 8 bytes.
//!
//! Layout of the allocation (alignment 1): `[len: u32 little-endian][len bytes]`.
//! This is the only `unsafe` code in the store; it is small on purpose.

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::ptr::NonNull;

const HEADER: usize = std::mem::size_of::<u32>();

/// An owned byte string whose length lives in its heap allocation.
///
/// Invariants: `ptr` points to a live allocation made by [`ThinBytes::from_parts`]
/// with `Layout::from_size_align(HEADER + len, 1)`, whose first `HEADER` bytes hold
/// `len` and whose next `len` bytes are initialised; it is owned uniquely.
pub(crate) struct ThinBytes {
    ptr: NonNull<u8>,
}

// SAFETY: `ThinBytes` owns its allocation exclusively, like `Box<[u8]>`; there is
// no interior mutability, so sharing `&ThinBytes` across threads is sound.
unsafe impl Send for ThinBytes {}
// SAFETY: see above.
unsafe impl Sync for ThinBytes {}

impl ThinBytes {
    /// Allocates the concatenation of `parts`.
    ///
    /// Panics if the total exceeds `u32::MAX` bytes (values are capped far lower
    /// by the command limits before they reach the store).
    pub(crate) fn from_parts(parts: &[&[u8]]) -> ThinBytes {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let len32 = u32::try_from(len).expect("ThinBytes longer than 4 GiB");
        let layout = Self::layout(len);
        // SAFETY: `layout` has a non-zero size (HEADER > 0).
        let raw = unsafe { alloc(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| handle_alloc_error(layout));
        // SAFETY: the allocation is HEADER + len bytes; the writes below cover
        // exactly [0, HEADER) and then the parts back to back up to HEADER + len,
        // and the sources cannot overlap a fresh allocation.
        unsafe {
            std::ptr::copy_nonoverlapping(len32.to_le_bytes().as_ptr(), ptr.as_ptr(), HEADER);
            let mut offset = HEADER;
            for part in parts {
                std::ptr::copy_nonoverlapping(part.as_ptr(), ptr.as_ptr().add(offset), part.len());
                offset += part.len();
            }
        }
        ThinBytes { ptr }
    }

    fn layout(len: usize) -> Layout {
        Layout::from_size_align(HEADER + len, 1).expect("ThinBytes layout")
    }

    /// Length of the payload.
    pub(crate) fn len(&self) -> usize {
        let mut header = [0u8; HEADER];
        // SAFETY: by the invariant the first HEADER bytes are initialised.
        unsafe { std::ptr::copy_nonoverlapping(self.ptr.as_ptr(), header.as_mut_ptr(), HEADER) };
        u32::from_le_bytes(header) as usize
    }

    /// Bytes the allocation occupies: the header and payload, rounded as
    /// glibc's malloc rounds a request (8 bytes of chunk header, 16-byte
    /// granularity, 32-byte minimum), so that `MEMORY USAGE` counts what the
    /// allocator hands out rather than what was asked for.
    pub(crate) fn allocated_bytes(&self) -> usize {
        (HEADER + self.len() + 8).next_multiple_of(16).max(32)
    }

    /// The payload.
    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: by the invariant, `len` initialised bytes follow the header, and
        // the borrow of `self` keeps the allocation alive and unaliased by writers.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(HEADER), self.len()) }
    }

    /// The payload, mutable (its length is fixed).
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: as in `as_slice`; `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(HEADER), len) }
    }

    /// Starts loading the allocation's first cache line, so that a read of it
    /// soon after does not stall on memory. A hint only: it changes nothing
    /// observable, and is a no-op on targets without a stable prefetch.
    #[inline]
    pub(crate) fn prefetch(&self) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            // SAFETY: SSE is part of the x86_64 baseline, and a prefetch reads
            // nothing and never faults, whatever the address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.ptr.as_ptr().cast::<i8>()) };
        }
    }

    /// Bytes this value occupies on the heap (before allocator rounding).
    pub(crate) fn heap_size(&self) -> usize {
        HEADER + self.len()
    }
}

impl Drop for ThinBytes {
    fn drop(&mut self) {
        let layout = Self::layout(self.len());
        // SAFETY: `ptr` was allocated with exactly this layout (the length never
        // changes after construction) and is freed only here, once.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

impl std::fmt::Debug for ThinBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThinBytes({:?})", String::from_utf8_lossy(self.as_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_one_pointer_and_niche_optimised() {
        assert_eq!(std::mem::size_of::<ThinBytes>(), 8);
        assert_eq!(std::mem::size_of::<Option<ThinBytes>>(), 8);
    }

    #[test]
    fn concatenates_parts() {
        let thin = ThinBytes::from_parts(&[b"ab", b"", b"cde"]);
        assert_eq!(thin.as_slice(), b"abcde");
        assert_eq!(thin.len(), 5);
        assert_eq!(thin.heap_size(), 9);
        let empty = ThinBytes::from_parts(&[]);
        assert_eq!(empty.as_slice(), b"");
    }

    #[test]
    fn mutates_in_place() {
        let mut thin = ThinBytes::from_parts(&[b"hello"]);
        thin.as_mut_slice()[0] = b'j';
        assert_eq!(thin.as_slice(), b"jello");
    }

    #[test]
    fn many_sizes_allocate_and_free() {
        let values: Vec<ThinBytes> = (0..2000).map(|n| ThinBytes::from_parts(&[&vec![n as u8; n]])).collect();
        for (n, value) in values.iter().enumerate() {
            assert_eq!(value.as_slice(), &vec![n as u8; n][..]);
        }
    }
}
