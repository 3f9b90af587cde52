//! Memory transaction descriptors (DEN0077A v1.2 §10, "FF-A Memory Management Protocol"
//! DEN0140 for v1.2), parsed from the host's bytes into `MemTransaction` and re-emitted
//! in the SPMC's layout. Three layouts exist:
//! - v1.0: a 32-byte header, endpoint memory access descriptors (EMADs) from offset 32;
//! - v1.1: a 48-byte header that names the EMAD size and offset, 16-byte EMADs;
//! - v1.2: as v1.1, with 32-byte EMADs (16 bytes of implementation-defined data).
//!
//! Nothing from the host is forwarded raw: every field is read once, checked, and written
//! again from the checked value. Host data is hostile: every offset, count and length is
//! bounds-checked with checked arithmetic, and parsing never panics.

use alloc::vec::Vec;

use super::abi::FfaError;
use super::version::FfaVersion;
use crate::platform::memmap::Range;

pub const PAGE: u64 = 4096;
pub(crate) const HEADER_V1_0: usize = 32;
const HEADER_V1_1: usize = 48;
const EMAD_V1_0: usize = 16;
const EMAD_V1_2: usize = 32;
pub(crate) const COMPOSITE: usize = 16;
pub(crate) const CONSTITUENT: usize = 16;

/// The most receivers warden accepts in one transaction.
pub const MAX_RECEIVERS: usize = 8;
/// The largest descriptor warden accepts (about 16k constituents): it bounds what warden
/// buffers for a transaction sent in fragments.
pub const MAX_TOTAL_LEN: usize = 256 * 1024 + 4096;

/// Which call carries the transaction: they differ in what the sender may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemOp {
    Share,
    Lend,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receiver {
    pub id: u16,
    /// Access permissions (bits [1:0] data, [3:2] instruction).
    pub permissions: u8,
    /// v1.2 implementation-defined bytes (zero from older senders).
    pub impdef: [u8; 16],
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Constituent {
    pub address: u64,
    pub pages: u32,
}

impl Constituent {
    pub fn range(&self) -> Option<Range> {
        Range::from_base_size(self.address, (self.pages as u64).checked_mul(PAGE)?)
    }
}

/// A memory transaction as warden understands it, whatever layout it came in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemTransaction {
    pub sender: u16,
    pub attributes: u16,
    pub flags: u32,
    pub tag: u64,
    pub receivers: Vec<Receiver>,
    pub total_pages: u32,
    pub constituents: Vec<Constituent>,
}

/// Bounds-checked little-endian reads from host bytes.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn get<const N: usize>(&self, off: usize) -> Result<[u8; N], FfaError> {
        let end = off.checked_add(N).ok_or(FfaError::InvalidParameters)?;
        let s = self.0.get(off..end).ok_or(FfaError::InvalidParameters)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&self, off: usize) -> Result<u8, FfaError> {
        Ok(self.get::<1>(off)?[0])
    }
    fn u16(&self, off: usize) -> Result<u16, FfaError> {
        Ok(u16::from_le_bytes(self.get(off)?))
    }
    fn u32(&self, off: usize) -> Result<u32, FfaError> {
        Ok(u32::from_le_bytes(self.get(off)?))
    }
    fn u64(&self, off: usize) -> Result<u64, FfaError> {
        Ok(u64::from_le_bytes(self.get(off)?))
    }
    fn zero(&self, off: usize, len: usize) -> Result<(), FfaError> {
        let end = off.checked_add(len).ok_or(FfaError::InvalidParameters)?;
        let s = self.0.get(off..end).ok_or(FfaError::InvalidParameters)?;
        if s.iter().all(|&b| b == 0) {
            Ok(())
        } else {
            Err(FfaError::InvalidParameters)
        }
    }
}

fn bad() -> FfaError {
    FfaError::InvalidParameters
}

/// Parses a complete descriptor (all fragments joined) sent by a host at `version`.
/// Checks the structure and everything that does not depend on the system's state;
/// `validate_for_host` checks the rest.
pub fn parse(desc: &[u8], version: FfaVersion, op: MemOp) -> Result<MemTransaction, FfaError> {
    if desc.len() > MAX_TOTAL_LEN {
        return Err(FfaError::NoMemory);
    }
    let b = Bytes(desc);
    let v1_1 = version >= FfaVersion::V1_1;
    let sender = b.u16(0)?;
    let attributes = if v1_1 { b.u16(2)? } else { b.u8(2)? as u16 };
    if !v1_1 && b.u8(3)? != 0 {
        return Err(bad());
    }
    let flags = b.u32(4)?;
    // The handle is the SPMC's to allocate: MBZ from the sender.
    if b.u64(8)? != 0 {
        return Err(bad());
    }
    let tag = b.u64(16)?;
    let count = b.u32(28)? as usize;
    let (emad_size, emad_offset) = if v1_1 {
        let size = b.u32(24)? as usize;
        let offset = b.u32(32)? as usize;
        b.zero(36, 12)?;
        // v1.2 senders may use the 32-byte EMAD; v1.1 senders only the 16-byte one.
        let sizes_ok = size == EMAD_V1_0 || (size == EMAD_V1_2 && version >= FfaVersion::V1_2);
        if !sizes_ok || !offset.is_multiple_of(16) || offset < HEADER_V1_1 {
            return Err(bad());
        }
        (size, offset)
    } else {
        if b.u32(24)? != 0 {
            return Err(bad());
        }
        (EMAD_V1_0, HEADER_V1_0)
    };
    if count == 0 || count > MAX_RECEIVERS {
        return Err(bad());
    }
    let emads_end = count
        .checked_mul(emad_size)
        .and_then(|n| n.checked_add(emad_offset))
        .ok_or_else(bad)?;

    let mut receivers: Vec<Receiver> = Vec::with_capacity(count);
    let mut composite_offset = None;
    for i in 0..count {
        let at = emad_offset + i * emad_size;
        let id = b.u16(at)?;
        let permissions = b.u8(at + 2)?;
        // EMAD flags (bit 0: retrieve only) MBZ on send.
        if b.u8(at + 3)? != 0 {
            return Err(bad());
        }
        let offset = b.u32(at + 4)? as usize;
        let mut impdef = [0u8; 16];
        if emad_size == EMAD_V1_2 {
            impdef = b.get::<16>(at + 8)?;
            b.zero(at + 24, 8)?;
        } else {
            b.zero(at + 8, 8)?;
        }
        // Data access: RO (1) or RW (2); instruction access: unspecified (0) or NX (1),
        // never executable; the rest MBZ (DEN0077A v1.2 Table 10.15).
        let data = permissions & 0x3;
        let instr = (permissions >> 2) & 0x3;
        if !(data == 1 || data == 2) || instr > 1 || permissions & 0xf0 != 0 {
            return Err(bad());
        }
        if receivers.iter().any(|r| r.id == id) {
            return Err(bad());
        }
        // warden requires all receivers to share one composite descriptor.
        if *composite_offset.get_or_insert(offset) != offset {
            return Err(bad());
        }
        receivers.push(Receiver {
            id,
            permissions,
            impdef,
        });
    }
    let composite = composite_offset.ok_or_else(bad)?;
    if !composite.is_multiple_of(8) || composite < emads_end {
        return Err(bad());
    }
    let total_pages = b.u32(composite)?;
    let ranges = b.u32(composite + 4)? as usize;
    b.zero(composite + 8, 8)?;
    if ranges == 0 {
        return Err(bad());
    }
    // The descriptor ends exactly after the last constituent: no lying counts, no trailing
    // bytes the SPMC might read differently.
    let expected_len = ranges
        .checked_mul(CONSTITUENT)
        .and_then(|n| n.checked_add(composite + COMPOSITE))
        .ok_or_else(bad)?;
    if expected_len != desc.len() {
        return Err(bad());
    }
    let mut constituents = Vec::with_capacity(ranges);
    let mut sum: u32 = 0;
    for i in 0..ranges {
        let at = composite + COMPOSITE + i * CONSTITUENT;
        let address = b.u64(at)?;
        let pages = b.u32(at + 8)?;
        b.zero(at + 12, 4)?;
        if pages == 0 || !address.is_multiple_of(PAGE) {
            return Err(bad());
        }
        sum = sum.checked_add(pages).ok_or_else(bad)?;
        let c = Constituent { address, pages };
        c.range().ok_or_else(bad)?;
        constituents.push(c);
    }
    if sum != total_pages {
        return Err(bad());
    }
    check_attributes_and_flags(attributes, flags, op)?;
    Ok(MemTransaction {
        sender,
        attributes,
        flags,
        tag,
        receivers,
        total_pages,
        constituents,
    })
}

/// Memory region attributes and transaction flags a sender may use (DEN0077A v1.2
/// §10.10 and Table 10.21): no NS bit (bit 6) from the normal world, no device memory,
/// no retrieve-only flags.
fn check_attributes_and_flags(attributes: u16, flags: u32, op: MemOp) -> Result<(), FfaError> {
    let mem_type = (attributes >> 4) & 0x3;
    // For normal memory, cacheability [3:2] is non-cacheable (0b01) or write-back (0b11)
    // and shareability [1:0] is non- (0b00), outer (0b10) or inner (0b11) shareable; the
    // other encodings are reserved (§10.10), so a descriptor that uses one is malformed.
    let cacheability = (attributes >> 2) & 0x3;
    let shareability = attributes & 0x3;
    let normal_ok = mem_type == 2 && matches!(cacheability, 0b01 | 0b11) && shareability != 0b01;
    let attributes_ok = attributes & !0x3f == 0
        && match op {
            // Shared memory must say what it is, and it must be normal memory.
            MemOp::Share => normal_ok,
            // A lender may leave it to the borrower (0), or say normal memory.
            MemOp::Lend => normal_ok || attributes == 0,
        };
    // Bit 0: zero memory (lend only); bit 1: time slicing; the rest (transaction type and
    // alignment hint belong to retrieve requests) MBZ.
    let allowed = match op {
        MemOp::Share => 0b10,
        MemOp::Lend => 0b11,
    };
    if !attributes_ok || flags & !allowed != 0 {
        return Err(bad());
    }
    Ok(())
}

impl MemTransaction {
    /// Checks what depends on the system: the sender is the host, every receiver is a
    /// secure partition, every constituent is host RAM, and no two constituents overlap.
    /// Returns the page ranges, sorted.
    pub fn validate_for_host(
        &self,
        host_id: u16,
        is_partition: impl Fn(u16) -> bool,
        is_host_ram: impl Fn(Range) -> bool,
    ) -> Result<Vec<Range>, FfaError> {
        // The Relayer checks that the Sender ID names the caller, the owner of the memory,
        // and answers DENIED otherwise (DEN0077A v1.2 §10.5 and §10.6, the error
        // tables of FFA_MEM_LEND and FFA_MEM_SHARE; the FF-A ACS checks the same).
        if self.sender != host_id {
            return Err(FfaError::Denied);
        }
        if !self.receivers.iter().all(|r| is_partition(r.id)) {
            return Err(bad());
        }
        let mut ranges: Vec<Range> = self
            .constituents
            .iter()
            .map(|c| c.range().ok_or_else(bad))
            .collect::<Result<_, _>>()?;
        if !ranges.iter().all(|r| is_host_ram(*r)) {
            return Err(FfaError::Denied);
        }
        ranges.sort();
        if ranges
            .iter()
            .zip(ranges.iter().skip(1))
            .any(|(a, b)| a.end > b.start)
        {
            return Err(bad());
        }
        Ok(ranges)
    }

    /// Emits the descriptor in the layout of `version` (the SPMC's), field by field in
    /// order (appending, so there is no computed index to get wrong).
    pub fn emit(&self, version: FfaVersion) -> Vec<u8> {
        let v1_1 = version >= FfaVersion::V1_1;
        let emad_size = if version >= FfaVersion::V1_2 {
            EMAD_V1_2
        } else {
            EMAD_V1_0
        };
        let header = if v1_1 { HEADER_V1_1 } else { HEADER_V1_0 };
        let composite = header + emad_size * self.receivers.len();
        let mut d =
            Vec::with_capacity(composite + COMPOSITE + CONSTITUENT * self.constituents.len());
        d.extend_from_slice(&self.sender.to_le_bytes());
        if v1_1 {
            d.extend_from_slice(&self.attributes.to_le_bytes());
        } else {
            d.extend_from_slice(&[self.attributes as u8, 0]);
        }
        d.extend_from_slice(&self.flags.to_le_bytes());
        // The handle is the SPMC's to allocate.
        d.extend_from_slice(&0u64.to_le_bytes());
        d.extend_from_slice(&self.tag.to_le_bytes());
        let emad_size_field = if v1_1 { emad_size as u32 } else { 0 };
        d.extend_from_slice(&emad_size_field.to_le_bytes());
        d.extend_from_slice(&(self.receivers.len() as u32).to_le_bytes());
        if v1_1 {
            d.extend_from_slice(&(header as u32).to_le_bytes());
            d.extend_from_slice(&[0; 12]);
        }
        for r in &self.receivers {
            d.extend_from_slice(&r.id.to_le_bytes());
            d.extend_from_slice(&[r.permissions, 0]);
            d.extend_from_slice(&(composite as u32).to_le_bytes());
            if emad_size == EMAD_V1_2 {
                d.extend_from_slice(&r.impdef);
            }
            d.extend_from_slice(&0u64.to_le_bytes());
        }
        d.extend_from_slice(&self.total_pages.to_le_bytes());
        d.extend_from_slice(&(self.constituents.len() as u32).to_le_bytes());
        d.extend_from_slice(&0u64.to_le_bytes());
        for c in &self.constituents {
            d.extend_from_slice(&c.address.to_le_bytes());
            d.extend_from_slice(&c.pages.to_le_bytes());
            d.extend_from_slice(&0u32.to_le_bytes());
        }
        d
    }

    /// Where the first constituent starts in the emitted layout, so that fragments
    /// after the first can be cut at constituent boundaries.
    pub fn constituents_offset(&self, version: FfaVersion) -> usize {
        let emad_size = if version >= FfaVersion::V1_2 {
            EMAD_V1_2
        } else {
            EMAD_V1_0
        };
        let header = if version >= FfaVersion::V1_1 {
            HEADER_V1_1
        } else {
            HEADER_V1_0
        };
        header + emad_size * self.receivers.len() + COMPOSITE
    }
}

/// Cuts an emitted descriptor into fragments of at most `max` bytes that never split a
/// constituent (the first holds the header, EMADs and composite header).
pub fn fragments(desc_len: usize, constituents_offset: usize, max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let per = (max / CONSTITUENT) * CONSTITUENT;
    let first_end = if desc_len <= max {
        desc_len
    } else {
        constituents_offset + ((max - constituents_offset) / CONSTITUENT) * CONSTITUENT
    };
    out.push((0, first_end));
    let mut start = first_end;
    while start < desc_len {
        let end = (start + per).min(desc_len);
        out.push((start, end));
        start = end;
    }
    out
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A v1.1-layout share from the host (ID 0) to OP-TEE (0x8001), as Linux builds it.
    pub fn linux_share(constituents: &[(u64, u32)], version: FfaVersion) -> Vec<u8> {
        MemTransaction {
            sender: 0,
            attributes: 0x2f,
            flags: 0,
            tag: 0,
            receivers: alloc::vec![Receiver {
                id: 0x8001,
                permissions: 2,
                impdef: [0; 16]
            }],
            total_pages: constituents.iter().map(|c| c.1).sum(),
            constituents: constituents
                .iter()
                .map(|&(address, pages)| Constituent { address, pages })
                .collect(),
        }
        .emit(version)
    }

    const V: [FfaVersion; 3] = [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2];

    #[test]
    fn every_layout_round_trips_and_translates() {
        for from in V {
            let d = linux_share(&[(0x4000_0000, 1), (0x4010_0000, 3)], from);
            let t = parse(&d, from, MemOp::Share).unwrap();
            assert_eq!(t.total_pages, 4);
            assert_eq!(
                t.constituents[1],
                Constituent {
                    address: 0x4010_0000,
                    pages: 3
                }
            );
            for to in V {
                let again = parse(&t.emit(to), to, MemOp::Share).unwrap();
                assert_eq!(again, t, "{from} -> {to}");
            }
        }
        assert_eq!(
            linux_share(&[(0, 1)], FfaVersion::V1_0).len(),
            32 + 16 + 16 + 16
        );
        assert_eq!(
            linux_share(&[(0, 1)], FfaVersion::V1_1).len(),
            48 + 16 + 16 + 16
        );
        assert_eq!(
            linux_share(&[(0, 1)], FfaVersion::V1_2).len(),
            48 + 32 + 16 + 16
        );
    }

    fn patched(d: &[u8], at: usize, bytes: &[u8]) -> Vec<u8> {
        let mut d = d.to_vec();
        d[at..at + bytes.len()].copy_from_slice(bytes);
        d
    }

    #[test]
    fn hostile_descriptors_are_refused() {
        let v = FfaVersion::V1_1;
        let good = linux_share(&[(0x4000_0000, 2)], v);
        assert!(parse(&good, v, MemOp::Share).is_ok());
        let cases: Vec<(&str, Vec<u8>)> = alloc::vec![
            ("handle set", patched(&good, 8, &[1])),
            ("NS bit", patched(&good, 2, &[0x6f])),
            ("device memory", patched(&good, 2, &[0x1f])),
            ("reserved cacheability 0b00", patched(&good, 2, &[0x23])),
            ("reserved cacheability 0b10", patched(&good, 2, &[0x2b])),
            ("reserved shareability 0b01", patched(&good, 2, &[0x2d])),
            ("retrieve flags", patched(&good, 4, &[0x08])),
            ("zero flag on share", patched(&good, 4, &[0x01])),
            ("no receivers", patched(&good, 28, &[0, 0, 0, 0])),
            ("too many receivers", patched(&good, 28, &[200, 0, 0, 0])),
            ("EMAD size 24", patched(&good, 24, &[24])),
            ("EMAD size 32 from v1.1", patched(&good, 24, &[32])),
            ("EMAD offset unaligned", patched(&good, 32, &[49])),
            ("EMAD offset inside header", patched(&good, 32, &[16])),
            ("EMAD offset past the end", patched(&good, 32, &[0, 0x10])),
            ("header reserved", patched(&good, 40, &[1])),
            ("no data permission", patched(&good, 48 + 2, &[0])),
            ("executable", patched(&good, 48 + 2, &[0x0a])),
            ("EMAD flags", patched(&good, 48 + 3, &[1])),
            ("composite offset lies", patched(&good, 48 + 4, &[0, 1])),
            ("composite inside EMADs", patched(&good, 48 + 4, &[48])),
            ("page count lies", patched(&good, 64, &[3])),
            ("range count lies", patched(&good, 68, &[2])),
            (
                "range count huge",
                patched(&good, 68, &[0xff, 0xff, 0xff, 0xff])
            ),
            ("unaligned constituent", patched(&good, 80, &[0x10])),
            ("empty constituent", patched(&good, 88, &[0])),
            ("constituent reserved", patched(&good, 92, &[1])),
            (
                "wrapping constituent",
                patched(&good, 80, &[0, 0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])
            ),
            (
                "trailing bytes",
                [good.clone(), alloc::vec![0; 16]].concat()
            ),
            ("truncated", good[..good.len() - 4].to_vec()),
            ("empty", Vec::new()),
        ];
        for (what, d) in cases {
            assert!(parse(&d, v, MemOp::Share).is_err(), "{what}");
        }
        let too_big = alloc::vec![0u8; MAX_TOTAL_LEN + 1];
        assert_eq!(parse(&too_big, v, MemOp::Share), Err(FfaError::NoMemory));
        // Duplicate receivers.
        let mut t = parse(&good, v, MemOp::Share).unwrap();
        t.receivers.push(t.receivers[0]);
        assert!(parse(&t.emit(v), v, MemOp::Share).is_err());
        // A lend may leave attributes to the borrower and ask for zeroing.
        let lend = patched(&patched(&good, 2, &[0]), 4, &[1]);
        assert!(parse(&lend, v, MemOp::Lend).is_ok());
        assert!(parse(&lend, v, MemOp::Share).is_err());
    }

    #[test]
    fn host_checks() {
        let v = FfaVersion::V1_1;
        let sp = |id: u16| id == 0x8001;
        let ram = |r: Range| r.start >= 0x4000_0000 && r.end <= 0x6000_0000;
        let t = parse(
            &linux_share(&[(0x4010_0000, 1), (0x4000_0000, 2)], v),
            v,
            MemOp::Share,
        )
        .unwrap();
        let ranges = t.validate_for_host(0, sp, ram).unwrap();
        assert_eq!(
            ranges,
            [
                Range::new(0x4000_0000, 0x4000_2000),
                Range::new(0x4010_0000, 0x4010_1000)
            ]
        );
        assert_eq!(
            t.validate_for_host(5, sp, ram),
            Err(FfaError::Denied),
            "a sender that is not the caller: DENIED (§10.5, §10.6)"
        );
        let overlap = parse(
            &linux_share(&[(0x4000_0000, 2), (0x4000_1000, 1)], v),
            v,
            MemOp::Share,
        )
        .unwrap();
        assert_eq!(
            overlap.validate_for_host(0, sp, ram),
            Err(FfaError::InvalidParameters)
        );
        let warden = parse(&linux_share(&[(0x6000_0000, 1)], v), v, MemOp::Share).unwrap();
        assert_eq!(warden.validate_for_host(0, sp, ram), Err(FfaError::Denied));
        let mmio = parse(&linux_share(&[(0x0900_0000, 1)], v), v, MemOp::Share).unwrap();
        assert_eq!(mmio.validate_for_host(0, sp, ram), Err(FfaError::Denied));
        let mut to_host = t.clone();
        to_host.receivers[0].id = 0;
        assert_eq!(
            to_host.validate_for_host(0, sp, ram),
            Err(FfaError::InvalidParameters)
        );
    }

    #[test]
    fn fragments_never_split_constituents() {
        let v = FfaVersion::V1_2;
        let cs: Vec<(u64, u32)> = (0..600).map(|i| (0x4000_0000 + i * 0x2000, 1)).collect();
        let t = parse(&linux_share(&cs, v), v, MemOp::Share).unwrap();
        let d = t.emit(v);
        let off = t.constituents_offset(v);
        let frags = fragments(d.len(), off, 4096);
        assert_eq!(frags[0].0, 0);
        assert_eq!(frags.last().unwrap().1, d.len());
        for w in frags.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        for &(s, e) in &frags {
            assert!(e - s <= 4096 && e > s);
            assert_eq!((s.max(off) - off) % 16, 0);
        }
        assert_eq!(fragments(100, 80, 4096), [(0, 100)]);
    }
}
