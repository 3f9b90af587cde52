//! Symbols from linker.ld; only this module turns them into addresses.

use super::percpu::MAX_CPUS;
use crate::failure::StackLayout;
use crate::platform::memmap::Range;

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
    static __stacks_start: u8;
    static __heap_start: u8;
    static __heap_end: u8;
    static __host_dt_start: u8;
    static __host_dt_end: u8;
    static STACK_SIZE: u8;
    static STACK_GUARD: u8;
    fn _secondary_start();
}

fn addr(sym: *const u8) -> u64 {
    sym as u64
}
pub fn whole() -> Range {
    Range::new(addr(&raw const __image_start), addr(&raw const __image_end))
}
/// warden's own memory: the image minus the host's DT area at its end.
pub fn private() -> Range {
    Range::new(
        addr(&raw const __image_start),
        addr(&raw const __host_dt_start),
    )
}
pub fn host_dt() -> Range {
    Range::new(
        addr(&raw const __host_dt_start),
        addr(&raw const __host_dt_end),
    )
}
pub fn text() -> Range {
    Range::new(addr(&raw const __image_start), addr(&raw const __text_end))
}
pub fn rodata() -> Range {
    Range::new(addr(&raw const __text_end), addr(&raw const __rodata_end))
}
pub fn rw() -> Range {
    Range::new(addr(&raw const __rodata_end), addr(&raw const __image_end))
}
pub fn heap() -> Range {
    Range::new(addr(&raw const __heap_start), addr(&raw const __heap_end))
}
/// The value of an absolute linker symbol (below 4 GiB). Not `&raw const SYM`: warden
/// is position-independent, and that compiles to a PC-relative address, which moves
/// with the load address; the symbol's value as MOVZ/MOVK immediates does not.
macro_rules! absolute {
    ($sym:ident) => {{
        let value: u64;
        // SAFETY: only loads an immediate the linker fills in into a register.
        unsafe {
            core::arch::asm!(
                "movz {v}, #:abs_g1:{s}",
                "movk {v}, #:abs_g0_nc:{s}",
                v = out(reg) value,
                s = sym $sym,
                options(pure, nomem, nostack, preserves_flags),
            )
        };
        value
    }};
}
/// The per-CPU EL2 stacks with their guard pages, from linker.ld's absolute symbols.
pub fn stacks() -> StackLayout {
    StackLayout {
        start: addr(&raw const __stacks_start),
        stack_size: absolute!(STACK_SIZE),
        guard_size: absolute!(STACK_GUARD),
        cpus: MAX_CPUS,
    }
}
/// The top of CPU `cpu`'s EL2 stack.
pub fn stack_top(cpu: usize) -> u64 {
    stacks().top(cpu)
}
pub fn secondary_entry() -> u64 {
    _secondary_start as *const () as u64
}
