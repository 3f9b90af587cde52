//! Who holds each page of host RAM, from the proxy's point of view. Pages not listed are
//! the host's own. Ranges are kept whole (one entry per constituent or buffer), so a share
//! of a large contiguous range costs one entry, not one per page.

use alloc::vec::Vec;

use super::abi::FfaError;
use crate::platform::memmap::Range;

/// A memory handle allocated by the SPMC (DEN0077A v1.2 §10.2.1).
pub type Handle = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// The host's RX/TX buffers: never to be shared or lent.
    Mailbox,
    /// Claimed by a transaction warden is still sending to the SPMC.
    Pending(u64),
    /// Shared with the secure world; the host keeps access.
    Shared(Handle),
    /// Lent to the secure world; unmapped from the host until reclaimed.
    Lent(Handle),
}

#[derive(Default, Debug)]
pub struct Ownership {
    /// (start, end, state), sorted by start; entries never overlap. A sorted vector, not a
    /// tree: a claim of N sorted ranges is N binary searches and one merge, with no
    /// allocation per range (a B-tree insert per range was a third of a share's per-range
    /// cost). What it holds is bounded by the proxy's limit on live memory.
    regions: Vec<(u64, u64, PageState)>,
}

impl Ownership {
    /// The index of the first entry that ends after `addr`.
    fn first_ending_after(&self, addr: u64) -> usize {
        self.regions.partition_point(|&(_, end, _)| end <= addr)
    }

    /// Whether any page of `r` is not the host's own.
    pub fn is_claimed(&self, r: &Range) -> bool {
        // Entries are disjoint and sorted, so their ends are sorted too: the first one
        // that ends after `r.start` is the only candidate to overlap `r`.
        self.regions
            .get(self.first_ending_after(r.start))
            .is_some_and(|&(start, end, _)| Range::new(start, end).overlaps(r))
    }

    /// Gives every range in `ranges` the state `state`, or none of them: DENIED if any
    /// page is already claimed. `ranges` must not overlap each other.
    pub fn claim(&mut self, ranges: &[Range], state: PageState) -> Result<(), FfaError> {
        if ranges.iter().any(|r| r.is_empty()) {
            return Err(FfaError::Denied);
        }
        // Sorted and disjoint, as the proxy hands them over (anything else takes the merge
        // below, which checks).
        let sorted = ranges
            .windows(2)
            .all(|w| matches!(w, [a, b] if a.end <= b.start));
        if sorted
            && self
                .regions
                .last()
                .is_none_or(|l| ranges.first().is_none_or(|r| l.1 <= r.start))
        {
            // The common case, above everything held (so no page of them is claimed, with
            // no search per range): append.
            self.regions
                .extend(ranges.iter().map(|r| (r.start, r.end, state)));
            return Ok(());
        }
        if ranges.iter().any(|r| self.is_claimed(r)) {
            return Err(FfaError::Denied);
        }
        // One merge of two sorted lists.
        let mut new: Vec<(u64, u64, PageState)> =
            ranges.iter().map(|r| (r.start, r.end, state)).collect();
        if !sorted {
            new.sort_unstable_by_key(|e| e.0);
        }
        if new.windows(2).any(|w| matches!(w, [x, y] if x.1 > y.0)) {
            return Err(FfaError::Denied);
        }
        let old = core::mem::take(&mut self.regions);
        let mut merged = Vec::with_capacity(old.len() + new.len());
        let (mut a, mut b) = (old.into_iter().peekable(), new.into_iter().peekable());
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.0 <= y.0,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let next = if take_a { a.next() } else { b.next() };
            merged.extend(next);
        }
        self.regions = merged;
        Ok(())
    }

    /// Removes every range in state `state`; returns them.
    pub fn release(&mut self, state: PageState) -> Vec<Range> {
        let mut gone = Vec::new();
        self.regions.retain(|&(start, end, s)| {
            let keep = s != state;
            if !keep {
                gone.push(Range::new(start, end));
            }
            keep
        });
        gone
    }

    /// Removes every range in state `state`, as `release`, without listing them (a
    /// share's reclaim needs no list: nothing to map back); returns how many there were.
    pub fn forget(&mut self, state: PageState) -> usize {
        let before = self.regions.len();
        self.regions.retain(|&(_, _, s)| s != state);
        before - self.regions.len()
    }

    /// Moves every range from state `from` to state `to`.
    pub fn transition(&mut self, from: PageState, to: PageState) {
        for (_, _, s) in self.regions.iter_mut() {
            if *s == from {
                *s = to;
            }
        }
    }

    pub fn state_of(&self, addr: u64) -> Option<PageState> {
        self.regions
            .get(self.first_ending_after(addr))
            .filter(|&&(start, _, _)| start <= addr)
            .map(|&(_, _, s)| s)
    }

    pub fn len(&self) -> usize {
        self.regions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.regions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(a: u64, b: u64) -> Range {
        Range::new(a, b)
    }

    #[test]
    fn claims_are_all_or_nothing() {
        let mut o = Ownership::default();
        o.claim(&[r(0x1000, 0x3000)], PageState::Mailbox).unwrap();
        assert_eq!(
            o.claim(
                &[r(0x8000, 0x9000), r(0x2000, 0x4000)],
                PageState::Pending(1)
            ),
            Err(FfaError::Denied)
        );
        assert_eq!(
            o.state_of(0x8000),
            None,
            "nothing claimed by the failed call"
        );
        o.claim(
            &[r(0x8000, 0x9000), r(0x3000, 0x4000)],
            PageState::Pending(1),
        )
        .unwrap();
        assert_eq!(o.state_of(0x3fff), Some(PageState::Pending(1)));
        assert_eq!(o.state_of(0x2fff), Some(PageState::Mailbox));
        assert_eq!(o.state_of(0x4000), None);
        o.transition(PageState::Pending(1), PageState::Lent(7));
        assert_eq!(o.state_of(0x8000), Some(PageState::Lent(7)));
        assert_eq!(o.release(PageState::Lent(7)).len(), 2);
        assert_eq!(o.len(), 1);
        o.claim(&[r(0x8000, 0x9000)], PageState::Shared(3)).unwrap();
        assert_eq!(o.forget(PageState::Shared(4)), 0);
        assert_eq!(o.forget(PageState::Shared(3)), 1);
        assert_eq!(o.state_of(0x8000), None);
        assert_eq!(o.len(), 1);
        assert!(o.claim(&[r(0x3000, 0x4000)], PageState::Shared(2)).is_ok());
    }

    /// Random claims and releases against a per-page model (the fuzz target's check, run
    /// deterministically here): every page's state agrees after every step.
    #[test]
    fn agrees_with_a_per_page_model() {
        let mut o = Ownership::default();
        let mut model = [None::<PageState>; 64];
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for step in 0..4000 {
            let state = PageState::Shared(next() % 4);
            if next() % 3 == 0 {
                o.release(state);
                for m in model.iter_mut().filter(|m| **m == Some(state)) {
                    *m = None;
                }
            } else {
                let n = next() % 4 + 1;
                let ranges: Vec<Range> = (0..n)
                    .map(|_| {
                        let a = next() % 63;
                        let len = next() % 3 + 1;
                        r(a * 0x1000, (a + len).min(64) * 0x1000)
                    })
                    .collect();
                let pages = |r: &Range| (r.start / 0x1000..r.end / 0x1000).map(|p| p as usize);
                let mut seen = [false; 64];
                let mut free = true;
                for p in ranges.iter().flat_map(pages) {
                    free &= model[p].is_none() && !seen[p];
                    seen[p] = true;
                }
                let result = o.claim(&ranges, state);
                assert_eq!(result.is_ok(), free, "step {step}: {ranges:?}");
                if free {
                    for p in ranges.iter().flat_map(pages) {
                        model[p] = Some(state);
                    }
                }
            }
            for (p, m) in model.iter().enumerate() {
                assert_eq!(
                    o.state_of(p as u64 * 0x1000 + 8),
                    *m,
                    "step {step} page {p}"
                );
            }
        }
    }

    #[test]
    fn overlap_detection_at_the_edges() {
        let mut o = Ownership::default();
        o.claim(&[r(0x10_0000, 0x20_0000)], PageState::Shared(1))
            .unwrap();
        assert!(o.is_claimed(&r(0x0, 0x10_1000)));
        assert!(o.is_claimed(&r(0x1f_f000, 0x30_0000)));
        assert!(o.is_claimed(&r(0x0, 0x100_0000)));
        assert!(!o.is_claimed(&r(0x0, 0x10_0000)));
        assert!(!o.is_claimed(&r(0x20_0000, 0x30_0000)));
    }
}
