//! The SMC router: every SMC the host makes traps to EL2 (HCR_EL2.TSC) and lands here.
//! PSCI and SMCCC architecture calls are relayed to EL3, FF-A calls go to the FF-A
//! module, and everything else is refused with NOT_SUPPORTED.
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

use log::{debug, warn};

use crate::ffa;
use crate::psci::{self, HostEntry};
use crate::smccc::{FunctionId, NOT_SUPPORTED, Owner};

/// The secure monitor at EL3, reached with an SMC carrying x0-x17 (SMCCC v1.2).
pub trait SecureMonitor {
    fn call(&mut self, regs: &[u64; 18]) -> [u64; 18];
}

/// warden's FF-A proxy, as the router sees it.
pub trait FfaService {
    fn call(&mut self, regs: &[u64; 18]) -> Reply;
}

/// What warden knows about the CPUs, for the PSCI relay.
pub trait CpuTopology {
    /// warden's index for the CPU with this MPIDR affinity value.
    fn index_of(&self, mpidr: u64) -> Option<usize>;
    /// The calling CPU's index.
    fn current(&self) -> usize;
    /// Remembers where `cpu` enters the host the next time warden brings it up.
    fn set_host_entry(&self, cpu: usize, entry: HostEntry);
    /// The physical address EL3 should start CPUs at (warden's secondary entry).
    fn warden_entry(&self) -> u64;
}

/// Where a host SMC goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Psci,
    SmcccArch,
    Ffa,
    Refused,
}

pub fn classify(fid: FunctionId) -> Route {
    if !fid.is_fast() || !fid.reserved_bits_clear() {
        // Yielding (standard) calls are not used by anything warden serves.
        return Route::Refused;
    }
    match fid.owner() {
        Owner::Arch if !fid.is_64() => Route::SmcccArch,
        Owner::StandardSecure if psci::is_psci(fid) => Route::Psci,
        Owner::StandardSecure if ffa::is_ffa(fid) => Route::Ffa,
        _ => Route::Refused,
    }
}

/// The registers to hand back to the host: x0 to x(count-1) carry results, the others
/// keep the caller's values. One type for every service warden answers (PSCI, SMCCC
/// architecture calls and the FF-A proxy).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub regs: [u64; 18],
    pub count: usize,
}

impl Reply {
    /// SMCCC results in x0-x3 (PSCI, SMCCC architecture calls).
    pub fn narrow(regs: [u64; 18]) -> Self {
        Self { regs, count: 4 }
    }
    /// FF-A results in x0-x7: what every FF-A version and every SMC32 call returns.
    pub fn ffa(regs: [u64; 18]) -> Self {
        Self { regs, count: 8 }
    }
    /// Results in x0-x17 (SMCCC v1.2), for FF-A v1.2 hosts and the v1.2-only calls.
    pub fn wide(regs: [u64; 18]) -> Self {
        Self { regs, count: 18 }
    }
}

/// Handles one host SMC with arguments `regs` (x0-x17).
pub fn handle_smc(
    regs: &[u64; 18],
    monitor: &mut impl SecureMonitor,
    cpus: &impl CpuTopology,
    ffa: &mut impl FfaService,
) -> Reply {
    let fid = FunctionId::from_reg(regs[0]).without_sve_hint();
    // Everything past here sees the ID without the hint; the registers are copied only
    // when there is a hint to clear (the trap path's common case has none).
    let cleared;
    let regs = if fid != FunctionId::from_reg(regs[0]) {
        let mut r = *regs;
        r[0] = fid.0 as u64;
        cleared = r;
        &cleared
    } else {
        regs
    };
    match classify(fid) {
        Route::SmcccArch => Reply::narrow(monitor.call(regs)),
        Route::Psci => Reply::narrow(relay_psci(fid, regs, monitor, cpus)),
        Route::Ffa => ffa.call(regs),
        Route::Refused => {
            warn!(
                "host SMC {:#010x} refused: not a service warden relays",
                fid.0
            );
            let mut out = *regs;
            out[0] = NOT_SUPPORTED;
            Reply::narrow(out)
        }
    }
}

fn relay_psci(
    fid: FunctionId,
    regs: &[u64; 18],
    monitor: &mut impl SecureMonitor,
    cpus: &impl CpuTopology,
) -> [u64; 18] {
    let Some(kind) = psci::entry_point_kind(fid) else {
        return monitor.call(regs);
    };
    match psci::relay_entry_point(kind, regs, cpus.current(), cpus.warden_entry(), |m| {
        cpus.index_of(m)
    }) {
        Ok(relayed) => {
            debug!(
                "PSCI {:#010x} for CPU {}: host entry {:#x}, relayed through warden",
                fid.0, relayed.cpu, relayed.host.entry
            );
            cpus.set_host_entry(relayed.cpu, relayed.host);
            monitor.call(&relayed.regs)
        }
        Err(code) => {
            warn!("PSCI {:#010x}: unknown target MPIDR {:#x}", fid.0, regs[1]);
            let mut out = *regs;
            out[0] = code;
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::RefCell;
    use std::vec::Vec;

    /// Records what reached "EL3" and answers with a marker.
    #[derive(Default)]
    struct Monitor {
        calls: Vec<[u64; 18]>,
    }
    impl SecureMonitor for Monitor {
        fn call(&mut self, regs: &[u64; 18]) -> [u64; 18] {
            self.calls.push(*regs);
            let mut out = [0u64; 18];
            out[0] = 0x1111;
            out[17] = 0x1717;
            out
        }
    }

    #[derive(Default)]
    struct Cpus {
        entries: RefCell<Vec<(usize, HostEntry)>>,
    }
    impl CpuTopology for Cpus {
        fn index_of(&self, mpidr: u64) -> Option<usize> {
            (mpidr < 4).then_some(mpidr as usize)
        }
        fn current(&self) -> usize {
            0
        }
        fn set_host_entry(&self, cpu: usize, entry: HostEntry) {
            self.entries.borrow_mut().push((cpu, entry));
        }
        fn warden_entry(&self) -> u64 {
            0x6000_1000
        }
    }

    /// Stands in for the proxy: answers with a marker in x17.
    struct Ffa(usize);
    impl FfaService for Ffa {
        fn call(&mut self, _: &[u64; 18]) -> Reply {
            self.0 += 1;
            let mut regs = [0u64; 18];
            regs[17] = 0x1717;
            Reply::wide(regs)
        }
    }

    fn regs(x0: u64) -> [u64; 18] {
        let mut r = [0u64; 18];
        r[0] = x0;
        r
    }

    #[test]
    fn classification() {
        assert_eq!(classify(FunctionId(0x8000_0000)), Route::SmcccArch);
        assert_eq!(classify(FunctionId(0x8400_0000)), Route::Psci);
        assert_eq!(classify(FunctionId(0xc400_0003)), Route::Psci);
        assert_eq!(classify(FunctionId(0x8400_0063)), Route::Ffa);
        assert_eq!(classify(FunctionId(0xc400_008d)), Route::Ffa);
        assert_eq!(classify(FunctionId(0x8200_0000)), Route::Refused); // SiP
        assert_eq!(classify(FunctionId(0x0400_0063)), Route::Refused); // yielding
        assert_eq!(classify(FunctionId(0x8410_0063)), Route::Refused); // reserved bits
        assert_eq!(classify(FunctionId(0x8402_0063)), Route::Refused); // reserved bit 17
        assert_eq!(classify(FunctionId(0xc000_0000)), Route::Refused); // SMC64 arch
    }

    #[test]
    fn unknown_smc_gets_not_supported_and_never_reaches_el3() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        let mut r = regs(0xc300_0001);
        r[5] = 55;
        let mut ffa = Ffa(0);
        let reply = handle_smc(&r, &mut m, &c, &mut ffa);
        assert_eq!(reply.regs[0], NOT_SUPPORTED);
        assert_eq!(reply.regs[5], 55);
        assert_eq!(reply.count, 4);
        assert!(m.calls.is_empty());
        assert_eq!(ffa.0, 0);
    }

    #[test]
    fn sve_hint_is_accepted_and_cleared() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        let mut ffa = Ffa(0);
        handle_smc(&regs(0x8401_0063), &mut m, &c, &mut ffa);
        assert_eq!(ffa.0, 1, "FF-A with the hint reaches the proxy");
        handle_smc(&regs(0x8401_0000), &mut m, &c, &mut ffa);
        assert_eq!(
            m.calls[0][0], 0x8400_0000,
            "PSCI reaches EL3 without the hint"
        );
    }

    #[test]
    fn ffa_goes_to_the_proxy_not_to_el3() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        let mut ffa = Ffa(0);
        let reply = handle_smc(&regs(0x8400_0063), &mut m, &c, &mut ffa);
        assert!(m.calls.is_empty());
        assert_eq!(ffa.0, 1);
        assert_eq!(reply.count, 18);
        assert_eq!(reply.regs[17], 0x1717);
    }

    #[test]
    fn cpu_on_reaches_el3_with_warden_entry() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        let mut r = regs(0xc400_0003);
        r[1] = 2;
        r[2] = 0x4040_0000;
        r[3] = 77;
        let reply = handle_smc(&r, &mut m, &c, &mut Ffa(0));
        assert_eq!(reply.regs[0], 0x1111);
        assert_eq!(&m.calls[0][..4], &[0xc400_0003, 2, 0x6000_1000, 2]);
        assert_eq!(
            c.entries.borrow()[0],
            (
                2,
                HostEntry {
                    entry: 0x4040_0000,
                    context_id: 77
                }
            )
        );
    }

    #[test]
    fn cpu_on_bad_target_stays_in_warden() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        let mut r = regs(0xc400_0003);
        r[1] = 99;
        assert_eq!(
            handle_smc(&r, &mut m, &c, &mut Ffa(0)).regs[0],
            psci::INVALID_PARAMETERS
        );
        assert!(m.calls.is_empty());
        assert!(c.entries.borrow().is_empty());
    }
}
