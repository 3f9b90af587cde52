//! The SMMU's in-memory structures, as pure encodings (Arm IHI 0070): stream table entries
//! and level-1 stream table descriptors (§5.2, §5.1), the context descriptor (§5.4),
//! the commands warden issues (§4) and the event records it reads (§7.3).

/// An STE is 64 bytes; a CD is 64 bytes; a command 16 bytes; an event record 32 bytes.
pub const STE_BYTES: usize = 64;
pub const CD_BYTES: usize = 64;
pub const CMD_BYTES: usize = 16;
pub const EVENT_BYTES: usize = 32;

const ADDR_51_6: u64 = 0x000f_ffff_ffff_ffc0;
const ADDR_51_4: u64 = 0x000f_ffff_ffff_fff0;

/// An STE (§5.2) that translates the stream through stage 1 with the single context
/// descriptor at `cd_pa` (64-byte aligned), stage 2 bypassed:
/// - word 0: V, Config = 0b101 (S1 translate, S2 bypass), S1Fmt = 0 and S1CDMax = 0 (one
///   CD, no substreams), S1ContextPtr;
/// - word 1: the CD is fetched write-back read-allocate, inner shareable (S1CIR, S1COR,
///   S1CSH); STRW = NS-EL1 (TLB entries tagged by ASID); EATS = 0, so PCIe ATS requests
///   and pre-translated transactions are refused; S1STALLD = 0 (QEMU rejects it set).
pub fn ste_stage1(cd_pa: u64) -> [u64; 8] {
    let word0 = 1 | 0b101 << 1 | (cd_pa & ADDR_51_6);
    let word1 = 1 << 2 | 1 << 4 | 3 << 6;
    [word0, word1, 0, 0, 0, 0, 0, 0]
}

/// A level-1 stream table descriptor (§5.1): L2Ptr [51:6] and Span [4:0], where the
/// level-2 table holds 2^(Span - 1) STEs.
pub fn l1_descriptor(l2_pa: u64, split: u32) -> u64 {
    (l2_pa & ADDR_51_6) | (split as u64 + 1)
}

/// The context descriptor every stream uses (§5.4):
/// - T0SZ = 64 - `va_bits`, TG0 = 4 KiB, walks write-back read/write-allocate, inner
///   shareable (IR0, OR0, SH0); TTB1 walks disabled (EPD1);
/// - IPS from the SMMU's output size; AA64 tables;
/// - R: faults are recorded in the event queue; A: a faulting transaction is terminated
///   with an abort (the device sees an error) rather than completing as RAZ/WI;
/// - ASET: the ASID is not shared with the CPUs' broadcast TLB maintenance;
/// - MAIR: attribute 0 = Normal write-back, read/write-allocate (0xff), which the DMA
///   table's leaves use.
pub fn cd_stage1(ttb0: u64, va_bits: u32, ips: u64, asid: u16) -> [u64; 8] {
    let t0sz = (64 - va_bits as u64) & 0x3f;
    let word0 = t0sz
        | 1 << 8
        | 1 << 10
        | 3 << 12
        | 1 << 30
        | 1 << 31
        | (ips & 7) << 32
        | 1 << 41
        | 1 << 45
        | 1 << 46
        | 1 << 47
        | (asid as u64) << 48;
    [word0, ttb0 & ADDR_51_4, 0, 0xff, 0, 0, 0, 0]
}

/// The commands warden issues (§4.3-4.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// CMD_CFGI_ALL: CMD_CFGI_STE_RANGE over every stream ID (Range = 31), §4.3.3.
    CfgiAll,
    /// CMD_TLBI_NSNH_ALL: every Non-secure, non-hypervisor TLB entry, §4.4.7.
    TlbiNsnhAll,
    /// CMD_TLBI_EL2_ALL: every EL2 TLB entry (only when IDR0.HYP), §4.4.3.
    TlbiEl2All,
    /// CMD_TLBI_NH_ASID: every non-global stage-1 entry of one ASID (VMID 0), §4.4.2.
    TlbiNhAsid(u16),
    /// CMD_SYNC with no completion signal (CS = SIG_NONE): completion is seen as
    /// SMMU_CMDQ_CONS moving past it, after every earlier command has completed, §4.7.3.
    Sync,
}

impl Command {
    pub fn encode(self) -> [u64; 2] {
        match self {
            Command::CfgiAll => [0x04, 31],
            Command::TlbiNsnhAll => [0x30, 0],
            Command::TlbiEl2All => [0x20, 0],
            Command::TlbiNhAsid(asid) => [0x11 | (asid as u64) << 48, 0],
            Command::Sync => [0x46, 0],
        }
    }
}

/// An event record (§7.3), decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The event type (§7.3, Table 7-2).
    pub kind: u8,
    pub stream: u32,
    pub substream: Option<u32>,
    /// The input address of the transaction, for the events that report one.
    pub addr: Option<u64>,
    /// RnW: a read (true) or a write, for the same events.
    pub read: bool,
}

impl Event {
    pub fn decode(words: [u64; 4]) -> Self {
        let [w0, w1, w2, _] = words;
        let kind = w0 as u8;
        let has_addr = matches!(kind, 0x01 | 0x07 | 0x0b | 0x10..=0x13);
        Self {
            kind,
            stream: (w0 >> 32) as u32,
            substream: (w0 & 1 << 11 != 0).then_some((w0 >> 12) as u32 & 0xf_ffff),
            addr: has_addr.then_some(w2),
            read: w1 & 1 << 35 != 0,
        }
    }

    /// The event type's name in IHI 0070 Table 7-2.
    pub fn name(&self) -> &'static str {
        match self.kind {
            0x01 => "F_UUT",
            0x02 => "C_BAD_STREAMID",
            0x03 => "F_STE_FETCH",
            0x04 => "C_BAD_STE",
            0x05 => "F_BAD_ATS_TREQ",
            0x06 => "F_STREAM_DISABLED",
            0x07 => "F_TRANSL_FORBIDDEN",
            0x08 => "C_BAD_SUBSTREAMID",
            0x09 => "F_CD_FETCH",
            0x0a => "C_BAD_CD",
            0x0b => "F_WALK_EABT",
            0x10 => "F_TRANSLATION",
            0x11 => "F_ADDR_SIZE",
            0x12 => "F_ACCESS",
            0x13 => "F_PERMISSION",
            0x20 => "F_TLB_CONFLICT",
            0x21 => "F_CFG_CONFLICT",
            0x24 => "E_PAGE_REQUEST",
            0x25 => "F_VMS_FETCH",
            _ => "unknown event",
        }
    }
}

impl Event {
    /// Whether `other` continues the same blocked transfer: same stream, type and
    /// direction, in the same 4 KiB page. (QEMU records one event per 4-byte access of a
    /// blocked DMA; warden logs a burst as one line.)
    pub fn same_burst(&self, other: &Event) -> bool {
        self.stream == other.stream
            && self.substream == other.substream
            && self.kind == other.kind
            && self.read == other.read
            && match (self.addr, other.addr) {
                (Some(a), Some(b)) => a >> 12 == b >> 12,
                (None, None) => true,
                _ => false,
            }
    }
}

impl core::fmt::Display for Event {
    /// `stream 0x8 address 0x60001000 (F_TRANSLATION, write)`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "stream {:#x}", self.stream)?;
        if let Some(ssid) = self.substream {
            write!(f, " substream {ssid:#x}")?;
        }
        match self.addr {
            Some(addr) => write!(
                f,
                " address {addr:#x} ({}, {})",
                self.name(),
                if self.read { "read" } else { "write" }
            ),
            None => write!(f, " ({})", self.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn stream_table_entry() {
        let ste = ste_stage1(0x6012_3440);
        // V, Config 0b101, the CD pointer; fetch attributes WBRA/WBRA/ISH; nothing else.
        assert_eq!(ste[0], 0x6012_3440 | 0b1011);
        assert_eq!(ste[1], 0xd4);
        assert_eq!(&ste[2..], &[0; 6]);
        assert_eq!(l1_descriptor(0x6020_0000, 8), 0x6020_0009);
    }

    #[test]
    fn context_descriptor() {
        let cd = cd_stage1(0x6030_0000, 39, 4, 1);
        let w0 = cd[0];
        assert_eq!(w0 & 0x3f, 25, "T0SZ");
        assert_eq!(w0 >> 6 & 3, 0, "TG0 = 4 KiB");
        assert_eq!(w0 >> 8 & 0x3f, 0b11_01_01, "IR0, OR0 WBRA, SH0 ISH");
        assert_eq!(w0 >> 14 & 1, 0, "EPD0 clear");
        assert_eq!(w0 >> 30 & 3, 0b11, "EPD1 and V");
        assert_eq!(w0 >> 32 & 7, 4, "IPS 44 bits");
        assert_eq!(w0 >> 41 & 1, 1, "AA64");
        assert_eq!(w0 >> 42 & 7, 0, "no HD/HA, no stall (S)");
        assert_eq!(w0 >> 45 & 7, 0b111, "R, A, ASET");
        assert_eq!(w0 >> 48, 1, "ASID");
        assert_eq!(cd[1], 0x6030_0000);
        assert_eq!(cd[3], 0xff);
    }

    #[test]
    fn commands() {
        assert_eq!(Command::CfgiAll.encode(), [0x04, 31]);
        assert_eq!(Command::TlbiNsnhAll.encode(), [0x30, 0]);
        assert_eq!(Command::TlbiEl2All.encode(), [0x20, 0]);
        assert_eq!(Command::TlbiNhAsid(1).encode(), [0x0001_0000_0000_0011, 0]);
        assert_eq!(Command::Sync.encode(), [0x46, 0]);
    }

    #[test]
    fn events() {
        // F_TRANSLATION from stream 8, a write of 0x60001000 (as QEMU records it).
        let e = Event::decode([0x8_0000_0010, 0, 0x6000_1000, 0]);
        assert_eq!(
            e,
            Event {
                kind: 0x10,
                stream: 8,
                substream: None,
                addr: Some(0x6000_1000),
                read: false
            }
        );
        assert_eq!(
            format!("{e}"),
            "stream 0x8 address 0x60001000 (F_TRANSLATION, write)"
        );
        let read = Event::decode([0x8_0000_0013, 1 << 35, 0x5000_0000, 0]);
        assert_eq!(
            format!("{read}"),
            "stream 0x8 address 0x50000000 (F_PERMISSION, read)"
        );
        let bad = Event::decode([0x1_0000_0000_0002, 0, 0, 0]);
        assert_eq!(format!("{bad}"), "stream 0x10000 (C_BAD_STREAMID)");
        let ss = Event::decode([0x3_0000_0000 | 5 << 12 | 1 << 11 | 0x10, 0, 0x1000, 0]);
        assert_eq!(ss.substream, Some(5));
        assert_eq!(Event::decode([0xee, 0, 0, 0]).name(), "unknown event");
        // Bursts: the same page, stream, type and direction.
        let next = Event::decode([0x8_0000_0010, 0, 0x6000_1ffc, 0]);
        assert!(e.same_burst(&next));
        assert!(!e.same_burst(&Event::decode([0x8_0000_0010, 0, 0x6000_2000, 0])));
        assert!(!e.same_burst(&Event::decode([0x9_0000_0010, 0, 0x6000_1000, 0])));
        assert!(!e.same_burst(&Event::decode([0x8_0000_0010, 1 << 35, 0x6000_1000, 0])));
        assert!(!e.same_burst(&bad));
        assert!(bad.same_burst(&bad));
    }
}
