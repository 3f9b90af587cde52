//! The DMA table: a stage-1 translation table (VMSAv8-64, EL1&0 format, 4 KiB granule,
//! 39-bit input addresses) that identity-maps exactly the memory the host owns, and follows
//! that ownership as pages are lent to the secure world and reclaimed.
//!
//! Changes follow the rules the SMMU shares with the PE (Arm IHI 0070 §3.21.1, DDI 0487
//! D8.16.1 "break-before-make"): a live 2 MiB block is never split in place. To lend a page
//! inside one, the whole block is unmapped first, the SMMU's cached translations are
//! invalidated and the invalidation completes, and only then is what the host keeps mapped
//! again in pages. A block once split stays split, so later lends in it only unmap pages.
//! No table is ever freed: unmapping never covers a whole block that is already split
//! (aarch64-paging would free the level-3 table, which the SMMU's walk caches could still
//! use until the invalidation completes).

use core::alloc::Layout;
use core::ptr::NonNull;

use aarch64_paging::Mapping;
use aarch64_paging::descriptor::{El1Attributes, PhysicalAddress};
use aarch64_paging::paging::{
    Constraints, El1And0, MemoryRegion, PAGE_SIZE, PageTable, Translation, VaRange,
};
use alloc::vec::Vec;

use super::SmmuError;
use crate::platform::memmap::{PageBitmap, PageEntries, PageMask, Range, RangeGroup};

/// Input address bits: a level-1 root with the 4 KiB granule (CD.T0SZ = 25).
pub const VA_BITS: u32 = 39;
/// The ASID of the one context descriptor (non-zero; entries are non-global so that
/// CMD_TLBI_NH_ASID drops them).
pub const ASID: u16 = 1;
const ROOT_LEVEL: usize = 1;
const PAGE: u64 = PAGE_SIZE as u64;
/// The largest block the table uses: 2 MiB. RAM is mapped in pieces of at most 512 MiB, so
/// that no 1 GiB block appears and a lend only ever breaks 2 MiB blocks.
const BLOCK: u64 = 0x20_0000;
const RAM_PIECE: u64 = 0x2000_0000;

/// Host RAM for DMA: MAIR attribute 0 (Normal write-back, see `desc::cd_stage1`), inner
/// shareable, accessed (no access-flag faults), read-write at both privileges (AP[1] set:
/// PCIe transactions are usually unprivileged), never executable, non-global (tagged with
/// [`ASID`]).
const DMA_RAM: El1Attributes = El1Attributes::VALID
    .union(El1Attributes::ATTRIBUTE_INDEX_0)
    .union(El1Attributes::INNER_SHAREABLE)
    .union(El1Attributes::ACCESSED)
    .union(El1Attributes::USER)
    .union(El1Attributes::NON_GLOBAL)
    .union(El1Attributes::UXN)
    .union(El1Attributes::PXN);

/// Where the table's pages come from: warden's heap (so never DMA-reachable), identity
/// mapped, with a list of them for cleaning to the point of coherency when the SMMU does
/// not snoop the CPU's caches.
#[derive(Debug, Default)]
pub struct Tables {
    pages: Vec<usize>,
    freed: usize,
}

impl Translation<El1Attributes> for Tables {
    fn allocate_table(&mut self) -> (NonNull<PageTable<El1Attributes>>, PhysicalAddress) {
        let table = PageTable::new();
        let pa = table.as_ptr() as usize;
        self.pages.push(pa);
        (table, PhysicalAddress(pa))
    }

    unsafe fn deallocate_table(&mut self, table: NonNull<PageTable<El1Attributes>>) {
        self.freed += 1;
        self.pages.retain(|&p| p != table.as_ptr() as usize);
        // SAFETY: the caller promises `table` came from `allocate_table`, which allocated
        // it with the global allocator and this layout (`PageTable::new`).
        unsafe {
            alloc::alloc::dealloc(
                table.as_ptr().cast(),
                Layout::new::<PageTable<El1Attributes>>(),
            )
        };
    }

    #[allow(clippy::expect_used)]
    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<El1Attributes>> {
        // Only ever called with addresses `allocate_table` returned (identity-mapped heap
        // pages), never 0.
        NonNull::new(pa.0 as *mut PageTable<El1Attributes>).expect("table at address 0")
    }
}

/// What the SMMU must do around table changes.
pub trait TableSync {
    /// Makes the tables' memory visible to the SMMU (clean to the point of coherency when
    /// it is not coherent; a barrier).
    fn publish(&mut self, tables: &[usize]);
    /// Publishes, then invalidates every translation the SMMU may have cached from the
    /// table and waits for the invalidation to complete (CMD_TLBI_NH_ASID, CMD_SYNC).
    fn invalidate(&mut self, tables: &[usize]) -> Result<(), SmmuError>;
}

/// What covers one 2 MiB block in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockState {
    /// A valid 2 MiB block.
    Block,
    /// A level-3 table (the block was split before), whose entries a lend or reclaim
    /// writes in place.
    Pages(PageEntries),
    /// An invalid entry at level 2 or above.
    Unmapped,
    /// A valid block larger than 2 MiB: never built; refused rather than split live.
    Huge,
}

pub struct DmaTable {
    map: Mapping<Tables, El1And0>,
    /// RAM currently lent to the secure world, hence unmapped: a page bitmap, so that
    /// neither a lend nor a reclaim scans the other lends.
    lent: PageBitmap,
    /// Bitmap words and table updates spent on lends and reclaims so far: the unit tests
    /// bound the work per range with it.
    work: u64,
}

// SAFETY: the tables are only reached through the lock that owns the `DmaTable`; the raw
// pointers inside `Mapping` point at heap pages owned by it alone.
unsafe impl Send for DmaTable {}

/// The unit tests mark the mapping active (see `new`); aarch64-paging refuses to drop an
/// active mapping. On the target a `DmaTable` lives for as long as warden runs.
#[cfg(test)]
impl Drop for DmaTable {
    fn drop(&mut self) {
        self.map.mark_inactive();
    }
}

fn region(r: Range) -> MemoryRegion {
    MemoryRegion::new(r.start as usize, r.end as usize)
}

/// `r` cut at every multiple of `piece`.
fn pieces(r: Range, piece: u64) -> impl Iterator<Item = Range> {
    let mut start = r.start;
    core::iter::from_fn(move || {
        (start < r.end).then(|| {
            let end = ((start / piece).saturating_add(1))
                .saturating_mul(piece)
                .min(r.end);
            let p = Range::new(start, end);
            start = end;
            p
        })
    })
}

impl DmaTable {
    /// A table mapping `ram` (the host's RAM, warden's memory already excluded).
    pub fn new(ram: &[Range]) -> Result<Self, SmmuError> {
        let mut map = Mapping::with_asid_and_va_range(
            Tables::default(),
            ASID as usize,
            ROOT_LEVEL,
            El1And0,
            VaRange::Lower,
        );
        let mut ram = ram.to_vec();
        ram.sort();
        for r in &ram {
            for p in pieces(*r, RAM_PIECE) {
                map.map_range(
                    &region(p),
                    PhysicalAddress(p.start as usize),
                    DMA_RAM,
                    Constraints::empty(),
                )
                .map_err(|_| SmmuError::Table)?;
            }
        }
        // In unit tests the library then checks every change for break-before-make
        // violations. On the target it stays "inactive": its own TLB maintenance is for
        // the CPU, and the SMMU's is done through `TableSync`.
        #[cfg(test)]
        map.mark_active();
        Ok(Self {
            map,
            // The host's RAM as built at boot (warden's memory excluded).
            lent: PageBitmap::new(ram.iter().copied()),
            work: 0,
        })
    }

    /// The root table's physical address (CD.TTB0).
    pub fn root(&self) -> u64 {
        self.map.root_address().0 as u64
    }

    /// Every page of the table.
    pub fn tables(&self) -> &[usize] {
        &self.map.translation().pages
    }

    /// Whether a DMA to `addr` translates.
    pub fn maps(&self, addr: u64) -> bool {
        let mut valid = false;
        let page = addr & !(PAGE - 1);
        let r = region(Range::new(page, page.saturating_add(PAGE)));
        let _ = self.map.walk_range(&r, &mut |_, d, _| {
            valid = d.is_valid();
            Ok(())
        });
        valid
    }

    /// How the 2 MiB block at `block` (aligned) is mapped: one walk from the root.
    fn block_state(&self, block: u64) -> BlockState {
        let mut state = BlockState::Unmapped;
        let r = region(Range::new(block, block.saturating_add(PAGE)));
        let _ = self.map.walk_range(&r, &mut |_, d, level| {
            state = match level {
                3 => {
                    let first = core::ptr::from_ref(d).expose_provenance();
                    // SAFETY: `d` is entry 0 (`block` is aligned) of the level-3 table that
                    // maps `block`, allocated by `Tables` (which exposes its address); the
                    // users hold `self` by `&mut` and forget the value at every call into
                    // the library, which alone could free the table (and never does here).
                    BlockState::Pages(unsafe { PageEntries::new(first, block) })
                }
                2 if d.is_valid() => BlockState::Block,
                _ if d.is_valid() => BlockState::Huge,
                _ => BlockState::Unmapped,
            };
            Ok(())
        });
        state
    }

    fn set(&mut self, r: Range, flags: El1Attributes) -> Result<(), SmmuError> {
        self.work += 1;
        self.map
            .map_range(
                &region(r),
                PhysicalAddress(r.start as usize),
                flags,
                Constraints::empty(),
            )
            .map_err(|_| SmmuError::Table)
    }

    /// Unmaps `part`, which lies in one 2 MiB block that is already split: in two halves
    /// if it is the whole block, so that no level-3 table is freed.
    fn unmap_pages(&mut self, part: Range) -> Result<(), SmmuError> {
        if part.len() == BLOCK {
            let mid = part.start + BLOCK / 2;
            self.set(Range::new(part.start, mid), El1Attributes::empty())?;
            self.set(Range::new(mid, part.end), El1Attributes::empty())
        } else {
            self.set(part, El1Attributes::empty())
        }
    }

    /// The host's RAM inside `cover`, minus what is lent: one bitmap word per 64 pages of
    /// `cover`, however many ranges are lent.
    fn host_ram_within(&mut self, cover: Range) -> Vec<Range> {
        let mut out = Vec::new();
        self.work += self.lent.unlent_runs(cover, |r| out.push(r));
        out
    }

    fn mark_lent(&mut self, ranges: &[Range], lent: bool) {
        for r in ranges {
            self.work += self.lent.set(*r, lent);
        }
    }

    /// Bitmap words and table updates spent so far.
    #[cfg(test)]
    fn work(&self) -> u64 {
        self.work
    }

    /// Maps what the host owns inside `covers` (after a failed lend, or a reclaim).
    fn map_host_ram(&mut self, covers: &[Range]) -> Result<(), SmmuError> {
        for cover in covers {
            for piece in self.host_ram_within(*cover) {
                for p in pieces(piece, RAM_PIECE) {
                    self.set(p, DMA_RAM)?;
                }
            }
        }
        Ok(())
    }

    /// Removes `ranges` (page-aligned host RAM being lent) from the table. When this
    /// returns `Ok`, no DMA can reach them: the SMMU's cached translations have been
    /// invalidated and the invalidation has completed. On an error nothing is lent and
    /// the table maps what it mapped before.
    pub fn lend(&mut self, ranges: &[Range], sync: &mut impl TableSync) -> Result<(), SmmuError> {
        // Each page is lent once at a time (the stage-2 refuses the rest first): the
        // bitmap keeps no count, so a second lend of a page would be undone by the first
        // reclaim.
        for (i, r) in ranges.iter().enumerate() {
            let (taken, words) = self.lent.any(*r);
            self.work += words;
            if taken {
                self.mark_lent(ranges.get(..i).unwrap_or_default(), false);
                return Err(SmmuError::AlreadyLent);
            }
            self.work += self.lent.set(*r, true);
        }
        let mut broken: Vec<Range> = Vec::new();
        let result = self.break_and_unmap(ranges, &mut broken).and_then(|()| {
            // Break, then invalidate: nothing of the old blocks or lent pages is cached
            // once this completes.
            let tables = self.tables().to_vec();
            sync.invalidate(&tables)
        });
        let result = result.and_then(|()| {
            broken
                .iter()
                .try_for_each(|block| self.remap_broken(*block))
        });
        if result.is_err() {
            self.mark_lent(ranges, false);
            let mut covers = broken;
            covers.extend(ranges.iter().map(|r| r.align_out(BLOCK)));
            let _ = self.map_host_ram(&covers);
        }
        let tables = self.tables().to_vec();
        sync.publish(&tables);
        result
    }

    /// Unmaps `ranges`, marked lent. The ranges inside one block that come one after the
    /// other (a lend of scattered pages) go together: one walk to the block's table, then
    /// their entries in place.
    fn break_and_unmap(
        &mut self,
        ranges: &[Range],
        broken: &mut Vec<Range>,
    ) -> Result<(), SmmuError> {
        for group in PageMask::groups(ranges) {
            let r = match group {
                RangeGroup::Batch(batch, _) => {
                    self.unmap_batch(&batch, broken)?;
                    continue;
                }
                RangeGroup::Alone(r) => r,
            };
            for block in pieces(r.align_out(BLOCK), BLOCK) {
                let part = Range::new(r.start.max(block.start), r.end.min(block.end));
                match self.block_state(block.start) {
                    BlockState::Block => {
                        self.set(block, El1Attributes::empty())?;
                        broken.push(block);
                    }
                    BlockState::Pages(_) => self.unmap_pages(part)?,
                    BlockState::Unmapped => {}
                    BlockState::Huge => return Err(SmmuError::Table),
                }
            }
        }
        Ok(())
    }

    /// Unmaps the pages of `batch` (inside one block).
    fn unmap_batch(&mut self, batch: &PageMask, broken: &mut Vec<Range>) -> Result<(), SmmuError> {
        if batch.is_empty() {
            return Ok(());
        }
        let block = Range::new(batch.base(), batch.base() + BLOCK);
        match self.block_state(block.start) {
            BlockState::Block => {
                self.set(block, El1Attributes::empty())?;
                broken.push(block);
            }
            // Valid pages become invalid: no break needed (IHI 0070 §3.21.1); the
            // invalidation that ends the lend follows.
            BlockState::Pages(entries) => {
                self.work += 1;
                entries.set_pages(batch, |_| 0);
            }
            BlockState::Unmapped => {}
            BlockState::Huge => return Err(SmmuError::Table),
        }
        Ok(())
    }

    /// Maps what the host keeps of `block`, just broken and invalidated, in pages: the
    /// first run through the library, which builds the level-3 table, the others in place.
    fn remap_broken(&mut self, block: Range) -> Result<(), SmmuError> {
        let runs = self.host_ram_within(block);
        let mut entries = None;
        let last = runs.len().saturating_sub(1);
        for (i, run) in runs.into_iter().enumerate() {
            match entries {
                Some(e) => {
                    self.work += 1;
                    PageEntries::set_range(e, run, dma_page);
                }
                None => {
                    self.set(run, DMA_RAM)?;
                    if i < last
                        && let BlockState::Pages(e) = self.block_state(block.start)
                    {
                        entries = Some(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// Maps `ranges` back (a reclaim of exactly the ranges of an earlier lend, as the
    /// stage-2 checked them): new mappings only, so no invalidation is needed. As in
    /// `lend`, the ranges inside one block that come one after the other go together.
    pub fn restore(
        &mut self,
        ranges: &[Range],
        sync: &mut impl TableSync,
    ) -> Result<(), SmmuError> {
        let mut result = Ok(());
        for group in PageMask::groups(ranges) {
            result = result.and(match group {
                RangeGroup::Batch(batch, pending) => self.restore_batch(&batch, pending),
                RangeGroup::Alone(r) => self.restore_ranges(core::slice::from_ref(&r)),
            });
        }
        let tables = self.tables().to_vec();
        sync.publish(&tables);
        result
    }

    /// Maps the pages of `batch` (those of `ranges`, inside one block) back in place if
    /// they are all lent and the block is split; otherwise range by range.
    fn restore_batch(&mut self, batch: &PageMask, ranges: &[Range]) -> Result<(), SmmuError> {
        if batch.is_empty() {
            return Ok(());
        }
        if let BlockState::Pages(entries) = self.block_state(batch.base()) {
            let (all, words) = self.lent.take_pages(batch);
            self.work += words;
            if all {
                self.work += 1;
                entries.set_pages(batch, dma_page);
                return Ok(());
            }
        }
        self.restore_ranges(ranges)
    }

    /// Marks `ranges` not lent and maps what the host owns in them.
    fn restore_ranges(&mut self, ranges: &[Range]) -> Result<(), SmmuError> {
        self.mark_lent(ranges, false);
        self.map_host_ram(ranges)
    }
}

/// The level-3 entry of a page of host RAM at `pa`, as the library writes it.
fn dma_page(pa: u64) -> u64 {
    pa | (DMA_RAM | El1Attributes::TABLE_OR_PAGE).bits() as u64
}

#[cfg(test)]
mod tests;
