use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicU64, Ordering};

use el1kit::mmu::{self, El};
use warden::hvc::{WARDEN_BOOT_TIMES, WARDEN_COUNTERS, WARDEN_VERSION};
use warden::platform::dt::PlatformInfo;
use warden::platform::memmap::Range;
use warden::psci;
use warden::smccc::SMCCC_VERSION;

// What the check modules use of the kit, under the names they know.
pub(crate) use el1kit::call::smc;
pub(crate) use el1kit::fault::{poke, probe, read_u32, write_u32};
pub(crate) use el1kit::mmu::counter as cntpct;

/// PSCI CPU_ON and AFFINITY_INFO with 64-bit arguments: SMC64 sets bit 30 of the function
/// ID (DEN0028 §2).
pub(crate) const PSCI_CPU_ON_64: u32 = psci::CPU_ON | 1 << 30;
const PSCI_AFFINITY_INFO_64: u32 = psci::AFFINITY_INFO | 1 << 30;
const NOT_SUPPORTED: u32 = warden::smccc::NOT_SUPPORTED as u32;

static SECONDARY_SEEN: AtomicU64 = AtomicU64::new(0);
/// Target of the "host RAM stays writable" probe.
pub(crate) static SCRATCH: AtomicU64 = AtomicU64::new(0);

mod device_checks;
mod dma_checks;
mod el2_checks;
mod ffa_checks;
mod hostile;
mod lifecycle_checks;
mod mem_checks;
mod register_checks;
mod stress;

/// FF-A reply function IDs, as x0 holds them (shared by the check modules).
pub(crate) const FFA_ERROR: u64 = warden::ffa::abi::FFA_ERROR as u64;
pub(crate) const FFA_SUCCESS_32: u64 = warden::ffa::abi::FFA_SUCCESS_32 as u64;

/// The FF-A error code of a reply, if it is FFA_ERROR (w2, read as s32).
pub(crate) fn error_of(r: &[u64; 18]) -> Option<i32> {
    (r[0] == FFA_ERROR).then_some(r[2] as u32 as i32)
}

fn hvc(fid: u32) -> [u64; 18] {
    el1kit::call::hvc(fid, &[])
}

/// The checks this host makes for its configuration, section by section, in the order they run.
/// Each section's count comes from the code that runs it, so a check that is added, removed or
/// silently skipped shows up as a section off its plan, and the verdict is FAIL.
struct Plan([(&'static str, u32); 13]);

impl Plan {
    fn new(version: u32, cpus: usize, tree: &[u8], warden_word: Option<u64>) -> Plan {
        Plan([
            ("boot", 1),
            ("ffa", ffa_checks::planned(version)),
            ("memory", mem_checks::PLANNED),
            ("devices", device_checks::planned(tree, warden_word)),
            ("dma", dma_checks::planned(tree)),
            ("calls", 4 + UNKNOWN_SMCS.len() as u32),
            ("isolation", 6),
            ("el2", el2_checks::PLANNED),
            ("smp", smp_planned(cpus)),
            ("hostile", hostile::PLANNED),
            ("registers", register_checks::planned(version)),
            ("lifecycle", lifecycle_checks::PLANNED),
            ("accounting", 2),
        ])
    }

    fn total(&self) -> u32 {
        self.0.iter().map(|s| s.1).sum()
    }

    fn of(&self, section: &str) -> u32 {
        self.0.iter().find(|s| s.0 == section).map_or(0, |s| s.1)
    }
}

/// The host's report. It prints the plan first and a verdict last (both lines only this host
/// prints): `testhost: plan N checks ...`, then `testhost: verdict PASS N/N` only if every
/// planned check ran and passed and every section ran exactly its plan.
pub(crate) struct Report {
    plan: Plan,
    passed: u32,
    failed: u32,
    /// The section running: its name and the number of checks made before it.
    section: Option<(&'static str, u32)>,
    /// Sections that made a different number of checks than planned.
    off_plan: u32,
}

impl Report {
    fn new(plan: Plan, version: u32, cpus: usize) -> Report {
        let mut list = alloc::string::String::new();
        for (i, (name, n)) in plan.0.iter().enumerate() {
            let _ = write!(list, "{}{name} {n}", if i > 0 { ", " } else { "" });
        }
        say!(
            "testhost: plan {} checks for FF-A v{}.{} on {cpus} CPU(s): {list}",
            plan.total(),
            version >> 16,
            version & 0xffff
        );
        Report {
            plan,
            passed: 0,
            failed: 0,
            section: None,
            off_plan: 0,
        }
    }

    /// Ends the section running (if any) and starts `name`.
    fn section(&mut self, name: &'static str) {
        self.end_section();
        self.section = Some((name, self.passed + self.failed));
    }

    fn end_section(&mut self) {
        if let Some((name, before)) = self.section.take() {
            let ran = self.passed + self.failed - before;
            let planned = self.plan.of(name);
            if ran != planned {
                self.off_plan += 1;
                say!("testhost: FAIL section {name} made {ran} checks, {planned} planned");
            }
        }
    }

    /// Prints the verdict line and returns whether it is PASS.
    fn verdict(mut self) -> bool {
        self.end_section();
        let planned = self.plan.total();
        say!("testhost: {} passed, {} failed", self.passed, self.failed);
        let pass = self.failed == 0 && self.off_plan == 0 && self.passed == planned;
        if pass {
            say!("testhost: verdict PASS {}/{planned}", self.passed);
        } else {
            say!(
                "testhost: verdict FAIL {}/{planned} passed, {} failed, {} section(s) off plan",
                self.passed,
                self.failed,
                self.off_plan
            );
        }
        pass
    }

    pub(crate) fn check(&mut self, name: &str, ok: bool, detail: fmt::Arguments) {
        if ok {
            self.passed += 1;
            say!("testhost: PASS {name}");
        } else {
            self.failed += 1;
            say!("testhost: FAIL {name}: {detail}");
        }
    }
}

/// Branches to `addr` with the first GiB mapped as normal memory at stage-1 (so that only
/// stage-2 decides whether the fetch may happen); returns the abort the vector recorded,
/// which returns to the caller through the link register. Single CPU only.
pub(crate) fn fetch_from_first_gib(addr: u64) -> (u64, u64) {
    mmu::remap_el1(0, true);
    let fault = el1kit::fault::branch(addr);
    mmu::remap_el1(0, false);
    fault
}

/// `ffa=1.N` on the command line, as an FF-A version word (1.2 if absent).
fn ffa_version_arg(args: &str) -> u32 {
    match args.split_whitespace().find_map(|w| w.strip_prefix("ffa=")) {
        Some("1.0") => 0x1_0000,
        Some("1.1") => 0x1_0001,
        _ => 0x1_0002,
    }
}

/// Where warden is linked and refuses to run anywhere else (TF-A's BL33 address, `linker.ld`).
const WARDEN_LINK_ADDRESS: u64 = 0x6000_0000;

/// Whether warden's `/reserved-memory` node carries `no-map`.
fn reservation_is_no_map(blob: &[u8]) -> bool {
    fdt::Fdt::new(blob).ok().is_some_and(|fdt| {
        fdt.find_node("/reserved-memory").is_some_and(|rm| {
            rm.children()
                .any(|n| n.name.starts_with("warden@") && n.property("no-map").is_some())
        })
    })
}

fn warden_range(blob: &[u8]) -> Option<Range> {
    let fdt = fdt::Fdt::new(blob).ok()?;
    let node = fdt
        .find_node("/reserved-memory")?
        .children()
        .find(|n| n.name.starts_with("warden@"))?;
    let reg = node.reg()?.next()?;
    Range::from_base_size(reg.starting_address as u64, reg.size? as u64)
}

/// The primary CPU's entry from el1kit's boot.S (x0 = the DT warden handed over).
#[unsafe(no_mangle)]
extern "C" fn el1kit_main(dtb: u64, _entry_counter: u64) -> ! {
    let el_at_entry = mmu::current_el();
    mmu::init(El::El1, dtb);
    el1kit::heap::init();
    let Some((tree, platform)) = el1kit::dt::read(dtb) else {
        power(false)
    };
    if let Some(uart) = platform.console {
        el1kit::console::set_base(uart.start);
    }
    say!("testhost: started, x0 = DT at {dtb:#x}");
    // The FF-A version this host speaks, from its command line (`ffa=1.0`, default 1.2).
    let version = fdt::Fdt::new(&tree)
        .ok()
        .and_then(|f| f.chosen().bootargs().map(ffa_version_arg))
        .unwrap_or(0x1_0002);
    let cpus = platform.cpus.len();
    // `warden-word=`: where warden's boot-timestamp word is (the harness reads warden's
    // symbol table), for the DMA attacks whose effect the host reads back by HVC.
    let warden_word = fdt::Fdt::new(&tree).ok().and_then(|f| {
        f.chosen().bootargs().and_then(|a| {
            a.split_whitespace()
                .find_map(|w| w.strip_prefix("warden-word="))
                .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
        })
    });
    let mut r = Report::new(Plan::new(version, cpus, &tree, warden_word), version, cpus);

    r.section("boot");
    r.check(
        "host runs at EL1",
        el_at_entry == 1,
        format_args!("CurrentEL {el_at_entry}"),
    );

    r.section("ffa");
    ffa_checks::run(&mut r, version, warden_range(&tree));
    // Scratch RAM for sharing: 16 MiB, 256 MiB into the host's first RAM range.
    let scratch = platform.memory.first().and_then(|m| {
        let start = m.start + 0x1000_0000;
        (start + 0x100_0000 <= m.end).then(|| Range::new(start, start + 0x100_0000))
    });
    r.section("memory");
    match scratch {
        Some(s) => mem_checks::run(
            &mut r,
            version,
            ffa_checks::buffers().0,
            s,
            warden_range(&tree),
        ),
        None => r.check(
            "scratch RAM for sharing",
            false,
            format_args!("RAM too small"),
        ),
    }
    // Devices: default-deny MMIO, fw_cfg and the ITS out of reach. The page 32 KiB into
    // the scratch RAM is free once the sharing checks are done.
    r.section("devices");
    if let Some(s) = scratch {
        device_checks::run(
            &mut r,
            &tree,
            version,
            ffa_checks::buffers().0,
            s.start + 0x8000,
            warden_range(&tree),
            warden_word,
        );
    }

    // DMA isolation, when the machine has a PCI device to DMA with: the last MiB of the
    // scratch RAM holds the buffers.
    r.section("dma");
    if let (Some(s), Some(w)) = (scratch, warden_range(&tree)) {
        let buffers = Range::new(s.end - 0x10_0000, s.end);
        dma_checks::run(
            &mut r,
            &tree,
            version,
            ffa_checks::buffers().0,
            buffers,
            w,
            warden_word,
        );
    }

    r.section("calls");
    let v = hvc(WARDEN_VERSION)[0];
    r.check("warden HVC version", v == 0x1_0002, format_args!("{v:#x}"));
    let v = hvc(0x8600_00ff)[0] as u32;
    r.check(
        "unknown HVC refused",
        v == NOT_SUPPORTED,
        format_args!("{v:#x}"),
    );

    let v = smc(SMCCC_VERSION, &[])[0] as u32;
    r.check(
        "SMCCC_VERSION from EL3 >= 1.2",
        (0x1_0002..0x8000_0000).contains(&v),
        format_args!("{v:#x}"),
    );
    let v = smc(psci::PSCI_VERSION, &[])[0] as u32;
    say!("testhost: PSCI_VERSION = {v:#x}");
    r.check(
        "PSCI_VERSION from EL3",
        v >> 16 == 1,
        format_args!("{v:#x}"),
    );
    for fid in UNKNOWN_SMCS {
        let v = smc(fid, &[1, 2, 3])[0] as u32;
        r.check(
            "unknown SMC refused with -1",
            v == NOT_SUPPORTED,
            format_args!("{fid:#x} -> {v:#x}"),
        );
    }

    r.section("isolation");
    match warden_range(&tree) {
        None => r.check(
            "DT reserves warden's memory",
            false,
            format_args!("no /reserved-memory/warden@"),
        ),
        Some(w) => {
            say!("testhost: warden occupies {:#x}..{:#x}", w.start, w.end);
            // The reservation must be one the host's kernel honours (`no-map`: never mapped,
            // devicetree reserved-memory binding), page-aligned, and cover what this host
            // knows to be warden's: the boot-timestamp word when the harness names it (from
            // warden's symbol table and the address it loaded warden at), else its link
            // address (TF-A's BL33 address, linker.ld).
            let no_map = reservation_is_no_map(&tree);
            let covers = |a: u64| w.start <= a && a < w.end;
            let aligned = w.start % 0x1000 == 0 && w.end % 0x1000 == 0;
            r.check(
                "DT reserves warden's memory",
                no_map && aligned && covers(warden_word.unwrap_or(WARDEN_LINK_ADDRESS)),
                format_args!(
                    "{:#x}..{:#x}, no-map {no_map}, word {warden_word:x?}",
                    w.start, w.end
                ),
            );
            for (addr, write) in [
                (w.start, false),
                (w.start + 0x1000, true),
                (w.end - 8, false),
            ] {
                let (esr, far) = probe(addr, write);
                let ec = esr >> 26;
                let wnr = esr >> 6 & 1 == 1;
                r.check(
                    if write {
                        "write to warden memory aborts"
                    } else {
                        "read of warden memory aborts"
                    },
                    ec == 0x25 && far == addr && wnr == write && esr & 0x3f == 0x10,
                    format_args!("addr {addr:#x}: ESR {esr:#x} FAR {far:#x}"),
                );
            }
            let own = &raw const SCRATCH as u64;
            let (esr, _) = probe(own, true);
            r.check(
                "host RAM stays writable",
                esr == 0,
                format_args!("ESR {esr:#x}"),
            );
        }
    }
    ffa_checks::still_served(&mut r);

    // Before the SMP section: the PSCI checks aim CPU_ON at this CPU only.
    r.section("el2");
    el2_checks::run(&mut r, warden_range(&tree), host_entry_address());

    if let Some(s) = scratch {
        stress::SCRATCH.store(s.start + 0x80_0000, Ordering::Release);
    }
    stress::TX.store(ffa_checks::buffers().0, Ordering::Release);
    stress::VERSION.store(version as u64, Ordering::Release);
    r.section("smp");
    smp_checks(&mut r, &platform);

    // The hostile host, seeded from the counter so that runs differ; the seed is printed
    // and `hostile=<seed>` on the command line replays one.
    let seed = fdt::Fdt::new(&tree)
        .ok()
        .and_then(|f| {
            f.chosen().bootargs().and_then(|a| {
                a.split_whitespace()
                    .find_map(|w| w.strip_prefix("hostile="))
                    .and_then(|v| u64::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            })
        })
        .unwrap_or_else(cntpct);
    let warden_at = warden_range(&tree).map_or(0x6000_0000, |w| w.start);
    let uart = el1kit::console::base();
    r.section("hostile");
    hostile::run(&mut r, seed, warden_at, uart, &|| {
        hostile::correct_calls_work(0x8001)
    });

    // Result registers past x7, per the host's version.
    r.section("registers");
    register_checks::run(&mut r, version);

    // A second "boot" in this run: the host lets go of everything and comes back at
    // another FF-A version (README "Host lifecycle").
    r.section("lifecycle");
    lifecycle_checks::run(&mut r, version);

    // warden's own account of this run: FF-A calls counted, and every memory handle the
    // host created has been reclaimed. warden prints the same counters at SYSTEM_OFF, and the
    // harness compares the two.
    r.section("accounting");
    let c = hvc(WARDEN_COUNTERS);
    say!(
        "testhost: warden counted {} FF-A calls, {} errors, {} live handles",
        c[1],
        c[2],
        c[3]
    );
    r.check(
        "warden's counters: calls seen, no handle left",
        c[0] == 0 && c[1] > 50 && c[2] > 10 && c[3] == 0,
        format_args!("{:?}", &c[..4]),
    );
    let t = hvc(WARDEN_BOOT_TIMES);
    say!(
        "testhost: counter at warden entry {}, at host entry {} ({} ticks)",
        t[1],
        t[2],
        t[2].wrapping_sub(t[1])
    );
    r.check(
        "boot times reported",
        t[0] == 0 && t[2] > t[1] && t[1] > 0,
        format_args!("{:?}", &t[..3]),
    );

    let pass = r.verdict();
    power(pass)
}

/// SMCs no one serves, each of which warden must refuse with NOT_SUPPORTED.
const UNKNOWN_SMCS: [u32; 5] = [
    0x8200_0000,
    0xc300_0001,
    0x0400_0063,
    0x8410_0063,
    0xc600_0000,
];

/// The checks `smp_checks` makes with `cpus` CPUs: CPU_ON of a CPU that does not exist; with a
/// second CPU, its bring-up (4), CPU_ON of each further one (up to 4 CPUs) and the stress.
fn smp_planned(cpus: usize) -> u32 {
    match cpus {
        0 | 1 => 1,
        n => 1 + 4 + (n.min(4) as u32 - 2) + 1,
    }
}

fn smp_checks(r: &mut Report, platform: &PlatformInfo) {
    let v = smc(PSCI_CPU_ON_64, &[0xff_ff, 0, 0])[0] as i64 as i32;
    r.check(
        "CPU_ON of a CPU that does not exist",
        v == -2,
        format_args!("{v}"),
    );
    let Some(&mpidr) = platform.cpus.get(1) else {
        say!("testhost: one CPU only; secondary bring-up not exercised");
        return;
    };
    let entry = el1kit::cpu::secondary_entry(testhost_secondary);
    // The context ID picks stack slot 1 (low bits) and carries a marker to check.
    let ctx = 0x5ec0_0001;
    let v = smc(PSCI_CPU_ON_64, &[mpidr, entry, ctx])[0] as i64;
    r.check("CPU_ON of CPU 1 accepted", v == 0, format_args!("{v}"));
    let mut seen = 0;
    for _ in 0..50_000_000u64 {
        seen = SECONDARY_SEEN.load(Ordering::Acquire);
        if seen != 0 {
            break;
        }
        core::hint::spin_loop();
    }
    r.check(
        "CPU 1 enters the host at EL1 with its context ID",
        seen == ctx << 8 | 1,
        format_args!("seen {seen:#x}"),
    );
    let state = smc(PSCI_AFFINITY_INFO_64, &[mpidr, 0])[0];
    r.check(
        "AFFINITY_INFO reports CPU 1 on",
        state == 0,
        format_args!("{state}"),
    );
    let v = smc(PSCI_CPU_ON_64, &[mpidr, entry, ctx])[0] as i64;
    r.check(
        "CPU_ON of a running CPU is ALREADY_ON",
        v == -4,
        format_args!("{v}"),
    );

    // Every other CPU too, then all of them (this one included) run the stress loop.
    let cpus = platform.cpus.len().min(4);
    for (slot, &mpidr) in platform.cpus.iter().enumerate().take(cpus).skip(2) {
        let v = smc(PSCI_CPU_ON_64, &[mpidr, entry, 0x5ec0_0000 | slot as u64])[0];
        r.check("CPU_ON of another CPU", v == 0, format_args!("{v}"));
    }
    stress::worker(0);
    let mut finished = 0;
    for _ in 0..200_000_000u64 {
        finished = stress::DONE[..cpus]
            .iter()
            .filter(|d| d.load(Ordering::Acquire) == stress::ITERATIONS)
            .count();
        if finished == cpus {
            break;
        }
        core::hint::spin_loop();
    }
    let failed = stress::FAILED.load(Ordering::Relaxed);
    if failed > 0 {
        let f: [u64; 3] =
            core::array::from_fn(|i| stress::FIRST_FAILURE[i].load(Ordering::Relaxed));
        say!(
            "testhost: SMP stress: first failure: operation {} answered x0 {:#x} w2 {:#x}",
            f[0],
            f[1],
            f[2]
        );
    }
    say!(
        "testhost: SMP stress: {finished}/{cpus} CPUs finished {} iterations each, {failed} failed operations",
        stress::ITERATIONS
    );
    r.check(
        "SMP stress: every CPU finished, nothing failed",
        finished == cpus && failed == 0,
        format_args!("{finished}/{cpus}, {failed} failed"),
    );
}

/// A secondary CPU's entry (el1kit::cpu), x0 = the context ID the primary chose.
extern "C" fn testhost_secondary(ctx: u64) -> ! {
    mmu::enable(El::El1);
    if ctx & 3 == 1 {
        SECONDARY_SEEN.store(ctx << 8 | mmu::current_el(), Ordering::Release);
    }
    stress::worker((ctx & 3) as usize);
    // Not PSCI CPU_OFF: on this firmware (TF-A 2.12 SPMD + OP-TEE 4.10 SPMC) it returns
    // FFA_ERROR for a CPU whose SPMC context was never started, with the caller's EL1
    // state lost. Parking is enough; SYSTEM_OFF ends everything.
    loop {
        aarch64_wfe();
    }
}

/// The test host's own first instruction: an address in the host's RAM.
fn host_entry_address() -> u64 {
    unsafe extern "C" {
        fn _start();
    }
    _start as *const () as u64
}

fn aarch64_wfe() {
    // SAFETY: wfe only waits for an event.
    unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
}

/// Ends the run: SYSTEM_OFF on a pass, SYSTEM_RESET (which the harness reads as a failure)
/// otherwise.
fn power(ok: bool) -> ! {
    if ok {
        el1kit::call::power_off()
    } else {
        el1kit::call::reset()
    }
}

#[unsafe(no_mangle)]
extern "C" fn el1kit_unexpected(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    say!("testhost: unexpected exception {kind}: ESR {esr:#x} ELR {elr:#x} FAR {far:#x}");
    say!("testhost: verdict FAIL (unexpected exception)");
    power(false)
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    say!("testhost: panic: {info}");
    say!("testhost: verdict FAIL (panic)");
    power(false)
}
