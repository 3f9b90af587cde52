//! A bare-metal FF-A benchmark client. The same image runs as warden's host at EL1 and,
//! without warden, at EL2 as the firmware's BL33, and measures each FF-A operation in
//! instructions: with the PMU (INST_RETIRED and the cycle counter, which count the normal
//! world only on this firmware) and with the generic counter, which under QEMU's
//! `-icount shift=0` and a 1 GHz counter advances by one per instruction at every EL.
//! It prints one `bench:` line per result for scripts/bench to tabulate.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
extern crate alloc;

/// The client kit: entry, vectors, MMU, heap, console (`say!`), calls.
#[cfg(target_os = "none")]
#[macro_use]
extern crate el1kit;

#[cfg(any(target_os = "none", test))]
mod descriptor;
#[cfg(any(target_os = "none", test))]
mod stats;

#[cfg(target_os = "none")]
mod client;
#[cfg(target_os = "none")]
mod ops;
#[cfg(target_os = "none")]
mod pmu;

/// The host build only exists so that the workspace builds and tests on the host; the
/// client runs in QEMU (scripts/bench).
#[cfg(not(target_os = "none"))]
fn main() {}
