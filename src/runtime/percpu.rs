//! What warden keeps per CPU: the CPU's index (TPIDR_EL2) and where it enters the host next.

use aarch64_cpu::registers::*;
use spin::Mutex;

use crate::psci::HostEntry;

/// The most CPUs warden runs on. linker.ld reserves one EL2 stack per CPU with its own
/// `MAX_CPUS`; the link fails unless the two agree (`main.rs` exports this value as
/// `WARDEN_MAX_CPUS`, which linker.ld checks with ASSERT).
pub const MAX_CPUS: usize = 8;

pub fn current_cpu_index() -> usize {
    TPIDR_EL2.get() as usize
}

/// Where each CPU enters the host next time warden brings it up (PSCI relay).
pub struct HostEntries(Mutex<[Option<HostEntry>; MAX_CPUS]>);

impl HostEntries {
    const fn new() -> Self {
        Self(Mutex::new([None; MAX_CPUS]))
    }
    /// Records `entry` for `cpu`; an index past `MAX_CPUS` records nothing.
    pub fn set(&self, cpu: usize, entry: HostEntry) {
        if let Some(slot) = self.0.lock().get_mut(cpu) {
            *slot = Some(entry);
        }
    }
    /// Takes the entry recorded for `cpu`, if any.
    pub fn take(&self, cpu: usize) -> Option<HostEntry> {
        self.0.lock().get_mut(cpu).and_then(Option::take)
    }
}

pub static HOST_ENTRIES: HostEntries = HostEntries::new();
