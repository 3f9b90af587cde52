//! warden's console: which PL011 it is, and a writer that a host cannot stall.
//!
//! - Which UART (`choose`): one the host does not own when the DT offers one (an enabled,
//!   normal-world PL011 other than `/chosen/stdout-path`, which warden then hides from the
//!   host); otherwise the host's stdout UART, shared. Never the secure UART (`status =
//!   "disabled"`, `secure-status = "okay"`): that one is EL3's.
//! - How it waits (`TxGate`): a shared UART is the host's to disable (UARTCR) or to fill,
//!   and a real PL011 then never drains. warden waits at most `timeout` ticks for FIFO
//!   space, drops the byte and counts it when the time is up, and from then on drops at
//!   once, without waiting, until the FIFO has space again. So a stalled console costs one
//!   timeout per stall, never a hung CPU, whatever lock the CPU holds.
//!
//! The logger (`logger`) and the panic path (`emergency`) write through here; this module
//! knows nothing of CPUs or log records.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::platform::memmap::Range;

/// A UART's transmit side as the gate needs it.
pub trait TxUart {
    /// Whether the transmit FIFO has no space (PL011 UARTFR.TXFF).
    fn tx_full(&self) -> bool;
    fn put(&self, byte: u8);
}

/// The wait policy and its account, shared by every CPU writing to one UART.
pub struct TxGate {
    stalled: AtomicBool,
    dropped: AtomicU64,
}

impl Default for TxGate {
    fn default() -> Self {
        Self::new()
    }
}

impl TxGate {
    pub const fn new() -> Self {
        Self {
            stalled: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        }
    }

    /// At the start of each write: a UART that drains again is no longer stalled.
    pub fn begin(&self, uart: &impl TxUart) {
        if self.stalled.load(Ordering::Relaxed) && !uart.tx_full() {
            self.stalled.store(false, Ordering::Relaxed);
        }
    }

    /// Writes `byte` if the UART takes it within `timeout` ticks of `now`; drops and counts
    /// it otherwise. Returns whether it was written. With FIFO space this is one flag read
    /// and the write; the clock and the timeout are read only when the FIFO is full.
    #[inline(always)]
    pub fn put(
        &self,
        uart: &impl TxUart,
        byte: u8,
        now: impl Fn() -> u64,
        timeout: impl Fn() -> u64,
    ) -> bool {
        if uart.tx_full() && !self.wait_for_space(uart, now, timeout) {
            return false;
        }
        uart.put(byte);
        true
    }

    /// The slow path of `put`, out of line: waits up to `timeout` ticks for FIFO space,
    /// or not at all while stalled. Without space the byte is dropped and counted, and the
    /// gate stalls until `begin` sees the FIFO drain.
    #[inline(never)]
    fn wait_for_space(
        &self,
        uart: &impl TxUart,
        now: impl Fn() -> u64,
        timeout: impl Fn() -> u64,
    ) -> bool {
        if self.stalled.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let (start, limit) = (now(), timeout());
        while uart.tx_full() {
            if now().wrapping_sub(start) >= limit {
                self.stalled.store(true, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }

    /// Bytes dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The UART warden writes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleChoice {
    /// A PL011 the host does not get: hide it from the host.
    Own(Range),
    /// The host's stdout UART: shared, so the host can stall it.
    Shared(Range),
}

impl ConsoleChoice {
    pub fn frame(self) -> Range {
        match self {
            Self::Own(r) | Self::Shared(r) => r,
        }
    }
}

/// Picks warden's console from the DT `tree`; `stdout` is the UART `/chosen/stdout-path`
/// names (`PlatformInfo::console`). Without a stdout UART warden has no console, as before:
/// it does not take a UART the host may be using without saying so.
pub fn choose(tree: &[u8], stdout: Option<Range>) -> Option<ConsoleChoice> {
    let tree = crate::platform::dt::FlatTree::new(tree);
    choose_in(tree.as_ref()?, stdout)
}

/// `choose` for a tree that is already indexed (warden's boot reads the DT once).
pub(crate) fn choose_in(
    t: &crate::platform::dt::FlatTree<'_>,
    stdout: Option<Range>,
) -> Option<ConsoleChoice> {
    let stdout = stdout?;
    let own = (1..t.len())
        // Serial ports by name first (DT spec §2.2.2 generic name "serial"; QEMU and
        // older trees say "pl011" or "uart"), so that the properties of every other
        // node are not read at boot. A PL011 named otherwise is not taken.
        .filter(|&n| {
            t.node(n).is_some_and(|node| {
                [&b"serial"[..], b"pl011", b"uart"]
                    .iter()
                    .any(|p| node.name.starts_with(p))
            })
        })
        .filter(|&n| t.has_compatible(n, "arm,pl011"))
        // "okay" or absent: not disabled, and so not the secure UART either.
        .filter(|&n| {
            t.prop(n, "status")
                .and_then(|v| core::str::from_utf8(v).ok())
                .map(|s| s.trim_end_matches('\0'))
                .is_none_or(|s| s == "okay" || s == "ok")
        })
        .filter_map(|n| {
            let (base, size) = t.regs_small(n).next()?;
            Range::from_base_size(base, size?)
        })
        .find(|r| r.start != stdout.start);
    Some(match own {
        Some(r) => ConsoleChoice::Own(r),
        None => ConsoleChoice::Shared(stdout),
    })
}

#[cfg(all(target_os = "none", feature = "runtime"))]
pub use mmio::{Pl011, publish};

#[cfg(all(target_os = "none", feature = "runtime"))]
mod mmio {
    use core::fmt::{self, Write};
    use core::sync::atomic::{AtomicUsize, Ordering};

    use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

    use super::{TxGate, TxUart};

    const UART_DR: usize = 0x00;
    const UART_FR: usize = 0x18;
    const FR_TXFF: u32 = 1 << 5;

    /// The console's MMIO base, 0 until the DT has been read.
    static BASE: AtomicUsize = AtomicUsize::new(0);
    static GATE: TxGate = TxGate::new();

    /// The PL011 at `base`.
    pub struct Pl011 {
        base: usize,
    }

    impl TxUart for Pl011 {
        fn tx_full(&self) -> bool {
            // SAFETY: `base` is the PL011 from the device tree, mapped as device memory in
            // warden's stage-1 before `publish` made it visible; FR is its flag register.
            unsafe { ((self.base + UART_FR) as *const u32).read_volatile() & FR_TXFF != 0 }
        }
        fn put(&self, byte: u8) {
            // SAFETY: as in `tx_full`; DR is its data register.
            unsafe { ((self.base + UART_DR) as *mut u32).write_volatile(byte as u32) };
        }
    }

    impl Pl011 {
        /// The published console, if there is one yet.
        pub fn current() -> Option<Self> {
            match BASE.load(Ordering::Acquire) {
                0 => None,
                base => Some(Self { base }),
            }
        }

        #[inline(always)]
        fn putc(&self, byte: u8) {
            // One millisecond per byte: ten byte times at 115200 baud, far beyond what a
            // working UART needs.
            GATE.put(self, byte, || CNTPCT_EL0.get(), || CNTFRQ_EL0.get() / 1000);
        }

        /// Bytes dropped because the UART did not take them in time.
        pub fn dropped() -> u64 {
            GATE.dropped()
        }
    }

    impl Pl011 {
        /// Writes `bytes`, each newline as CR LF.
        pub fn write_bytes(&mut self, bytes: &[u8]) {
            GATE.begin(self);
            for &b in bytes {
                if b == b'\n' {
                    self.putc(b'\r');
                }
                self.putc(b);
            }
        }
    }

    impl Write for Pl011 {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            self.write_bytes(s.as_bytes());
            Ok(())
        }
    }

    /// Publishes the PL011 at `base`, which must already be mapped as device memory.
    pub fn publish(base: usize) {
        BASE.store(base, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::{Cell, RefCell};
    use std::vec::Vec;

    /// A PL011 whose FIFO drains only when the test says so (a host that cleared UARTCR
    /// never lets it drain), and a clock that advances one tick per read.
    struct Model {
        space: Cell<usize>,
        out: RefCell<Vec<u8>>,
        reads_of_full: Cell<u64>,
    }
    impl TxUart for Model {
        fn tx_full(&self) -> bool {
            let full = self.space.get() == 0;
            if full {
                self.reads_of_full.set(self.reads_of_full.get() + 1);
            }
            full
        }
        fn put(&self, byte: u8) {
            self.space.set(self.space.get() - 1);
            self.out.borrow_mut().push(byte);
        }
    }

    fn clock() -> impl Fn() -> u64 {
        let t = Cell::new(0u64);
        move || {
            t.set(t.get() + 1);
            t.get()
        }
    }

    #[test]
    fn a_stalled_uart_costs_one_timeout_then_drops_without_waiting() {
        let uart = Model {
            space: Cell::new(4),
            out: RefCell::new(Vec::new()),
            reads_of_full: Cell::new(0),
        };
        let gate = TxGate::new();
        let now = clock();
        for b in b"hello, world" {
            gate.put(&uart, *b, &now, || 100);
        }
        assert_eq!(&uart.out.borrow()[..], b"hell");
        assert_eq!(gate.dropped(), 8);
        // One bounded wait (about 100 polls), then one poll per dropped byte.
        let polls = uart.reads_of_full.get();
        assert!((100..=100 + 8).contains(&polls), "{polls} polls");
        // The host lets the UART drain again: the next write is not stalled, bytes flow,
        // the count stays.
        uart.space.set(16);
        gate.begin(&uart);
        assert!(!gate.stalled.load(Ordering::Relaxed));
        assert!(gate.put(&uart, b'!', &now, || 100));
        assert_eq!(uart.out.borrow().last(), Some(&b'!'));
        assert_eq!(gate.dropped(), 8);
    }

    #[test]
    fn a_slow_uart_that_drains_within_the_timeout_loses_nothing() {
        struct Slow {
            polls: Cell<u32>,
            out: RefCell<Vec<u8>>,
        }
        impl TxUart for Slow {
            fn tx_full(&self) -> bool {
                // Full for 10 polls before every byte.
                self.polls.set(self.polls.get() + 1);
                !self.polls.get().is_multiple_of(11)
            }
            fn put(&self, byte: u8) {
                self.out.borrow_mut().push(byte);
            }
        }
        let uart = Slow {
            polls: Cell::new(0),
            out: RefCell::new(Vec::new()),
        };
        let gate = TxGate::new();
        let now = clock();
        for b in b"abc" {
            assert!(gate.put(&uart, *b, &now, || 100));
        }
        assert_eq!(&uart.out.borrow()[..], b"abc");
        assert_eq!(gate.dropped(), 0);
    }

    const VIRT: &[u8] = include_bytes!("../../tests/fixtures/virt.dtb");
    const STDOUT: Range = Range::new(0x0900_0000, 0x0900_1000);

    #[test]
    fn never_the_secure_uart_shared_stdout_when_there_is_no_other() {
        // QEMU virt with secure=on: pl011@9040000 is EL3's (disabled, secure-status okay).
        assert_eq!(
            choose(VIRT, Some(STDOUT)),
            Some(ConsoleChoice::Shared(STDOUT))
        );
        assert_eq!(choose(VIRT, None), None);
    }

    #[test]
    fn a_second_normal_world_uart_becomes_warden_s_own() {
        use dtoolkit::fdt::Fdt;
        use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};
        let fdt = Fdt::new(VIRT).unwrap();
        let mut tree = DeviceTree::from_fdt(&fdt);
        let uart = DeviceTreeNode::builder("serial@9080000")
            .unwrap()
            .property(DeviceTreeProperty::new("compatible", "arm,pl011").unwrap())
            .property(DeviceTreeProperty::new("reg", &[0u32, 0x0908_0000, 0, 0x1000][..]).unwrap())
            .build();
        tree.root.add_child(uart);
        let dtb = tree.to_dtb();
        assert_eq!(
            choose(&dtb, Some(STDOUT)),
            Some(ConsoleChoice::Own(Range::new(0x0908_0000, 0x0908_1000)))
        );
        // Disabled, it is not a candidate.
        let mut tree = DeviceTree::from_fdt(&Fdt::new(&dtb).unwrap());
        tree.root
            .child_mut("serial@9080000")
            .unwrap()
            .add_property(DeviceTreeProperty::new("status", "disabled").unwrap());
        let dtb = tree.to_dtb();
        assert_eq!(
            choose(&dtb, Some(STDOUT)),
            Some(ConsoleChoice::Shared(STDOUT))
        );
    }
}
