//! Which pages of the host's RAM are lent, for the DMA table: one bit per 4 KiB page of
//! each RAM range the table was built with. Marking a lend and finding what the host still
//! owns in a block cost one word per 64 pages, whatever the number of ranges lent so far,
//! so a lend or reclaim of N ranges is linear in N (a list of lent ranges, subtracted from
//! every block a lend breaks and every range a reclaim maps back, made it quadratic).
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

use alloc::vec::Vec;

use crate::platform::memmap::Range;

const PAGE: u64 = 0x1000;

/// One RAM range and its bits; bit `i` is the page at `base + i * PAGE`.
struct Region {
    ram: Range,
    /// `ram.start` rounded down to a page.
    base: u64,
    bits: Vec<u64>,
}

/// The lent-page bitmap. Its size is fixed when the table is built (RAM / 32768: 32 KiB for
/// 1 GiB), so a lend never allocates for it.
pub(super) struct LentPages {
    regions: Vec<Region>,
}

impl LentPages {
    pub(super) fn new(ram: &[Range]) -> Self {
        let regions = ram
            .iter()
            .filter(|r| !r.is_empty())
            .map(|r| {
                let base = r.start & !(PAGE - 1);
                let pages = r.end.div_ceil(PAGE) - base / PAGE;
                Region {
                    ram: *r,
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
                let start = r.start.max(g.ram.start);
                let end = r.end.min(g.ram.end);
                (i, (start - g.base) / PAGE, (end - g.base).div_ceil(PAGE))
            })
    }

    /// Marks the pages `r` touches as lent (or not); returns the words written.
    pub(super) fn set(&mut self, r: Range, lent: bool) -> u64 {
        let spans: Vec<(usize, u64, u64)> = self.spans(r).collect();
        let mut words = 0;
        for (i, first, end) in spans {
            let Some(g) = self.regions.get_mut(i) else {
                continue;
            };
            let mut bit = first;
            while bit < end {
                let in_word = (64 - bit % 64).min(end - bit);
                let mask = if in_word == 64 {
                    u64::MAX
                } else {
                    ((1u64 << in_word) - 1) << (bit % 64)
                };
                if let Some(w) = g.bits.get_mut((bit / 64) as usize) {
                    if lent {
                        *w |= mask;
                    } else {
                        *w &= !mask;
                    }
                }
                words += 1;
                bit += in_word;
            }
        }
        words
    }

    /// (whether a page `r` touches is lent, words read).
    pub(super) fn any(&self, r: Range) -> (bool, u64) {
        let mut words = 0;
        for (i, first, end) in self.spans(r) {
            let Some(g) = self.regions.get(i) else {
                continue;
            };
            let (at, w) = Self::next(&g.bits, first, end, true);
            words += w;
            if at < end {
                return (true, words);
            }
        }
        (false, words)
    }

    /// The first bit in `from..end` of `bits` that is `lent` (or `end`), and the words read.
    fn next(bits: &[u64], from: u64, end: u64, lent: bool) -> (u64, u64) {
        let mut bit = from;
        let mut words = 0;
        while bit < end {
            words += 1;
            let w = bits.get((bit / 64) as usize).copied().unwrap_or(0);
            let w = (if lent { w } else { !w }) >> (bit % 64);
            if w != 0 {
                return ((bit + u64::from(w.trailing_zeros())).min(end), words);
            }
            bit = (bit / 64 + 1) * 64;
        }
        (end, words)
    }

    /// Calls `f` with each run of the host's RAM inside `cover` that is not lent, in
    /// order; returns the words read.
    pub(super) fn unlent_runs(&self, cover: Range, mut f: impl FnMut(Range)) -> u64 {
        let mut words = 0;
        for (i, first, end) in self.spans(cover) {
            let Some(g) = self.regions.get(i) else {
                continue;
            };
            let (lo, hi) = (cover.start.max(g.ram.start), cover.end.min(g.ram.end));
            let mut bit = first;
            while bit < end {
                let (start, w1) = Self::next(&g.bits, bit, end, false);
                let (stop, w2) = Self::next(&g.bits, start, end, true);
                words += w1 + w2;
                if start < stop {
                    f(Range::new(
                        (g.base + start * PAGE).max(lo),
                        (g.base + stop * PAGE).min(hi),
                    ));
                }
                bit = stop;
            }
        }
        words
    }

    /// Whether no page is lent.
    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.regions.iter().all(|g| g.bits.iter().all(|&w| w == 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    fn runs(l: &LentPages, cover: Range) -> Vec<Range> {
        let mut out = vec![];
        l.unlent_runs(cover, |r| out.push(r));
        out
    }

    #[test]
    fn runs_are_ram_minus_lent() {
        let ram = [
            Range::new(0x4000_0000, 0x4010_0000),
            Range::new(0x4020_0000, 0x4030_0000),
        ];
        let mut l = LentPages::new(&ram);
        let all = Range::new(0x3000_0000, 0x5000_0000);
        assert_eq!(runs(&l, all), ram);
        l.set(Range::new(0x4000_1000, 0x4000_3000), true);
        l.set(Range::new(0x400f_f000, 0x4020_1000), true);
        assert_eq!(
            runs(&l, all),
            [
                Range::new(0x4000_0000, 0x4000_1000),
                Range::new(0x4000_3000, 0x400f_f000),
                Range::new(0x4020_1000, 0x4030_0000),
            ]
        );
        // A cover clips the runs.
        assert_eq!(
            runs(&l, Range::new(0x4000_0800, 0x4000_5000)),
            [
                Range::new(0x4000_0800, 0x4000_1000),
                Range::new(0x4000_3000, 0x4000_5000)
            ]
        );
        assert!(l.any(Range::new(0x4000_2000, 0x4000_3000)).0);
        assert!(l.any(Range::new(0x4000_0000, 0x4000_8000)).0);
        assert!(!l.any(Range::new(0x4000_3000, 0x400f_f000)).0);
        assert!(l.any(Range::new(0x4010_0000, 0x4020_2000)).0);
        l.set(Range::new(0x4000_1000, 0x4000_2000), false);
        assert_eq!(
            runs(&l, Range::new(0x4000_0000, 0x4000_4000)),
            [
                Range::new(0x4000_0000, 0x4000_2000),
                Range::new(0x4000_3000, 0x4000_4000)
            ]
        );
        assert!(!l.is_empty());
        l.set(all, false);
        assert!(l.is_empty());
        assert_eq!(runs(&l, all), ram);
        // Outside RAM: nothing to mark, nothing to map.
        assert_eq!(l.set(Range::new(0x1000, 0x2000), true), 0);
        assert_eq!(runs(&l, Range::new(0x1000, 0x2000)), []);
    }
}
