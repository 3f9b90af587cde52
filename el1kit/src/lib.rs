//! The EL1 client kit: what warden's bare-metal clients (the test host, testhost/, and the
//! benchmark client, bench/) share, so that each holds only its own checks or measurements.
//!
//! - boot.S: the entry (`el1kit_main`), the PSCI CPU_ON entry and the vectors;
//!   image.ld: the sections, .bss and four 64 KiB stacks; link.rs: the clients' build script.
//! - [`mmu`]: the exception level and a 1 GiB identity map with the MMU on.
//! - [`console`]: the PL011 the DT names, and [`say!`].
//! - [`call`]: SMC and HVC with x0-x17 (SMCCC 1.2, DEN0028 §2), PSCI power-off and reset.
//! - [`heap`], [`dt`]: the allocator the DT parser needs, and the DT the client was handed.
//! - [`fault`]: accesses that are expected to abort, and what the vector recorded.
//! - [`cpu`]: secondary CPUs started through PSCI CPU_ON.
//! - [`pmu`]: the PMU's event and cycle counters, programmed and read.
//!
//! A client defines `el1kit_main(dtb: u64, entry_counter: u64) -> !` and
//! `el1kit_unexpected(kind, esr, elr, far) -> !` (both `extern "C"`, unmangled) and its panic
//! handler. Everything but the pure parts builds for the bare-metal target only.

#![no_std]

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("../boot.S"));

#[cfg(target_os = "none")]
pub mod call;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod dt;
#[cfg(target_os = "none")]
pub mod fault;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod pmu;

/// Prints one line on the client's console (output is dropped until the DT names it).
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}
