//! What warden has done for the host, counted per call type: FF-A calls and errors per
//! function, PSCI calls, refused SMCs, stage-2 faults, DMA faults. Kept with relaxed atomics so every
//! CPU counts without a lock; read by warden's HVC and printed at power-off, so that tests
//! can check that nothing was lost.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// FF-A function numbers 0x60-0xff, 32- and 64-bit calls together.
const FFA_FUNCTIONS: usize = 0xa0;

pub struct Counters {
    ffa_calls: [AtomicU64; FFA_FUNCTIONS],
    ffa_errors: [AtomicU64; FFA_FUNCTIONS],
    pub psci_calls: AtomicU64,
    pub smc_refused: AtomicU64,
    pub host_aborts: AtomicU64,
    /// Of `host_aborts`, stage-2 permission faults (e.g. a fetch from a device page).
    pub host_permission_faults: AtomicU64,
    /// Host faults on its own memory during a lend's break-before-make, retried.
    pub bbm_retries: AtomicU64,
    pub hvc_calls: AtomicU64,
    /// Data-cache set/way operations the host made (trapped by HCR_EL2.TSW).
    pub set_way_ops: AtomicU64,
    /// DMA the SMMU blocked and recorded (event records drained).
    pub dma_faults: AtomicU64,
}

impl Counters {
    pub const fn new() -> Self {
        Self {
            ffa_calls: [const { AtomicU64::new(0) }; FFA_FUNCTIONS],
            ffa_errors: [const { AtomicU64::new(0) }; FFA_FUNCTIONS],
            psci_calls: AtomicU64::new(0),
            smc_refused: AtomicU64::new(0),
            host_aborts: AtomicU64::new(0),
            host_permission_faults: AtomicU64::new(0),
            bbm_retries: AtomicU64::new(0),
            hvc_calls: AtomicU64::new(0),
            set_way_ops: AtomicU64::new(0),
            dma_faults: AtomicU64::new(0),
        }
    }

    /// Counts one FF-A call with function ID `fid` and whether it ended in FFA_ERROR.
    pub fn ffa(&self, fid: u32, error: bool) {
        let Some(i) = ((fid & 0xff) as usize).checked_sub(0x60) else {
            return;
        };
        if let (Some(calls), Some(errors)) = (self.ffa_calls.get(i), self.ffa_errors.get(i)) {
            calls.fetch_add(1, Relaxed);
            if error {
                errors.fetch_add(1, Relaxed);
            }
        }
    }

    pub fn ffa_totals(&self) -> (u64, u64) {
        let sum = |a: &[AtomicU64]| a.iter().map(|c| c.load(Relaxed)).sum();
        (sum(&self.ffa_calls), sum(&self.ffa_errors))
    }

    /// (function number, calls, errors) for every FF-A function called at least once.
    pub fn ffa_by_function(&self) -> impl Iterator<Item = (u32, u64, u64)> + '_ {
        self.ffa_calls
            .iter()
            .zip(&self.ffa_errors)
            .enumerate()
            .map(|(i, (c, e))| (0x60 + i as u32, c.load(Relaxed), e.load(Relaxed)))
            .filter(|&(_, c, _)| c > 0)
    }
}

/// A log line that a host can cause as often as it likes: the first `BURST` occurrences,
/// then one in `EVERY`, so that a flooding host costs a few lines, and the count still
/// shows how often it happened.
pub struct RateLimit {
    seen: AtomicU64,
}

impl RateLimit {
    pub const BURST: u64 = 16;
    pub const EVERY: u64 = 4096;

    pub const fn new() -> Self {
        Self {
            seen: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence; `Some(n)` (its number, from 1) if it should be logged.
    pub fn allow(&self) -> Option<u64> {
        let n = self.seen.fetch_add(1, Relaxed);
        (n < Self::BURST || n.is_multiple_of(Self::EVERY)).then_some(n + 1)
    }
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for Counters {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_function_across_32_and_64_bit() {
        let c = Counters::new();
        c.ffa(0x8400_0073, false);
        c.ffa(0xc400_0073, true);
        c.ffa(0x8400_0063, false);
        c.ffa(0x8400_0010, true); // not FF-A: ignored
        assert_eq!(c.ffa_totals(), (3, 1));
        let v: std::vec::Vec<_> = c.ffa_by_function().collect();
        assert_eq!(v, [(0x63, 1, 0), (0x73, 2, 1)]);
    }

    #[test]
    fn a_flood_is_logged_a_few_times() {
        let limit = RateLimit::new();
        let logged: std::vec::Vec<u64> = (0..10_000).filter_map(|_| limit.allow()).collect();
        assert_eq!(logged.len(), 16 + 2);
        assert_eq!(&logged[..2], &[1, 2]);
        assert_eq!(&logged[16..], &[4097, 8193]);
    }
}
