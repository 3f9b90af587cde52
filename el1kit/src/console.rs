//! The PL011 UART the DT names (PL011 TRM DDI 0183: DR at 0x00, FR at 0x18 with TXFF in bit
//! 5). Polled, no interrupts; output is dropped until [`set_base`] is called.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

static BASE: AtomicU64 = AtomicU64::new(0);

const DR: usize = 0x00;
const FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// Sets the UART's base address: a PL011 the client maps as device memory.
pub fn set_base(base: u64) {
    BASE.store(base, Ordering::Relaxed);
}

/// The UART's base address, 0 until it is known.
pub fn base() -> u64 {
    BASE.load(Ordering::Relaxed)
}

/// The console as a [`Write`]r.
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let base = base() as usize;
        if base == 0 {
            return Ok(());
        }
        for b in s.bytes() {
            // SAFETY: `base` is the PL011 from the DT, mapped as device memory (`set_base`);
            // FR and DR are its registers.
            unsafe {
                while ((base + FR) as *const u32).read_volatile() & FR_TXFF != 0 {}
                ((base + DR) as *mut u32).write_volatile(b as u32);
            }
        }
        Ok(())
    }
}
