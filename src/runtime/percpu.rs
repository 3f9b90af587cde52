//! What warden keeps per CPU: the CPU's index (TPIDR_EL2) and where it enters the host next.
//! A CPU's index is its position among the DT's CPUs (`psci::cpu_index`), for the boot CPU
//! too: it selects the CPU's EL2 stack and its host entries.

use core::sync::atomic::{AtomicBool, Ordering};

use aarch64_cpu::registers::*;
use spin::Mutex;

use crate::psci::{EntrySlot, HostEntry, HostEntryTable, PowerStateFormat};

/// The most CPUs warden runs on. linker.ld reserves one EL2 stack per CPU with its own
/// `MAX_CPUS`; the link fails unless the two agree (`main.rs` exports this value as
/// `WARDEN_MAX_CPUS`, which linker.ld checks with ASSERT).
pub const MAX_CPUS: usize = 8;

pub fn current_cpu_index() -> usize {
    TPIDR_EL2.get() as usize
}

/// Where each CPU enters the host next time warden brings it up (PSCI relay).
pub struct HostEntries(Mutex<HostEntryTable<MAX_CPUS>>);

impl HostEntries {
    const fn new() -> Self {
        Self(Mutex::new(HostEntryTable::new()))
    }
    pub fn set(&self, slot: EntrySlot, entry: HostEntry) -> Option<HostEntry> {
        self.0.lock().set(slot, entry)
    }
    pub fn restore(&self, slot: EntrySlot, previous: Option<HostEntry>) {
        self.0.lock().restore(slot, previous)
    }
    pub fn take(&self, slot: EntrySlot) -> Option<HostEntry> {
        self.0.lock().take(slot)
    }
}

pub static HOST_ENTRIES: HostEntries = HostEntries::new();

/// CPU_SUSPEND's power_state layout, from EL3's PSCI_FEATURES at boot (true: extended).
static EXTENDED_POWER_STATE: AtomicBool = AtomicBool::new(false);

pub fn set_power_state_format(f: PowerStateFormat) {
    EXTENDED_POWER_STATE.store(f == PowerStateFormat::Extended, Ordering::Relaxed);
}

pub fn power_state_format() -> PowerStateFormat {
    if EXTENDED_POWER_STATE.load(Ordering::Relaxed) {
        PowerStateFormat::Extended
    } else {
        PowerStateFormat::Original
    }
}
