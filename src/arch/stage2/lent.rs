//! The lent-page bitmap of the host's stage-2.
// Host input must never be able to panic warden (as in the parent module).
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

use super::PAGE;
use crate::platform::memmap::{HostMemKind, Range};

/// One bit per 4 KiB page of each RAM region of the boot layout, set while the page is
/// lent. Its size is fixed at boot (RAM / 32768: 32 KiB for 1 GiB), so a lend never
/// allocates for it, and a query costs one word per 64 pages.
pub(super) struct LentPages {
    regions: Vec<(Range, Vec<u64>)>,
}

impl LentPages {
    pub(super) fn new(layout: &[(Range, HostMemKind)]) -> Self {
        let regions = layout
            .iter()
            .filter(|(_, k)| *k == HostMemKind::Ram)
            .map(|(r, _)| {
                let pages = r.len().div_ceil(PAGE);
                (*r, alloc::vec![0u64; pages.div_ceil(64) as usize])
            })
            .collect();
        Self { regions }
    }

    /// The bits of `r` (inside one region): (region index, first bit, bit count).
    pub(super) fn bits(&self, r: Range) -> Option<(usize, u64, u64)> {
        let i = self
            .regions
            .iter()
            .position(|(m, _)| m.start <= r.start && r.end <= m.end && !r.is_empty())?;
        let (m, _) = self.regions.get(i)?;
        let first = (r.start - m.start) / PAGE;
        Some((i, first, r.end.div_ceil(PAGE) - r.start / PAGE))
    }

    /// Calls `f(word index, mask)` for the words that hold bits `first..first + n`;
    /// returns how many.
    pub(super) fn for_words(first: u64, n: u64, mut f: impl FnMut(usize, u64) -> bool) -> u64 {
        let mut bit = first;
        let end = first + n;
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

    /// (whether any page of `r` is lent, words read).
    pub(super) fn any(&self, r: Range) -> (bool, u64) {
        let Some((i, first, n)) = self.bits(r) else {
            return (false, 0);
        };
        let Some((_, map)) = self.regions.get(i) else {
            return (false, 0);
        };
        let mut any = false;
        let words = Self::for_words(first, n, |w, mask| {
            any = map.get(w).is_some_and(|v| v & mask != 0);
            !any
        });
        (any, words)
    }

    /// (whether every page of `r` is lent, words read); false outside RAM.
    pub(super) fn all(&self, r: Range) -> (bool, u64) {
        let Some((i, first, n)) = self.bits(r) else {
            return (false, 0);
        };
        let Some((_, map)) = self.regions.get(i) else {
            return (false, 0);
        };
        let mut all = true;
        let words = Self::for_words(first, n, |w, mask| {
            all = map.get(w).is_some_and(|v| v & mask == mask);
            all
        });
        (all, words)
    }

    /// Sets or clears the bits of `r`; returns the words written.
    pub(super) fn set(&mut self, r: Range, lent: bool) -> u64 {
        let Some((i, first, n)) = self.bits(r) else {
            return 0;
        };
        let Some((_, map)) = self.regions.get_mut(i) else {
            return 0;
        };
        Self::for_words(first, n, |w, mask| {
            if let Some(v) = map.get_mut(w) {
                if lent {
                    *v |= mask;
                } else {
                    *v &= !mask;
                }
            }
            true
        })
    }

    pub(super) fn is_lent(&self, ipa: u64) -> bool {
        self.any(Range::new(ipa & !(PAGE - 1), (ipa & !(PAGE - 1)) + PAGE))
            .0
    }

    /// Calls `f` with each run of pages of `r` (inside one region) that is not lent, in
    /// order; returns the words read.
    pub(super) fn unlent_runs(&self, r: Range, mut f: impl FnMut(Range)) -> u64 {
        let Some((i, first, n)) = self.bits(r) else {
            return 0;
        };
        let Some((m, map)) = self.regions.get(i) else {
            return 0;
        };
        let base = m.start;
        let page_of = |bit: u64| base + bit * PAGE;
        let mut run: Option<u64> = None;
        let words = Self::for_words(first, n, |w, mask| {
            let v = map.get(w).copied().unwrap_or(0);
            let start_bit = w as u64 * 64 + u64::from(mask.trailing_zeros());
            let end_bit = start_bit + u64::from(mask.count_ones());
            if v & mask == 0 {
                run.get_or_insert(start_bit);
            } else if v & mask == mask {
                if let Some(s) = run.take() {
                    f(Range::new(page_of(s), page_of(start_bit)));
                }
            } else {
                for bit in start_bit..end_bit {
                    if v >> (bit % 64) & 1 == 0 {
                        run.get_or_insert(bit);
                    } else if let Some(s) = run.take() {
                        f(Range::new(page_of(s), page_of(bit)));
                    }
                }
            }
            true
        });
        if let Some(s) = run {
            f(Range::new(page_of(s), page_of(first + n)));
        }
        words
    }

    pub(super) fn count(&self) -> u64 {
        self.regions
            .iter()
            .flat_map(|(_, m)| m.iter())
            .map(|w| u64::from(w.count_ones()))
            .sum()
    }
}
