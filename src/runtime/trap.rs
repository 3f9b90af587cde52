//! Every exception the host takes to EL2 (`boot/vectors.S`, lower-EL entries): SMCs to the
//! router, warden's HVCs, stage-2 faults, and what is injected back into the host.

use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::registers::*;
use log::{info, warn};

use super::host_mem::HostFfaEnv;
use super::image;
use super::percpu::{self, HOST_ENTRIES, MAX_CPUS, current_cpu_index};
use super::{BOOT_ENTRY, BOOT_HOST, COUNTERS, SHARED, Shared};
use crate::arch::esr::{self, El1Entry, ExceptionClass, Injection};
use crate::arch::frame::TrapFrame;
use crate::counters::RateLimit;
use crate::ffa::abi::FFA_ERROR;
use crate::ffa::proxy::FfaProxy;
use crate::hvc;
use crate::platform::console::Pl011;
use crate::platform::logger;
use crate::platform::memmap::{self, Range};
use crate::platform::smmuv3;
use crate::psci::{self, EntrySlot, HostEntry, PowerStateFormat};
use crate::router::{self, CpuTopology, FfaService, SecureMonitor};
use crate::smccc::FunctionId;

/// Where an exception came from: the four groups of VBAR_EL2 (DDI 0487 D1.10.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Current EL with SP_EL0: warden never runs on SP_EL0.
    CurrentSpEl0,
    /// Current EL with SP_EL2: a fault inside warden.
    CurrentSpElx,
    /// The host, in AArch64.
    LowerA64,
    /// The host in AArch32, which it cannot be (HCR_EL2.RW = 1).
    LowerA32,
}

/// The exception type within a group (the vector's position in it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sync,
    Irq,
    Fiq,
    SError,
}

/// One of the 16 vectors. `boot/vectors.S` passes the vector's slot number (its offset
/// from VBAR_EL2 divided by 0x80) to Rust; this is its meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vector {
    pub origin: Origin,
    pub kind: Kind,
}

impl Vector {
    pub const fn from_slot(slot: u64) -> Self {
        let origin = match slot >> 2 & 3 {
            0 => Origin::CurrentSpEl0,
            1 => Origin::CurrentSpElx,
            2 => Origin::LowerA64,
            _ => Origin::LowerA32,
        };
        let kind = match slot & 3 {
            0 => Kind::Sync,
            1 => Kind::Irq,
            2 => Kind::Fiq,
            _ => Kind::SError,
        };
        Self { origin, kind }
    }
}

/// WARDEN_COUNTERS calls that printed the table (a host may call it in a loop).
static COUNTER_PRINTS: RateLimit = RateLimit::new();
/// Lines logged about DMA faults (for rate-limiting them).
static DMA_FAULT_LINES: AtomicU64 = AtomicU64::new(0);

/// EL3, reached with an SMC.
pub struct El3;

impl SecureMonitor for El3 {
    #[inline(always)]
    fn call(&mut self, regs: &[u64; 18]) -> [u64; 18] {
        let mut args = [0u64; 17];
        args.copy_from_slice(&regs[1..]);
        smccc::smc64(regs[0] as u32, args)
    }
}

struct Topology<'a>(&'a Shared);

impl CpuTopology for Topology<'_> {
    fn index_of(&self, mpidr: u64) -> Option<usize> {
        psci::cpu_index(&self.0.platform.cpus, mpidr, MAX_CPUS)
    }
    fn current(&self) -> usize {
        current_cpu_index()
    }
    fn set_host_entry(&self, slot: EntrySlot, entry: HostEntry) -> Option<HostEntry> {
        HOST_ENTRIES.set(slot, entry)
    }
    fn restore_host_entry(&self, slot: EntrySlot, previous: Option<HostEntry>) {
        HOST_ENTRIES.restore(slot, previous)
    }
    fn warden_entry(&self) -> u64 {
        image::secondary_entry()
    }
    fn is_host_entry(&self, addr: u64) -> bool {
        let r = Range::new(addr, addr.saturating_add(4));
        memmap::is_host_ram(&self.0.platform.memory, &[self.0.warden_mem], r)
    }
    fn power_state_format(&self) -> PowerStateFormat {
        percpu::power_state_format()
    }
}

struct FfaGlue<'a> {
    proxy: &'a FfaProxy,
    env: HostFfaEnv<'a>,
}

impl FfaService for FfaGlue<'_> {
    fn call(&mut self, regs: &[u64; 18]) -> router::Reply {
        // Nothing reaches the console while the proxy holds its locks (or the stage-2's):
        // this CPU's lines wait until the call is over.
        let cpu = current_cpu_index();
        logger::hold(cpu);
        let reply = self.proxy.handle(regs, &mut self.env);
        logger::release(cpu);
        reply
    }
}

/// Every exception from the host (`boot/vectors.S`, lower-EL entries).
#[unsafe(no_mangle)]
extern "C" fn warden_host_trap(frame: &mut TrapFrame, slot: u64) {
    super::failure::stop_if_failing();
    // One compare for the common case (`Vector::from_slot(LOWER_A64_SYNC)`).
    if slot == LOWER_A64_SYNC {
        host_sync(frame)
    } else {
        host_async_or_a32(frame, slot, Vector::from_slot(slot))
    }
}

/// The slot of a synchronous exception from the AArch64 host: every SMC, HVC and stage-2
/// fault.
const LOWER_A64_SYNC: u64 = 8;
const _: () = assert!(matches!(
    Vector::from_slot(LOWER_A64_SYNC),
    Vector {
        origin: Origin::LowerA64,
        kind: Kind::Sync
    }
));

/// Everything but a synchronous exception from the AArch64 host: logged. Out of line, so
/// that the formatting's stack frame and saved registers are not every trap's.
#[inline(never)]
fn host_async_or_a32(frame: &TrapFrame, slot: u64, vector: Vector) {
    match (vector.origin, vector.kind) {
        // `warden_host_trap` sends these to `host_sync`.
        (Origin::LowerA64, Kind::Sync) => {}
        (Origin::LowerA64, Kind::Irq | Kind::Fiq) => {
            warn!("physical interrupt taken to EL2 (kind {slot}); not routed here")
        }
        (Origin::LowerA64, Kind::SError) => warn!(
            "SError from host at {:#x}, ESR {:#x}",
            frame.elr,
            ESR_EL2.get()
        ),
        _ => warn!("exception from AArch32 (kind {slot}); the host is AArch64 only"),
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

/// A synchronous exception from the host. The SMCs answered in the frame (the relayed
/// calls, FF-A) are decided here; everything else goes to functions kept out of line, so
/// that the hot paths carry no stack frame or saved registers of theirs (issue 15).
#[inline(always)]
fn host_sync(frame: &mut TrapFrame) {
    let esr = ESR_EL2.get();
    let Some(shared) = SHARED.get() else { return };
    if !shared.smmus.is_empty() {
        drain_dma_faults(shared);
    }
    if ExceptionClass::from_esr(esr) != ExceptionClass::Smc64 {
        return host_sync_other(shared, frame, esr);
    }
    // A trapped SMC leaves ELR_EL2 at the SMC itself.
    frame.elr += 4;
    let fid = FunctionId::from_reg(frame.x[0]);
    // The hottest forwarded call, FFA_MSG_SEND_DIRECT_REQ (32 or 64), recognised by its
    // two IDs before `classify`, which routes exactly these to the FF-A proxy
    // (`router::is_direct_req`).
    if router::is_direct_req(fid) {
        ffa_in_place(shared, frame, fid);
        return;
    }
    let route = router::classify(fid);
    // Calls on the relay allow-list (SMCCC_VERSION, ARCH_FEATURES about a relayed call,
    // the workarounds, TRNG, SOC_ID) with no SVE hint: what `router::handle_smc` does for
    // them (relayed as they are, results in x0-x3), straight from and into the frame.
    // This is the floor of a forwarded call; the general path copies the registers
    // several times over.
    if route == router::Route::Relayed
        && fid == fid.without_sve_hint()
        && crate::smccc::feature_query_allowed(fid, frame.x[1])
    {
        forward_in_place(frame);
        return;
    }
    // FF-A with no SVE hint (all of it, in practice): answered in the frame by the
    // proxy, with no `Reply` returned through the router and copied back.
    if route == router::Route::Ffa && fid == fid.without_sve_hint() {
        ffa_in_place(shared, frame, fid);
        return;
    }
    smc_through_router(shared, frame, fid, route);
}

/// Every other host SMC: PSCI, refused calls, calls with the SVE hint, feature queries
/// about calls warden does not relay. Through `router::handle_smc`.
#[inline(never)]
fn smc_through_router(
    shared: &Shared,
    frame: &mut TrapFrame,
    fid: FunctionId,
    route: router::Route,
) {
    let mut ffa = FfaGlue {
        proxy: &shared.ffa,
        env: HostFfaEnv::new(
            &shared.platform.memory,
            shared.warden_mem,
            Some(&shared.stage2),
            &shared.smmus,
        ),
    };
    let topology = Topology(shared);
    // x0-x17 by reference: no copy of the argument block.
    let Some(regs) = frame.x.first_chunk::<18>() else {
        return;
    };
    if route == router::Route::Psci && psci::ends_the_system(fid) {
        print_counters(shared);
    }
    let reply = router::handle_smc(regs, &mut El3, &topology, &mut ffa);
    match route {
        router::Route::Ffa => COUNTERS.ffa(fid.0, reply.regs[0] == FFA_ERROR as u64),
        router::Route::Psci => {
            COUNTERS.psci_calls.fetch_add(1, Ordering::Relaxed);
        }
        router::Route::Refused => {
            COUNTERS.smc_refused.fetch_add(1, Ordering::Relaxed);
        }
        router::Route::Relayed => {}
    }
    frame.set_smccc_results(&reply.regs, reply.count);
}

/// A synchronous exception from the host other than an SMC: warden's HVCs, stage-2
/// faults, set/way maintenance, and anything else (an undefined instruction for the host).
#[inline(never)]
fn host_sync_other(shared: &Shared, frame: &mut TrapFrame, esr: u64) {
    match ExceptionClass::from_esr(esr) {
        ExceptionClass::Hvc64 => {
            COUNTERS.hvc_calls.fetch_add(1, Ordering::Relaxed);
            // The frame's x0-x17 by reference, and only the result registers back: no
            // copy of the whole argument block on the way in or out.
            if let Some(regs) = frame.x.first_chunk::<18>() {
                let out = hvc::handle(regs, &Info(shared));
                for (reg, value) in frame.x.iter_mut().zip(out).take(hvc::RESULT_REGS) {
                    *reg = value;
                }
            }
        }
        ExceptionClass::DataAbortLower | ExceptionClass::InstructionAbortLower => {
            host_abort(frame, esr)
        }
        ExceptionClass::Other(0x18) if let Some(rt) = esr::set_way_op(esr) => {
            // DC ISW/CSW/CISW (HCR_EL2.TSW): performed as clean-and-invalidate of that
            // set/way, so no dirty line (warden's or another world's) is ever discarded.
            let value = frame.x.get(rt as usize).copied().unwrap_or(0);
            // SAFETY: clean-and-invalidate by set/way writes dirty data back and changes no
            // memory contents; any set/way value is architecturally safe to name.
            unsafe { core::arch::asm!("dc cisw, {}", in(reg) value, options(nostack)) };
            COUNTERS.set_way_ops.fetch_add(1, Ordering::Relaxed);
            frame.elr += 4;
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

/// A host FF-A call with no SVE hint (all of them, in practice): answered in the frame by
/// the proxy, with no `Reply` returned through the router and copied back. Out of line, so
/// that its stack frame and saved registers are not every trap's (the relayed calls above
/// are the floor of a forwarded call).
#[inline(never)]
fn ffa_in_place(shared: &Shared, frame: &mut TrapFrame, fid: FunctionId) {
    let Some(regs) = frame.x.first_chunk_mut::<18>() else {
        return;
    };
    // `hot` logs nothing and needs nothing of `HostFfaEnv` but its SPMC call, which is
    // `El3`'s; for the rest, nothing reaches the console while the proxy holds its locks
    // (as `FfaGlue::call`).
    if shared.ffa.hot_with(regs, |call| El3.call(call)).is_none() {
        ffa_through_handle(shared, regs);
    }
    COUNTERS.ffa(fid.0, regs[0] == FFA_ERROR as u64);
}

/// Every FF-A call `hot_with` does not answer: `FfaProxy::handle` with the whole
/// `HostFfaEnv`, out of line so that its reply buffer is not on the hot path's stack.
#[inline(never)]
fn ffa_through_handle(shared: &Shared, regs: &mut [u64; 18]) {
    let mut env = HostFfaEnv::new(
        &shared.platform.memory,
        shared.warden_mem,
        Some(&shared.stage2),
        &shared.smmus,
    );
    let cpu = current_cpu_index();
    logger::hold(cpu);
    shared.ffa.handle_copied(regs, &mut env);
    logger::release(cpu);
}

/// Relays the SMC in `frame` (x0-x17, SMCCC v1.2) to EL3 and writes x0-x3 of its answer
/// back (the relayed calls return at most four results: SMCCC DEN0028 §7, TRNG DEN0098);
/// the host's other registers keep their values.
fn forward_in_place(frame: &mut TrapFrame) {
    let x = frame.x.as_mut_ptr();
    // SAFETY: `x` points at the frame's 31 saved registers, of which this reads x0-x17
    // and writes x0-x3; the SMC's only other effects are EL3's, and SMCCC v1.2 lets EL3
    // change x0-x17 only, all of which are declared clobbered here (x18 and up are
    // preserved by EL3, SMCCC §2.7).
    unsafe {
        core::arch::asm!(
            "ldp x0, x1, [x18]",
            "ldp x2, x3, [x18, #16]",
            "ldp x4, x5, [x18, #32]",
            "ldp x6, x7, [x18, #48]",
            "ldp x8, x9, [x18, #64]",
            "ldp x10, x11, [x18, #80]",
            "ldp x12, x13, [x18, #96]",
            "ldp x14, x15, [x18, #112]",
            "ldp x16, x17, [x18, #128]",
            "smc #0",
            "stp x0, x1, [x18]",
            "stp x2, x3, [x18, #16]",
            in("x18") x,
            out("x0") _, out("x1") _, out("x2") _, out("x3") _,
            out("x4") _, out("x5") _, out("x6") _, out("x7") _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _,
            out("x16") _, out("x17") _,
            options(nostack)
        );
    }
}

/// Answers for warden's HVC interface.
struct Info<'a>(&'a Shared);

impl hvc::WardenInfo for Info<'_> {
    fn counters(&self) -> hvc::CountersReply {
        super::failure::deliberate_failure();
        // The table is up to ~160 lines: printed for the first few calls, then rarely.
        if COUNTER_PRINTS.allow().is_some() {
            print_counters(self.0);
        }
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
        "counters: FF-A calls {calls} (errors {errors}), PSCI {}, refused SMCs {}, stage-2 faults {} ({} permission) (+{} retried during lends), HVCs {}, live memory handles {}, set/way operations {}",
        COUNTERS.psci_calls.load(Ordering::Relaxed),
        COUNTERS.smc_refused.load(Ordering::Relaxed),
        COUNTERS.host_aborts.load(Ordering::Relaxed),
        COUNTERS.host_permission_faults.load(Ordering::Relaxed),
        COUNTERS.bbm_retries.load(Ordering::Relaxed),
        COUNTERS.hvc_calls.load(Ordering::Relaxed),
        shared.ffa.live_handles(),
        COUNTERS.set_way_ops.load(Ordering::Relaxed)
    );
    for (n, c, e) in COUNTERS.ffa_by_function() {
        info!("counters: FF-A function {n:#04x}: {c} call(s), {e} error(s)");
    }
    info!(
        "counters: console bytes dropped {} (UART stalled), log lines dropped {} (held buffer full)",
        Pl011::dropped(),
        logger::held_dropped()
    );
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
    let entry = El1Entry {
        sctlr_el1: SCTLR_EL1.get(),
        pan: (ID_AA64MMFR1_EL1.get() >> 20) & 0xf != 0,
        ssbs: (ID_AA64PFR1_EL1.get() >> 4) & 0xf != 0,
        mte: (ID_AA64PFR1_EL1.get() >> 8) & 0xf != 0,
    };
    let e = esr::inject(kind, frame.elr, frame.spsr, VBAR_EL1.get(), &entry);
    ESR_EL1.set(e.esr_el1);
    FAR_EL1.set(FAR_EL2.get());
    ELR_EL1.set(e.elr_el1);
    SPSR_EL1.set(e.spsr_el1);
    frame.elr = e.elr_el2;
    frame.spsr = e.spsr_el2;
}
