//! The host's stage-2 translation: an identity map of the IPA space in which warden's own
//! memory does not appear, so no host access can reach it.
//!
//! Lends and reclaims cost a bounded amount of work per range, whatever the host already
//! holds: lent pages are bits in a bitmap over the host's RAM (a range costs one bit per
//! page, 64 at a time), a page of an already split block is unmapped in place, and each
//! 2 MiB block is split (break-before-make) at most once per lend. `Work` counts the
//! operations so that a unit test can hold this bound.

use core::fmt;

use aarch64_paging::MapError;
use aarch64_paging::descriptor::Stage2Attributes;
use aarch64_paging::idmap::IdMap;
use aarch64_paging::paging::{MemoryRegion, Stage2};

use alloc::vec::Vec;

use crate::platform::memmap::{
    HostMemKind, PAGE, PageBitmap, PageEntries, PageMask, Range, RangeGroup, Unlendable,
};

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

/// Why a lend was refused. Nothing is left changed when it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage2Error {
    /// The translation table library refused a change.
    Map(MapError),
    /// A range is empty or not page-aligned.
    Unaligned(Range),
    /// A range is not inside the host's RAM of the boot layout.
    NotHostRam(Range),
    /// A range overlaps one already lent (or another range of the same lend). The
    /// ownership tracker never asks for this; refusing it keeps the lent bitmap exact.
    AlreadyLent(Range),
}

impl From<MapError> for Stage2Error {
    fn from(e: MapError) -> Self {
        Self::Map(e)
    }
}

impl fmt::Display for Stage2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Map(e) => write!(f, "{e}"),
            Self::Unaligned(r) => write!(f, "{:#x}..{:#x} is not page-aligned", r.start, r.end),
            Self::AlreadyLent(r) => write!(f, "{:#x}..{:#x} is already lent", r.start, r.end),
            Self::NotHostRam(r) => write!(f, "{:#x}..{:#x} is not host RAM", r.start, r.end),
        }
    }
}

/// Operations done on the tables and the lent bitmap since the table was built: what bounds
/// the cost of a lend or reclaim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Work {
    /// `map_range` calls (each walks the table from the root a bounded number of times).
    pub table_updates: u64,
    /// Descriptor look-ups that decide whether a block is already split.
    pub walks: u64,
    /// 64-bit words of the lent bitmap read or written.
    pub bitmap_words: u64,
    /// 2 MiB blocks split with break-before-make.
    pub blocks_split: u64,
    /// Level-3 entries written in place (`PageEntries`), one per page.
    pub entries: u64,
}

pub struct HostStage2 {
    map: IdMap<Stage2>,
    /// What the host may map, as built at boot.
    layout: Vec<(Range, HostMemKind)>,
    /// RAM currently lent to the secure world, hence unmapped.
    lent: PageBitmap,
    work: Work,
}

/// Largest block warden lets RAM use: 2 MiB. RAM is mapped in pieces of at most 512 MiB so
/// that no 1 GiB block covers it; a lend then only ever splits 2 MiB blocks.
const RAM_PIECE: u64 = 0x2000_0000;
const BLOCK: u64 = 0x20_0000;
/// How one 2 MiB block of RAM is mapped, as a walk under the stage-2 lock found it.
#[derive(Clone, Copy, Debug)]
enum BlockMap {
    /// By a level-3 table: the block was split before.
    Pages(PageEntries),
    /// By a valid block descriptor: a page lent in it needs a break.
    Block,
    /// Not mapped at level 2 or below (wholly lent, say): the library handles it.
    Other,
}

/// A level-3 entry's bits, less the address, for a page of host RAM.
fn ram_page(pa: u64) -> u64 {
    pa | (attributes(HostMemKind::Ram) | Stage2Attributes::TABLE_OR_PAGE).bits() as u64
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
    pub fn new(layout: &[(Range, HostMemKind)], ipa_bits: u32) -> Result<Self, MapError> {
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
            lent: PageBitmap::new(
                layout
                    .iter()
                    .filter(|(_, k)| *k == HostMemKind::Ram)
                    .map(|(r, _)| *r),
            ),
            work: Work::default(),
        })
    }

    /// Whether the host may access `ipa` now (RAM or device, not warden's, not lent).
    pub fn host_may_access(&self, ipa: u64) -> bool {
        self.layout.iter().any(|(r, _)| r.contains(ipa)) && !self.is_lent(ipa)
    }

    fn is_lent(&self, ipa: u64) -> bool {
        self.lent.is_lent(ipa)
    }

    /// Unmaps `ranges` (host RAM being lent), all or nothing: each must be page-aligned
    /// host RAM of the layout (inside one RAM range of it, as the lent bitmap's regions
    /// are), lent to no one, and apart from the others.
    ///
    /// A page inside a 2 MiB block that is still mapped whole needs break-before-make
    /// (DDI 0487 D8.16.1): the block is unmapped first, TLBs are invalidated, then what the
    /// host keeps is mapped again in pages. A host access in between faults to EL2, where
    /// `host_may_access` says to retry it. A page of a block already split is unmapped in
    /// place (a valid page becoming invalid needs no break): its level-3 entry is written
    /// directly. The ranges that fall inside one block one after the other (a lend of
    /// scattered pages, sorted as the proxy hands them over) go together as one
    /// `PageMask`: one look at the lent bitmap's words and one walk to the block's table for
    /// all of them. Every block is broken at most once per lend, and the whole lend ends
    /// with one invalidation of the host's translations, before the SPMC hears of the pages.
    pub fn lend(&mut self, ranges: &[Range]) -> Result<(), Stage2Error> {
        let mut broken: Vec<Range> = Vec::new();
        let mut marked = 0;
        let result = self.lend_ranges(ranges, &mut broken, &mut marked);
        if let Err(e) = result {
            // Give back everything this lend touched: the ranges it marked lent (the
            // others may be another handle's), and whatever of the broken blocks the host
            // keeps (a block not broken yet is still mapped whole, which this leaves so).
            let marked = ranges.get(..marked).unwrap_or_default();
            for r in marked {
                self.work.bitmap_words += self.lent.set(*r, false);
            }
            for block in &broken {
                let _ = self.map_host_ram(*block);
            }
            for r in marked {
                let _ = self.map_host_ram(*r);
            }
            invalidate_all();
            return Err(e);
        }
        invalidate_all();
        Ok(())
    }

    /// `lend` but for the rollback: on an error, `ranges[..*marked]` are marked lent (and
    /// perhaps unmapped), the rest are not marked by this lend.
    fn lend_ranges(
        &mut self,
        ranges: &[Range],
        broken: &mut Vec<Range>,
        marked: &mut usize,
    ) -> Result<(), Stage2Error> {
        // The pages of `ranges[first..i]`, all inside one block, not marked yet.
        let mut batch = PageMask::new(0);
        let mut first = 0;
        for (i, r) in ranges.iter().enumerate() {
            if r.is_empty() || r.start % PAGE != 0 || r.end % PAGE != 0 {
                return Err(Stage2Error::Unaligned(*r));
            }
            let block = r.align_out(BLOCK);
            if block.len() == BLOCK && *r != block {
                if batch.is_empty() || batch.base() != block.start {
                    let pending = ranges.get(first..i).unwrap_or_default();
                    self.lend_batch(&batch, pending, broken)?;
                    *marked = i;
                    batch = PageMask::new(block.start);
                    first = i;
                }
                if !batch.add(*r) {
                    // It overlaps an earlier range of this lend.
                    return Err(Stage2Error::AlreadyLent(*r));
                }
                continue;
            }
            let pending = ranges.get(first..i).unwrap_or_default();
            self.lend_batch(&batch, pending, broken)?;
            batch = PageMask::new(0);
            *marked = i;
            self.mark_lent(*r)?;
            *marked = i + 1;
            first = i + 1;
            self.unmap_lent(*r, broken)?;
        }
        let pending = ranges.get(first..).unwrap_or_default();
        self.lend_batch(&batch, pending, broken)?;
        *marked = ranges.len();
        if broken.is_empty() {
            return Ok(());
        }
        // Ranges arrive sorted from the proxy; sorting keeps "once per block" true anyway.
        broken.sort_unstable();
        broken.dedup();
        // Break: every block to split becomes invalid, then one invalidation for all.
        for block in broken.iter() {
            self.unmap(*block)?;
            self.work.blocks_split += 1;
        }
        invalidate_all();
        // Make: what the host keeps in those blocks, in pages.
        for block in broken.iter() {
            self.remap_broken(*block)?;
        }
        Ok(())
    }

    /// Marks one range lent, or says why not and marks nothing.
    fn mark_lent(&mut self, r: Range) -> Result<(), Stage2Error> {
        match self.lent.lend(r) {
            Ok(words) => {
                self.work.bitmap_words += words;
                Ok(())
            }
            Err(Unlendable::NotRam) => Err(Stage2Error::NotHostRam(r)),
            Err(Unlendable::Lent) => Err(Stage2Error::AlreadyLent(r)),
        }
    }

    /// Marks the pages of `batch` (those of `ranges`, inside one block) lent and unmaps
    /// them, or marks none and says why.
    fn lend_batch(
        &mut self,
        batch: &PageMask,
        ranges: &[Range],
        broken: &mut Vec<Range>,
    ) -> Result<(), Stage2Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let (all, words) = self.lent.lend_pages(batch);
        self.work.bitmap_words += words;
        if !all {
            // Range by range, to name the one refused (or, at the edge of a RAM range, to
            // mark them where the batch could not).
            for (j, r) in ranges.iter().enumerate() {
                if let Err(e) = self.mark_lent(*r) {
                    for done in ranges.get(..j).unwrap_or_default() {
                        self.work.bitmap_words += self.lent.set(*done, false);
                    }
                    return Err(e);
                }
            }
        }
        let block = Range::new(batch.base(), batch.base() + BLOCK);
        match self.block_map(block)? {
            BlockMap::Pages(table) => self.work.entries += table.set_pages(batch, |_| 0),
            // Broken after all the ranges are marked, all together.
            BlockMap::Block => {
                if broken.last() != Some(&block) {
                    broken.push(block);
                }
            }
            BlockMap::Other => {
                for r in ranges {
                    self.unmap_in_table(*r)?;
                }
            }
        }
        Ok(())
    }

    /// Unmaps the range `r`, marked lent, that is not inside one block: whole blocks
    /// through the library, the parts at either end in their blocks.
    fn unmap_lent(&mut self, r: Range, broken: &mut Vec<Range>) -> Result<(), Stage2Error> {
        // Whole blocks in the middle go in one call: an invalid block entry replaces a
        // valid block or a table (aarch64-paging frees the table after invalidating it).
        let inner = Range::new(r.start.next_multiple_of(BLOCK), r.end & !(BLOCK - 1));
        if inner.start < inner.end {
            self.unmap(inner)?;
        }
        let head = Range::new(r.start, r.end.min(r.start.next_multiple_of(BLOCK)));
        let tail = Range::new(head.end.max(r.end & !(BLOCK - 1)), r.end);
        for part in [head, tail] {
            if part.is_empty() {
                continue;
            }
            let block = part.align_out(BLOCK);
            if part == block {
                self.unmap(part)?;
                continue;
            }
            match self.block_map(block)? {
                BlockMap::Pages(table) => self.work.entries += table.set_range(part, |_| 0),
                BlockMap::Block => {
                    if broken.last() != Some(&block) {
                        broken.push(block);
                    }
                }
                BlockMap::Other => self.unmap_in_table(part)?,
            }
        }
        Ok(())
    }

    /// Maps what the host keeps of `block`, just broken (its entry invalid), in pages: the
    /// first run through the library, which builds the level-3 table, then the other runs
    /// entry by entry in that table (a library call per run would walk from the root
    /// each time: a lend of every other page of a block made 256 of them).
    fn remap_broken(&mut self, block: Range) -> Result<(), Stage2Error> {
        let mut runs: Vec<Range> = Vec::new();
        self.work.bitmap_words += self.lent.unlent_runs(block, |run| runs.push(run));
        let mut table: Option<PageEntries> = None;
        let last = runs.len().saturating_sub(1);
        for (i, run) in runs.into_iter().enumerate() {
            match table {
                Some(table) => self.work.entries += table.set_range(run, ram_page),
                None => {
                    self.map_ram_quietly(run)?;
                    if i < last
                        && let BlockMap::Pages(t) = self.block_map(block)?
                    {
                        table = Some(t);
                    }
                }
            }
        }
        Ok(())
    }

    /// How the 2 MiB block `block` is mapped: one walk of the table from its root.
    fn block_map(&mut self, block: Range) -> Result<BlockMap, Stage2Error> {
        self.work.walks += 1;
        let mut map = BlockMap::Other;
        self.map.walk_range(
            &region(Range::new(block.start, block.start + PAGE)),
            &mut |_, d, level| {
                map = if level == 3 {
                    let first = core::ptr::from_ref(d).expose_provenance();
                    // SAFETY: `d` is entry 0 (`block` is aligned) of the level-3 table that
                    // maps `block`, allocated by `IdTranslation` (which exposes its address);
                    // the users hold `self` by `&mut` and forget the value at every call
                    // into the library, which alone could free the table.
                    BlockMap::Pages(unsafe { PageEntries::new(first, block.start) })
                } else if d.is_valid() {
                    BlockMap::Block
                } else {
                    BlockMap::Other
                };
                Ok(())
            },
        )?;
        Ok(map)
    }

    /// Unmaps `r` with aarch64-paging's live checks and TLB maintenance: for whole blocks
    /// (a table it replaces is invalidated before it is freed) and for breaking blocks.
    fn unmap(&mut self, r: Range) -> Result<(), MapError> {
        self.work.table_updates += 1;
        self.map.map_range(&region(r), Stage2Attributes::empty())
    }

    /// Unmaps `r`, which lies inside one 2 MiB block that is not mapped as a valid block
    /// (`block_map` said so, under the same lock): only entries below the block change,
    /// valid to invalid, which needs no break-before-make, and no table is freed. The TLB
    /// maintenance is the caller's: `lend` ends with `invalidate_all`, before the SPMC
    /// hears of the pages.
    fn unmap_in_table(&mut self, r: Range) -> Result<(), MapError> {
        self.work.table_updates += 1;
        self.quietly(|map| map.map_range(&region(r), Stage2Attributes::empty()))
    }

    /// Maps host RAM where nothing valid is mapped (a reclaimed range, or the pieces of a
    /// block just broken): invalid to valid needs neither a break nor TLB maintenance, and
    /// frees nothing.
    fn map_ram_quietly(&mut self, r: Range) -> Result<(), MapError> {
        self.work.table_updates += 1;
        self.quietly(|map| map.map_range(&region(r), attributes(HostMemKind::Ram)))
    }

    /// Runs `f` with aarch64-paging's live-table checks and per-entry TLB maintenance off:
    /// each costs a walk of the range on every call, which made a lend of single pages cost
    /// thousands of instructions per page. Only for the changes above, which the
    /// architecture allows on a live table without them.
    fn quietly(
        &mut self,
        f: impl FnOnce(&mut IdMap<Stage2>) -> Result<(), MapError>,
    ) -> Result<(), MapError> {
        self.map.mark_inactive();
        let result = f(&mut self.map);
        self.map.mark_active();
        result
    }

    /// Maps `ranges` back to the host (a reclaim, or a lend undone). Only host RAM of the
    /// boot layout that is not lent under another handle is mapped. As in `lend`, the
    /// ranges inside one block that come one after the other go together.
    pub fn restore(&mut self, ranges: &[Range]) -> Result<(), Stage2Error> {
        let mut result = Ok(());
        for group in PageMask::groups(ranges) {
            let step = match group {
                RangeGroup::Batch(batch, pending) => self.restore_batch(&batch, pending),
                RangeGroup::Alone(r) => self.restore_one(r),
            };
            if let Err(e) = step {
                result = Err(e);
            }
        }
        invalidate_all();
        result
    }

    /// Maps the pages of `batch` (those of `ranges`, inside one block) back if all are
    /// lent; otherwise goes range by range.
    fn restore_batch(&mut self, batch: &PageMask, ranges: &[Range]) -> Result<(), Stage2Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let (all, words) = self.lent.take_pages(batch);
        self.work.bitmap_words += words;
        if !all {
            let mut result = Ok(());
            for r in ranges {
                if let Err(e) = self.restore_one(*r) {
                    result = Err(e);
                }
            }
            return result;
        }
        let block = Range::new(batch.base(), batch.base() + BLOCK);
        if let Ok(BlockMap::Pages(table)) = self.block_map(block) {
            // Invalid entries (the lend unmapped them) become valid pages again.
            self.work.entries += table.set_pages(batch, ram_page);
            return Ok(());
        }
        // The pages are the host's again (their bits are clear): map every range, and
        // report the first failure.
        let mut result = Ok(());
        for r in ranges {
            if let Err(e) = self.map_ram_quietly(*r) {
                result = Err(e.into());
            }
        }
        result
    }

    /// Maps one range back: only the pages of `r` that are lent come back, never another
    /// handle's, and a range restored twice (a rollback after a rollback) changes nothing.
    fn restore_one(&mut self, r: Range) -> Result<(), Stage2Error> {
        let (all, words) = self.lent.take(r);
        self.work.bitmap_words += words;
        if all {
            self.map_ram_quietly(r).map_err(Stage2Error::from)
        } else {
            self.map_host_ram(r)
        }
    }

    /// Maps the host's RAM inside `cover`, minus what is lent, as host RAM. Only where
    /// nothing valid is mapped, or the same mapping is (a rollback), so it runs quietly.
    fn map_host_ram(&mut self, cover: Range) -> Result<(), Stage2Error> {
        let mut pieces: Vec<Range> = Vec::new();
        for (r, kind) in &self.layout {
            if *kind != HostMemKind::Ram || !r.overlaps(&cover) {
                continue;
            }
            let ram = Range::new(r.start.max(cover.start), r.end.min(cover.end));
            self.work.bitmap_words += self.lent.unlent_runs(ram, |piece| pieces.push(piece));
        }
        for piece in pieces {
            self.map_ram_quietly(piece)?;
        }
        Ok(())
    }

    pub fn root(&self) -> u64 {
        self.map.root_address().0 as u64
    }

    /// The operations done so far (for tests and the counters).
    pub fn work(&self) -> Work {
        self.work
    }

    /// How many pages are lent now.
    pub fn lent_pages(&self) -> u64 {
        self.lent.count()
    }
}

fn region(r: Range) -> MemoryRegion {
    MemoryRegion::new(r.start as usize, r.end as usize)
}

/// Drops every stage-1 and stage-2 translation of the host (VMID 0) on all CPUs: per-IPA
/// invalidation alone would leave combined stage-1+2 entries behind.
fn invalidate_all() {
    #[cfg(all(target_arch = "aarch64", target_os = "none"))]
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

#[cfg(test)]
mod tests;
