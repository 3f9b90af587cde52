//! The SMMUv3 as warden drives it on the target: register access, the command and event
//! queues in warden's memory, and the take-over at boot (Arm IHI 0070 §6.3, §3.5, §4, §7).
//! The encodings are in `regs` and `desc`; the DMA table in `table`.

use alloc::alloc::{Layout, alloc_zeroed};
use alloc::vec::Vec;

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

use super::SmmuError;
use super::desc::{
    CD_BYTES, CMD_BYTES, Command, EVENT_BYTES, Event, STE_BYTES, cd_stage1, l1_descriptor,
    ste_stage1,
};
use super::dt::SmmuNode;
use super::regs::{self, Features, QueueIndex, StreamTable};
use super::table::{self, DmaTable, TableSync};
use crate::arch::el2::{clean_dcache_to_poc, invalidate_dcache_to_poc};
use crate::platform::memmap::Range;

/// 2^8 commands (4 KiB) and 2^9 event records (16 KiB: QEMU records one event per 4-byte
/// access of a blocked DMA, 512 for 2 KiB), or less if the SMMU's queues are smaller
/// (IDR1.CMDQS, IDR1.EVENTQS).
const CMDQ_LOG2: u32 = 8;
const EVTQ_LOG2: u32 = 9;
const PAGE: usize = 4096;

/// The Non-secure register frame.
#[derive(Clone, Copy)]
struct Mmio {
    base: usize,
}

impl Mmio {
    fn read32(&self, offset: usize) -> u32 {
        debug_assert!(offset < regs::FRAME_SIZE as usize);
        // SAFETY: `base` is the SMMU's frame from the DT, mapped as device memory in
        // warden's stage-1 (and in no stage-2); every offset used is a 32-bit register
        // inside the frame's two pages.
        unsafe { ((self.base + offset) as *const u32).read_volatile() }
    }
    fn write32(&self, offset: usize, value: u32) {
        debug_assert!(offset < regs::FRAME_SIZE as usize);
        // SAFETY: as in `read32`.
        unsafe { ((self.base + offset) as *mut u32).write_volatile(value) }
    }
    fn write64(&self, offset: usize, value: u64) {
        debug_assert!(offset < regs::FRAME_SIZE as usize);
        // SAFETY: as in `read32`, for the 64-bit registers (8-byte aligned offsets).
        unsafe { ((self.base + offset) as *mut u64).write_volatile(value) }
    }
    /// Polls `offset` until `(value & mask) == want`, for at most a second.
    fn wait(
        &self,
        offset: usize,
        mask: u32,
        want: u32,
        what: &'static str,
    ) -> Result<(), SmmuError> {
        let deadline = deadline();
        while self.read32(offset) & mask != want {
            if CNTPCT_EL0.get() > deadline {
                return Err(SmmuError::Timeout(what));
            }
            core::hint::spin_loop();
        }
        Ok(())
    }
    /// Writes CR0 and waits for CR0ACK to follow (§6.3.9, §6.3.10).
    fn set_cr0(&self, value: u32) -> Result<(), SmmuError> {
        self.write32(regs::CR0, value);
        self.wait(regs::CR0ACK, u32::MAX, value, "CR0ACK")
    }
}

fn deadline() -> u64 {
    CNTPCT_EL0
        .get()
        .saturating_add(CNTFRQ_EL0.get().max(1_000_000))
}

/// Zeroed memory from warden's heap for the SMMU's structures, never freed. Being warden's
/// memory, it is mapped neither in the host's stage-2 nor in the DMA table.
fn allocate(bytes: usize, align: usize) -> Result<usize, SmmuError> {
    let layout = Layout::from_size_align(bytes, align).map_err(|_| SmmuError::NoMemory)?;
    // SAFETY: the layout has a non-zero size (every caller asks for at least 64 bytes).
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() {
        Err(SmmuError::NoMemory)
    } else {
        Ok(p as usize)
    }
}

/// Writes `words` at `addr`, inside memory from `allocate` that the SMMU does not use yet
/// or only reads after the following barrier.
fn put(addr: usize, words: &[u64]) {
    for (i, w) in words.iter().enumerate() {
        // SAFETY: callers pass addresses inside an `allocate`d block with room for
        // `words`; the SMMU only reads it.
        unsafe { ((addr + i * 8) as *mut u64).write_volatile(*w) };
    }
}

/// The command queue and the coherency of the SMMU's accesses: what `TableSync` needs.
pub struct Control {
    mmio: Mmio,
    coherent: bool,
    cmdq: usize,
    cmdq_log2: u32,
    prod: QueueIndex,
}

impl Control {
    /// Makes `[start, start + len)` visible to the SMMU before a register write that lets
    /// it read them.
    fn publish_range(&self, start: usize, len: usize) {
        if self.coherent {
            // SAFETY: a barrier has no memory effects of its own.
            unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
        } else {
            clean_dcache_to_poc(start, start + len);
        }
    }

    /// Issues `cmds` (ending with CMD_SYNC) and waits until the SMMU has consumed them
    /// all, which for a CMD_SYNC means every earlier command has completed (§4.7.3). The
    /// queue is empty on entry: every call waits for it to drain.
    fn run(&mut self, cmds: &[Command]) -> Result<(), SmmuError> {
        if cmds.len() >= 1 << self.cmdq_log2 {
            return Err(SmmuError::Command(0));
        }
        for c in cmds {
            put(self.cmdq + self.prod.entry() * CMD_BYTES, &c.encode());
            self.prod = self.prod.next();
        }
        self.publish_range(self.cmdq, CMD_BYTES << self.cmdq_log2);
        self.mmio.write32(regs::CMDQ_PROD, self.prod.value());
        let deadline = deadline();
        let mut error = None;
        loop {
            let cons_reg = self.mmio.read32(regs::CMDQ_CONS);
            let cons = QueueIndex::from_reg(self.cmdq_log2, cons_reg);
            if QueueIndex::is_empty(self.prod, cons) {
                return error.map_or(Ok(()), Err);
            }
            let gerror = self.mmio.read32(regs::GERROR);
            let gerrorn = self.mmio.read32(regs::GERRORN);
            if (gerror ^ gerrorn) & regs::GERROR_CMDQ_ERR != 0 {
                // The SMMU stopped at the command CONS points at (§7.1): replace it with
                // a CMD_SYNC, acknowledge, and let it go on; the caller gets an error.
                let code = cons_reg >> 24 & 0x7f;
                error = Some(SmmuError::Command(code));
                put(
                    self.cmdq + cons.entry() * CMD_BYTES,
                    &Command::Sync.encode(),
                );
                self.publish_range(self.cmdq, CMD_BYTES << self.cmdq_log2);
                self.mmio
                    .write32(regs::GERRORN, gerrorn ^ regs::GERROR_CMDQ_ERR);
            }
            if CNTPCT_EL0.get() > deadline {
                return Err(SmmuError::Timeout("the command queue"));
            }
            core::hint::spin_loop();
        }
    }
}

impl TableSync for Control {
    fn publish(&mut self, tables: &[usize]) {
        if self.coherent {
            // SAFETY: a barrier has no memory effects of its own.
            unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
        } else {
            for &t in tables {
                clean_dcache_to_poc(t, t + PAGE);
            }
        }
    }
    fn invalidate(&mut self, tables: &[usize]) -> Result<(), SmmuError> {
        self.publish(tables);
        self.run(&[Command::TlbiNhAsid(table::ASID), Command::Sync])
    }
}

/// The SMMU's command side and the DMA table: one lock for both, so that table changes
/// and their invalidations are never interleaved between CPUs.
pub struct Smmu {
    control: Control,
    table: DmaTable,
}

impl Smmu {
    /// A lend: `ranges` leave the DMA table, and the SMMU forgets every cached
    /// translation of them before this returns `Ok`. On an error nothing changed.
    pub fn lend(&mut self, ranges: &[Range]) -> Result<(), SmmuError> {
        self.table.lend(ranges, &mut self.control)
    }
    /// A reclaim (or a lend undone): `ranges` are the host's again for DMA.
    pub fn restore(&mut self, ranges: &[Range]) -> Result<(), SmmuError> {
        self.table.restore(ranges, &mut self.control)
    }
}

/// The event queue's consumer side (its own lock: draining never waits for a lend).
pub struct Events {
    mmio: Mmio,
    coherent: bool,
    evtq: usize,
    log2: u32,
    cons: QueueIndex,
    /// The last overflow flag acknowledged (EVENTQ_PROD.OVFLG, §7.4).
    overflow_ack: bool,
}

/// What one drain found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub events: u64,
    /// The queue overflowed since the last drain (EVENTQ_PROD.OVFLG), or a record could
    /// not be written (GERROR.EVENTQ_ABT_ERR): some events were lost.
    pub lost: bool,
}

impl Events {
    /// Reads every new event record and hands it to `f`. Cheap when there is none: one
    /// register read (EVENTQ_PROD) compared with warden's own consumer index.
    pub fn drain(&mut self, mut f: impl FnMut(Event)) -> Drained {
        let prod_reg = self.mmio.read32(regs::EVENTQ_PROD);
        let prod = QueueIndex::from_reg(self.log2, prod_reg);
        let ovflg = prod_reg & 1 << 31 != 0;
        let overflowed = ovflg != self.overflow_ack;
        if QueueIndex::is_empty(prod, self.cons) && !overflowed {
            return Drained::default();
        }
        // The records are read only after PROD (Linux's readl ordering, DDI 0487 B2.3).
        // SAFETY: a barrier has no memory effects of its own.
        unsafe { core::arch::asm!("dmb oshld", options(nostack)) };
        let mut n = 0;
        while !QueueIndex::is_empty(prod, self.cons) {
            let at = self.evtq + self.cons.entry() * EVENT_BYTES;
            if !self.coherent {
                invalidate_dcache_to_poc(at, at + EVENT_BYTES);
            }
            let mut words = [0u64; 4];
            for (i, w) in words.iter_mut().enumerate() {
                // SAFETY: `at` is a record inside the event queue warden allocated
                // (`entry()` < 2^log2); the SMMU wrote it before advancing PROD.
                *w = unsafe { ((at + i * 8) as *const u64).read_volatile() };
            }
            f(Event::decode(words));
            n += 1;
            self.cons = self.cons.next();
        }
        // Reads of the records complete before the SMMU may reuse them.
        // SAFETY: a barrier has no memory effects of its own.
        unsafe { core::arch::asm!("dmb osh", options(nostack)) };
        self.mmio
            .write32(regs::EVENTQ_CONS, self.cons.value() | (ovflg as u32) << 31);
        self.overflow_ack = ovflg;
        // A full queue: records the SMMU could not write show as a global error, which is
        // acknowledged by toggling the same bit in GERRORN (§6.3.15, §6.3.16).
        let gerrorn = self.mmio.read32(regs::GERRORN);
        let aborted = (self.mmio.read32(regs::GERROR) ^ gerrorn) & regs::GERROR_EVENTQ_ABT_ERR;
        if aborted != 0 {
            self.mmio.write32(regs::GERRORN, gerrorn ^ aborted);
        }
        Drained {
            events: n,
            lost: overflowed || aborted != 0,
        }
    }
}

/// What the take-over set up, for warden's log.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub features: Features,
    pub idr0: u32,
    pub coherent: bool,
    pub strtab: StreamTable,
    pub table_pages: usize,
}

/// Stops the SMMU translating or bypassing anything: SMMUEN off and, while it is off,
/// incoming transactions aborted (GBPA.ABORT).
fn quiesce(mmio: Mmio) -> Result<(), SmmuError> {
    if mmio.read32(regs::CR0) != 0 {
        mmio.set_cr0(0)?;
    }
    mmio.write32(regs::GBPA, regs::GBPA_UPDATE | regs::GBPA_ABORT);
    mmio.wait(regs::GBPA, regs::GBPA_UPDATE, 0, "GBPA.Update")
}

/// Takes the SMMU at `node` over (IHI 0070 §6.3.9 and the initialization sequence of
/// §3.5-3.6): quiesce it, program the stream table, command and event queues in warden's
/// memory, invalidate every cached configuration and translation, then enable it with
/// every stream translating through the DMA table built from `ram` (the host's RAM).
/// On an error the SMMU is left disabled with incoming DMA aborted (when that step
/// itself succeeded).
pub fn take_over(node: &SmmuNode, ram: &[Range]) -> Result<(Smmu, Events, Summary), SmmuError> {
    let mmio = Mmio {
        base: node.frame.start as usize,
    };
    let idr0 = mmio.read32(regs::IDR0);
    let features = Features::decode(idr0, mmio.read32(regs::IDR1), mmio.read32(regs::IDR5));
    quiesce(mmio)?;
    let top = ram.iter().map(|r| r.end).max().unwrap_or(0);
    features.check(top)?;
    let coherent = features.coherent && node.dma_coherent;

    mmio.write32(regs::IRQ_CTRL, 0);
    mmio.wait(regs::IRQ_CTRLACK, u32::MAX, 0, "IRQ_CTRLACK")?;
    mmio.write32(regs::GERRORN, mmio.read32(regs::GERROR));
    mmio.write32(regs::CR1, regs::CR1_WB_ISH);
    mmio.write32(regs::CR2, regs::CR2_RECINVSID_PTM);

    // The DMA table and the one context descriptor.
    let table = DmaTable::new(ram)?;
    let cd = allocate(CD_BYTES, CD_BYTES)?;
    put(
        cd,
        &cd_stage1(table.root(), table::VA_BITS, features.ips(), table::ASID),
    );
    // The stream table: the same STE for every stream.
    let strtab = StreamTable::choose(&features, node.stream_bits());
    let ste_bytes = strtab.ste_count() * STE_BYTES;
    let stes = allocate(ste_bytes, ste_bytes)?;
    for i in 0..strtab.ste_count() {
        put(stes + i * STE_BYTES, &ste_stage1(cd as u64));
    }
    let strtab_base = match strtab {
        StreamTable::Linear { .. } => stes,
        StreamTable::TwoLevel { split, .. } => {
            let l1_bytes = (strtab.l1_count() * 8).max(64);
            let l1 = allocate(l1_bytes, l1_bytes)?;
            let descs: Vec<u64> = (0..strtab.l1_count())
                .map(|_| l1_descriptor(stes as u64, split))
                .collect();
            put(l1, &descs);
            if !coherent {
                clean_dcache_to_poc(l1, l1 + l1_bytes);
            }
            l1
        }
    };
    // The queues.
    let cmdq_log2 = CMDQ_LOG2.min(features.cmdq_log2);
    let evtq_log2 = EVTQ_LOG2.min(features.evtq_log2);
    let cmdq = allocate(PAGE.max(CMD_BYTES << cmdq_log2), PAGE)?;
    let evtq = allocate(PAGE.max(EVENT_BYTES << evtq_log2), PAGE)?;
    let mut control = Control {
        mmio,
        coherent,
        cmdq,
        cmdq_log2,
        prod: QueueIndex::new(cmdq_log2),
    };
    control.publish_range(cd, CD_BYTES);
    control.publish_range(stes, ste_bytes);
    control.publish_range(evtq, EVENT_BYTES << evtq_log2);
    let tables = table.tables().to_vec();
    control.publish(&tables);

    mmio.write64(regs::STRTAB_BASE, regs::strtab_base(strtab_base as u64));
    mmio.write32(regs::STRTAB_BASE_CFG, strtab.base_cfg());
    mmio.write64(regs::CMDQ_BASE, regs::queue_base(cmdq as u64, cmdq_log2));
    mmio.write32(regs::CMDQ_PROD, 0);
    mmio.write32(regs::CMDQ_CONS, 0);
    mmio.write64(regs::EVENTQ_BASE, regs::queue_base(evtq as u64, evtq_log2));
    mmio.write32(regs::EVENTQ_PROD, 0);
    mmio.write32(regs::EVENTQ_CONS, 0);

    // Commands first, to drop whatever the SMMU cached before warden (firmware's use).
    mmio.set_cr0(regs::CR0_CMDQEN)?;
    let mut cmds = alloc::vec![Command::CfgiAll];
    if features.hyp {
        cmds.push(Command::TlbiEl2All);
    }
    cmds.extend([Command::TlbiNsnhAll, Command::Sync]);
    control.run(&cmds)?;
    mmio.set_cr0(regs::CR0_CMDQEN | regs::CR0_EVENTQEN)?;
    mmio.set_cr0(regs::CR0_CMDQEN | regs::CR0_EVENTQEN | regs::CR0_SMMUEN)?;

    let summary = Summary {
        features,
        idr0,
        coherent,
        strtab,
        table_pages: tables.len(),
    };
    let events = Events {
        mmio,
        coherent,
        evtq,
        log2: evtq_log2,
        cons: QueueIndex::new(evtq_log2),
        overflow_ack: false,
    };
    Ok((Smmu { control, table }, events, summary))
}
