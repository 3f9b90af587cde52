//! The last words of a CPU that stops (a panic, a fault inside warden): written straight to
//! the console without the logger's line lock, which this CPU or another may hold.

use core::fmt::{self, Write};

use super::console::Pl011;

/// Writes `args` to the console, if there is one, without taking any lock.
pub fn write(args: fmt::Arguments) {
    if let Some(mut uart) = Pl011::current() {
        let _ = uart.write_fmt(args);
    }
}

/// A `fmt::Write` over `write`, for formatting a panic message piece by piece.
pub struct Emergency;

impl Write for Emergency {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(format_args!("{s}"));
        Ok(())
    }
}
