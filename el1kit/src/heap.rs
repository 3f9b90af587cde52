//! The heap: the DT parser allocates (it re-serialises the firmware's tree), and so do the
//! clients' reports. 1 MiB of .bss, given to the allocator once.

use buddy_system_allocator::LockedHeap;

const HEAP_WORDS: usize = 128 * 1024;
static mut HEAP_SPACE: [u64; HEAP_WORDS] = [0; HEAP_WORDS];

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Hands the heap space to the allocator. The primary CPU, once, before anything allocates.
pub fn init() {
    // SAFETY: the heap space is a static used for nothing else, given to the heap once (the
    // primary calls this first thing, before any other CPU runs).
    unsafe {
        HEAP.lock()
            .init(&raw mut HEAP_SPACE as usize, HEAP_WORDS * 8)
    };
}
