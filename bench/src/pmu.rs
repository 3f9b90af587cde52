//! The counters each measurement reads, and the measurement window around one SMC or HVC.
//!
//! - The generic counter (CNTPCT_EL0): under QEMU's `-icount shift=0` virtual time advances
//!   by 1 ns per instruction executed, at every EL and in both security states, and
//!   scripts/bench runs the CPU with a 1 GHz counter, so it counts instructions exactly.
//! - PMU event counters, all INST_RETIRED (0x08), with the filter bits of PMEVTYPER<n>_EL0
//!   (Arm ARM, PMEVTYPER<n>_EL0: P excludes EL1 and U EL0; Non-secure EL1 is counted when
//!   NSK equals P and Non-secure EL0 when NSU equals U; NSH includes EL2; EL3 is counted
//!   when M equals P). QEMU applies them in pmu_counter_enabled(), re-evaluated at every
//!   exception entry and return (pmu_pre_el_change/pmu_post_el_change):
//!   0. every EL (NSH set, the rest clear); what counts is whatever is not *prohibited*;
//!   1. Non-secure EL2 only (P, U, NSH);
//!   2. EL3 only (P, U, M);
//!   3. Secure EL1 only (U, NSK, M).
//! - The cycle counter (PMCCNTR_EL0), filtered like counter 0. QEMU derives it from virtual
//!   time (1 GHz), so under -icount it too is an instruction count where it counts.
//!
//! Counters 2 and 3 answer whether QEMU lets the normal world count the secure side. It
//! does not: TF-A clears MDCR_EL3.SPME, which prohibits event counting in Secure state and
//! at EL3 whatever the filter says, and both stay at 0. The cycle counter, which PMCR_EL0.DP
//! stops where events are prohibited, still counts the few dozen EL3 instructions of each
//! SMC that run before TF-A's entry code sets DP and after its exit code restores the
//! normal world's PMCR_EL0 (see bench/README.md).

use core::arch::asm;

use el1kit::pmu::{self, INST_RETIRED, M, NSH, NSK, P, U};

use crate::client::El;

/// PMCR_EL0: E (enable), P and C (reset the event and cycle counters), LC (64-bit cycle
/// counter overflow); D (divide by 64), X and DP (stop cycles where events are
/// prohibited) clear.
const PMCR_START: u64 = 1 | 1 << 1 | 1 << 2 | 1 << 6;

/// The event counters this client programs (PMCR_EL0.N must be at least this).
pub const EVENT_COUNTERS: u64 = pmu::EVENT_COUNTERS as u64;

/// Instruction counts over one window, in every view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Generic counter: every instruction at every EL.
    pub all: u64,
    /// INST_RETIRED with no EL filtered out: what the PMU can count from the normal world.
    pub pmu: u64,
    /// INST_RETIRED at Non-secure EL2 only (warden's own instructions under warden).
    pub el2: u64,
    /// INST_RETIRED at EL3 only.
    pub el3: u64,
    /// INST_RETIRED at Secure EL1 only.
    pub sel1: u64,
    /// PMCCNTR_EL0.
    pub cycles: u64,
}

impl Counts {
    fn minus(self, o: Counts) -> Counts {
        Counts {
            all: self.all.saturating_sub(o.all),
            pmu: self.pmu.saturating_sub(o.pmu),
            el2: self.el2.saturating_sub(o.el2),
            el3: self.el3.saturating_sub(o.el3),
            sel1: self.sel1.saturating_sub(o.sel1),
            cycles: self.cycles.saturating_sub(o.cycles),
        }
    }

    pub fn add(&mut self, o: Counts) {
        self.all += o.all;
        self.pmu += o.pmu;
        self.el2 += o.el2;
        self.el3 += o.el3;
        self.sel1 += o.sel1;
        self.cycles += o.cycles;
    }
}

/// What the client found out about the PMU.
pub struct PmuInfo {
    pub pmcr: u64,
    /// ID_AA64DFR0_EL1.PMUVer.
    pub version: u64,
    /// PMCEID0_EL0 bit 8: INST_RETIRED is implemented (QEMU: only with precise -icount).
    pub inst_retired: bool,
}

/// Programs and starts the counters. At EL2 (no hypervisor) it also gives the event
/// counters to EL0-EL2 the way warden does for its host: MDCR_EL2.HPMN = PMCR_EL0.N with
/// no traps, and HPMD and HCCD clear so that EL2 is counted.
pub fn init(el: El) -> Result<PmuInfo, PmuInfo> {
    let (pmcr, dfr0, ceid0): (u64, u64, u64);
    // SAFETY: reading ID and PMU control registers has no side effects; warden does not
    // trap PMU accesses (MDCR_EL2.TPM/TPMCR clear) and TF-A does not either (MDCR_EL3.TPM).
    unsafe {
        asm!(
            "mrs {0}, pmcr_el0", "mrs {1}, id_aa64dfr0_el1", "mrs {2}, pmceid0_el0",
            out(reg) pmcr, out(reg) dfr0, out(reg) ceid0, options(nomem, nostack)
        )
    };
    let info = PmuInfo {
        pmcr,
        version: dfr0 >> 8 & 0xf,
        inst_retired: ceid0 >> INST_RETIRED & 1 == 1,
    };
    let n = pmcr >> 11 & 0x1f;
    if n < EVENT_COUNTERS || !info.inst_retired {
        return Err(info);
    }
    if el == El::El2 {
        // SAFETY: MDCR_EL2 only controls debug and PMU traps and counting at EL2; this
        // client is the only software at EL2 and below.
        unsafe { asm!("msr mdcr_el2, {}", "isb", in(reg) n, options(nomem, nostack)) };
    }
    pmu::set_control(0);
    pmu::set_event_type(0, INST_RETIRED | NSH);
    pmu::set_event_type(1, INST_RETIRED | P | U | NSH);
    pmu::set_event_type(2, INST_RETIRED | P | U | M);
    pmu::set_event_type(3, INST_RETIRED | U | NSK | M);
    pmu::set_cycle_filter(NSH);
    pmu::enable(0xf | 1 << 31);
    pmu::set_control(PMCR_START);
    Ok(info)
}

/// The generic counter's frequency (CNTFRQ_EL0).
pub fn counter_frequency() -> u64 {
    let f: u64;
    // SAFETY: reading CNTFRQ_EL0 has no side effects.
    unsafe { asm!("mrs {}, cntfrq_el0", out(reg) f, options(nomem, nostack)) };
    f
}

/// One measurement window: reads every counter, runs `$insn` with x0-x7 from `$regs` (a
/// `&mut [u64; 8]`),
/// reads every counter again in reverse order, and leaves the differences. x0-x7 come back
/// in `$regs`; x8-x17 are clobbered, as SMCCC v1.2 allows for SMC64/HVC64 results, and
/// x18-x30 are preserved by the callee. The counter reads around the instruction are
/// themselves counted: `calibrate` measures the window with no instruction in it.
macro_rules! window {
    ($insn:literal, $regs:ident) => {{
        let (all, e0, e1, e2, e3, cyc): (u64, u64, u64, u64, u64, u64);
        // SAFETY: the SMC or HVC goes to EL3 or to warden, which follow SMCCC (x18-x30
        // and the stack preserved). It may write memory this client shared with the
        // secure world (the RX buffer), so memory is not declared untouched. The counter
        // reads have no side effects. Without `$insn` the block only reads counters.
        unsafe {
            asm!(
                "isb",
                "mrs {all}, cntpct_el0",
                "mrs {e0}, pmevcntr0_el0",
                "mrs {e1}, pmevcntr1_el0",
                "mrs {e2}, pmevcntr2_el0",
                "mrs {e3}, pmevcntr3_el0",
                "mrs {cyc}, pmccntr_el0",
                $insn,
                "mrs x8, pmccntr_el0",
                "mrs x9, pmevcntr3_el0",
                "mrs x10, pmevcntr2_el0",
                "mrs x11, pmevcntr1_el0",
                "mrs x12, pmevcntr0_el0",
                "mrs x13, cntpct_el0",
                "sub {cyc}, x8, {cyc}",
                "sub {e3}, x9, {e3}",
                "sub {e2}, x10, {e2}",
                "sub {e1}, x11, {e1}",
                "sub {e0}, x12, {e0}",
                "sub {all}, x13, {all}",
                all = out(reg) all,
                e0 = out(reg) e0,
                e1 = out(reg) e1,
                e2 = out(reg) e2,
                e3 = out(reg) e3,
                cyc = out(reg) cyc,
                inout("x0") $regs[0],
                inout("x1") $regs[1],
                inout("x2") $regs[2],
                inout("x3") $regs[3],
                inout("x4") $regs[4],
                inout("x5") $regs[5],
                inout("x6") $regs[6],
                inout("x7") $regs[7],
                lateout("x8") _,
                lateout("x9") _,
                lateout("x10") _,
                lateout("x11") _,
                lateout("x12") _,
                lateout("x13") _,
                lateout("x14") _,
                lateout("x15") _,
                lateout("x16") _,
                lateout("x17") _,
                options(nostack),
            )
        };
        // The event counters are 32 bits wide: differences wrap there.
        let event = |d: u64| d as u32 as u64;
        Counts {
            all,
            pmu: event(e0),
            el2: event(e1),
            el3: event(e2),
            sel1: event(e3),
            cycles: cyc,
        }
    }};
}

/// How a call reaches its handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

/// Raw counts of one call (the window's own instructions included).
fn raw_call(conduit: Conduit, regs: &mut [u64; 8]) -> Counts {
    match conduit {
        Conduit::Smc => window!("smc #0", regs),
        Conduit::Hvc => window!("hvc #0", regs),
    }
}

/// What the window costs with nothing in it, in every view (the smallest of a few tries;
/// under -icount it is the same every time).
pub fn calibrate() -> Counts {
    let mut best: Option<Counts> = None;
    for _ in 0..8 {
        let regs = &mut [0u64; 8];
        let c = window!("", regs);
        best = Some(match best {
            None => c,
            Some(b) => Counts {
                all: b.all.min(c.all),
                pmu: b.pmu.min(c.pmu),
                el2: b.el2.min(c.el2),
                el3: b.el3.min(c.el3),
                sel1: b.sel1.min(c.sel1),
                cycles: b.cycles.min(c.cycles),
            },
        });
    }
    best.unwrap_or_default()
}

/// A known sequence: 1000 `nop`s in the window, less the empty window's cost. Every view
/// that counts the current EL must say 1000.
pub fn nops(overhead: Counts) -> Counts {
    let regs = &mut [0u64; 8];
    window!(".rept 1000\nnop\n.endr", regs).minus(overhead)
}

/// Runs one call and returns its results and its counts, window cost removed.
pub fn call(conduit: Conduit, regs: [u64; 8], overhead: Counts) -> ([u64; 8], Counts) {
    let mut r = regs;
    let c = raw_call(conduit, &mut r);
    (r, c.minus(overhead))
}
