//! warden: a bare-metal aarch64 EL2 hypervisor whose job is to be a trustworthy FF-A proxy
//! between an untrusted normal-world host at EL1 and the secure world.
//!
//! The crate is split in two: modules that are pure logic (decoding, routing, layout,
//! device-tree reading) build and unit-test on any host; modules that touch system
//! registers, MMIO or assembly are compiled only for the bare-metal target
//! (`target_os = "none"`).

#![cfg_attr(not(any(test, feature = "model")), no_std)]
// Host input must never be able to panic warden: no unwrap/expect/panic and no indexing
// that can go out of bounds, anywhere in the crate (unit tests aside).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

extern crate alloc;

pub mod arch;
pub mod counters;
pub mod failure;
pub mod ffa;
pub mod hvc;
pub mod platform;
pub mod psci;
pub mod router;
pub mod smccc;

#[cfg(all(target_os = "none", feature = "runtime"))]
pub mod runtime;
