//! The device tree the client was handed in x0 (arm64 booting.rst; warden and TF-A both pass
//! it), read once the MMU maps its block as normal memory (mmu::init).

use alloc::vec::Vec;

use warden::platform::dt::{self, PlatformInfo};

/// The tree, normalised (TF-A edits the tree in place and leaves FDT_NOP tokens that the
/// parser stops at), and what warden's parser finds in it; `None` if it is not a DT.
pub fn read(dtb: u64) -> Option<(Vec<u8>, PlatformInfo)> {
    // SAFETY: x0 at entry is the DT; its header's totalsize (big-endian, at offset 4)
    // bounds the blob, and the MMU maps its block as normal memory.
    let blob = unsafe {
        let size = u32::from_be(((dtb + 4) as *const u32).read()) as usize;
        core::slice::from_raw_parts(dtb as *const u8, size)
    };
    let tree = dt::normalize(blob).ok()?;
    let platform = PlatformInfo::parse(&tree).ok()?;
    Some((tree, platform))
}
