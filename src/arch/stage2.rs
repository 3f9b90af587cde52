//! The host's stage-2 translation: an identity map of the IPA space in which warden's own
//! memory does not appear, so no host access can reach it.
// Host input must never be able to panic warden: no unwrap/expect/panic and no
// indexing that can go out of bounds in code that sees host-derived values (tests aside).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use aarch64_paging::descriptor::Stage2Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{MemoryRegion, Stage2};

use alloc::vec::Vec;

use crate::platform::memmap::{HostMemKind, Range};

/// Host IPA bits for a CPU with `pa_bits` of physical address: 40 (1 TiB, a level-0 root)
/// where the PA range is at least 44 bits, else 39 (a level-1 root). 1 TiB covers QEMU virt's
/// high PCIe window (512 GiB at 512 GiB), where Linux places 64-bit BARs. With the 4 KiB
/// granule Arm reserves a level-0 start below a 44-bit PA range (VTCR_EL2.SL0), and a 40-bit
/// IPA from level 1 needs concatenated root tables, which aarch64-paging does not build.
pub fn ipa_bits(pa_bits: u32) -> u32 {
    if pa_bits >= 44 { 40 } else { 39 }
}

/// The level of the stage-2 root table for an IPA of `ipa_bits` (4 KiB granule).
fn root_level(ipa_bits: u32) -> usize {
    if ipa_bits > 39 { 0 } else { 1 }
}

pub struct HostStage2 {
    map: IdMap<Stage2>,
    /// What the host may map, as built at boot.
    layout: Vec<(Range, HostMemKind)>,
    /// RAM currently lent to the secure world, hence unmapped.
    lent: Vec<Range>,
}

/// Largest block warden lets RAM use: 2 MiB. RAM is mapped in pieces of at most 512 MiB so
/// that no 1 GiB block covers it; a lend then only ever splits 2 MiB blocks.
const RAM_PIECE: u64 = 0x2000_0000;
const BLOCK: u64 = 0x20_0000;

// SAFETY: the tables are only reached through the `Mutex` that owns the `HostStage2`;
// the raw pointers inside `IdMap` point at heap pages owned by it alone.
unsafe impl Send for HostStage2 {}

fn attributes(kind: HostMemKind) -> Stage2Attributes {
    let common =
        Stage2Attributes::VALID | Stage2Attributes::ACCESS_FLAG | Stage2Attributes::S2AP_ACCESS_RW;
    match kind {
        HostMemKind::Ram => {
            common
                | Stage2Attributes::MEMATTR_NORMAL_INNER_WB
                | Stage2Attributes::MEMATTR_NORMAL_OUTER_WB
                | Stage2Attributes::SH_INNER
        }
        HostMemKind::Device => {
            common | Stage2Attributes::MEMATTR_DEVICE_nGnRE | Stage2Attributes::XN
        }
    }
}

impl HostStage2 {
    pub fn new(
        layout: &[(Range, HostMemKind)],
        ipa_bits: u32,
    ) -> Result<Self, aarch64_paging::MapError> {
        let mut map = IdMap::new(root_level(ipa_bits), Stage2);
        for (range, kind) in layout {
            let mut start = range.start;
            while start < range.end {
                let end = match kind {
                    HostMemKind::Ram => ((start / RAM_PIECE + 1) * RAM_PIECE).min(range.end),
                    HostMemKind::Device => range.end,
                };
                map.map_range(&region(Range::new(start, end)), attributes(*kind))?;
                start = end;
            }
        }
        // From here on, changes must follow break-before-make.
        map.mark_active();
        Ok(Self {
            map,
            layout: layout.to_vec(),
            lent: Vec::new(),
        })
    }

    /// Whether the host may access `ipa` now (RAM or device, not warden's, not lent).
    pub fn host_may_access(&self, ipa: u64) -> bool {
        self.layout.iter().any(|(r, _)| r.contains(ipa))
            && !self.lent.iter().any(|l| l.contains(ipa))
    }

    /// Unmaps `ranges` (host RAM being lent). Splitting a live 2 MiB block needs
    /// break-before-make (DDI 0487 D8.16.1): the whole block is unmapped first, TLBs are
    /// invalidated, then what the host keeps is mapped again in pages. A host access in
    /// between faults to EL2, where `host_may_access` says to retry it.
    pub fn lend(&mut self, ranges: &[Range]) -> Result<(), aarch64_paging::MapError> {
        self.lent.extend_from_slice(ranges);
        for r in ranges {
            let cover = r.align_out(BLOCK);
            self.map
                .map_range(&region(cover), Stage2Attributes::empty())?;
            invalidate_all();
            for piece in self.host_ram_within(cover) {
                self.map
                    .map_range(&region(piece), attributes(HostMemKind::Ram))?;
            }
        }
        invalidate_all();
        Ok(())
    }

    /// Maps `ranges` back to the host (a reclaim, or a lend undone).
    pub fn restore(&mut self, ranges: &[Range]) -> Result<(), aarch64_paging::MapError> {
        self.lent.retain(|l| !ranges.contains(l));
        for r in ranges {
            for piece in self.host_ram_within(*r) {
                self.map
                    .map_range(&region(piece), attributes(HostMemKind::Ram))?;
            }
        }
        invalidate_all();
        Ok(())
    }

    /// The host's RAM inside `cover`, minus what is lent.
    fn host_ram_within(&self, cover: Range) -> Vec<Range> {
        let pieces: Vec<Range> = self
            .layout
            .iter()
            .filter(|(r, k)| *k == HostMemKind::Ram && r.overlaps(&cover))
            .map(|(r, _)| Range::new(r.start.max(cover.start), r.end.min(cover.end)))
            .collect();
        crate::platform::memmap::subtract_all(pieces, &self.lent)
    }

    pub fn root(&self) -> u64 {
        self.map.root_address().0 as u64
    }
}

fn region(r: Range) -> MemoryRegion {
    MemoryRegion::new(r.start as usize, r.end as usize)
}

/// Drops every stage-1 and stage-2 translation of the host (VMID 0) on all CPUs: per-IPA
/// invalidation alone would leave combined stage-1+2 entries behind.
fn invalidate_all() {
    // SAFETY: TLB maintenance only drops cached translations.
    unsafe {
        core::arch::asm!(
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack)
        )
    };
}

/// VTCR_EL2: T0SZ = 64 - `ipa_bits`, SL0 = the root level (2: level 0, 1: level 1, with
/// 4 KiB pages), write-back inner-shareable walks, PS from the CPU's physical address range;
/// bit 31 is RES1. DDI 0487 D24.2.186.
pub fn vtcr(pa_range: u64, ipa_bits: u32) -> u64 {
    let sl0 = 2 - root_level(ipa_bits) as u64;
    (64 - ipa_bits as u64) | sl0 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | pa_range.min(5) << 16 | 1 << 31
}
