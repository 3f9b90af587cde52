//! The SMMUv3 register map (Arm IHI 0070 §6.3): offsets from the base of the Non-secure
//! register frame, the ID registers decoded into what warden needs, the control values it
//! writes, and the producer/consumer index arithmetic of the queues (§3.5).

use super::SmmuError;

// Page 0 (IHI 0070 §6.3, Table 6-1).
pub const IDR0: usize = 0x00;
pub const IDR1: usize = 0x04;
pub const IDR5: usize = 0x14;
pub const CR0: usize = 0x20;
pub const CR0ACK: usize = 0x24;
pub const CR1: usize = 0x28;
pub const CR2: usize = 0x2c;
pub const GBPA: usize = 0x44;
pub const IRQ_CTRL: usize = 0x50;
pub const IRQ_CTRLACK: usize = 0x54;
pub const GERROR: usize = 0x60;
pub const GERRORN: usize = 0x64;
pub const STRTAB_BASE: usize = 0x80;
pub const STRTAB_BASE_CFG: usize = 0x88;
pub const CMDQ_BASE: usize = 0x90;
pub const CMDQ_PROD: usize = 0x98;
pub const CMDQ_CONS: usize = 0x9c;
pub const EVENTQ_BASE: usize = 0xa0;
// Page 1 (offset 0x10000): the event queue's indexes (§6.3.26, §6.3.27).
pub const EVENTQ_PROD: usize = 0x1_00a8;
pub const EVENTQ_CONS: usize = 0x1_00ac;
/// The register frame spans two 64 KiB pages.
pub const FRAME_SIZE: u64 = 0x2_0000;

/// SMMU_CR0 (§6.3.9).
pub const CR0_SMMUEN: u32 = 1 << 0;
pub const CR0_EVENTQEN: u32 = 1 << 2;
pub const CR0_CMDQEN: u32 = 1 << 3;

/// SMMU_CR1 (§6.3.11): queues and tables are read and written write-back cacheable,
/// inner shareable (cacheability 0b01 = WB, shareability 0b11 = ISH), as the CPU maps them.
pub const CR1_WB_ISH: u32 = 1 | 1 << 2 | 3 << 4 | 1 << 6 | 1 << 8 | 3 << 10;

/// SMMU_CR2 (§6.3.12): RECINVSID records transactions from stream IDs outside the stream
/// table (C_BAD_STREAMID); PTM keeps broadcast TLB maintenance from the CPUs (the host's)
/// away from the SMMU's TLBs, which only warden's commands maintain.
pub const CR2_RECINVSID_PTM: u32 = 1 << 1 | 1 << 2;

/// SMMU_GBPA (§6.3.14): Update (bit 31) and Abort (bit 20). With the SMMU disabled,
/// incoming transactions are aborted instead of bypassing it.
pub const GBPA_UPDATE: u32 = 1 << 31;
pub const GBPA_ABORT: u32 = 1 << 20;

/// SMMU_GERROR bits (§6.3.15): CMDQ_ERR, and EVENTQ_ABT_ERR (an event record could not
/// be written; QEMU 7.2 raises it when the event queue is full).
pub const GERROR_CMDQ_ERR: u32 = 1 << 0;
pub const GERROR_EVENTQ_ABT_ERR: u32 = 1 << 2;

/// SMMU_STRTAB_BASE.RA, SMMU_CMDQ_BASE.RA and SMMU_EVENTQ_BASE.WA (bit 62): allocate
/// hints for the SMMU's own accesses.
pub const BASE_ALLOCATE: u64 = 1 << 62;

/// What warden reads from SMMU_IDR0, IDR1 and IDR5 (§6.3.1, §6.3.2, §6.3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    pub stage1: bool,
    pub stage2: bool,
    /// Translation tables in the AArch64 format (TTF = 0b10 or 0b11).
    pub aarch64_tables: bool,
    /// Coherent access to tables and queues (COHACC).
    pub coherent: bool,
    /// Hypervisor stage-1 contexts (HYP): EL2 TLB entries exist and need invalidation.
    pub hyp: bool,
    /// Little-endian table walks (TTENDIAN 0b00 mixed or 0b10 little-endian).
    pub little_endian: bool,
    /// 2-level stream tables (ST_LEVEL = 0b01).
    pub two_level_strtab: bool,
    /// StreamID bits (SIDSIZE).
    pub sid_bits: u32,
    /// log2 of the largest queues (CMDQS, EVENTQS).
    pub cmdq_log2: u32,
    pub evtq_log2: u32,
    /// Output address size in bits (OAS).
    pub oas_bits: u32,
    /// The 4 KiB translation granule (GRAN4K).
    pub granule_4k: bool,
}

impl Features {
    pub fn decode(idr0: u32, idr1: u32, idr5: u32) -> Self {
        let bits = |v: u32, lo: u32, n: u32| (v >> lo) & ((1 << n) - 1);
        Self {
            stage1: idr0 & 1 << 1 != 0,
            stage2: idr0 & 1 != 0,
            aarch64_tables: bits(idr0, 2, 2) & 0b10 != 0,
            coherent: idr0 & 1 << 4 != 0,
            hyp: idr0 & 1 << 9 != 0,
            little_endian: matches!(bits(idr0, 21, 2), 0b00 | 0b10),
            two_level_strtab: bits(idr0, 27, 2) == 0b01,
            sid_bits: bits(idr1, 0, 6),
            evtq_log2: bits(idr1, 16, 5),
            cmdq_log2: bits(idr1, 21, 5),
            oas_bits: crate::arch::address_size_bits(bits(idr5, 0, 3) as u64),
            granule_4k: idr5 & 1 << 4 != 0,
        }
    }

    /// Whether warden can drive this SMMU: stage 1 with AArch64 little-endian tables, the
    /// 4 KiB granule, and an output size that covers `top` (the end of host RAM).
    pub fn check(&self, top: u64) -> Result<(), SmmuError> {
        if !self.stage1 {
            // A stage-2-only SMMU would need a stage-2 table and STE.S2* fields: not done.
            return Err(SmmuError::Unsupported("stage-1 translation (IDR0.S1P)"));
        }
        if !self.aarch64_tables {
            return Err(SmmuError::Unsupported("AArch64 tables (IDR0.TTF)"));
        }
        if !self.little_endian {
            return Err(SmmuError::Unsupported(
                "little-endian walks (IDR0.TTENDIAN)",
            ));
        }
        if !self.granule_4k {
            return Err(SmmuError::Unsupported("the 4 KiB granule (IDR5.GRAN4K)"));
        }
        if self.oas_bits < 64 && top > 1u64 << self.oas_bits {
            return Err(SmmuError::Unsupported(
                "an output size covering RAM (IDR5.OAS)",
            ));
        }
        Ok(())
    }

    /// CD.IPS for this SMMU's output size, at most 48 bits (the VA size warden uses is 39).
    pub fn ips(&self) -> u64 {
        match self.oas_bits {
            32 => 0,
            36 => 1,
            40 => 2,
            42 => 3,
            44 => 4,
            _ => 5,
        }
    }
}

/// How the stream table is laid out (§3.3): linear, or two levels whose level-1
/// descriptors all point at one shared level-2 table (every stream gets the same STE).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamTable {
    /// 2^log2 STEs.
    Linear { log2: u32 },
    /// 2^log2 stream IDs, split at `split` bits: 2^(log2 - split) level-1 descriptors and
    /// one level-2 table of 2^split STEs.
    TwoLevel { log2: u32, split: u32 },
}

/// Up to 2^7 streams (an 8 KiB table) the stream table is linear. Above, it has two levels
/// when the SMMU supports them, split at 8 bits (16 KiB level-2 tables, one of the
/// SPLIT values §6.3.24 allows, as Linux's driver uses).
const LINEAR_MAX_LOG2: u32 = 7;
const SPLIT: u32 = 8;

impl StreamTable {
    /// The table for `wanted_bits` of stream ID (what the DT routes to this SMMU), capped
    /// at the SMMU's SIDSIZE.
    pub fn choose(features: &Features, wanted_bits: u32) -> Self {
        let log2 = wanted_bits.min(features.sid_bits);
        if log2 > LINEAR_MAX_LOG2 && features.two_level_strtab {
            StreamTable::TwoLevel { log2, split: SPLIT }
        } else {
            StreamTable::Linear { log2 }
        }
    }

    /// SMMU_STRTAB_BASE_CFG (§6.3.24): FMT [17:16], SPLIT [10:6], LOG2SIZE [5:0].
    pub fn base_cfg(&self) -> u32 {
        match *self {
            StreamTable::Linear { log2 } => log2,
            StreamTable::TwoLevel { log2, split } => 1 << 16 | split << 6 | log2,
        }
    }

    /// How many STEs warden writes (the linear table, or the shared level-2 table).
    pub fn ste_count(&self) -> usize {
        match *self {
            StreamTable::Linear { log2 } => 1 << log2,
            StreamTable::TwoLevel { split, .. } => 1 << split,
        }
    }

    /// How many level-1 descriptors (none for a linear table).
    pub fn l1_count(&self) -> usize {
        match *self {
            StreamTable::Linear { .. } => 0,
            StreamTable::TwoLevel { log2, split } => 1 << (log2 - split),
        }
    }
}

/// SMMU_CMDQ_BASE / SMMU_EVENTQ_BASE (§6.3.25, §6.3.26): the allocate hint, ADDR [51:5]
/// and LOG2SIZE [4:0]. `pa` must be aligned to the queue's size (at least 32 bytes).
pub fn queue_base(pa: u64, log2: u32) -> u64 {
    BASE_ALLOCATE | (pa & 0x000f_ffff_ffff_ffe0) | log2 as u64
}

/// SMMU_STRTAB_BASE (§6.3.23): RA and ADDR [51:6].
pub fn strtab_base(pa: u64) -> u64 {
    BASE_ALLOCATE | (pa & 0x000f_ffff_ffff_ffc0)
}

/// A queue's producer or consumer index (§3.5): the entry index in the low `log2` bits and
/// a wrap bit above it, which tells a full queue (same index, different wrap) from an
/// empty one (same index and wrap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueIndex {
    log2: u32,
    value: u32,
}

impl QueueIndex {
    pub const fn new(log2: u32) -> Self {
        Self { log2, value: 0 }
    }
    /// From a PROD or CONS register: the index and wrap bit, other bits (ERR, OVFLG) dropped.
    pub fn from_reg(log2: u32, reg: u32) -> Self {
        Self {
            log2,
            value: reg & ((2u32 << log2) - 1),
        }
    }
    pub fn value(&self) -> u32 {
        self.value
    }
    /// The entry this index points at.
    pub fn entry(&self) -> usize {
        (self.value & ((1 << self.log2) - 1)) as usize
    }
    fn wrap(&self) -> bool {
        self.value >> self.log2 & 1 != 0
    }
    pub fn next(self) -> Self {
        Self {
            log2: self.log2,
            value: (self.value + 1) & ((2u32 << self.log2) - 1),
        }
    }
    pub fn is_empty(prod: Self, cons: Self) -> bool {
        prod.value == cons.value
    }
    pub fn is_full(prod: Self, cons: Self) -> bool {
        prod.entry() == cons.entry() && prod.wrap() != cons.wrap()
    }
}

impl core::fmt::Display for StreamTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            StreamTable::Linear { log2 } => write!(f, "linear stream table of {} STEs", 1 << log2),
            StreamTable::TwoLevel { log2, split } => write!(
                f,
                "2-level stream table for {log2}-bit stream IDs ({} level-1 descriptors sharing one level-2 table of {} STEs)",
                1 << (log2 - split),
                1 << split
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What QEMU 7.2's model reports (hw/arm/smmuv3.c, smmuv3_init_regs): stage 1 only,
    /// AArch64 tables, coherent, 16-bit ASIDs, little-endian, no stall, terminate model,
    /// 2-level stream tables; 16 SID bits, 2^19-entry queues; 44-bit OAS, 4K and 64K.
    const QEMU_IDR0: u32 = 0x0d40_101a;
    const QEMU_IDR1: u32 = 0x0273_0010;
    const QEMU_IDR5: u32 = 0x54;

    #[test]
    fn decodes_qemu_ids() {
        let f = Features::decode(QEMU_IDR0, QEMU_IDR1, QEMU_IDR5);
        assert_eq!(
            f,
            Features {
                stage1: true,
                stage2: false,
                aarch64_tables: true,
                coherent: true,
                hyp: false,
                little_endian: true,
                two_level_strtab: true,
                sid_bits: 16,
                cmdq_log2: 19,
                evtq_log2: 19,
                oas_bits: 44,
                granule_4k: true,
            }
        );
        assert_eq!(f.check(0x8000_0000), Ok(()));
        assert_eq!(f.ips(), 4);
        assert!(f.check(1 << 45).is_err());
        let s2_only = Features::decode(QEMU_IDR0 & !2 | 1, QEMU_IDR1, QEMU_IDR5);
        assert!(s2_only.stage2 && s2_only.check(0x8000_0000).is_err());
        let big_endian = Features::decode(QEMU_IDR0 | 3 << 21, QEMU_IDR1, QEMU_IDR5);
        assert!(big_endian.check(0x8000_0000).is_err());
    }

    #[test]
    fn stream_table_layouts() {
        let f = Features::decode(QEMU_IDR0, QEMU_IDR1, QEMU_IDR5);
        // QEMU's iommu-map routes 0x10000 requester IDs: 16 bits, 2 levels, one shared
        // level-2 table of 256 STEs behind 256 level-1 descriptors.
        let t = StreamTable::choose(&f, 16);
        assert_eq!(t, StreamTable::TwoLevel { log2: 16, split: 8 });
        assert_eq!(t.base_cfg(), 0x1_0210);
        assert_eq!((t.ste_count(), t.l1_count()), (256, 256));
        assert_eq!(
            std::format!("{t}"),
            "2-level stream table for 16-bit stream IDs (256 level-1 descriptors sharing one level-2 table of 256 STEs)"
        );
        // Capped at SIDSIZE.
        assert_eq!(
            StreamTable::choose(&f, 20),
            StreamTable::TwoLevel { log2: 16, split: 8 }
        );
        // Few streams: linear.
        let t = StreamTable::choose(&f, 5);
        assert_eq!(
            (t, t.base_cfg(), t.ste_count()),
            (StreamTable::Linear { log2: 5 }, 5, 32)
        );
        // No 2-level support: linear, however large.
        let linear_only = Features::decode(QEMU_IDR0 & !(3 << 27), QEMU_IDR1, QEMU_IDR5);
        assert_eq!(
            StreamTable::choose(&linear_only, 10),
            StreamTable::Linear { log2: 10 }
        );
        assert_eq!(StreamTable::choose(&f, 7), StreamTable::Linear { log2: 7 });
        assert_eq!(
            StreamTable::choose(&f, 8),
            StreamTable::TwoLevel { log2: 8, split: 8 }
        );
    }

    #[test]
    fn base_registers() {
        assert_eq!(queue_base(0x6010_3000, 8), 1 << 62 | 0x6010_3008);
        assert_eq!(strtab_base(0x6010_4000), 1 << 62 | 0x6010_4000);
        // Low bits below the alignment are not part of ADDR.
        assert_eq!(strtab_base(0x6010_4010), 1 << 62 | 0x6010_4000);
    }

    #[test]
    fn queue_indexes_wrap() {
        let mut prod = QueueIndex::new(2);
        let cons = QueueIndex::new(2);
        assert!(QueueIndex::is_empty(prod, cons));
        for _ in 0..4 {
            assert!(!QueueIndex::is_full(prod, cons));
            prod = prod.next();
        }
        // Four entries in a four-entry queue: same index, other wrap.
        assert_eq!((prod.entry(), prod.value()), (0, 0b100));
        assert!(QueueIndex::is_full(prod, cons));
        assert!(!QueueIndex::is_empty(prod, cons));
        let cons = QueueIndex::from_reg(2, 0b100 | 1 << 31 | 0x7f << 24);
        assert!(QueueIndex::is_empty(prod, cons));
        // After the wrap bit, the value returns to 0.
        let mut p = prod;
        for _ in 0..4 {
            p = p.next();
        }
        assert_eq!(p.value(), 0);
    }
}
