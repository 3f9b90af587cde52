//! The PL011 console named by `/chosen/stdout-path`: the driver and the one published
//! instance. The UART is already initialised by the firmware; warden only writes to it.
//! The logger (`logger`) and the panic path (`emergency`) write through it; this module
//! knows nothing of CPUs or log records.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

const UART_DR: usize = 0x00;
const UART_FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// The console's MMIO base, 0 until the DT has been read.
static BASE: AtomicUsize = AtomicUsize::new(0);

/// A PL011 whose registers are mapped at `base`.
pub struct Pl011 {
    base: usize,
}

impl Pl011 {
    /// The published console, if there is one yet.
    pub fn current() -> Option<Self> {
        match BASE.load(Ordering::Acquire) {
            0 => None,
            base => Some(Self { base }),
        }
    }

    fn putc(&self, byte: u8) {
        // SAFETY: `base` is the PL011 from the device tree, mapped as device memory in
        // warden's stage-1 before `publish` made it visible; FR and DR are its registers.
        unsafe {
            let fr = (self.base + UART_FR) as *const u32;
            while fr.read_volatile() & FR_TXFF != 0 {}
            ((self.base + UART_DR) as *mut u32).write_volatile(byte as u32);
        }
    }
}

impl Write for Pl011 {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.putc(b'\r');
            }
            self.putc(b);
        }
        Ok(())
    }
}

/// Publishes the PL011 at `base`, which must already be mapped as device memory.
pub fn publish(base: usize) {
    BASE.store(base, Ordering::Release);
}
