//! The PMU's event counters 0-3 and cycle counter, as the clients program and read them
//! outside a measurement (Arm ARM D12 and the PMU registers of D23: PMEVTYPER<n>_EL0,
//! PMEVCNTR<n>_EL0, PMCNTENSET/CLR_EL0, PMCCFILTR_EL0, PMCR_EL0). The bench client's
//! measurement window reads the counters in its own inline assembly, so that what it
//! counts does not depend on this module.

use core::arch::asm;

/// Common event INST_RETIRED (instructions architecturally executed).
pub const INST_RETIRED: u64 = 0x08;
/// Common event CPU_CYCLES; QEMU counts it without -icount (INST_RETIRED needs -icount).
pub const CPU_CYCLES: u64 = 0x11;

// The filter bits of PMEVTYPER<n>_EL0 and PMCCFILTR_EL0, by position: P excludes EL1 and
// U EL0; Non-secure EL1 is counted when NSK equals P and Non-secure EL0 when NSU equals U;
// NSH includes EL2; EL3 is counted when M equals P.
pub const P: u64 = 1 << 31;
pub const U: u64 = 1 << 30;
pub const NSK: u64 = 1 << 29;
pub const NSH: u64 = 1 << 27;
pub const M: u64 = 1 << 26;

/// PMCR_EL0.E: the counters enabled by PMCNTENSET_EL0 count.
pub const PMCR_E: u64 = 1;

/// The event counters this module addresses: PMEVTYPER<n>_EL0 and PMEVCNTR<n>_EL0 are
/// named in the instruction, so `n` selects one of these at run time.
pub const EVENT_COUNTERS: usize = 4;

/// Writes the system register named by `$reg`; memory accesses stay on their side of it, as
/// around the work a count is taken of.
macro_rules! msr {
    ($reg:literal, $value:expr) => {
        // SAFETY: the PMU registers only configure and hold the counters; neither warden
        // (MDCR_EL2.TPM/TPMCR clear) nor TF-A (MDCR_EL3.TPM) traps them, and the client
        // owns them.
        unsafe { asm!(concat!("msr ", $reg, ", {}"), in(reg) $value, options(nostack)) }
    };
}

/// Reads the system register named by `$reg`.
macro_rules! mrs {
    ($reg:literal) => {{
        let value: u64;
        // SAFETY: reading a PMU register has no side effects.
        unsafe { asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack)) };
        value
    }};
}

/// Sets what event counter `n` (below [`EVENT_COUNTERS`]) counts: an event number with
/// filter bits.
pub fn set_event_type(n: usize, event_and_filter: u64) {
    match n {
        0 => msr!("pmevtyper0_el0", event_and_filter),
        1 => msr!("pmevtyper1_el0", event_and_filter),
        2 => msr!("pmevtyper2_el0", event_and_filter),
        3 => msr!("pmevtyper3_el0", event_and_filter),
        _ => panic!("PMU event counter {n} is beyond the {EVENT_COUNTERS} el1kit programs"),
    }
}

/// Event counter `n` (below [`EVENT_COUNTERS`]).
pub fn event_count(n: usize) -> u64 {
    match n {
        0 => mrs!("pmevcntr0_el0"),
        1 => mrs!("pmevcntr1_el0"),
        2 => mrs!("pmevcntr2_el0"),
        3 => mrs!("pmevcntr3_el0"),
        _ => panic!("PMU event counter {n} is beyond the {EVENT_COUNTERS} el1kit programs"),
    }
}

/// Sets event counter `n` (below [`EVENT_COUNTERS`]) to `value`.
pub fn set_event_count(n: usize, value: u64) {
    match n {
        0 => msr!("pmevcntr0_el0", value),
        1 => msr!("pmevcntr1_el0", value),
        2 => msr!("pmevcntr2_el0", value),
        3 => msr!("pmevcntr3_el0", value),
        _ => panic!("PMU event counter {n} is beyond the {EVENT_COUNTERS} el1kit programs"),
    }
}

/// Sets what the cycle counter counts (PMCCFILTR_EL0: the filter bits).
pub fn set_cycle_filter(filter: u64) {
    msr!("pmccfiltr_el0", filter);
}

/// Enables the counters in `mask` (PMCNTENSET_EL0: bit n for event counter n, bit 31 for
/// the cycle counter).
pub fn enable(mask: u64) {
    msr!("pmcntenset_el0", mask);
}

/// Disables the counters in `mask` (PMCNTENCLR_EL0) and waits until they have stopped.
pub fn disable(mask: u64) {
    msr!("pmcntenclr_el0", mask);
    isb();
}

/// PMCR_EL0.
pub fn control() -> u64 {
    mrs!("pmcr_el0")
}

/// Writes PMCR_EL0 and waits until it takes effect.
pub fn set_control(pmcr: u64) {
    msr!("pmcr_el0", pmcr);
    isb();
}

fn isb() {
    // SAFETY: a barrier; it changes nothing but the order of execution.
    unsafe { asm!("isb", options(nostack)) };
}
