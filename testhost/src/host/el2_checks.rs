//! PSCI, EL2-state and console checks: what warden promises about the calls it relays and
//! the state it keeps at EL2, seen from the host.

use core::arch::asm;

use super::{Report, smc};
use warden::platform::memmap::Range;

const PSCI_CPU_ON_32: u32 = 0x8400_0003;
const PSCI_CPU_ON_64: u32 = 0xc400_0003;
const ALREADY_ON: i32 = -4;
const INVALID_ADDRESS: i32 = -9;

/// The checks `run` makes.
pub(crate) const PLANNED: u32 = 3;

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
}
