//! The PL011 console named by `/chosen/stdout-path`, and the `log` backend on top of it.
//! The UART is already initialised by the firmware; warden only writes to it.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicUsize, Ordering};

use log::{LevelFilter, Log, Metadata, Record};
use spin::Mutex;

const UART_DR: usize = 0x00;
const UART_FR: usize = 0x18;
const FR_TXFF: u32 = 1 << 5;

/// The console's MMIO base, 0 until the DT has been read.
static BASE: AtomicUsize = AtomicUsize::new(0);
/// Serialises whole log lines between CPUs. The panic path bypasses it (see `emergency`).
static LINE_LOCK: Mutex<()> = Mutex::new(());

struct Pl011 {
    base: usize,
}

impl Pl011 {
    fn current() -> Option<Self> {
        match BASE.load(Ordering::Acquire) {
            0 => None,
            base => Some(Self { base }),
        }
    }

    fn putc(&self, byte: u8) {
        // SAFETY: `base` is the PL011 from the device tree, mapped as device memory in
        // warden's stage-1 before `init` published it; FR and DR are its registers.
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

struct Logger;

static LOGGER: Logger = Logger;

impl Log for Logger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        if let Some(mut uart) = Pl011::current() {
            let _guard = LINE_LOCK.lock();
            let cpu = crate::runtime::current_cpu_index();
            let _ = writeln!(uart, "warden[{cpu}] {:5} {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

/// Publishes the console at `base` (already mapped) and installs the logger.
pub fn init(base: usize, level: LevelFilter) {
    BASE.store(base, Ordering::Release);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Writes without taking the line lock: for the panic and fault paths, which may run
/// while another CPU (or this one) holds it.
pub fn emergency(args: fmt::Arguments) {
    if let Some(mut uart) = Pl011::current() {
        let _ = uart.write_fmt(args);
    }
}
