//! Per-CPU EL2 configuration for running the host at EL1 under warden.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::*;

use super::el2_config;
use super::frame::SPSR_EL1H_MASKED;

// HCR_EL2 bits (DDI 0487 D24.2.50).
const HCR_VM: u64 = 1 << 0;
const HCR_TSC: u64 = 1 << 19;
const HCR_TSW: u64 = 1 << 22;
const HCR_RW: u64 = 1 << 31;
const HCR_APK: u64 = 1 << 40;
const HCR_API: u64 = 1 << 41;

/// The host runs AArch64 at EL1 under stage-2 (VM), every SMC traps to warden (TSC), data
/// cache maintenance by set/way traps too (TSW: it acts on whole cache lines whatever
/// they hold, warden's included; warden performs it as clean-and-invalidate), and its
/// pointer-authentication keys and instructions do not trap (APK, API). Interrupts are not
/// routed to EL2 (IMO/FMO/AMO clear): the host owns the GIC CPU interface.
pub const HCR_HOST: u64 = HCR_VM | HCR_TSC | HCR_TSW | HCR_RW | HCR_APK | HCR_API;

/// CPTR_EL2 (non-VHE): no FP/SIMD, SVE or SME traps, so the host keeps its FP state to
/// itself (warden is built soft-float and never touches it). RES1 bits 13, 9 and 7:0.
const CPTR_HOST: u64 = 1 << 13 | 1 << 9 | 0xff;

/// Set only when scripts/bench builds warden (`WARDEN_BENCH_EL2_PMU=1`): the benchmark
/// client counts warden's instructions with the PMU at EL2, which MDCR_EL2.HPMD otherwise
/// prohibits. Never in a build that runs a real host.
pub const BENCH_EL2_PMU: bool = option_env!("WARDEN_BENCH_EL2_PMU").is_some();

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
    // No debug or PMU traps; the host gets every event counter (HPMN = PMCR_EL0.N), and
    // none of them counts at EL2 (`el2_config::mdcr_el2`).
    let pmcr: u64;
    // SAFETY: reading PMCR_EL0 at EL2 has no side effects.
    unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) pmcr, options(nomem, nostack)) };
    let dfr0 = ID_AA64DFR0_EL1.get();
    MDCR_EL2.set(el2_config::mdcr_el2(pmcr >> 11, dfr0, BENCH_EL2_PMU));
    if el2_config::has_trace_filter(dfr0) {
        // SAFETY: TRFCR_EL2 exists with FEAT_TRF; 0 prohibits trace at EL2 (its reset value
        // is UNKNOWN).
        unsafe { core::arch::asm!("msr s3_4_c1_c2_1, xzr", options(nostack)) };
    }
    if el2_config::has_spe(dfr0) {
        // SAFETY: PMSCR_EL2 exists with FEAT_SPE; 0 disables profiling at EL2.
        unsafe { core::arch::asm!("msr s3_4_c9_c9_0, xzr", options(nostack)) };
    }
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
    let fgt = el2_config::fgt_level(ID_AA64MMFR0_EL1.get());
    if fgt >= 1 {
        HFGRTR_EL2.set(0);
        HFGWTR_EL2.set(0);
        HFGITR_EL2.set(0);
        HDFGRTR_EL2.set(0);
        HDFGWTR_EL2.set(0);
        if el2_config::has_amu(ID_AA64PFR0_EL1.get()) {
            // SAFETY: HAFGRTR_EL2 exists with FEAT_FGT and FEAT_AMUv1; 0 traps nothing.
            unsafe { core::arch::asm!("msr s3_4_c3_c1_6, xzr", options(nostack)) };
        }
    }
    if fgt >= 2 {
        // SAFETY: the FEAT_FGT2 registers exist when ID_AA64MMFR0_EL1.FGT >= 2; the values
        // trap nothing (`el2_config`).
        unsafe {
            core::arch::asm!(
                "msr s3_4_c3_c1_2, {rtr}",
                "msr s3_4_c3_c1_3, {wtr}",
                "msr s3_4_c3_c1_7, {itr}",
                "msr s3_4_c3_c1_0, {drtr}",
                "msr s3_4_c3_c1_1, {dwtr}",
                rtr = in(reg) el2_config::HFGRTR2_NO_TRAP,
                wtr = in(reg) el2_config::HFGWTR2_NO_TRAP,
                itr = in(reg) el2_config::HFGITR2_NO_TRAP,
                drtr = in(reg) el2_config::HDFGRTR2_NO_TRAP,
                dwtr = in(reg) el2_config::HDFGWTR2_NO_TRAP,
                options(nostack)
            )
        };
    }
    if el2_config::has_sme(ID_AA64PFR1_EL1.get()) {
        let smfr0: u64;
        // SAFETY: reading ID_AA64SMFR0_EL1 has no side effects.
        unsafe {
            core::arch::asm!("mrs {}, s3_0_c0_c4_5", out(reg) smfr0, options(nomem, nostack))
        };
        // SAFETY: SMCR_EL2 exists with FEAT_SME; CPTR_EL2.TSM is clear. Its reset value is
        // UNKNOWN.
        unsafe {
            core::arch::asm!(
                "msr s3_4_c1_c2_6, {}",
                "isb",
                in(reg) el2_config::smcr_el2(smfr0),
                options(nostack)
            )
        };
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
