//! The `log` backend: one line per record on the console, tagged with the CPU that logged
//! it. The tag comes from a function the runtime passes in, so that the console side
//! depends on nothing of the runtime.
//!
//! A CPU can hold its lines back (`hold`/`release`): the runtime does so for every FF-A
//! call, so that nothing is written to the console while the proxy's mailbox or memory
//! lock, or the stage-2 lock, is held; the lines go out when the call is over. Lines that
//! do not fit in the CPU's buffer are dropped and counted.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use log::{LevelFilter, Log, Metadata, Record};
use spin::{Mutex, Once};

use super::console::Pl011;

/// Serialises whole log lines between CPUs. The panic path bypasses it (see `emergency`).
static LINE_LOCK: Mutex<()> = Mutex::new(());
/// Gives the calling CPU's tag; set once by `init`.
static CPU_TAG: Once<fn() -> usize> = Once::new();

/// CPUs that can hold lines back (a CPU with a larger tag writes at once).
const HELD_CPUS: usize = 8;
const HELD_BYTES: usize = 2048;

struct Held {
    len: usize,
    bytes: [u8; HELD_BYTES],
}

impl Write for Held {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(fmt::Error)?;
        // A byte loop, not `copy_from_slice`: the pieces a line is formatted from are a few
        // bytes each, and a call to memcpy per piece costs more than the copy.
        for (d, b) in slot.iter_mut().zip(s.bytes()) {
            *d = b;
        }
        self.len = end;
        Ok(())
    }
}

/// Each CPU's held lines; only that CPU takes its lock, so it never waits.
static HELD: [Mutex<Held>; HELD_CPUS] = [const {
    Mutex::new(Held {
        len: 0,
        bytes: [0; HELD_BYTES],
    })
}; HELD_CPUS];
/// Whether each CPU holds its lines back, and whether it has any held: plain flags, so
/// that holding and releasing around a call that logs nothing costs two stores and a load.
static HOLDING: [AtomicBool; HELD_CPUS] = [const { AtomicBool::new(false) }; HELD_CPUS];
static PENDING: [AtomicBool; HELD_CPUS] = [const { AtomicBool::new(false) }; HELD_CPUS];
/// Lines dropped because a CPU's held buffer was full.
static HELD_DROPPED: AtomicU64 = AtomicU64::new(0);

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
        let cpu = cpu_tag();
        if HOLDING.get(cpu).is_some_and(|h| h.load(Ordering::Relaxed))
            && let Some(mut held) = HELD.get(cpu).map(Mutex::lock)
        {
            let start = held.len;
            if writeln!(held, "warden[{cpu}] {:5} {}", record.level(), record.args()).is_err() {
                held.len = start;
                HELD_DROPPED.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(p) = PENDING.get(cpu) {
                p.store(true, Ordering::Relaxed);
            }
            return;
        }
        if let Some(mut uart) = Pl011::current() {
            let _guard = LINE_LOCK.lock();
            let _ = writeln!(uart, "warden[{cpu}] {:5} {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

/// Holds back the lines of CPU `cpu` (the caller, by the tag the logger uses) until
/// `release`. The caller passes its tag: this runs on every FF-A call.
#[inline]
pub fn hold(cpu: usize) {
    if let Some(h) = HOLDING.get(cpu) {
        h.store(true, Ordering::Relaxed);
    }
}

/// Writes the held lines of CPU `cpu` (the caller) and stops holding them.
#[inline]
pub fn release(cpu: usize) {
    if let Some(h) = HOLDING.get(cpu) {
        h.store(false, Ordering::Relaxed);
    }
    if PENDING.get(cpu).is_some_and(|p| p.load(Ordering::Relaxed)) {
        write_held(cpu);
    }
}

#[inline(never)]
fn write_held(cpu: usize) {
    if let Some(p) = PENDING.get(cpu) {
        p.store(false, Ordering::Relaxed);
    }
    let Some(mut held) = HELD.get(cpu).map(Mutex::lock) else {
        return;
    };
    if let Some(mut uart) = Pl011::current()
        && let Some(text) = held.bytes.get(..held.len)
    {
        let _guard = LINE_LOCK.lock();
        uart.write_bytes(text);
    }
    held.len = 0;
}

/// Log lines dropped because a CPU's held buffer was full.
pub fn held_dropped() -> u64 {
    HELD_DROPPED.load(Ordering::Relaxed)
}

/// Installs the logger at `level`; `cpu` gives the tag of the CPU that logs a line.
pub fn init(level: LevelFilter, cpu: fn() -> usize) {
    CPU_TAG.call_once(|| cpu);
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
