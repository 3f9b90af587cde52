//! warden's own (EL2 stage-1) translation: first a 1 GiB-block identity map so that Rust
//! runs on normal memory while the DT is read, then the real map built with aarch64-paging:
//! text read-only and executable, rodata read-only, everything else never executable.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;
use aarch64_paging::descriptor::El23Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{El2, MemoryRegion};

use super::blocks::{self, Regime};
use crate::platform::memmap::Range;

#[repr(C, align(4096))]
struct Level1Table([u64; 512]);

/// The early map. Written once by the boot CPU before its MMU is on.
static mut EARLY_TABLE: Level1Table = Level1Table([0; 512]);

/// SCTLR_EL2: M (MMU), C and I (caches), SA (stack alignment check), plus the RES1 bits
/// of the non-VHE layout (DDI 0487 D24.2.161).
const SCTLR_EL2_ON: u64 = 1 | 1 << 2 | 1 << 3 | 1 << 12 | 0x30c5_0830;

/// TCR_EL2 for a 39-bit VA space, with PS from the CPU's physical address range.
fn tcr_el2() -> u64 {
    let pa_range = ID_AA64MMFR0_EL1.get() & 0xf;
    // RES1: bits 31 and 23.
    blocks::TCR_WALK_39BIT | pa_range.min(5) << 16 | 1 << 31 | 1 << 23
}

/// The physical address range size in bits (ID_AA64MMFR0_EL1.PARange).
pub fn pa_bits() -> u32 {
    super::address_size_bits(ID_AA64MMFR0_EL1.get() & 0xf)
}

/// Turns the EL2 MMU on with the table at `root`.
///
/// # Safety
/// `root` must identity-map all memory the calling CPU touches from here on (code, stack,
/// data, devices) with attributes compatible with the MAIR written here.
pub unsafe fn enable(root: u64) {
    MAIR_EL2.set(blocks::MAIR);
    TCR_EL2.set(tcr_el2());
    TTBR0_EL2.set(root);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating EL2 TLB entries only drops cached translations.
    unsafe { core::arch::asm!("tlbi alle2", "dsb nsh", "isb", options(nostack)) };
    SCTLR_EL2.set(SCTLR_EL2_ON);
    barrier::isb(barrier::SY);
}

/// Enables the MMU with 1 GiB identity blocks: the blocks holding `normal` addresses are
/// normal memory (warden's image, the DT), all others device memory.
///
/// # Safety
/// Boot CPU only, once, before any other CPU runs warden and before anything relies on
/// an earlier translation.
pub unsafe fn enable_early(normal: &[u64]) {
    let table = blocks::level1_blocks(Regime::El2, |gib| normal.iter().any(|a| a >> 30 == gib));
    let root = &raw mut EARLY_TABLE;
    // SAFETY: the boot CPU is the only one running and the MMU is off, so nothing else
    // reads or writes the table; it is a static of the right size and alignment.
    unsafe { (*root).0 = table };
    // SAFETY: the table identity-maps all of the 39-bit space, with the image's block
    // normal and executable.
    unsafe { enable(root as u64) };
}

/// Where warden's image is, from linker.ld.
#[derive(Clone, Copy, Debug)]
pub struct ImageLayout<'a> {
    pub text: Range,
    pub rodata: Range,
    pub rw: Range,
    /// Pages left unmapped (the guard page below each EL2 stack), so that touching them
    /// faults.
    pub unmapped: &'a [Range],
}

fn region(r: Range) -> MemoryRegion {
    MemoryRegion::new(r.start as usize, r.end as usize)
}

#[derive(Debug)]
pub enum El2MapError {
    Map(aarch64_paging::MapError),
}

/// Builds warden's final stage-1 map, switches to it and returns its root. The table is
/// never freed: every CPU uses it for as long as warden runs.
///
/// # Safety
/// Boot CPU only, with the early map active; `image` must describe the running image and
/// `ram` must contain it.
pub unsafe fn switch_to_final(
    image: &ImageLayout<'_>,
    ram: &[Range],
    devices: &[Range],
) -> Result<u64, El2MapError> {
    let normal = El23Attributes::VALID
        | El23Attributes::ATTRIBUTE_INDEX_1
        | El23Attributes::INNER_SHAREABLE
        | El23Attributes::ACCESSED
        | El23Attributes::USER_RES1;
    let device = El23Attributes::VALID
        | El23Attributes::ATTRIBUTE_INDEX_0
        | El23Attributes::ACCESSED
        | El23Attributes::USER_RES1
        | El23Attributes::XN;
    let mut map = IdMap::new(1, El2);
    let mut put = |r: Range, flags| map.map_range(&region(r), flags).map_err(El2MapError::Map);
    for r in ram {
        put(*r, normal | El23Attributes::XN)?;
    }
    put(image.text, normal | El23Attributes::READ_ONLY)?;
    put(
        image.rodata,
        normal | El23Attributes::READ_ONLY | El23Attributes::XN,
    )?;
    // The rest of the image (data, BSS, stacks, heap, host-DT area: about 9 MiB) has RAM's
    // own attributes, so when RAM holds it, as `switch_to_final`'s contract says, the RAM
    // mapping above already maps it right; mapping it again page by page was a sixth of
    // warden's boot. Only the text and rodata pages differ (and split their blocks).
    if !ram
        .iter()
        .any(|r| r.start <= image.rw.start && image.rw.end <= r.end)
    {
        put(image.rw, normal | El23Attributes::XN)?;
    }
    for d in devices {
        put(d.align_out(4096), device)?;
    }
    for g in image.unmapped {
        // Flags without VALID leave the entries invalid (aarch64-paging `map_range`).
        put(*g, El23Attributes::empty())?;
    }
    let map = alloc::boxed::Box::leak(alloc::boxed::Box::new(map));
    // SAFETY: the new map covers the image (text executable, data writable), the stacks and
    // heap (inside `image.rw`), all RAM and the devices warden uses, with the same MAIR.
    unsafe { map.activate() };
    // SAFETY: as in `enable`.
    unsafe { core::arch::asm!("tlbi alle2", "dsb ish", "isb", options(nostack)) };
    Ok(map.root_address().0 as u64)
}
