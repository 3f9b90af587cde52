//! The host's stage-2 translation: an identity map of the IPA space in which warden's own
//! memory does not appear, so no host access can reach it.

use aarch64_paging::descriptor::Stage2Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{MemoryRegion, Stage2};

use crate::platform::memmap::{HostMemKind, Range};

/// Host IPA bits: a level-1 root with the 4 KiB granule covers 39 bits (aarch64-paging
/// does not build concatenated root tables).
pub const IPA_BITS: u32 = 39;

pub struct HostStage2 {
    map: IdMap<Stage2>,
}

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
    pub fn new(layout: &[(Range, HostMemKind)]) -> Result<Self, aarch64_paging::MapError> {
        let mut map = IdMap::new(1, Stage2);
        for (range, kind) in layout {
            let r = MemoryRegion::new(range.start as usize, range.end as usize);
            map.map_range(&r, attributes(*kind))?;
        }
        // From here on, changes must follow break-before-make.
        map.mark_active();
        Ok(Self { map })
    }

    pub fn root(&self) -> u64 {
        self.map.root_address().0 as u64
    }
}

/// VTCR_EL2: T0SZ = 64 - 39, SL0 = 1 (start at level 1 with 4 KiB pages), write-back
/// inner-shareable walks, PS from the CPU's physical address range; bit 31 is RES1.
/// DDI 0487 D24.2.186.
pub fn vtcr(pa_range: u64) -> u64 {
    (64 - IPA_BITS as u64) | 1 << 6 | 1 << 8 | 1 << 10 | 3 << 12 | pa_range.min(5) << 16 | 1 << 31
}
