//! The bare-metal runtime: boot of the first and secondary CPUs, trap dispatch, heap and
//! panic handling. The assembly in `boot/` calls the `extern "C"` functions here.

use core::fmt::Write as _;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::*;
use buddy_system_allocator::LockedHeap;
use log::{LevelFilter, error, info, warn};
use spin::{Mutex, Once};

use crate::arch::el2;
use crate::arch::esr::{self, ExceptionClass, Injection};
use crate::arch::frame::TrapFrame;
use crate::arch::mmu::{self, ImageLayout};
use crate::arch::stage2::{self, HostStage2};
use crate::counters::Counters;
use crate::ffa::abi::FFA_ERROR;
use crate::ffa::abi::{FfaError, Regs};
use crate::ffa::proxy::{FfaProxy, ProxyEnv, Width};
use crate::hvc;
use crate::platform::console;
use crate::platform::devices;
use crate::platform::dt::{self, PlatformInfo};
use crate::platform::host_dt;
use crate::platform::memmap::{self, HostMemKind, Range};
use crate::platform::smmuv3::{self, hw as smmu_hw};
use crate::psci::HostEntry;
use crate::router::{self, CpuTopology, FfaService, SecureMonitor};
use crate::smccc::FunctionId;

pub const BANNER: &str = concat!(
    "warden ",
    env!("CARGO_PKG_VERSION"),
    ": EL2 FF-A proxy hypervisor"
);

#[global_allocator]
static HEAP: LockedHeap<32> = LockedHeap::empty();

/// Symbols from linker.ld; only this module turns them into addresses.
mod image {
    use crate::platform::memmap::Range;

    unsafe extern "C" {
        static __image_start: u8;
        static __text_end: u8;
        static __rodata_end: u8;
        static __image_end: u8;
        static __stacks_start: u8;
        static __heap_start: u8;
        static __heap_end: u8;
        static __host_dt_start: u8;
        static __host_dt_end: u8;
        static STACK_SIZE: u8;
        static MAX_CPUS: u8;
        fn _secondary_start();
    }

    fn addr(sym: *const u8) -> u64 {
        sym as u64
    }
    pub fn whole() -> Range {
        Range::new(addr(&raw const __image_start), addr(&raw const __image_end))
    }
    /// warden's own memory: the image minus the host's DT area at its end.
    pub fn private() -> Range {
        Range::new(
            addr(&raw const __image_start),
            addr(&raw const __host_dt_start),
        )
    }
    pub fn host_dt() -> Range {
        Range::new(
            addr(&raw const __host_dt_start),
            addr(&raw const __host_dt_end),
        )
    }
    pub fn text() -> Range {
        Range::new(addr(&raw const __image_start), addr(&raw const __text_end))
    }
    pub fn rodata() -> Range {
        Range::new(addr(&raw const __text_end), addr(&raw const __rodata_end))
    }
    pub fn rw() -> Range {
        Range::new(addr(&raw const __rodata_end), addr(&raw const __image_end))
    }
    pub fn heap() -> Range {
        Range::new(addr(&raw const __heap_start), addr(&raw const __heap_end))
    }
    /// The value of an absolute linker symbol (below 4 GiB). Not `&raw const SYM`: warden
    /// is position-independent, and that compiles to a PC-relative address, which moves
    /// with the load address; the symbol's value as MOVZ/MOVK immediates does not.
    macro_rules! absolute {
        ($sym:ident) => {{
            let value: u64;
            // SAFETY: only loads an immediate the linker fills in into a register.
            unsafe {
                core::arch::asm!(
                    "movz {v}, #:abs_g1:{s}",
                    "movk {v}, #:abs_g0_nc:{s}",
                    v = out(reg) value,
                    s = sym $sym,
                    options(pure, nomem, nostack, preserves_flags),
                )
            };
            value
        }};
    }
    pub fn max_cpus() -> usize {
        absolute!(MAX_CPUS) as usize
    }
    pub fn stack_top(cpu: usize) -> u64 {
        addr(&raw const __stacks_start) + (cpu as u64 + 1) * absolute!(STACK_SIZE)
    }
    pub fn secondary_entry() -> u64 {
        _secondary_start as *const () as u64
    }
}

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
/// Root of warden's stage-1 table, read by secondaries before their MMU is on.
static EL2_ROOT: AtomicU64 = AtomicU64::new(0);
/// Where each CPU enters the host next time warden brings it up (PSCI relay).
static HOST_ENTRIES: Mutex<[Option<HostEntry>; 8]> = Mutex::new([None; 8]);

/// warden's own buffer with the SPMC: 64 KiB, because OP-TEE's SPMC requires a whole
/// memory transaction descriptor, all fragments together, to fit in its RX buffer
/// (optee_os thread_spmc.c, add_mem_op: `n > blen`), so the buffer size bounds the
/// number of constituents a share can have (about 4000 here, 250 with one page).
#[repr(C, align(4096))]
struct Page([u8; OWN_BUFFER_PAGES * 4096]);
const OWN_BUFFER_PAGES: usize = 16;

/// warden's own RX/TX pair with the SPMC (never the host's pages: DEN0077A v1.2 §7.2).
/// The SPMC writes `OWN_RX`; warden writes `OWN_TX` (memory sharing, later).
static mut OWN_TX: Page = Page([0; OWN_BUFFER_PAGES * 4096]);
static mut OWN_RX: Page = Page([0; OWN_BUFFER_PAGES * 4096]);

/// What warden has done for the host (see `counters`).
static COUNTERS: Counters = Counters::new();
/// CNTPCT_EL0 at warden's first instruction and at the host's first entry.
static BOOT_ENTRY: AtomicU64 = AtomicU64::new(0);
static BOOT_HOST: AtomicU64 = AtomicU64::new(0);
/// Lines logged about DMA faults (for rate-limiting them).
static DMA_FAULT_LINES: AtomicU64 = AtomicU64::new(0);

/// Referenced from `main.rs` so that the linker keeps this module.
pub fn link() {}

pub fn current_cpu_index() -> usize {
    TPIDR_EL2.get() as usize
}

fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// The boot CPU, from `boot/entry.S`, with the MMU off and `dtb` from the firmware.
#[unsafe(no_mangle)]
extern "C" fn warden_primary_main(dtb: usize, entry_counter: u64) -> ! {
    BOOT_ENTRY.store(entry_counter, Ordering::Relaxed);
    TPIDR_EL2.set(0);
    let image = image::whole();
    // SAFETY: first thing on the boot CPU; the image and DT blocks become normal memory.
    // Both ends of the image: loaded anywhere, it may straddle a 1 GiB block boundary.
    unsafe { mmu::enable_early(&[image.start, image.end - 1, dtb as u64]) };
    let heap = image::heap();
    // SAFETY: the heap range is reserved for this by linker.ld and used by nothing else.
    unsafe { HEAP.lock().init(heap.start as usize, heap.len() as usize) };

    // No console without the DT: if it is unreadable, all warden can do is stop.
    let Ok(tree) = dt::normalize(dt_blob(dtb)) else {
        park()
    };
    let Ok(platform) = PlatformInfo::parse(&tree) else {
        park()
    };
    // SMMUs: warden's own devices, mapped for warden (the device plan keeps them from the
    // host).
    let smmu_nodes = smmuv3::dt::find(&tree);
    let smmu_frames: alloc::vec::Vec<Range> =
        smmu_nodes.iter().map(|n| n.frame.align_out(4096)).collect();
    let devices: alloc::vec::Vec<Range> = platform
        .console
        .into_iter()
        .chain(smmu_frames.iter().copied())
        .collect();
    let layout = ImageLayout {
        text: image::text(),
        rodata: image::rodata(),
        rw: image::rw(),
    };
    // SAFETY: boot CPU, early map active, layout from linker.ld, image inside RAM.
    let root = match unsafe { mmu::switch_to_final(&layout, &platform.memory, &devices) } {
        Ok(root) => root,
        Err(_) => park(),
    };
    EL2_ROOT.store(root, Ordering::Release);
    el2::clean_dcache_to_poc(
        &raw const EL2_ROOT as usize,
        &raw const EL2_ROOT as usize + 8,
    );
    if let Some(uart) = platform.console {
        console::init(uart.start as usize, LevelFilter::Info);
    }
    info!("{BANNER}");
    let el = CurrentEL.get() >> 2 & 3;
    info!(
        "running at EL{el}, image {:#x}..{:#x}, DT at {dtb:#x}",
        image::whole().start,
        image::whole().end
    );

    let Some(kernel) = platform.kernel.clone() else {
        panic!("no host kernel: /chosen has no \"multiboot,kernel\" module");
    };
    let warden_mem = image::private();
    let pa_range = ID_AA64MMFR0_EL1.get() & 0xf;
    let ipa_bits = stage2::ipa_bits(mmu::pa_bits());
    let ipa_limit = 1u64 << ipa_bits.min(mmu::pa_bits());
    // The SMMUs first: DMA isolation decides whether PCIe may reach the host at all. Their
    // DMA tables map the host's RAM (warden's memory excluded).
    let host_ram: alloc::vec::Vec<Range> =
        memmap::host_layout(&platform.memory, &[warden_mem], &[], ipa_limit)
            .into_iter()
            .filter(|(_, k)| *k == HostMemKind::Ram)
            .map(|(r, _)| r)
            .collect();
    let smmus: alloc::vec::Vec<OwnedSmmu> = smmu_nodes
        .iter()
        .filter_map(|node| take_over_smmu(node, &host_ram))
        .collect();
    let owned: alloc::vec::Vec<u64> = smmus.iter().map(|s| s.frame.start).collect();
    // MMIO default-deny: the host's stage-2 maps only the device frames it may program.
    // PCIe only when every stream behind it goes through an SMMU warden owns.
    let device_plan =
        devices::plan(&tree, devices::Iommus { owned: &owned }, ipa_limit).unwrap_or_default();
    log_device_plan(&device_plan);
    let host_map = memmap::host_layout(
        &platform.memory,
        &[warden_mem],
        &device_plan.host_mmio,
        ipa_limit,
    );
    let s2 = HostStage2::new(&host_map, ipa_bits).unwrap_or_else(|e| panic!("host stage-2: {e}"));
    info!(
        "host stage-2: {} regions over {} bits of IPA, warden's {:#x}..{:#x} unmapped",
        host_map.len(),
        ipa_bits,
        warden_mem.start,
        warden_mem.end
    );
    let mut env = HostFfaEnv {
        ram: &platform.memory,
        warden_mem,
        stage2: None,
        smmus: &[],
    };
    let ffa = FfaProxy::init(
        &mut env,
        &raw const OWN_TX as u64,
        &raw const OWN_RX as u64,
        OWN_BUFFER_PAGES as u64,
    );
    let shared = SHARED.call_once(|| Shared {
        vtcr: stage2::vtcr(pa_range, ipa_bits),
        stage2: Mutex::new(s2),
        warden_mem,
        ffa,
        platform,
        smmus,
    });
    let boot = host_dt::HostBoot {
        bootargs: kernel.bootargs.as_deref(),
        initrd: shared.platform.ramdisk.as_ref().map(|m| m.range),
    };
    let host_dt = hand_dt_to_host(&tree, dtb, warden_mem, boot, &device_plan);
    el2::init_cpu(0, shared.stage2.lock().root(), shared.vtcr);
    info!(
        "entering host at EL1: entry {:#x} ({} KiB), x0 = DT {host_dt:#x}, {} CPUs in the DT",
        kernel.range.start,
        kernel.range.len() / 1024,
        shared.platform.cpus.len()
    );
    BOOT_HOST.store(CNTPCT_EL0.get(), Ordering::Relaxed);
    enter_host(
        0,
        HostEntry {
            entry: kernel.range.start,
            context_id: host_dt,
        },
    )
}

/// Takes the SMMU at `node` over for DMA isolation (see `platform::smmuv3`); `host_ram` is
/// what its DMA table maps. `None` if it cannot be driven: it is then left disabled with
/// incoming DMA aborted, when it got that far.
fn take_over_smmu(node: &smmuv3::dt::SmmuNode, host_ram: &[Range]) -> Option<OwnedSmmu> {
    match smmu_hw::take_over(node, host_ram) {
        Ok((control, events, s)) => {
            info!(
                "SMMU: took over the SMMUv3 at {:#x} (IDR0 {:#x}: stage 1{}, {}coherent): {}, every stream through one DMA table ({} page(s)) mapping the host's RAM only; hidden from the host",
                node.frame.start,
                s.idr0,
                if s.features.stage2 { " and 2" } else { " only" },
                if s.coherent { "" } else { "not " },
                s.strtab,
                s.table_pages,
            );
            Some(OwnedSmmu {
                frame: node.frame,
                control: Mutex::new(control),
                events: Mutex::new(events),
            })
        }
        Err(e) => {
            error!(
                "SMMU: cannot drive the SMMUv3 at {:#x} ({e}); left disabled, its DMA aborted",
                node.frame.start
            );
            None
        }
    }
}

/// Reads the SMMUs' new event records: each is a DMA access the SMMU blocked. Counted one
/// by one; logged one line per burst (the same stream, page and direction), the first 16
/// lines and then one in 4096. Skipped while another CPU drains. Kept out of line: the
/// trap path stays as lean as it was for a platform without an SMMU.
#[inline(never)]
fn drain_dma_faults(shared: &Shared) {
    fn log_burst(e: &smmuv3::desc::Event, more: u64) {
        let n = DMA_FAULT_LINES.fetch_add(1, Ordering::Relaxed);
        if n < 16 || n.is_multiple_of(4096) {
            let total = COUNTERS.dma_faults.load(Ordering::Relaxed);
            if more == 0 {
                warn!("SMMU: DMA fault: {e}; blocked (fault #{total})");
            } else {
                warn!(
                    "SMMU: DMA fault: {e}; blocked (and {more} more in that page; fault #{total})"
                );
            }
        }
    }
    for smmu in &shared.smmus {
        let Some(mut events) = smmu.events.try_lock() else {
            continue;
        };
        let mut burst: Option<(smmuv3::desc::Event, u64)> = None;
        let drained = events.drain(|e| {
            COUNTERS.dma_faults.fetch_add(1, Ordering::Relaxed);
            match &mut burst {
                Some((first, more)) if first.same_burst(&e) => *more += 1,
                _ => {
                    if let Some((first, more)) = burst.replace((e, 0)) {
                        log_burst(&first, more);
                    }
                }
            }
        });
        if let Some((first, more)) = burst {
            log_burst(&first, more);
        }
        if drained.lost {
            warn!(
                "SMMU at {:#x}: event queue full; some DMA faults went unrecorded",
                smmu.frame.start
            );
        }
    }
}

/// A secondary CPU started (or resumed) by EL3 at warden's entry, through the PSCI relay.
#[unsafe(no_mangle)]
extern "C" fn warden_secondary_main(cpu: usize) -> ! {
    let root = EL2_ROOT.load(Ordering::Acquire);
    // SAFETY: the final map covers everything warden touches on any CPU.
    unsafe { mmu::enable(root) };
    TPIDR_EL2.set(cpu as u64);
    let Some(shared) = SHARED.get() else { park() };
    el2::init_cpu(cpu, shared.stage2.lock().root(), shared.vtcr);
    let entry = HOST_ENTRIES.lock()[cpu].take();
    match entry {
        Some(entry) => {
            info!("CPU {cpu} up, entering host at {:#x}", entry.entry);
            enter_host(cpu, entry)
        }
        None => {
            error!("CPU {cpu} started with no host entry recorded; parking it");
            park()
        }
    }
}

fn enter_host(cpu: usize, entry: HostEntry) -> ! {
    // SAFETY: this is the calling CPU's own stack, and `init_cpu` has run.
    unsafe { el2::enter_host(entry.entry, entry.context_id, image::stack_top(cpu)) }
}

fn dt_blob(dtb: usize) -> &'static [u8] {
    // SAFETY: the firmware hands over a DT at `dtb`; the header's totalsize (big-endian
    // u32 at offset 4) bounds it. The early map covers its block as normal memory.
    unsafe {
        let size = u32::from_be((dtb as *const u32).add(1).read()) as usize;
        core::slice::from_raw_parts(dtb as *const u8, size)
    }
}

/// Writes the host's DT (the firmware's `tree` with warden's memory reserved) into the
/// host DT area and returns its address. If that fails, the host gets the firmware's DT
/// at `dtb` unchanged: stage-2 still keeps it out of warden's memory.
fn hand_dt_to_host(
    tree: &[u8],
    dtb: usize,
    warden_mem: Range,
    boot: host_dt::HostBoot,
    device_plan: &devices::DevicePlan,
) -> u64 {
    let area = image::host_dt();
    if let Some(initrd) = boot.initrd {
        info!("host initramfs at {:#x}..{:#x}", initrd.start, initrd.end);
    }
    match host_dt::for_host(tree, warden_mem, boot, device_plan) {
        Ok(new) if new.len() as u64 <= area.len() => {
            // SAFETY: the host DT area is reserved for this in linker.ld, mapped read-write
            // in warden's stage-1, and `new` fits in it.
            unsafe {
                core::ptr::copy_nonoverlapping(new.as_ptr(), area.start as *mut u8, new.len())
            };
            el2::clean_dcache_to_poc(area.start as usize, area.start as usize + new.len());
            info!(
                "host DT at {:#x} ({} bytes): /reserved-memory/warden@{:x} (no-map) added",
                area.start,
                new.len(),
                warden_mem.start
            );
            area.start
        }
        Ok(new) => {
            warn!(
                "host DT: {} bytes do not fit in {} bytes; host keeps the firmware's",
                new.len(),
                area.len()
            );
            dtb as u64
        }
        Err(e) => {
            warn!("host DT: cannot add warden's reservation ({e:?}); host keeps the firmware's");
            dtb as u64
        }
    }
}

/// One line for the host's MMIO and one per reason a device is hidden, naming a few.
fn log_device_plan(plan: &devices::DevicePlan) {
    use alloc::string::String;
    let mut mmio = String::new();
    for r in &plan.host_mmio {
        let _ = write!(mmio, " {:#x}..{:#x}", r.start, r.end);
    }
    info!(
        "host MMIO (default deny): {} range(s):{mmio}",
        plan.host_mmio.len()
    );
    let mut reasons: alloc::vec::Vec<devices::HiddenBecause> = alloc::vec::Vec::new();
    for d in &plan.decisions {
        if let Some(why) = d.hidden
            && !reasons.contains(&why)
        {
            reasons.push(why);
        }
    }
    for why in reasons {
        let paths: alloc::vec::Vec<&str> = plan
            .decisions
            .iter()
            .filter(|d| d.hidden == Some(why))
            .map(|d| d.path.as_str())
            .collect();
        let mut names = String::new();
        for p in paths.iter().take(4) {
            let _ = write!(names, " {p}");
        }
        if paths.len() > 4 {
            let _ = write!(names, " and {} more", paths.len() - 4);
        }
        info!("hidden from the host ({}):{names}", why.as_str());
    }
}

/// EL3, reached with an SMC.
struct El3;

impl SecureMonitor for El3 {
    fn call(&mut self, regs: &[u64; 18]) -> [u64; 18] {
        let mut args = [0u64; 17];
        args.copy_from_slice(&regs[1..]);
        smccc::smc64(regs[0] as u32, args)
    }
}

struct Topology<'a>(&'a PlatformInfo);

impl CpuTopology for Topology<'_> {
    fn index_of(&self, mpidr: u64) -> Option<usize> {
        self.0
            .cpu_index(mpidr)
            .filter(|&i| i < image::max_cpus().min(8))
    }
    fn current(&self) -> usize {
        current_cpu_index()
    }
    fn set_host_entry(&self, cpu: usize, entry: HostEntry) {
        if let Some(slot) = HOST_ENTRIES.lock().get_mut(cpu) {
            *slot = Some(entry);
        }
    }
    fn warden_entry(&self) -> u64 {
        image::secondary_entry()
    }
}

/// The machine as the FF-A proxy sees it.
struct HostFfaEnv<'a> {
    ram: &'a [Range],
    warden_mem: Range,
    /// None only during boot, before the host has a stage-2 (no lends then).
    stage2: Option<&'a Mutex<HostStage2>>,
    /// The SMMUs whose DMA tables follow the stage-2.
    smmus: &'a [OwnedSmmu],
}

impl ProxyEnv for HostFfaEnv<'_> {
    fn spmc_call(&mut self, regs: &Regs) -> Regs {
        El3.call(regs)
    }
    fn is_host_ram(&self, r: Range) -> bool {
        memmap::is_host_ram(self.ram, &[self.warden_mem], r)
    }
    fn write_host(&mut self, pa: u64, data: &[u8]) {
        let r = Range::new(pa, pa.saturating_add(data.len() as u64));
        if !self.is_host_ram(r) {
            error!(
                "FF-A: refusing to write {} bytes at {pa:#x}: not host RAM",
                data.len()
            );
            return;
        }
        // SAFETY: `r` is host RAM (checked just above), which warden's stage-1 maps
        // read-write, and it does not overlap warden's own memory.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
    }
    fn read_host(&self, pa: u64, buf: &mut [u8]) {
        let r = Range::new(pa, pa.saturating_add(buf.len() as u64));
        if !self.is_host_ram(r) {
            error!(
                "FF-A: refusing to read {} bytes at {pa:#x}: not host RAM",
                buf.len()
            );
            buf.fill(0);
            return;
        }
        // SAFETY: `r` is host RAM (checked just above), mapped in warden's stage-1. The
        // host may write it concurrently: the copy is a snapshot that warden then parses
        // as untrusted bytes.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
    }
    fn write_own_tx(&mut self, data: &[u8]) {
        let n = data.len().min(OWN_BUFFER_PAGES * 4096);
        let page = &raw mut OWN_TX;
        // SAFETY: OWN_TX is warden's own page; the proxy writes it only under its mailbox
        // lock and only between SPMC calls, when the SPMC does not read it.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), page.cast::<u8>(), n) };
    }
    fn unmap_from_host(&mut self, ranges: &[Range]) -> Result<(), FfaError> {
        let s2 = self.stage2.ok_or(FfaError::Denied)?;
        s2.lock().lend(ranges).map_err(|e| {
            error!("host stage-2: lend failed: {e}");
            // Whatever was unmapped goes back.
            let _ = s2.lock().restore(ranges);
            FfaError::Aborted
        })?;
        // Then DMA: when this returns, no device reaches the pages either, and the lend
        // may go to the SPMC.
        for (i, smmu) in self.smmus.iter().enumerate() {
            if let Err(e) = smmu.control.lock().lend(ranges) {
                error!("SMMU: lend failed: {e}; undone");
                for earlier in self.smmus.iter().take(i) {
                    let _ = earlier.control.lock().restore(ranges);
                }
                let _ = s2.lock().restore(ranges);
                return Err(FfaError::Aborted);
            }
        }
        Ok(())
    }
    fn map_to_host(&mut self, ranges: &[Range]) {
        if let Some(s2) = self.stage2
            && let Err(e) = s2.lock().restore(ranges)
        {
            error!(
                "host stage-2: restoring {} range(s) failed: {e}",
                ranges.len()
            );
        }
        for smmu in self.smmus {
            if let Err(e) = smmu.control.lock().restore(ranges) {
                error!("SMMU: restoring {} range(s) failed: {e}", ranges.len());
            }
        }
    }
    fn own_rx(&self) -> &[u8] {
        let page = &raw const OWN_RX;
        // SAFETY: `page` points at a live static that warden never writes; the SPMC writes
        // it only while it owns the buffer, and the proxy reads it only between the
        // SPMC's reply and warden's FFA_RX_RELEASE, under its mailbox lock.
        unsafe { &(*page).0 }
    }
}

struct FfaGlue<'a> {
    proxy: &'a FfaProxy,
    env: HostFfaEnv<'a>,
}

impl FfaService for FfaGlue<'_> {
    fn call(&mut self, regs: &[u64; 18]) -> router::Reply {
        let reply = self.proxy.handle(regs, &mut self.env);
        router::Reply {
            regs: reply.regs,
            count: match reply.width {
                Width::Ffa8 => 8,
                Width::Wide => 18,
            },
        }
    }
}

/// Every exception from the host (`boot/vectors.S`, lower-EL entries; `kind` 8-15).
#[unsafe(no_mangle)]
extern "C" fn warden_host_trap(frame: &mut TrapFrame, kind: u64) {
    match kind {
        8 => host_sync(frame),
        9 | 10 => warn!("physical interrupt taken to EL2 (kind {kind}); not routed here"),
        11 => warn!(
            "SError from host at {:#x}, ESR {:#x}",
            frame.elr,
            ESR_EL2.get()
        ),
        _ => warn!("exception from AArch32 (kind {kind}); the host is AArch64 only"),
    }
}

fn host_sync(frame: &mut TrapFrame) {
    let esr = ESR_EL2.get();
    let Some(shared) = SHARED.get() else { return };
    if !shared.smmus.is_empty() {
        drain_dma_faults(shared);
    }
    match ExceptionClass::from_esr(esr) {
        ExceptionClass::Smc64 => {
            // A trapped SMC leaves ELR_EL2 at the SMC itself.
            frame.elr += 4;
            let mut ffa = FfaGlue {
                proxy: &shared.ffa,
                env: HostFfaEnv {
                    ram: &shared.platform.memory,
                    warden_mem: shared.warden_mem,
                    stage2: Some(&shared.stage2),
                    smmus: &shared.smmus,
                },
            };
            let topology = Topology(&shared.platform);
            let regs = frame.smccc_regs();
            let fid = FunctionId::from_reg(regs[0]);
            let route = router::classify(fid);
            if route == router::Route::Psci && crate::psci::ends_the_system(fid) {
                print_counters(shared);
            }
            let reply = router::handle_smc(&regs, &mut El3, &topology, &mut ffa);
            match route {
                router::Route::Ffa => COUNTERS.ffa(fid.0, reply.regs[0] == FFA_ERROR as u64),
                router::Route::Psci => {
                    COUNTERS.psci_calls.fetch_add(1, Ordering::Relaxed);
                }
                router::Route::Refused => {
                    COUNTERS.smc_refused.fetch_add(1, Ordering::Relaxed);
                }
                router::Route::SmcccArch => {}
            }
            frame.set_smccc_results(&reply.regs, reply.count);
        }
        ExceptionClass::Hvc64 => {
            COUNTERS.hvc_calls.fetch_add(1, Ordering::Relaxed);
            let out = hvc::handle(&frame.smccc_regs(), &Info(shared));
            frame.set_smccc_results(&out, hvc::RESULT_REGS);
        }
        ExceptionClass::DataAbortLower | ExceptionClass::InstructionAbortLower => {
            host_abort(frame, esr)
        }
        other => {
            warn!(
                "host trap {other:?} (ESR {esr:#x}) at {:#x}: injecting undefined instruction",
                frame.elr
            );
            inject(frame, Injection::Undefined);
        }
    }
}

/// Answers for warden's HVC interface.
struct Info<'a>(&'a Shared);

impl hvc::WardenInfo for Info<'_> {
    fn counters(&self) -> hvc::CountersReply {
        print_counters(self.0);
        let (calls, errors) = COUNTERS.ffa_totals();
        hvc::CountersReply {
            ffa_calls: calls,
            ffa_errors: errors,
            live_handles: self.0.ffa.live_handles() as u64,
            dma_faults: COUNTERS.dma_faults.load(Ordering::Relaxed),
        }
    }
    fn boot_times(&self) -> (u64, u64) {
        (
            BOOT_ENTRY.load(Ordering::Relaxed),
            BOOT_HOST.load(Ordering::Relaxed),
        )
    }
}

fn print_counters(shared: &Shared) {
    let (calls, errors) = COUNTERS.ffa_totals();
    info!(
        "counters: FF-A calls {calls} (errors {errors}), PSCI {}, refused SMCs {}, stage-2 faults {} ({} permission) (+{} retried during lends), HVCs {}, live memory handles {}",
        COUNTERS.psci_calls.load(Ordering::Relaxed),
        COUNTERS.smc_refused.load(Ordering::Relaxed),
        COUNTERS.host_aborts.load(Ordering::Relaxed),
        COUNTERS.host_permission_faults.load(Ordering::Relaxed),
        COUNTERS.bbm_retries.load(Ordering::Relaxed),
        COUNTERS.hvc_calls.load(Ordering::Relaxed),
        shared.ffa.live_handles()
    );
    for (n, c, e) in COUNTERS.ffa_by_function() {
        info!("counters: FF-A function {n:#04x}: {c} call(s), {e} error(s)");
    }
    if !shared.smmus.is_empty() {
        info!(
            "counters: SMMU DMA faults {} (blocked and recorded)",
            COUNTERS.dma_faults.load(Ordering::Relaxed)
        );
    }
}

/// A stage-2 fault: the host touched an address it has no mapping for (warden's memory,
/// a hidden device, a lent page) or accessed a mapping in a way it does not allow.
fn host_abort(frame: &mut TrapFrame, esr: u64) {
    let far = FAR_EL2.get();
    let ipa = (HPFAR_EL2.get() & 0x0fff_ffff_fff0) << 8 | (far & 0xfff);
    let fault = esr::fault_kind(esr);
    // A translation fault on memory the host owns can only come from the break-before-make
    // window of a lend on another CPU: the stage-2 lock waits for it to end, then the
    // access is retried. Any other kind would fault again forever: the host gets it.
    if fault == esr::FaultKind::Translation
        && let Some(shared) = SHARED.get()
        && shared.stage2.lock().host_may_access(ipa)
    {
        COUNTERS.bbm_retries.fetch_add(1, Ordering::Relaxed);
        return;
    }
    if fault == esr::FaultKind::Permission {
        COUNTERS
            .host_permission_faults
            .fetch_add(1, Ordering::Relaxed);
    }
    let (kind, what) = match ExceptionClass::from_esr(esr) {
        ExceptionClass::InstructionAbortLower => (Injection::InstructionAbort, "instruction fetch"),
        _ if esr::is_write(esr) => (Injection::DataAbort { write: true }, "write"),
        _ => (Injection::DataAbort { write: false }, "read"),
    };
    // A host that keeps faulting (say, with no vectors of its own) must not flood the
    // console: report the first few, then one in 4096.
    let n = COUNTERS.host_aborts.fetch_add(1, Ordering::Relaxed);
    if n < 16 || n.is_multiple_of(4096) {
        warn!(
            "host {what} of IPA {ipa:#x} at PC {:#x} refused ({fault:?} fault): not the host's memory or device, or not allowed there; external abort injected (#{})",
            frame.elr,
            n + 1
        );
    }
    inject(frame, kind);
}

fn inject(frame: &mut TrapFrame, kind: Injection) {
    let e = esr::inject(kind, frame.elr, frame.spsr, VBAR_EL1.get());
    ESR_EL1.set(e.esr_el1);
    FAR_EL1.set(FAR_EL2.get());
    ELR_EL1.set(e.elr_el1);
    SPSR_EL1.set(e.spsr_el1);
    frame.elr = e.elr_el2;
    frame.spsr = e.spsr_el2;
}

/// An exception taken from EL2 itself: a bug in warden. Report and stop this CPU.
#[unsafe(no_mangle)]
extern "C" fn warden_el2_fault(frame: &mut TrapFrame, kind: u64) -> ! {
    console::emergency(format_args!(
        "\nwarden: EL2 exception kind {kind} ESR {:#x} FAR {:#x} ELR {:#x}\n",
        ESR_EL2.get(),
        FAR_EL2.get(),
        frame.elr
    ));
    park()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    struct Emergency;
    impl core::fmt::Write for Emergency {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            console::emergency(format_args!("{s}"));
            Ok(())
        }
    }
    let _ = write!(
        Emergency,
        "\nwarden PANIC on CPU {}: {info}\n",
        current_cpu_index()
    );
    park()
}
