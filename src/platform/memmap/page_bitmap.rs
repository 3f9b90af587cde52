//! Which pages of the host's RAM are lent: one bit per 4 KiB page of each RAM range the
//! bitmap was built with, shared by the host's stage-2 and the SMMU's DMA table. Marking a
//! lend, checking one, and finding what the host still owns in a block cost one word per 64
//! pages, whatever the number of ranges lent so far, so a lend or reclaim of N ranges is
//! linear in N (a list of lent ranges, subtracted from every block a lend breaks and every
//! range a reclaim maps back, made it quadratic). Every operation returns the words it
//! read or wrote, so that the users' unit tests can hold that bound.

use alloc::vec::Vec;

// A bit stands for one page: the granule of both the stage-2 and the DMA table.
use super::{PAGE, Range};

/// One RAM range and its bits; bit `i` is the page at `base + i * PAGE`.
struct Region {
    ram: Range,
    /// `ram.start` rounded down to a page.
    base: u64,
    bits: Vec<u64>,
}

impl Region {
    /// The bits `first..end` of the pages `r` (which overlaps this region) touches here.
    fn span(&self, r: Range) -> (u64, u64) {
        let start = r.start.max(self.ram.start);
        let end = r.end.min(self.ram.end);
        ((start - self.base) / PAGE, (end - self.base).div_ceil(PAGE))
    }
}

/// A set of pages inside one window of 512 pages (one 2 MiB block, as the stage-2 and the
/// DMA table split them), as 8 words of bits: the pages of the ranges of one lend or
/// reclaim that fall in one block, gathered so that the bitmap and the block's level-3
/// table are each touched once for all of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageMask {
    /// The window's first page; a multiple of `WINDOW`.
    base: u64,
    words: [u64; WORDS],
    /// The lowest and highest page (exclusive) added.
    span: Range,
}

/// One group of `PageMask::groups`.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeGroup<'a> {
    /// The pages of `ranges`, all inside the mask's window (for a range-by-range fallback).
    Batch(PageMask, &'a [Range]),
    Alone(Range),
}

/// The iterator of `PageMask::groups`.
pub struct RangeGroups<'a> {
    ranges: &'a [Range],
    at: usize,
}

impl<'a> Iterator for RangeGroups<'a> {
    type Item = RangeGroup<'a>;

    fn next(&mut self) -> Option<RangeGroup<'a>> {
        let first = self.at;
        let r = *self.ranges.get(first)?;
        self.at += 1;
        let mut mask = PageMask::new(r.start);
        if (r.start == mask.base && r.len() == WINDOW) || !mask.add(r) {
            return Some(RangeGroup::Alone(r));
        }
        while let Some(&next) = self.ranges.get(self.at)
            && mask.add(next)
        {
            self.at += 1;
        }
        let batch = self.ranges.get(first..self.at).unwrap_or_default();
        Some(RangeGroup::Batch(mask, batch))
    }
}

const WORDS: usize = 8;
/// Pages in a `PageMask`'s window.
pub const WINDOW_PAGES: u64 = WORDS as u64 * 64;
/// The bytes a `PageMask`'s window covers (2 MiB).
pub const WINDOW: u64 = WINDOW_PAGES * PAGE;

impl PageMask {
    /// An empty set in the window that holds `addr`.
    pub fn new(addr: u64) -> Self {
        Self {
            base: addr & !(WINDOW - 1),
            words: [0; WORDS],
            span: Range::new(u64::MAX, 0),
        }
    }

    /// The window's first address.
    pub fn base(&self) -> u64 {
        self.base
    }

    pub fn is_empty(&self) -> bool {
        self.span.is_empty()
    }

    /// The lowest to the highest page of the set (empty if the set is).
    pub fn span(&self) -> Range {
        self.span
    }

    /// Adds the pages of `r` (page-aligned, non-empty); false, and nothing added, if `r`
    /// leaves the window or holds a page already in the set.
    #[inline]
    pub fn add(&mut self, r: Range) -> bool {
        if r.is_empty() || r.start < self.base || r.end > self.base + WINDOW {
            return false;
        }
        let (first, end) = (
            (r.start - self.base) / PAGE,
            (r.end - self.base).div_ceil(PAGE),
        );
        let added = if end - first == 1 {
            // One page, the common constituent: one bit.
            let bit = 1u64 << (first % 64);
            match self.words.get_mut((first / 64) as usize) {
                Some(v) if *v & bit == 0 => {
                    *v |= bit;
                    true
                }
                _ => false,
            }
        } else {
            self.add_pages(first, end)
        };
        if added {
            self.span = Range::new(self.span.start.min(r.start), self.span.end.max(r.end));
        }
        added
    }

    /// `add` for the pages `first..end` of the window.
    fn add_pages(&mut self, first: u64, end: u64) -> bool {
        let words = &mut self.words;
        let mut free = true;
        PageBitmap::for_words(first, end, |w, mask| {
            free = words.get(w).is_some_and(|v| v & mask == 0);
            free
        });
        if free {
            PageBitmap::for_words(first, end, |w, mask| {
                if let Some(v) = words.get_mut(w) {
                    *v |= mask;
                }
                true
            });
        }
        free
    }

    /// `ranges` in the order given, grouped for the page tables: the ranges that come one
    /// after the other inside one window, each only part of it and no two sharing a page,
    /// go as one `Batch` (a scattered lend's pages, sorted as the proxy hands them over);
    /// any other range goes `Alone` (a whole window, one across windows, an empty one). The
    /// stage-2 and the SMMU table walk a reclaim this way: one table walk per batch.
    pub fn groups(ranges: &[Range]) -> RangeGroups<'_> {
        RangeGroups { ranges, at: 0 }
    }

    /// Calls `f` with the index in the window (0..512) of each page in the set, in order.
    pub fn for_each_index(&self, mut f: impl FnMut(u64)) {
        for (k, &word) in self.words.iter().enumerate() {
            let mut w = word;
            while w != 0 {
                f(k as u64 * 64 + u64::from(w.trailing_zeros()));
                w &= w - 1;
            }
        }
    }
}

/// The 512 entries of a level-3 translation table (4 KiB granule, 8-byte entries) that maps
/// one `PageMask` window, written in place: what a lend or reclaim of pages in a block that
/// is already split changes, without a walk from the root per page. Only level-3 entries
/// going from valid to invalid or back are written through it, which needs no
/// break-before-make (DDI 0487 D8.16.1, IHI 0070 §3.21.1); the TLB or SMMU invalidation
/// that ends the lend follows, after a DSB that makes the writes visible to the walker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageEntries {
    first: usize,
    base: u64,
}

impl PageEntries {
    /// The table whose entry 0 is at address `first` and which maps the window at `base`.
    ///
    /// # Safety
    ///
    /// `first` is the address of entry 0 of a live level-3 table that maps the 2 MiB at
    /// `base` (a multiple of `WINDOW`); the table library that owns it keeps its entries
    /// as atomics and exposed the table's address (aarch64-paging's translations hand it
    /// out as the table's physical address); and while the value is used, the table stays
    /// allocated and nothing else writes it: its owner holds the library by `&mut` and
    /// forgets the value at every call into the library.
    pub unsafe fn new(first: usize, base: u64) -> Self {
        Self { first, base }
    }

    fn store(self, index: u64, value: u64) {
        let slot = core::ptr::with_exposed_provenance_mut::<usize>(
            self.first + (index % WINDOW_PAGES) as usize * size_of::<usize>(),
        );
        // SAFETY: entry `index % 512` of the table `new`'s caller vouched for, written as
        // the atomic its library keeps it as.
        let slot = unsafe { core::sync::atomic::AtomicUsize::from_ptr(slot) };
        slot.store(value as usize, core::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the entry of each page of `part` (clipped to the window) to `entry(page's
    /// address)`; returns how many it set.
    pub fn set_range(self, part: Range, entry: impl Fn(u64) -> u64) -> u64 {
        let first = (part.start.saturating_sub(self.base) / PAGE).min(WINDOW_PAGES);
        let end = (part.end.saturating_sub(self.base) / PAGE).min(WINDOW_PAGES);
        for index in first..end {
            self.store(index, entry(self.base + index * PAGE));
        }
        end.saturating_sub(first)
    }

    /// Sets the entry of each page of `pages` to `entry(page's address)`; returns how many
    /// it set (none if `pages` is another window's).
    pub fn set_pages(self, pages: &PageMask, entry: impl Fn(u64) -> u64) -> u64 {
        if pages.base() != self.base {
            return 0;
        }
        let mut n = 0;
        pages.for_each_index(|index| {
            self.store(index, entry(self.base + index * PAGE));
            n += 1;
        });
        n
    }
}

/// Why `PageBitmap::lend` refused a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unlendable {
    /// Empty, or not inside one RAM range of the bitmap.
    NotRam,
    /// A page of it is lent already.
    Lent,
}

/// The lent-page bitmap. Its size is fixed when it is built (RAM / 32768: 32 KiB for
/// 1 GiB), so a lend never allocates for it.
pub struct PageBitmap {
    regions: Vec<Region>,
}

impl PageBitmap {
    /// A bitmap over `ram`, no page lent.
    pub fn new(ram: impl IntoIterator<Item = Range>) -> Self {
        let regions = ram
            .into_iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                let base = r.start & !(PAGE - 1);
                let pages = r.end.div_ceil(PAGE) - base / PAGE;
                Region {
                    ram: r,
                    base,
                    bits: alloc::vec![0u64; pages.div_ceil(64) as usize],
                }
            })
            .collect();
        Self { regions }
    }

    /// For each region `r` overlaps: the region and the bits `first..end` of the pages
    /// `r` touches there.
    fn spans(&self, r: Range) -> impl Iterator<Item = (usize, u64, u64)> + '_ {
        self.regions
            .iter()
            .enumerate()
            .filter(move |(_, g)| g.ram.overlaps(&r))
            .map(move |(i, g)| {
                let (first, end) = g.span(r);
                (i, first, end)
            })
    }

    /// Calls `f(word index, mask)` for the words that hold bits `first..end`, in order,
    /// until it returns false; returns how many words it was called for.
    fn for_words(first: u64, end: u64, mut f: impl FnMut(usize, u64) -> bool) -> u64 {
        let mut bit = first;
        let mut words = 0;
        while bit < end {
            let in_word = (64 - bit % 64).min(end - bit);
            let mask = if in_word == 64 {
                u64::MAX
            } else {
                ((1u64 << in_word) - 1) << (bit % 64)
            };
            words += 1;
            if !f((bit / 64) as usize, mask) {
                break;
            }
            bit += in_word;
        }
        words
    }

    /// Marks the pages `r` touches as lent (or not); returns the words written. No
    /// allocation: a lend calls this once per range.
    pub fn set(&mut self, r: Range, lent: bool) -> u64 {
        let mut words = 0;
        for g in self.regions.iter_mut().filter(|g| g.ram.overlaps(&r)) {
            let (first, end) = g.span(r);
            let bits = &mut g.bits;
            words += Self::for_words(first, end, |w, mask| {
                if let Some(v) = bits.get_mut(w) {
                    if lent {
                        *v |= mask;
                    } else {
                        *v &= !mask;
                    }
                }
                true
            });
        }
        words
    }

    /// The region that holds all of `r` (non-empty), and the bits `first..end` of its pages.
    fn holder(&self, r: Range) -> Option<(usize, u64, u64)> {
        if r.is_empty() {
            return None;
        }
        let i = self
            .regions
            .iter()
            .position(|g| g.ram.start <= r.start && r.end <= g.ram.end)?;
        let g = self.regions.get(i)?;
        Some((
            i,
            (r.start - g.base) / PAGE,
            (r.end - g.base).div_ceil(PAGE),
        ))
    }

    /// Marks every page of `r` lent, if `r` is inside one RAM range and none of its pages is
    /// lent yet: one look at each word, then one write. Returns the words touched; on an
    /// error nothing changed. A lend calls this once per range, so that one range costs one
    /// pass instead of a check of every range followed by a mark of every range.
    pub fn lend(&mut self, r: Range) -> Result<u64, Unlendable> {
        let (i, first, end) = self.holder(r).ok_or(Unlendable::NotRam)?;
        let Some(g) = self.regions.get_mut(i) else {
            return Err(Unlendable::NotRam);
        };
        let bits = &mut g.bits;
        let mut free = true;
        let mut words = Self::for_words(first, end, |w, mask| {
            free = bits.get(w).is_some_and(|v| v & mask == 0);
            free
        });
        if !free {
            return Err(Unlendable::Lent);
        }
        words += Self::for_words(first, end, |w, mask| {
            if let Some(v) = bits.get_mut(w) {
                *v |= mask;
            }
            true
        });
        Ok(words)
    }

    /// If every page of `r` is lent (and `r` is non-empty, inside one RAM range), marks them
    /// not lent: (true, words). Otherwise changes nothing: (false, words read).
    pub fn take(&mut self, r: Range) -> (bool, u64) {
        let Some((i, first, end)) = self.holder(r) else {
            return (false, 0);
        };
        let Some(g) = self.regions.get_mut(i) else {
            return (false, 0);
        };
        let bits = &mut g.bits;
        let mut all = true;
        let mut words = Self::for_words(first, end, |w, mask| {
            all = bits.get(w).is_some_and(|v| v & mask == mask);
            all
        });
        if !all {
            return (false, words);
        }
        words += Self::for_words(first, end, |w, mask| {
            if let Some(v) = bits.get_mut(w) {
                *v &= !mask;
            }
            true
        });
        (true, words)
    }

    /// The bitmap words that hold the pages of `m`'s span, and the words of `m` that go
    /// with them, when all of its pages lie in one RAM range whose bits line up with the
    /// window (which starts on a multiple of 64 pages there); `None` otherwise, which the
    /// callers meet only at the edges of RAM ranges and answer range by range.
    fn window_of<'a>(&'a mut self, m: &'a PageMask) -> Option<(&'a mut [u64], &'a [u64])> {
        let span = m.span();
        if span.is_empty() {
            return None;
        }
        let g = self
            .regions
            .iter_mut()
            .find(|g| g.ram.start <= span.start && span.end <= g.ram.end)?;
        let offset = m.base().checked_sub(g.base)? / PAGE;
        if !offset.is_multiple_of(64) {
            return None;
        }
        // The words of the window that the span touches.
        let lo = ((span.start - m.base()) / PAGE / 64) as usize;
        let hi = ((span.end - m.base()).div_ceil(PAGE).div_ceil(64) as usize).min(WORDS);
        let first = (offset / 64) as usize;
        let bits = g.bits.get_mut(first + lo..first + hi)?;
        let words = m.words.get(lo..hi)?;
        Some((bits, words))
    }

    /// Marks the pages of `m` lent if none is yet and all lie in one RAM range lined up
    /// with the window: (true, words). Otherwise (false, words read) and nothing changed;
    /// the caller then lends range by range (`lend`), which says why.
    pub fn lend_pages(&mut self, m: &PageMask) -> (bool, u64) {
        let Some((bits, words)) = self.window_of(m) else {
            return (false, 0);
        };
        let n = words.len() as u64;
        if bits.iter().zip(words).any(|(v, w)| v & w != 0) {
            return (false, n);
        }
        for (v, w) in bits.iter_mut().zip(words) {
            *v |= w;
        }
        (true, 2 * n)
    }

    /// Marks the pages of `m` not lent if every one is lent (in one RAM range lined up with
    /// the window): (true, words). Otherwise (false, words read) and nothing changed.
    pub fn take_pages(&mut self, m: &PageMask) -> (bool, u64) {
        let Some((bits, words)) = self.window_of(m) else {
            return (false, 0);
        };
        let n = words.len() as u64;
        if bits.iter().zip(words).any(|(v, w)| v & w != *w) {
            return (false, n);
        }
        for (v, w) in bits.iter_mut().zip(words) {
            *v &= !w;
        }
        (true, 2 * n)
    }

    /// (whether a page `r` touches is lent, words read).
    pub fn any(&self, r: Range) -> (bool, u64) {
        let mut words = 0;
        for (i, first, end) in self.spans(r) {
            let Some(g) = self.regions.get(i) else {
                continue;
            };
            let mut any = false;
            words += Self::for_words(first, end, |w, mask| {
                any = g.bits.get(w).is_some_and(|v| v & mask != 0);
                !any
            });
            if any {
                return (true, words);
            }
        }
        (false, words)
    }

    /// (whether every page of `r` is lent, words read); false unless `r` is non-empty and
    /// inside one RAM range.
    pub fn all(&self, r: Range) -> (bool, u64) {
        if r.is_empty() {
            return (false, 0);
        }
        let Some(g) = self
            .regions
            .iter()
            .find(|g| g.ram.start <= r.start && r.end <= g.ram.end)
        else {
            return (false, 0);
        };
        let (first, end) = ((r.start - g.base) / PAGE, (r.end - g.base).div_ceil(PAGE));
        let mut all = true;
        let words = Self::for_words(first, end, |w, mask| {
            all = g.bits.get(w).is_some_and(|v| v & mask == mask);
            all
        });
        (all, words)
    }

    /// Whether the page holding `addr` is lent.
    pub fn is_lent(&self, addr: u64) -> bool {
        let page = addr & !(PAGE - 1);
        self.any(Range::new(page, page.saturating_add(PAGE))).0
    }

    /// Calls `f` with each run of the RAM inside `cover` that is not lent, in order (a
    /// run does not cross from one RAM range to the next); returns the words read, one per
    /// word of `cover`'s pages.
    pub fn unlent_runs(&self, cover: Range, mut f: impl FnMut(Range)) -> u64 {
        let mut words = 0;
        for (i, first, end) in self.spans(cover) {
            let Some(g) = self.regions.get(i) else {
                continue;
            };
            let (lo, hi) = (cover.start.max(g.ram.start), cover.end.min(g.ram.end));
            let base = g.base;
            let mut emit = |from: u64, to: u64| {
                f(Range::new(
                    (base + from * PAGE).max(lo),
                    (base + to * PAGE).min(hi),
                ));
            };
            let mut run: Option<u64> = None;
            words += Self::for_words(first, end, |w, mask| {
                let v = g.bits.get(w).copied().unwrap_or(0);
                let start_bit = w as u64 * 64 + u64::from(mask.trailing_zeros());
                let end_bit = start_bit + u64::from(mask.count_ones());
                if v & mask == 0 {
                    run.get_or_insert(start_bit);
                } else if v & mask == mask {
                    if let Some(s) = run.take() {
                        emit(s, start_bit);
                    }
                } else {
                    for bit in start_bit..end_bit {
                        if v >> (bit % 64) & 1 == 0 {
                            run.get_or_insert(bit);
                        } else if let Some(s) = run.take() {
                            emit(s, bit);
                        }
                    }
                }
                true
            });
            if let Some(s) = run {
                emit(s, end);
            }
        }
        words
    }

    /// How many pages are lent.
    pub fn count(&self) -> u64 {
        self.regions
            .iter()
            .flat_map(|g| g.bits.iter())
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }

    /// Whether no page is lent.
    pub fn is_empty(&self) -> bool {
        self.regions.iter().all(|g| g.bits.iter().all(|&w| w == 0))
    }
}

#[cfg(test)]
mod tests;
