//! An EL1 test host for warden: boots as warden's host, checks what a host must see (EL1,
//! SMCs relayed or refused, warden's memory out of reach, secondaries brought up through
//! the PSCI relay), prints `N passed, M failed` and powers off through PSCI.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

extern crate alloc;
/// The client kit: entry, vectors, MMU, heap, console (`say!`), calls, fault probes.
#[cfg_attr(target_os = "none", macro_use)]
extern crate el1kit;

#[cfg(target_os = "none")]
mod host;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("testhost runs at EL1 under warden; see scripts/qemu-tests");
}
