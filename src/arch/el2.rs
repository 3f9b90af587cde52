//! Per-CPU EL2 configuration for running the host at EL1 under warden.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

use super::frame::SPSR_EL1H_MASKED;

// HCR_EL2 bits (DDI 0487 D24.2.50).
const HCR_VM: u64 = 1 << 0;
const HCR_TSC: u64 = 1 << 19;
const HCR_RW: u64 = 1 << 31;
const HCR_APK: u64 = 1 << 40;
const HCR_API: u64 = 1 << 41;

/// The host runs AArch64 at EL1 under stage-2 (VM), every SMC traps to warden (TSC), and
/// its pointer-authentication keys and instructions do not trap (APK, API). Interrupts
/// are not routed to EL2 (IMO/FMO/AMO clear): the host owns the GIC CPU interface.
pub const HCR_HOST: u64 = HCR_VM | HCR_TSC | HCR_RW | HCR_APK | HCR_API;

/// CPTR_EL2 (non-VHE): no FP/SIMD, SVE or SME traps, so the host keeps its FP state to
/// itself (warden is built soft-float and never touches it). RES1 bits 13, 9 and 7:0.
const CPTR_HOST: u64 = 1 << 13 | 1 << 9 | 0xff;

/// SCTLR_EL1 as the arm64 boot protocol expects it: MMU and caches off, RES1 bits set.
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;

/// Sets up this CPU's EL2 state for the host; `s2_root` and `vtcr` describe the host stage-2
/// shared by all CPUs, `cpu` is warden's index for this CPU.
pub fn init_cpu(cpu: usize, s2_root: u64, vtcr: u64) {
    unsafe extern "C" {
        static warden_el2_vectors: u8;
    }
    VBAR_EL2.set(&raw const warden_el2_vectors as u64);
    TPIDR_EL2.set(cpu as u64);
    CPTR_EL2.set(CPTR_HOST);
    // The host may use the physical counter and timer (EL1PCTEN, EL1PCEN).
    CNTHCTL_EL2.set(0b11);
    CNTVOFF_EL2.set(0);
    // No debug or PMU traps; the host gets every event counter (HPMN = PMCR_EL0.N).
    let pmcr: u64;
    // SAFETY: reading PMCR_EL0 at EL2 has no side effects.
    unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack)) };
    MDCR_EL2.set((pmcr >> 11) & 0x1f);
    let midr = MIDR_EL1.get();
    // SAFETY: VPIDR_EL2 only changes what the host reads as MIDR_EL1.
    unsafe { core::arch::asm!("msr vpidr_el2, {}", in(reg) midr, options(nostack)) };
    VMPIDR_EL2.set(MPIDR_EL1.get());
    SCTLR_EL1.set(SCTLR_EL1_RESET);
    if (ID_AA64PFR0_EL1.get() >> 24) & 0xf != 0 {
        // GICv3 system registers: let EL1 enable its own (ICC_SRE_EL2.Enable | SRE).
        // SAFETY: ICC_SRE_EL2 exists when ID_AA64PFR0_EL1.GIC is non-zero.
        unsafe {
            core::arch::asm!("msr s3_4_c12_c9_5, {}", "isb", in(reg) 0xfu64, options(nostack))
        };
    }
    if (ID_AA64PFR0_EL1.get() >> 32) & 0xf != 0 {
        // ZCR_EL2.LEN = max: the host may use the longest SVE vectors.
        // SAFETY: ZCR_EL2 exists when SVE is implemented; CPTR_EL2.TZ is clear.
        unsafe {
            core::arch::asm!("msr s3_4_c1_c2_0, {}", "isb", in(reg) 0xfu64, options(nostack))
        };
    }
    // Registers whose reset values are UNKNOWN and that firmware leaves alone when it
    // enters a hypervisor at EL2 (TF-A only sets them up when EL2 is unused): no
    // fine-grained traps (FEAT_FGT), no extended HCR controls (FEAT_HCX).
    if (ID_AA64MMFR0_EL1.get() >> 56) & 0xf != 0 {
        HFGRTR_EL2.set(0);
        HFGWTR_EL2.set(0);
        HFGITR_EL2.set(0);
        HDFGRTR_EL2.set(0);
        HDFGWTR_EL2.set(0);
    }
    if (ID_AA64MMFR1_EL1.get() >> 40) & 0xf != 0 {
        // SAFETY: HCRX_EL2 exists when ID_AA64MMFR1_EL1.HCX is non-zero; zero enables
        // no extension and traps nothing.
        unsafe { core::arch::asm!("msr s3_4_c1_c2_2, xzr", "isb", options(nostack)) };
    }
    VTCR_EL2.set(vtcr);
    VTTBR_EL2.set(s2_root);
    HCR_EL2.set(HCR_HOST);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating stage-1&2 TLB entries for the host's VMID only drops cached
    // translations.
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
}

/// Enters the host at EL1h (interrupts masked, MMU off as SCTLR_EL1 was reset) at `entry`
/// with `x0 = arg0` and all other general-purpose registers zero.
///
/// # Safety
/// `stack_top` must be the top of the current CPU's EL2 stack: the stack pointer is reset
/// to it, discarding every Rust frame on it. `init_cpu` must have run on this CPU.
pub unsafe fn enter_host(entry: u64, arg0: u64, stack_top: u64) -> ! {
    unsafe extern "C" {
        fn warden_enter_host(entry: u64, arg0: u64, spsr: u64, stack_top: u64) -> !;
    }
    // SAFETY: per this function's contract.
    unsafe { warden_enter_host(entry, arg0, SPSR_EL1H_MASKED, stack_top) }
}

/// Cleans data-cache lines of `[start, end)` to the point of coherency, so that a host
/// running with its MMU off sees what warden wrote through its cacheable mapping.
pub fn clean_dcache_to_poc(start: usize, end: usize) {
    let line = 4 << (ctr_dminline_log2_words());
    let mut addr = start & !(line - 1);
    while addr < end {
        // SAFETY: `dc cvac` on a mapped address only writes back a cache line.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    // SAFETY: a barrier has no memory effects of its own.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Cleans and invalidates data-cache lines of `[start, end)` to the point of coherency, so
/// that the CPU next reads what a non-coherent device (an SMMU's event records) wrote to
/// memory. Lines the CPU wrote are written back first, so nothing of its own is lost.
pub fn invalidate_dcache_to_poc(start: usize, end: usize) {
    let line = 4 << (ctr_dminline_log2_words());
    let mut addr = start & !(line - 1);
    while addr < end {
        // SAFETY: `dc civac` on a mapped address only writes back and drops a cache line.
        unsafe { core::arch::asm!("dc civac, {}", in(reg) addr, options(nostack)) };
        addr += line;
    }
    // SAFETY: a barrier has no memory effects of its own.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

fn ctr_dminline_log2_words() -> usize {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    ((ctr >> 16) & 0xf) as usize
}
