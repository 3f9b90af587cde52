//! The `log` backend: one line per record on the console, tagged with the CPU that logged
//! it. The tag comes from a function the runtime passes in, so that the console side
//! depends on nothing of the runtime.

use core::fmt::Write;

use log::{LevelFilter, Log, Metadata, Record};
use spin::{Mutex, Once};

use super::console::Pl011;

/// Serialises whole log lines between CPUs. The panic path bypasses it (see `emergency`).
static LINE_LOCK: Mutex<()> = Mutex::new(());
/// Gives the calling CPU's tag; set once by `init`.
static CPU_TAG: Once<fn() -> usize> = Once::new();

struct Logger;

static LOGGER: Logger = Logger;

fn cpu_tag() -> usize {
    CPU_TAG.get().map_or(0, |f| f())
}

impl Log for Logger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, record: &Record) {
        if let Some(mut uart) = Pl011::current() {
            let _guard = LINE_LOCK.lock();
            let cpu = cpu_tag();
            let _ = writeln!(uart, "warden[{cpu}] {:5} {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

/// Installs the logger at `level`; `cpu` gives the tag of the CPU that logs a line.
pub fn init(level: LevelFilter, cpu: fn() -> usize) {
    CPU_TAG.call_once(|| cpu);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
