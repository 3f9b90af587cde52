//! Who holds each page of host RAM, from the proxy's point of view. Pages not listed are
//! the host's own. Ranges are kept whole (one entry per constituent or buffer), so a share
//! of a large contiguous range costs one entry, not one per page.

use alloc::collections::BTreeMap;
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
    /// start -> (end, state); entries never overlap.
    regions: BTreeMap<u64, (u64, PageState)>,
}

impl Ownership {
    /// Whether any page of `r` is not the host's own.
    pub fn is_claimed(&self, r: &Range) -> bool {
        // The only entries that can overlap `r` start before its end; among those, the
        // one starting last is the only candidate that could reach into it from below,
        // and every one starting inside `r` overlaps.
        self.regions
            .range(..r.end)
            .next_back()
            .is_some_and(|(&start, &(end, _))| Range::new(start, end).overlaps(r))
    }

    /// Gives every range in `ranges` the state `state`, or none of them: DENIED if any
    /// page is already claimed. `ranges` must not overlap each other.
    pub fn claim(&mut self, ranges: &[Range], state: PageState) -> Result<(), FfaError> {
        if ranges.iter().any(|r| r.is_empty() || self.is_claimed(r)) {
            return Err(FfaError::Denied);
        }
        for r in ranges {
            self.regions.insert(r.start, (r.end, state));
        }
        Ok(())
    }

    /// Removes every range in state `state`; returns them.
    pub fn release(&mut self, state: PageState) -> Vec<Range> {
        let gone: Vec<Range> = self
            .regions
            .iter()
            .filter(|(_, (_, s))| *s == state)
            .map(|(&start, &(end, _))| Range::new(start, end))
            .collect();
        for r in &gone {
            self.regions.remove(&r.start);
        }
        gone
    }

    /// Moves every range from state `from` to state `to`.
    pub fn transition(&mut self, from: PageState, to: PageState) {
        for (_, (_, s)) in self.regions.iter_mut() {
            if *s == from {
                *s = to;
            }
        }
    }

    pub fn state_of(&self, addr: u64) -> Option<PageState> {
        self.regions
            .range(..=addr)
            .next_back()
            .filter(|(_, (end, _))| addr < *end)
            .map(|(_, (_, s))| *s)
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
        assert!(o.claim(&[r(0x3000, 0x4000)], PageState::Shared(2)).is_ok());
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
