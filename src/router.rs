//! The SMC router: every SMC the host makes traps to EL2 (HCR_EL2.TSC) and lands here.
//! PSCI is relayed to EL3 (entry points through warden), FF-A calls go to the FF-A
//! module, the calls on the allow-list (`smccc::RELAYED`: SMCCC version and features,
//! SoC ID, the CPU-erratum workarounds, TRNG) are relayed as they are, and everything else
//! is refused with NOT_SUPPORTED.

use log::{debug, warn};

use crate::counters::RateLimit;
use crate::ffa;
use crate::psci::{self, EntrySlot, HostEntry, PowerStateFormat, RelayContext, Relayed};
use crate::smccc::{self, FunctionId, NOT_SUPPORTED, Owner};

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
    /// Records where a CPU enters the host the next time warden brings it up for that
    /// reason; returns what was recorded before.
    fn set_host_entry(&self, slot: EntrySlot, entry: HostEntry) -> Option<HostEntry>;
    /// Puts back what `set_host_entry` replaced (EL3 refused the call).
    fn restore_host_entry(&self, slot: EntrySlot, previous: Option<HostEntry>);
    /// The physical address EL3 should start CPUs at (warden's secondary entry).
    fn warden_entry(&self) -> u64;
    /// Whether the host may name this address as an entry point (its own RAM).
    fn is_host_entry(&self, addr: u64) -> bool;
    /// How EL3 lays out CPU_SUSPEND's power_state.
    fn power_state_format(&self) -> PowerStateFormat;
}

/// Where a host SMC goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Psci,
    /// On the allow-list (`smccc::RELAYED`): relayed to EL3 unchanged.
    Relayed,
    Ffa,
    Refused,
}

/// Inlined: the trap path's first decision for every SMC.
#[inline(always)]
pub fn classify(fid: FunctionId) -> Route {
    if !fid.is_fast() || !fid.reserved_bits_clear() {
        // Yielding (standard) calls are not used by anything warden serves.
        return Route::Refused;
    }
    match fid.owner() {
        Owner::StandardSecure if psci::is_psci(fid) => Route::Psci,
        Owner::StandardSecure if ffa::is_ffa(fid) => Route::Ffa,
        Owner::Arch | Owner::StandardSecure if smccc::is_relayed(fid) => Route::Relayed,
        _ => Route::Refused,
    }
}

/// FFA_MSG_SEND_DIRECT_REQ_32 or _64 with no SVE hint: two of the IDs `classify` routes
/// to the FF-A proxy (`Route::Ffa`), compared whole so that the trap path can send the
/// hottest forwarded call there first. They differ only in the SMC64 bit (SMCCC §2.5).
#[inline(always)]
pub fn is_direct_req(fid: FunctionId) -> bool {
    const SMC64: u32 = 1 << 30;
    fid.0 & !SMC64 == ffa::abi::fid32(ffa::abi::num::MSG_SEND_DIRECT_REQ)
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

/// Lines about refused calls: a host can make as many as it likes (`RateLimit`).
static REFUSED_SMC_LINES: RateLimit = RateLimit::new();
static REFUSED_PSCI_LINES: RateLimit = RateLimit::new();

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
        Route::Relayed if !smccc::feature_query_allowed(fid, regs[1]) => {
            let mut out = *regs;
            out[0] = NOT_SUPPORTED;
            Reply::narrow(out)
        }
        Route::Relayed => Reply::narrow(monitor.call(regs)),
        Route::Psci => Reply::narrow(relay_psci(fid, regs, monitor, cpus)),
        Route::Ffa => ffa.call(regs),
        Route::Refused => {
            if let Some(n) = REFUSED_SMC_LINES.allow() {
                warn!(
                    "host SMC {:#010x} refused: not a service warden relays (#{n})",
                    fid.0
                );
            }
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
    let cx = RelayContext {
        current_cpu: cpus.current(),
        warden_entry: cpus.warden_entry(),
        power_state_format: cpus.power_state_format(),
        cpu_index: &|m| cpus.index_of(m),
        is_host_entry: &|a| cpus.is_host_entry(a),
    };
    match psci::relay_entry_point(kind, fid.is_64(), regs, &cx) {
        Ok(Relayed {
            record: Some((slot, host)),
            regs: out,
        }) => {
            debug!(
                "PSCI {:#010x} for CPU {}: host entry {:#x}, relayed through warden",
                fid.0, slot.cpu, host.entry
            );
            // Recorded before the call, because the CPU may start before EL3 answers;
            // put back if EL3 refuses, so a refused call changes nothing (the CPU it named
            // never runs warden's entry for it).
            let previous = cpus.set_host_entry(slot, host);
            let answer = monitor.call(&out);
            if answer[0] as u32 as u64 != psci::SUCCESS {
                cpus.restore_host_entry(slot, previous);
            }
            answer
        }
        Ok(Relayed {
            record: None,
            regs: out,
        }) => monitor.call(&out),
        Err(code) => {
            if let Some(n) = REFUSED_PSCI_LINES.allow() {
                warn!(
                    "PSCI {:#010x} refused (code {}): target MPIDR or entry point {:#x}/{:#x} not the host's (#{n})",
                    fid.0, code as i64, regs[1], regs[2]
                );
            }
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
        /// x0 of every answer (0x1111 unless a test sets it).
        answer: Option<u64>,
    }
    impl SecureMonitor for Monitor {
        fn call(&mut self, regs: &[u64; 18]) -> [u64; 18] {
            self.calls.push(*regs);
            let mut out = [0u64; 18];
            out[0] = self.answer.unwrap_or(0x1111);
            out[17] = 0x1717;
            out
        }
    }

    #[derive(Default)]
    struct Cpus {
        entries: RefCell<psci::HostEntryTable<4>>,
    }
    impl CpuTopology for Cpus {
        fn index_of(&self, mpidr: u64) -> Option<usize> {
            (mpidr < 4).then_some(mpidr as usize)
        }
        fn current(&self) -> usize {
            0
        }
        fn set_host_entry(&self, slot: EntrySlot, entry: HostEntry) -> Option<HostEntry> {
            self.entries.borrow_mut().set(slot, entry)
        }
        fn restore_host_entry(&self, slot: EntrySlot, previous: Option<HostEntry>) {
            self.entries.borrow_mut().restore(slot, previous)
        }
        fn warden_entry(&self) -> u64 {
            0x6000_1000
        }
        fn is_host_entry(&self, addr: u64) -> bool {
            (0x4000_0000..0x6000_0000).contains(&addr)
        }
        fn power_state_format(&self) -> PowerStateFormat {
            PowerStateFormat::Original
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
        assert_eq!(classify(FunctionId(0x8000_0000)), Route::Relayed);
        assert_eq!(classify(FunctionId(0x8000_8000)), Route::Relayed); // WORKAROUND_1
        assert_eq!(classify(FunctionId(0xc400_0053)), Route::Relayed); // TRNG_RND64
        assert_eq!(classify(FunctionId(0x8000_00ff)), Route::Refused); // unknown arch
        assert_eq!(classify(FunctionId(0xc400_0020)), Route::Refused); // SDEI
        assert_eq!(classify(FunctionId(0xc400_0110)), Route::Refused); // DRTM
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
    fn direct_requests_are_exactly_two_ffa_ids() {
        for fid in [0x8400_006f, 0xc400_006f] {
            assert!(is_direct_req(FunctionId(fid)));
            assert_eq!(classify(FunctionId(fid)), Route::Ffa);
            assert_eq!(FunctionId(fid).without_sve_hint(), FunctionId(fid));
        }
        // With the SVE hint, yielding, other FF-A calls, the responses: not these.
        for fid in [
            0x8401_006f,
            0xc401_006f,
            0x0400_006f,
            0x8400_0070,
            0xc400_006e,
        ] {
            assert!(!is_direct_req(FunctionId(fid)), "{fid:#x}");
        }
        assert!(is_direct_req(FunctionId::from_reg(0xffff_ffff_8400_006f)));
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
    fn allow_list_reaches_el3_and_feature_queries_about_refused_calls_do_not() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        let mut ffa = Ffa(0);
        // TRNG_VERSION (Linux asks at boot) and a Spectre-v2 workaround call reach EL3.
        handle_smc(&regs(0x8400_0050), &mut m, &c, &mut ffa);
        handle_smc(&regs(0x8000_8000), &mut m, &c, &mut ffa);
        assert_eq!(m.calls.len(), 2);
        // SMCCC_ARCH_FEATURES about an allowed call reaches EL3; about a refused one
        // (SDEI_VERSION) it is answered here.
        let mut q = regs(0x8000_0001);
        q[1] = 0x8000_0002;
        handle_smc(&q, &mut m, &c, &mut ffa);
        assert_eq!(m.calls.len(), 3);
        q[1] = 0xc400_0020;
        assert_eq!(handle_smc(&q, &mut m, &c, &mut ffa).regs[0], NOT_SUPPORTED);
        assert_eq!(m.calls.len(), 3);
        // An SMCCC architecture call off the list never reaches EL3.
        assert_eq!(
            handle_smc(&regs(0x8000_00ff), &mut m, &c, &mut ffa).regs[0],
            NOT_SUPPORTED
        );
        assert_eq!(m.calls.len(), 3);
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

    fn on(cpu: usize) -> EntrySlot {
        EntrySlot {
            cpu,
            reason: psci::EntryReason::On,
        }
    }

    #[test]
    fn cpu_on_reaches_el3_with_warden_entry() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        m.answer = Some(0);
        let mut r = regs(0xc400_0003);
        r[1] = 2;
        r[2] = 0x4040_0000;
        r[3] = 77;
        let reply = handle_smc(&r, &mut m, &c, &mut Ffa(0));
        assert_eq!(reply.regs[0], 0);
        assert_eq!(&m.calls[0][..4], &[0xc400_0003, 2, 0x6000_1000, 2]);
        assert_eq!(
            c.entries.borrow_mut().take(on(2)),
            Some(HostEntry {
                entry: 0x4040_0000,
                context_id: 77
            })
        );
    }

    #[test]
    fn cpu_on_refused_by_el3_records_nothing() {
        let (mut m, c) = (Monitor::default(), Cpus::default());
        let earlier = HostEntry {
            entry: 0x4010_0000,
            context_id: 1,
        };
        c.entries.borrow_mut().set(on(1), earlier);
        m.answer = Some(-4i64 as u32 as u64); // ALREADY_ON, as an SMC32 w0.
        let mut r = regs(0x8400_0003);
        r[1] = 1;
        r[2] = 0x4040_0000;
        let reply = handle_smc(&r, &mut m, &c, &mut Ffa(0));
        assert_eq!(Some(reply.regs[0]), m.answer);
        assert_eq!(m.calls.len(), 1);
        assert_eq!(c.entries.borrow_mut().take(on(1)), Some(earlier));
    }

    #[test]
    fn cpu_on_bad_target_or_entry_stays_in_warden() {
        for (target, entry, code) in [
            (99, 0x4040_0000, psci::INVALID_PARAMETERS),
            (1, 0x6000_0000, psci::INVALID_ADDRESS),
            (1, 0x200, psci::INVALID_ADDRESS),
        ] {
            let (mut m, c) = (Monitor::default(), Cpus::default());
            let mut r = regs(0xc400_0003);
            r[1] = target;
            r[2] = entry;
            assert_eq!(handle_smc(&r, &mut m, &c, &mut Ffa(0)).regs[0], code);
            assert!(m.calls.is_empty());
            assert_eq!(*c.entries.borrow(), psci::HostEntryTable::<4>::new());
        }
    }
}
