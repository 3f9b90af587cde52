//! The host's RX/TX buffer pair (DEN0077A v1.2 §7.2, FFA_RXTX_MAP §13.6). warden never
//! registers the host's pages with the SPMC: it keeps its own pair there and copies.

use super::abi::FfaError;
use crate::platform::memmap::Range;

/// FF-A buffers are counted in 4 KiB pages whatever the granule (§13.6, Table 13.22).
pub const PAGE: u64 = 4096;
/// The most pages warden accepts for each of the host's buffers, reported to v1.2 hosts
/// in FFA_FEATURES(FFA_RXTX_MAP) w2[31:16].
pub const MAX_PAGES: u64 = 16;

/// Who may write the host's RX buffer (§7.2.2.4 (Ownership of RX buffer)): the producer
/// (warden, on behalf of the SPMC) until it writes a message, then the host until it
/// calls FFA_RX_RELEASE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxOwner {
    Producer,
    Host,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostMailbox {
    pub tx: Range,
    pub rx: Range,
    pub rx_owner: RxOwner,
}

impl HostMailbox {
    /// Validates an FFA_RXTX_MAP from the host: page-aligned, 1..=MAX_PAGES pages, both
    /// buffers in host RAM (`is_host_ram` excludes warden's memory and devices), and not
    /// overlapping each other.
    pub fn validate(
        tx: u64,
        rx: u64,
        pages: u64,
        is_host_ram: impl Fn(Range) -> bool,
    ) -> Result<Self, FfaError> {
        if pages == 0 || pages > MAX_PAGES || !tx.is_multiple_of(PAGE) || !rx.is_multiple_of(PAGE) {
            return Err(FfaError::InvalidParameters);
        }
        let len = pages * PAGE;
        let tx = Range::from_base_size(tx, len).ok_or(FfaError::InvalidParameters)?;
        let rx = Range::from_base_size(rx, len).ok_or(FfaError::InvalidParameters)?;
        if tx.overlaps(&rx) || !is_host_ram(tx) || !is_host_ram(rx) {
            return Err(FfaError::InvalidParameters);
        }
        Ok(Self {
            tx,
            rx,
            rx_owner: RxOwner::Producer,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram(r: Range) -> bool {
        r.start >= 0x4000_0000 && r.end <= 0x6000_0000
    }

    #[test]
    fn accepts_good_buffers() {
        let m = HostMailbox::validate(0x4000_0000, 0x4000_4000, 4, ram).unwrap();
        assert_eq!(m.tx, Range::new(0x4000_0000, 0x4000_4000));
        assert_eq!(m.rx_owner, RxOwner::Producer);
    }

    #[test]
    fn rejects_hostile_buffers() {
        use FfaError::InvalidParameters as E;
        for (tx, rx, n) in [
            (0x4000_0001, 0x4000_4000, 1), // unaligned
            (0x4000_0000, 0x4000_4800, 1), // unaligned
            (0x4000_0000, 0x4000_4000, 0), // no pages
            (0x4000_0000, 0x4100_0000, MAX_PAGES + 1),
            (0x4000_0000, 0x4000_1000, 2), // overlap
            (0x4000_0000, 0x4000_0000, 1), // same page
            (0x6000_0000, 0x4000_0000, 1), // warden memory (not host RAM)
            (0x0900_0000, 0x4000_0000, 1), // MMIO
            (0x5fff_f000, 0x4000_0000, 2), // runs off the end of RAM
            (!0xfff, 0x4000_0000, 2),      // wraps
        ] {
            assert_eq!(
                HostMailbox::validate(tx, rx, n, ram),
                Err(E),
                "{tx:#x} {rx:#x} {n}"
            );
        }
    }
}
