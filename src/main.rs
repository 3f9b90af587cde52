//! warden's bare-metal entry: the boot and vector assembly, assembled by rustc with the
//! Rust-side constants they need. Everything else lives in the library.

#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(target_os = "none")]
mod bare {
    use core::arch::global_asm;
    use warden::arch::frame::{FRAME_ELR, FRAME_SIZE, FRAME_X30};

    global_asm!(include_str!("../boot/entry.S"));
    global_asm!(
        include_str!("../boot/vectors.S"),
        FRAME_SIZE = const FRAME_SIZE,
        FRAME_X30 = const FRAME_X30,
        FRAME_ELR = const FRAME_ELR,
    );
    // The Rust side's CPU count as an absolute symbol: linker.ld asserts that its own
    // MAX_CPUS (the number of EL2 stacks) is the same.
    global_asm!(
        ".global WARDEN_MAX_CPUS",
        ".set WARDEN_MAX_CPUS, {max_cpus}",
        max_cpus = const warden::runtime::MAX_CPUS,
    );

    // The library's runtime provides the Rust entry points the assembly calls.
    #[used]
    static RUNTIME: fn() = warden::runtime::link;
}

/// On a hosted target the binary does nothing: warden only runs bare-metal.
#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("warden runs at EL2 on bare metal; build it with scripts/build");
}
