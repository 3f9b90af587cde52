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
/// The per-CPU EL2 stacks with their guard pages. `STACK_SIZE` and `STACK_GUARD` are
/// linker-defined absolute symbols: their "address" is the value.
pub fn stacks() -> StackLayout {
    StackLayout {
        start: addr(&raw const __stacks_start),
        stack_size: addr(&raw const STACK_SIZE),
        guard_size: addr(&raw const STACK_GUARD),
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
