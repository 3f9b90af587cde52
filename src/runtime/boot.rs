//! Boot: the first CPU reads the DT, builds warden's stage-1, the host's stage-2 and DT,
//! takes the SMMUs over and probes the SPMC; every CPU then sets up its EL2 state and
//! enters the host at EL1.
// A boot that cannot go on (no host kernel in the DT, a stage-2 that cannot be built) is a
// configuration error of the firmware's, found before the host runs: it panics, and the
// failure policy (`failure.rs`) reports it and powers off. Nothing here reads host input.
#![allow(clippy::panic)]

use core::fmt::Write as _;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::*;
use log::{LevelFilter, error, info, warn};
use spin::Mutex;

use super::host_mem::HostFfaEnv;
use super::own_mailbox::{OWN_BUFFER_PAGES, OWN_MAILBOX};
use super::percpu::{self, HOST_ENTRIES, MAX_CPUS, current_cpu_index};
use super::trap::El3;
use super::{BANNER, BOOT_ENTRY, BOOT_HOST, HEAP, OwnedSmmu, SHARED, Shared, image, park};
use crate::arch::el2;
use crate::arch::mmu::{self, ImageLayout};
use crate::arch::stage2::{self, HostStage2};
use crate::ffa::proxy::FfaProxy;
use crate::platform::devices;
use crate::platform::dt::{self, PlatformInfo};
use crate::platform::host_dt;
use crate::platform::memmap::{self, HostMemKind, Range};
use crate::platform::smmuv3::{self, hw as smmu_hw};
use crate::platform::{console, logger};
use crate::psci::{self, EntryReason, EntrySlot, HostEntry, PowerStateFormat};
use crate::router::SecureMonitor;

/// Root of warden's stage-1 table, read by secondaries before their MMU is on.
static EL2_ROOT: AtomicU64 = AtomicU64::new(0);

/// The boot CPU, from `boot/entry.S`, with the MMU off and `dtb` from the firmware.
#[unsafe(no_mangle)]
extern "C" fn warden_primary_main(dtb: usize, entry_counter: u64) -> ! {
    BOOT_ENTRY.store(entry_counter, Ordering::Relaxed);
    TPIDR_EL2.set(0);
    // SAFETY: first thing on the boot CPU; the image and DT blocks become normal memory.
    // Both ends of the image: loaded anywhere, it may straddle a 1 GiB block boundary.
    unsafe { mmu::enable_early(&[image::whole().start, image::whole().end - 1, dtb as u64]) };
    let heap = image::heap();
    // SAFETY: the heap range is reserved for this by linker.ld and used by nothing else.
    unsafe { HEAP.lock().init(heap.start as usize, heap.len() as usize) };

    // No console without the DT: if it is unreadable, all warden can do is stop. The
    // firmware's blob is indexed once, in place (FDT_NOP tokens skipped), and every reader
    // below shares the index: the platform, the SMMUs, the console, the device plan and
    // the host's DT.
    let Some(tree) = dt::FlatTree::new(dt_blob(dtb)) else {
        park()
    };
    let Ok(platform) = PlatformInfo::from_tree(&tree) else {
        park()
    };
    // The index points into the firmware's blob, which warden reads until the host's DT is
    // written: after the switch to the final map that needs the blob inside RAM (mapped
    // normal). One outside it is copied to the heap first and indexed again.
    let blob = dt_blob(dtb);
    let in_ram = platform
        .memory
        .iter()
        .any(|r| r.start <= dtb as u64 && dtb.saturating_add(blob.len()) as u64 <= r.end);
    let copy: alloc::vec::Vec<u8> = if in_ram {
        alloc::vec::Vec::new()
    } else {
        blob.to_vec()
    };
    let tree = if in_ram {
        tree
    } else {
        match dt::FlatTree::new(&copy) {
            Some(t) => t,
            None => park(),
        }
    };
    // This CPU's index is its DT position like any other CPU's: the boot CPU need not be
    // the first in /cpus, and a secondary must never get the stack this CPU is on once it
    // runs the host. Until the console is up a stranger can only stop.
    let Some(me) = psci::cpu_index(&platform.cpus, MPIDR_EL1.get(), MAX_CPUS) else {
        park()
    };
    TPIDR_EL2.set(me as u64);
    // SMMUs: warden's own devices, mapped for warden (the device plan keeps them from the
    // host).
    let smmu_nodes = smmuv3::dt::find_in(&tree);
    let smmu_frames: alloc::vec::Vec<Range> =
        smmu_nodes.iter().map(|n| n.frame.align_out(4096)).collect();
    // warden's console: a UART the host does not get if the DT has one, else the host's.
    let console_choice = console::choose_in(&tree, platform.console);
    let devices: alloc::vec::Vec<Range> = console_choice
        .map(console::ConsoleChoice::frame)
        .into_iter()
        .chain(smmu_frames.iter().copied())
        .collect();
    let guards: alloc::vec::Vec<Range> = image::stacks().guards().collect();
    let layout = ImageLayout {
        text: image::text(),
        rodata: image::rodata(),
        rw: image::rw(),
        unmapped: &guards,
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
    if let Some(uart) = console_choice {
        console::publish(uart.frame().start as usize);
        logger::init(LevelFilter::Info, current_cpu_index);
    }
    info!("{BANNER}");
    if el2::BENCH_EL2_PMU {
        warn!("benchmark build: the host's PMU may count at EL2 (MDCR_EL2.HPMD clear)");
    }
    let el = CurrentEL.get() >> 2 & 3;
    info!(
        "running at EL{el}, image {:#x}..{:#x}, DT at {dtb:#x}",
        image::whole().start,
        image::whole().end
    );

    let mut features = [0u64; 18];
    features[0] = psci::PSCI_FEATURES as u64;
    features[1] = psci::CPU_SUSPEND as u64;
    let format = PowerStateFormat::from_features(El3.call(&features)[0]);
    percpu::set_power_state_format(format);
    info!(
        "boot CPU {me} (MPIDR {:#x}) of {} in the DT; CPU_SUSPEND power_state format {format:?}",
        MPIDR_EL1.get(),
        platform.cpus.len()
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
    let mut owned: alloc::vec::Vec<u64> = smmus.iter().map(|s| s.frame.start).collect();
    match console_choice {
        Some(console::ConsoleChoice::Own(uart)) => {
            info!(
                "console: warden's own PL011 at {:#x}, hidden from the host",
                uart.start
            );
            owned.push(uart.start);
        }
        Some(console::ConsoleChoice::Shared(uart)) => info!(
            "console: the host's PL011 at {:#x}, shared (the DT offers no other); a stalled UART drops warden's output",
            uart.start
        ),
        None => {}
    }
    // MMIO default-deny: the host's stage-2 maps only the device frames it may program.
    // PCIe only when every stream behind it goes through an SMMU warden owns.
    let device_plan = devices::plan_tree(&tree, devices::Iommus { owned: &owned }, ipa_limit);
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
    let mut env = HostFfaEnv::new(&platform.memory, warden_mem, None, &[]);
    let ffa = FfaProxy::init(
        &mut env,
        OWN_MAILBOX.tx_address(),
        OWN_MAILBOX.rx_address(),
        OWN_BUFFER_PAGES as u64,
    );
    // Releases warden's own buffers (the environment holds them from their first use).
    drop(env);
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
    el2::init_cpu(me, shared.stage2.lock().root(), shared.vtcr);
    info!(
        "entering host at EL1: entry {:#x} ({} KiB), x0 = DT {host_dt:#x}, {} CPUs in the DT",
        kernel.range.start,
        kernel.range.len() / 1024,
        shared.platform.cpus.len()
    );
    BOOT_HOST.store(CNTPCT_EL0.get(), Ordering::Relaxed);
    enter_host(
        me,
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

/// A secondary CPU started (or resumed) by EL3 at warden's entry, through the PSCI relay;
/// `context` is what the relay gave EL3 (`psci::warden_context`), and `boot/entry.S` has
/// checked its CPU index against MAX_CPUS to pick the stack.
#[unsafe(no_mangle)]
extern "C" fn warden_secondary_main(context: u64) -> ! {
    let (cpu, reason) = psci::decode_warden_context(context);
    let root = EL2_ROOT.load(Ordering::Acquire);
    // SAFETY: the final map covers everything warden touches on any CPU.
    unsafe { mmu::enable(root) };
    TPIDR_EL2.set(cpu as u64);
    let Some(shared) = SHARED.get() else { park() };
    el2::init_cpu(cpu, shared.stage2.lock().root(), shared.vtcr);
    let entry = HOST_ENTRIES.take(EntrySlot { cpu, reason });
    match entry {
        Some(entry) => {
            let what = match reason {
                EntryReason::On => "up",
                EntryReason::Resume => "resumed",
            };
            info!("CPU {cpu} {what}, entering host at {:#x}", entry.entry);
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
    tree: &dt::FlatTree<'_>,
    dtb: usize,
    warden_mem: Range,
    boot: host_dt::HostBoot,
    device_plan: &devices::DevicePlan,
) -> u64 {
    let area = image::host_dt();
    if let Some(initrd) = boot.initrd {
        info!("host initramfs at {:#x}..{:#x}", initrd.start, initrd.end);
    }
    match host_dt::for_host_tree(tree, warden_mem, boot, device_plan) {
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
