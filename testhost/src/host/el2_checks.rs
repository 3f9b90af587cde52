//! PSCI, EL2-state and console checks: what warden promises about the calls it relays and
//! the state it keeps at EL2, seen from the host.

use core::arch::asm;

use el1kit::pmu;

use super::{PSCI_CPU_ON_64, Report, smc};
use warden::hvc::WARDEN_VERSION;
use warden::platform::memmap::Range;
use warden::psci;

const PSCI_CPU_ON_32: u32 = psci::CPU_ON;
/// PSCI return codes (DEN0022 §5).
const ALREADY_ON: i32 = -4;
const INVALID_ADDRESS: i32 = psci::INVALID_ADDRESS as i32;

/// The checks `run` makes.
pub(crate) const PLANNED: u32 = 8;
/// Refused SMCs the flood check makes: more than warden logs in full (16).
pub(crate) const FLOOD: u32 = 64;

fn mpidr() -> u64 {
    let m: u64;
    // SAFETY: reading MPIDR_EL1 has no side effects.
    unsafe { asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack)) };
    m & 0xff_00ff_ffff
}

/// `warden`: warden's memory as the host DT reserves it; `own_entry`: an entry point in
/// the host's RAM.
pub(crate) fn run(r: &mut Report, warden: Option<Range>, own_entry: u64) {
    let me = mpidr();
    // An entry point in warden's memory or in flash is not the host's: INVALID_ADDRESS
    // before EL3 sees it (DEN0022 §5.6). This CPU is the target, so even a warden that
    // forwarded the call would not start anything (EL3: ALREADY_ON).
    let inside = warden.map_or(0x6000_0000, |w| w.start);
    for (what, entry) in [("warden's memory", inside), ("flash", 0x200)] {
        let v = smc(PSCI_CPU_ON_64, &[me, entry, 0])[0] as i32;
        r.check(
            if entry == 0x200 {
                "PSCI CPU_ON with an entry point in flash: INVALID_ADDRESS"
            } else {
                "PSCI CPU_ON with an entry point in warden's memory: INVALID_ADDRESS"
            },
            v == INVALID_ADDRESS,
            format_args!("{what} {entry:#x}: {v}"),
        );
    }
    // SMC32 arguments are 32 bits (SMCCC §2.6): junk in the upper half of x1 still names
    // this CPU, which EL3 reports as ALREADY_ON (not INVALID_PARAMETERS for an unknown
    // MPIDR).
    let v = smc(PSCI_CPU_ON_32, &[0xdead_beef_0000_0000 | me, own_entry, 0])[0] as i32;
    r.check(
        "PSCI SMC32 CPU_ON ignores the upper halves of its arguments",
        v == ALREADY_ON,
        format_args!("{v}"),
    );

    pmu_check(r);
    set_way_check(r);
    allow_list_checks(r);
    flood_check(r);
}

/// Counts CPU cycles with PMU counters 0 and 1, filtered by `filter0` and `filter1`
/// (PMEVTYPER<n>_EL0 bits [31:24]), around `work`; returns both counts. MDCR_EL2 traps no
/// PMU register; this host owns the counters and nothing else uses them.
fn count_events(filter0: u64, filter1: u64, work: impl Fn()) -> (u64, u64) {
    pmu::set_event_type(0, filter0 | pmu::CPU_CYCLES);
    pmu::set_event_type(1, filter1 | pmu::CPU_CYCLES);
    pmu::set_event_count(0, 0);
    pmu::set_event_count(1, 0);
    pmu::enable(0b11);
    pmu::set_control(pmu::control() | pmu::PMCR_E);
    work();
    pmu::disable(0b11);
    (pmu::event_count(0), pmu::event_count(1))
}

/// The host's PMU counts the host, never warden (MDCR_EL2.HPMD): a counter filtered to EL2
/// only stays at zero across 100 HVCs, while one filtered to EL1 counts.
fn pmu_check(r: &mut Report) {
    let el2_only = pmu::P | pmu::U | pmu::NSH;
    let el1_only = pmu::U;
    let (at_el2, at_el1) = count_events(el2_only, el1_only, || {
        for _ in 0..100 {
            smccc::hvc64(WARDEN_VERSION, [0; 17]);
        }
    });
    say!("testhost: PMU across 100 HVCs: {at_el2} cycles at EL2, {at_el1} at EL1");
    r.check(
        "the host's PMU counts nothing at EL2 (MDCR_EL2.HPMD)",
        at_el2 == 0 && at_el1 > 100,
        format_args!("EL2 {at_el2}, EL1 {at_el1}"),
    );
}

/// A data-cache clean-and-invalidate by set/way (HCR_EL2.TSW traps it to warden, which
/// performs it): the host carries on, and warden counts it (its power-off counters).
fn set_way_check(r: &mut Report) {
    let before = super::read_u32(&raw const super::SCRATCH as u64);
    // SAFETY: clean-and-invalidate by set/way loses no data; set 0, way 0, level 1.
    unsafe { asm!("dc cisw, xzr", options(nostack)) };
    let after = super::read_u32(&raw const super::SCRATCH as u64);
    say!("testhost: executed 1 DC CISW");
    r.check(
        "a set/way cache operation completes and loses nothing",
        before == after,
        format_args!("{before:#x} -> {after:#x}"),
    );
}

/// The SMCCC allow-list: TRNG_VERSION (Linux asks at boot) reaches EL3, which answers a
/// TRNG version or NOT_SUPPORTED (this firmware has no TRNG; qemu-tests checks that warden
/// did not refuse it); SDEI_VERSION (SDEI registers EL1 entry points with EL3) is refused.
fn allow_list_checks(r: &mut Report) {
    let v = smc(warden::smccc::TRNG_VERSION, &[])[0] as u32;
    say!("testhost: TRNG_VERSION = {v:#x}");
    r.check(
        "TRNG_VERSION answered by EL3",
        v == 0xffff_ffff || v >> 16 == 1,
        format_args!("{v:#x}"),
    );
    let v = smc(0xc400_0020, &[])[0] as u32;
    r.check(
        "SDEI_VERSION refused",
        v == 0xffff_ffff,
        format_args!("{v:#x}"),
    );
}

/// A flood of refused SMCs: every one refused, and warden's log (rate-limited) holds only
/// the first few of them (qemu-tests checks that side).
fn flood_check(r: &mut Report) {
    let refused = (0..FLOOD)
        .filter(|_| smc(0xc300_0002, &[])[0] as u32 == 0xffff_ffff)
        .count();
    say!("testhost: {refused} unknown SMCs made in a burst");
    r.check(
        "a burst of unknown SMCs: every one refused",
        refused == FLOOD as usize,
        format_args!("{refused}/{FLOOD}"),
    );
}
