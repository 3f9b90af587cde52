//! The exception level the client runs at, and its MMU: one level of 1 GiB identity blocks
//! (warden::arch::blocks), normal memory for the blocks holding the image and the DT, device
//! memory elsewhere. With the MMU off every access is Device memory, where the unaligned
//! accesses that compiled Rust makes fault (DDI 0487 B2.5.2).

use core::arch::asm;

use warden::arch::blocks::{self, Regime};

/// Where the client runs: as warden's host (EL1) or alone as the firmware's BL33 (EL2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El {
    El1,
    El2,
}

impl El {
    pub fn current() -> Self {
        if current_el() == 2 { El::El2 } else { El::El1 }
    }

    fn regime(self) -> Regime {
        match self {
            El::El1 => Regime::El1,
            El::El2 => Regime::El2,
        }
    }
}

/// CurrentEL.EL (0-3).
pub fn current_el() -> u64 {
    let el: u64;
    // SAFETY: reading CurrentEL has no side effects.
    unsafe { asm!("mrs {}, CurrentEL", out(reg) el, options(nomem, nostack)) };
    el >> 2 & 3
}

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut TABLE: Table = Table([0; 512]);

fn root() -> u64 {
    &raw const TABLE as u64
}

/// Fills the table (the image's block and the DT's normal memory) and turns the MMU of the
/// current EL on. The primary CPU, once, before anything reads the table.
pub fn init(el: El, dtb: u64) {
    let image = root() >> 30;
    let table = blocks::level1_blocks(el.regime(), |gib| gib == image || gib == dtb >> 30);
    // SAFETY: one CPU, MMU off, nothing reads the table before the MMU is turned on.
    unsafe { (&raw mut TABLE.0).write(table) };
    enable(el);
}

/// Turns the MMU of the current EL on with the table [`init`] filled: a secondary CPU's
/// first step.
pub fn enable(el: El) {
    let root = root();
    let pa_range = (id_aa64mmfr0() & 0xf).min(5);
    match el {
        El::El1 => {
            // EPD1: no TTBR1 walks. IPS at [34:32].
            let tcr = blocks::TCR_WALK_39BIT | 1 << 23 | pa_range << 32;
            // SCTLR_EL1: RES1 bits, M, C, I.
            let sctlr = 0x30d0_0800u64 | 1 | 1 << 2 | 1 << 12;
            // SAFETY: the table identity-maps everything this program touches, with the
            // image's and the DT's blocks normal memory.
            unsafe {
                asm!(
                    "msr mair_el1, {mair}", "msr tcr_el1, {tcr}", "msr ttbr0_el1, {root}",
                    "isb", "tlbi vmalle1", "dsb nsh", "isb", "msr sctlr_el1, {sctlr}", "isb",
                    mair = in(reg) blocks::MAIR, tcr = in(reg) tcr, root = in(reg) root,
                    sctlr = in(reg) sctlr, options(nostack)
                )
            };
        }
        El::El2 => {
            // Non-VHE EL2 (E2H and TGE clear, so the EL2 register layouts below apply and
            // nothing is routed to EL2 that the firmware set up), AArch64 EL1 (RW).
            let hcr = 1u64 << 31;
            // PS at [18:16]; bits 31 and 23 are RES1.
            let tcr = blocks::TCR_WALK_39BIT | pa_range << 16 | 1 << 31 | 1 << 23;
            // SCTLR_EL2 (non-VHE): RES1 bits, M, C, I.
            let sctlr = 0x30c5_0830u64 | 1 | 1 << 2 | 1 << 12;
            // SAFETY: as for EL1; no hypervisor runs here, so EL2's own regime is the only
            // translation (no stage 2).
            unsafe {
                asm!(
                    "msr hcr_el2, {hcr}", "msr mair_el2, {mair}", "msr tcr_el2, {tcr}",
                    "msr ttbr0_el2, {root}", "isb", "tlbi alle2", "dsb nsh", "isb",
                    "msr sctlr_el2, {sctlr}", "isb",
                    hcr = in(reg) hcr, mair = in(reg) blocks::MAIR, tcr = in(reg) tcr,
                    root = in(reg) root, sctlr = in(reg) sctlr, options(nostack)
                )
            };
        }
    }
}

/// Maps 1 GiB block `gib` as `normal` or device memory at EL1, and invalidates the TLB. Only
/// while no other CPU runs (no broadcast of the change to their walks is needed then).
pub fn remap_el1(gib: usize, normal: bool) {
    let entry = blocks::level1_blocks(Regime::El1, |g| g == gib as u64 && normal)[gib];
    // SAFETY: only this CPU walks the table while it changes; the entry maps the same
    // addresses with other attributes, and the TLB is invalidated after.
    unsafe {
        (&raw mut TABLE.0[gib]).write_volatile(entry);
        asm!(
            "dsb ishst",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            options(nostack)
        );
    }
}

fn id_aa64mmfr0() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// The physical counter, CNTPCT_EL0 (EL1 access enabled by warden's CNTHCTL_EL2).
pub fn counter() -> u64 {
    let c: u64;
    // SAFETY: reading the physical counter has no side effects.
    unsafe { asm!("mrs {}, cntpct_el0", out(reg) c, options(nomem, nostack)) };
    c
}
