//! The client's platform: its exception level, MMU, console, heap and power-off, and the
//! Rust entry from boot.S.

use core::arch::{asm, global_asm};
use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use buddy_system_allocator::LockedHeap;
use warden::arch::blocks::{self, Regime};
use warden::platform::dt::PlatformInfo;

global_asm!(include_str!("boot.S"));

const PSCI_SYSTEM_OFF: u32 = 0x8400_0008;

/// Where the client runs: as warden's host (EL1) or alone as BL33 (EL2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum El {
    El1,
    El2,
}

impl El {
    pub fn current() -> Self {
        let el: u64;
        // SAFETY: reading CurrentEL has no side effects.
        unsafe { asm!("mrs {}, CurrentEL", out(reg) el, options(nomem, nostack)) };
        if el >> 2 & 3 == 2 { El::El2 } else { El::El1 }
    }
}

/// The DT parser needs a heap (it re-serialises the firmware's tree).
#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();
const HEAP_WORDS: usize = 128 * 1024;
static mut HEAP_SPACE: [u64; HEAP_WORDS] = [0; HEAP_WORDS];

#[repr(C, align(4096))]
struct Table([u64; 512]);
static mut TABLE: Table = Table([0; 512]);

static UART: AtomicU64 = AtomicU64::new(0);

/// The PL011 the DT names; output is dropped until it is known.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let base = UART.load(Ordering::Relaxed) as usize;
        if base == 0 {
            return Ok(());
        }
        for b in s.bytes() {
            // SAFETY: `base` is the PL011 from the DT, mapped as device memory; FR (0x18)
            // bit 5 is TXFF, DR (0) takes one byte.
            unsafe {
                while ((base + 0x18) as *const u32).read_volatile() & (1 << 5) != 0 {}
                (base as *mut u32).write_volatile(b as u32);
            }
        }
        Ok(())
    }
}

fn id_aa64mmfr0() -> u64 {
    let v: u64;
    // SAFETY: reading an ID register has no side effects.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) v, options(nomem, nostack)) };
    v
}

/// Turns the MMU of the current EL on with 1 GiB identity blocks: normal memory for the
/// blocks holding the image and the DT, device memory elsewhere. With the MMU off every
/// access is Device memory, where the unaligned accesses that compiled Rust makes fault.
fn enable_mmu(el: El, dtb: u64) {
    let root = &raw const TABLE as u64;
    let regime = match el {
        El::El1 => Regime::El1,
        El::El2 => Regime::El2,
    };
    let table = blocks::level1_blocks(regime, |gib| gib == root >> 30 || gib == dtb >> 30);
    // SAFETY: one CPU, MMU off, nothing reads the table before the MMU is turned on.
    unsafe { TABLE.0 = table };
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

/// Finds the console in the DT the client was handed.
fn read_dt(dtb: u64) -> Option<PlatformInfo> {
    // SAFETY: x0 at entry is the DT (arm64 boot protocol; warden and TF-A both pass it);
    // its header's totalsize bounds the blob, and the MMU maps its block as normal memory.
    let blob = unsafe {
        let size = u32::from_be(((dtb + 4) as *const u32).read()) as usize;
        core::slice::from_raw_parts(dtb as *const u8, size)
    };
    // TF-A edits the tree in place and leaves FDT_NOP tokens that the parser stops at.
    let tree = warden::platform::dt::normalize(blob).ok()?;
    PlatformInfo::parse(&tree).ok()
}

#[unsafe(no_mangle)]
extern "C" fn bench_main(dtb: u64, entry_counter: u64) -> ! {
    let el = El::current();
    enable_mmu(el, dtb);
    // SAFETY: the heap space is a static used for nothing else, given to the heap once.
    unsafe {
        HEAP.lock()
            .init(&raw mut HEAP_SPACE as usize, HEAP_WORDS * 8)
    };
    if let Some(uart) = read_dt(dtb).and_then(|p| p.console) {
        UART.store(uart.start, Ordering::Relaxed);
    }
    let ok = crate::ops::run(el, dtb, entry_counter);
    say!("bench: {}", if ok { "done" } else { "FAILED" });
    power_off()
}

pub fn power_off() -> ! {
    smccc::smc64(PSCI_SYSTEM_OFF, [0; 17]);
    loop {
        core::hint::spin_loop();
    }
}

#[unsafe(no_mangle)]
extern "C" fn bench_unexpected(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    say!("bench: unexpected exception {kind}: ESR {esr:#x} ELR {elr:#x} FAR {far:#x}");
    say!("bench: FAILED");
    power_off()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    say!("bench: panic: {info}");
    say!("bench: FAILED");
    power_off()
}
