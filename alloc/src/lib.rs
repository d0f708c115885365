//! The global allocator of `authgate` (and of the benchmarks' hyper floor): mimalloc.
//!
//! The `mimalloc` crate's allocator calls mimalloc's *aligned* entry points for every
//! allocation, whatever its alignment. In mimalloc 3 (which the crate builds unless told `v2`),
//! an aligned allocation that misses the fast path (the size class's page has no free block
//! at hand, which happens often when another thread frees the blocks: the audit writer frees
//! every request's record) falls back to over-allocating unless the block size is a power of
//! two, even for an alignment that every mimalloc block has anyway. callgrind counted ~2.3
//! such allocations per proxied request, ~1,200 instructions (bench/RESULTS.md). mimalloc 2
//! has no such fallback but cost more elsewhere (cross-thread frees).
//!
//! So here an alignment of at most 8, which every mimalloc block has (blocks are whole
//! words from word-aligned page starts), goes to the plain `mi_malloc` family; a larger one
//! goes to the aligned family, as before.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// The alignment every block `mi_malloc` returns has (its word size).
const PLAIN_ALIGN: usize = std::mem::size_of::<usize>();

/// mimalloc as the global allocator; see the module documentation.
pub struct MiMalloc;

// SAFETY: each method forwards to the mimalloc function with the same contract (`mi_malloc`
// and friends return blocks aligned to at least `PLAIN_ALIGN`, null on failure; `mi_free`
// frees a block of either family), and the plain family is used only when `layout.align()`
// is at most `PLAIN_ALIGN`.
unsafe impl GlobalAlloc for MiMalloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (GlobalAlloc's contract).
        unsafe {
            if layout.align() <= PLAIN_ALIGN {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_have_the_alignment_asked_for_and_keep_their_bytes() {
        let a = MiMalloc;
        for align in [1, 2, 4, 8, 16, 32, 64, 4096] {
            for size in [1, 7, 8, 24, 40, 100, 672, 1000, 5000, 70_000] {
                let layout = Layout::from_size_align(size, align).expect("layout");
                // SAFETY: a non-zero-sized layout; every block is freed with its layout.
                unsafe {
                    let p = a.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size} align {align}");
                    p.write_bytes(0xa5, size);
                    let q = a.realloc(p, layout, size * 3);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc: size {size} align {align}");
                    assert!(
                        (0..size).all(|i| *q.add(i) == 0xa5),
                        "realloc kept the bytes"
                    );
                    a.dealloc(q, Layout::from_size_align(size * 3, align).expect("layout"));
                    let z = a.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| *z.add(i) == 0));
                    a.dealloc(z, layout);
                }
            }
        }
    }
}
