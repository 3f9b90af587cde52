//! Accesses that are expected to abort, at EL1: the vector (boot.S) records ESR_EL1 and
//! FAR_EL1 of the abort while a probe is armed and resumes after the access; with none
//! armed, an abort is an unexpected exception. One CPU probes at a time.

use core::arch::asm;

/// ESR, FAR and the armed flag; written by the vector, which clears the flag.
#[unsafe(no_mangle)]
static mut el1kit_fault_record: [u64; 3] = [0; 3];

fn arm() {
    // SAFETY: the record is only written by this CPU's vector, synchronously, and by the
    // probe running on this CPU.
    unsafe { (&raw mut el1kit_fault_record).write_volatile([0, 0, 1]) };
}

/// (ESR, FAR) of the abort, (0, 0) if there was none; disarms.
fn recorded() -> (u64, u64) {
    // SAFETY: as in `arm`.
    let f = unsafe { (&raw const el1kit_fault_record).read_volatile() };
    // SAFETY: as in `arm`.
    unsafe { (&raw mut el1kit_fault_record).write_volatile([f[0], f[1], 0]) };
    (f[0], f[1])
}

/// A 64-bit load from `addr` (or, with `write`, a store of 0x5a5a_5a5a) that may fault;
/// returns (ESR, FAR) of the abort, (0, 0) if none.
pub fn probe(addr: u64, write: bool) -> (u64, u64) {
    if write {
        return poke(addr, 0x5a5a_5a5a);
    }
    arm();
    // SAFETY: the access may fault; the vector records it and skips the instruction, so
    // the asm block always completes. It touches no Rust-visible memory.
    unsafe {
        asm!("ldr {v}, [{a}]", a = in(reg) addr, v = out(reg) _, options(nostack));
    }
    recorded()
}

/// A 64-bit store of `value` that may fault; returns (ESR, FAR) as [`probe`] does. The
/// target is a device register or memory the caller means to write.
pub fn poke(addr: u64, value: u64) -> (u64, u64) {
    arm();
    // SAFETY: as in `probe`; the store changes no Rust-visible memory that the caller
    // does not mean to change.
    unsafe {
        asm!("str {v}, [{a}]", a = in(reg) addr, v = in(reg) value, options(nostack));
    }
    recorded()
}

/// Branches to `addr`, which must fault: the vector records the instruction abort and
/// returns to the caller through the link register. Returns (ESR, FAR).
pub fn branch(addr: u64) -> (u64, u64) {
    arm();
    // SAFETY: the branch target faults (the caller's premise); the vector records the
    // instruction abort and returns to x30, right after the blr. If it did not fault, the
    // code there would run: the callers only aim at device pages.
    unsafe { asm!("blr {a}", a = in(reg) addr, out("x30") _, clobber_abi("C")) };
    recorded()
}

/// A 32-bit volatile load from RAM or a device register the client maps.
pub fn read_u32(addr: u64) -> u32 {
    // SAFETY: callers pass 4-byte-aligned addresses of RAM (normal memory) or of a device
    // register (device memory), both identity-mapped in the client's table and mapped for
    // the host by warden.
    unsafe { (addr as *const u32).read_volatile() }
}

/// A 32-bit volatile store, as [`read_u32`].
pub fn write_u32(addr: u64, v: u32) {
    // SAFETY: as in `read_u32`; the caller means to change what is there.
    unsafe { (addr as *mut u32).write_volatile(v) }
}
