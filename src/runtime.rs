//! The bare-metal runtime, by responsibility:
//! - `image`: the linker script's symbols as addresses;
//! - `boot`: the first CPU's boot and the secondaries' start, up to the host's entry;
//! - `trap`: every exception from the host, and what is injected back;
//! - `host_mem`: the machine as the FF-A proxy sees it (host RAM, stage-2, SMMUs, EL3);
//! - `own_mailbox`: warden's own RX/TX buffers with the SPMC, behind their lock;
//! - `percpu`: CPU indexes and where each CPU enters the host next;
//! - `failure`: panics and faults inside warden.
//!
//! The assembly in `boot/` calls the `extern "C"` functions in `boot`, `trap` and
//! `failure`.

use core::sync::atomic::AtomicU64;

use buddy_system_allocator::LockedHeap;
use spin::{Mutex, Once};

use crate::arch::stage2::HostStage2;
use crate::counters::Counters;
use crate::ffa::proxy::FfaProxy;
use crate::platform::dt::PlatformInfo;
use crate::platform::memmap::Range;
use crate::platform::smmuv3::hw as smmu_hw;

mod boot;
mod failure;
mod host_mem;
mod image;
mod own_mailbox;
pub mod percpu;
mod trap;

pub use percpu::{MAX_CPUS, current_cpu_index};

pub const BANNER: &str = concat!(
    "warden ",
    env!("CARGO_PKG_VERSION"),
    ": EL2 FF-A proxy hypervisor"
);

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// What the boot CPU learnt and built, shared with the others.
struct Shared {
    platform: PlatformInfo,
    /// warden's memory, which the host can never name.
    warden_mem: Range,
    ffa: FfaProxy,
    /// The host's stage-2, shared by all CPUs (one VMID: there is one host).
    stage2: Mutex<HostStage2>,
    vtcr: u64,
    /// The SMMUs warden took over: their DMA tables follow the host's stage-2.
    smmus: alloc::vec::Vec<OwnedSmmu>,
}

/// An SMMUv3 that warden drives (`platform::smmuv3`).
struct OwnedSmmu {
    frame: Range,
    /// Commands and the DMA table (lends and reclaims).
    control: Mutex<smmu_hw::Smmu>,
    /// The event queue (DMA faults), drained on the way into warden.
    events: Mutex<smmu_hw::Events>,
}

static SHARED: Once<Shared> = Once::new();

/// What warden has done for the host (see `counters`).
static COUNTERS: Counters = Counters::new();
/// CNTPCT_EL0 at warden's first instruction and at the host's first entry.
static BOOT_ENTRY: AtomicU64 = AtomicU64::new(0);
static BOOT_HOST: AtomicU64 = AtomicU64::new(0);

/// Referenced from `main.rs` so that the linker keeps this module.
pub fn link() {}

fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}
