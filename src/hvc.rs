//! warden's own HVC interface for the host, in the vendor-specific hypervisor service
//! range (SMCCC owner 6). Anything else gets NOT_SUPPORTED.

use crate::smccc::{FunctionId, NOT_SUPPORTED};

/// Returns warden's interface version in w0 (major in [31:16], minor in [15:0]).
pub const WARDEN_VERSION: u32 = 0x8600_0000;
/// Returns x0 = 0, x1 = FF-A calls served, x2 = of which ended in FFA_ERROR, x3 = memory
/// handles the host holds, x4 = DMA the SMMU blocked and recorded (from interface 1.2;
/// 0 when warden drives no SMMU); and prints the per-function table on warden's console.
pub const WARDEN_COUNTERS: u32 = 0x8600_0001;
/// Returns x0 = 0, x1 = the physical counter (CNTPCT_EL0) at warden's first instruction,
/// x2 = at the host's entry, for measuring boot cost (under QEMU's -icount the counter
/// is a clock of instructions).
pub const WARDEN_BOOT_TIMES: u32 = 0x8600_0002;
/// 1.2: WARDEN_COUNTERS also returns x4.
pub const INTERFACE_VERSION: u64 = 0x0001_0002;
/// Result registers an answer sets (x0-x4); the others keep the caller's values.
pub const RESULT_REGS: usize = 5;

/// WARDEN_COUNTERS' answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersReply {
    pub ffa_calls: u64,
    pub ffa_errors: u64,
    pub live_handles: u64,
    pub dma_faults: u64,
}

/// What answers to warden's HVCs need from the runtime.
pub trait WardenInfo {
    /// The counters; also prints the table.
    fn counters(&self) -> CountersReply;
    /// (counter at warden's entry, counter at the host's entry).
    fn boot_times(&self) -> (u64, u64);
}

/// Answers a host HVC: results in x0-x4, other registers are returned unchanged.
pub fn handle(regs: &[u64; 18], info: &impl WardenInfo) -> [u64; 18] {
    let mut out = *regs;
    match FunctionId::from_reg(regs[0]).0 {
        WARDEN_VERSION => out[0] = INTERFACE_VERSION,
        WARDEN_COUNTERS => {
            let c = info.counters();
            out[..5].copy_from_slice(&[0, c.ffa_calls, c.ffa_errors, c.live_handles, c.dma_faults]);
        }
        WARDEN_BOOT_TIMES => {
            let (entry, host) = info.boot_times();
            out[..3].copy_from_slice(&[0, entry, host]);
        }
        _ => out[0] = NOT_SUPPORTED,
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Info;
    impl WardenInfo for Info {
        fn counters(&self) -> CountersReply {
            CountersReply {
                ffa_calls: 10,
                ffa_errors: 2,
                live_handles: 1,
                dma_faults: 3,
            }
        }
        fn boot_times(&self) -> (u64, u64) {
            (100, 200)
        }
    }

    #[test]
    fn calls_and_unknown() {
        let mut regs = [0u64; 18];
        regs[0] = WARDEN_VERSION as u64;
        assert_eq!(handle(&regs, &Info)[0], INTERFACE_VERSION);
        regs[0] = WARDEN_COUNTERS as u64;
        assert_eq!(&handle(&regs, &Info)[..5], &[0, 10, 2, 1, 3]);
        regs[0] = WARDEN_BOOT_TIMES as u64;
        assert_eq!(&handle(&regs, &Info)[..3], &[0, 100, 200]);
        regs[0] = 0x8600_0003;
        regs[5] = 5;
        let out = handle(&regs, &Info);
        assert_eq!(out[0], NOT_SUPPORTED);
        assert_eq!(out[5], 5);
        regs[0] = 0;
        assert_eq!(handle(&regs, &Info)[0], NOT_SUPPORTED);
    }
}
