//! Memory transaction descriptors (DEN0077A v1.2 §10, "FF-A Memory Management Protocol"
//! DEN0140 for v1.2), checked in warden's snapshot of the host's bytes (`DescriptorView`,
//! what the proxy uses: nothing allocated, nothing copied out) or parsed into
//! `MemTransaction` (tests, the test host, the SPMC model), and re-emitted in the SPMC's
//! layout. Three layouts exist:
//! - v1.0: a 32-byte header, endpoint memory access descriptors (EMADs) from offset 32;
//! - v1.1: a 48-byte header that names the EMAD size and offset, 16-byte EMADs;
//! - v1.2: as v1.1, with 32-byte EMADs (16 bytes of implementation-defined data).
//!
//! Nothing from the host is forwarded unchecked: the header, the EMADs and the composite are
//! written again from their checked values; the constituents, identical in every layout,
//! are copied as one block from the snapshot after every byte of each was checked. Host data
//! is hostile: every offset, count and length is bounds-checked with checked arithmetic,
//! and parsing never panics. Fields are read and written by whole words where the bytes lie
//! aligned (`as_words`): the target requires aligned accesses, and a field read byte by byte
//! costs several times more.

use alloc::vec::Vec;

use zerocopy::FromBytes;

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

/// `bytes` as little-endian words, when it starts 8-byte aligned: the whole words it
/// holds (empty otherwise). warden's target requires aligned accesses (strict alignment),
/// so a field read from bytes costs a load per byte; warden's snapshots and buffers come
/// from the heap, 8-byte aligned, and every field of a memory descriptor lies naturally
/// aligned in it (DEN0077A v1.2 §10: the EMADs 16-byte and the composite 8-byte aligned), so
/// reading words instead is exact and several times cheaper.
#[inline(always)]
fn as_words(bytes: &[u8]) -> &[u64] {
    let whole = bytes.len() / 8 * 8;
    bytes
        .get(..whole)
        .and_then(|b| <[u64]>::ref_from_bytes(b).ok())
        .unwrap_or(&[])
}

/// `bytes` as words for writing, when it starts 8-byte aligned (see `as_words`); empty
/// otherwise.
#[inline(always)]
fn as_words_mut(bytes: &mut [u8]) -> &mut [u64] {
    let whole = bytes.len() / 8 * 8;
    bytes
        .get_mut(..whole)
        .and_then(|b| <[u64]>::mut_from_bytes(b).ok())
        .unwrap_or(&mut [])
}

/// Whether an `n`-byte field at byte offset `off` lies inside one word.
#[inline(always)]
fn in_one_word(off: usize, n: usize) -> bool {
    off % 8 + n <= 8
}

/// The bits of an `n`-byte field at bit `shift` of a word.
#[inline(always)]
fn field_mask(n: usize, shift: usize) -> u64 {
    let ones = if n >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * n)) - 1
    };
    ones << shift
}

/// Bounds-checked little-endian reads from host bytes, by whole words where the bytes
/// allow (`as_words`).
struct Bytes<'a> {
    bytes: &'a [u8],
    words: &'a [u64],
}

impl<'a> Bytes<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            words: as_words(bytes),
        }
    }
    /// The `n`-byte (1, 2, 4 or 8) little-endian field at `off`.
    #[inline(always)]
    fn field(&self, off: usize, n: usize) -> Result<u64, FfaError> {
        if in_one_word(off, n)
            && let Some(&word) = self.words.get(off / 8)
        {
            let shift = off % 8 * 8;
            return Ok((u64::from_le(word) & field_mask(n, shift)) >> shift);
        }
        let end = off.checked_add(n).ok_or(FfaError::InvalidParameters)?;
        let s = self
            .bytes
            .get(off..end)
            .ok_or(FfaError::InvalidParameters)?;
        Ok(s.iter().rev().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
    }
    #[inline(always)]
    fn u8(&self, off: usize) -> Result<u8, FfaError> {
        Ok(self.field(off, 1)? as u8)
    }
    #[inline(always)]
    fn u16(&self, off: usize) -> Result<u16, FfaError> {
        Ok(self.field(off, 2)? as u16)
    }
    #[inline(always)]
    fn u32(&self, off: usize) -> Result<u32, FfaError> {
        Ok(self.field(off, 4)? as u32)
    }
    #[inline(always)]
    fn u64(&self, off: usize) -> Result<u64, FfaError> {
        self.field(off, 8)
    }
    /// INVALID_PARAMETERS unless the `len` bytes at `off` are zero (reserved, MBZ).
    #[inline(always)]
    fn zero(&self, off: usize, len: usize) -> Result<(), FfaError> {
        let end = off.checked_add(len).ok_or(FfaError::InvalidParameters)?;
        let mut at = off;
        while at < end {
            // The widest naturally aligned piece that fits.
            let left = end - at;
            let n = if at.is_multiple_of(8) && left >= 8 {
                8
            } else if at.is_multiple_of(4) && left >= 4 {
                4
            } else if at.is_multiple_of(2) && left >= 2 {
                2
            } else {
                1
            };
            if self.field(at, n)? != 0 {
                return Err(FfaError::InvalidParameters);
            }
            at += n;
        }
        Ok(())
    }
}

fn bad() -> FfaError {
    FfaError::InvalidParameters
}

/// A host's descriptor checked where it lies, in warden's snapshot of the host's bytes:
/// every check `parse` makes, with nothing copied out and nothing allocated. The EMADs and
/// the constituents stay in the snapshot; each of their fields has been checked, and they
/// are read again only from that snapshot, which the host cannot change.
#[derive(Debug)]
pub struct DescriptorView<'a> {
    pub sender: u16,
    pub attributes: u16,
    pub flags: u32,
    pub tag: u64,
    pub total_pages: u32,
    /// The EMADs, `emad_size` bytes each (16 or 32), every one checked.
    emads: &'a [u8],
    emad_size: usize,
    /// The constituents, `CONSTITUENT` bytes each, every one checked.
    constituents: &'a [u8],
}

/// Parses a complete descriptor (all fragments joined) sent by a host at `version`.
/// Checks the structure and everything that does not depend on the system's state;
/// `validate_for_host` checks the rest.
pub fn parse(desc: &[u8], version: FfaVersion, op: MemOp) -> Result<MemTransaction, FfaError> {
    let v = DescriptorView::parse(desc, version, op)?;
    Ok(MemTransaction {
        sender: v.sender,
        attributes: v.attributes,
        flags: v.flags,
        tag: v.tag,
        receivers: v.receivers().collect(),
        total_pages: v.total_pages,
        constituents: v.constituents().collect(),
    })
}

impl<'a> DescriptorView<'a> {
    /// Checks a complete descriptor sent by a host at `version`: its structure and
    /// everything that does not depend on the system's state (`host_ranges` checks the rest).
    pub fn parse(desc: &'a [u8], version: FfaVersion, op: MemOp) -> Result<Self, FfaError> {
        if desc.len() > MAX_TOTAL_LEN {
            return Err(FfaError::NoMemory);
        }
        let b = Bytes::new(desc);
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
        let emads = desc.get(emad_offset..emads_end).ok_or_else(bad)?;

        let mut ids = [0u16; MAX_RECEIVERS];
        let mut composite_offset = None;
        for (i, emad) in emads.chunks_exact(emad_size).enumerate() {
            let e = Bytes::new(emad);
            let id = e.u16(0)?;
            let permissions = e.u8(2)?;
            // EMAD flags (bit 0: retrieve only) MBZ on send.
            if e.u8(3)? != 0 {
                return Err(bad());
            }
            let offset = e.u32(4)? as usize;
            // The reserved bytes MBZ; v1.2's 16 implementation-defined bytes (8..24) are
            // the sender's.
            if emad_size == EMAD_V1_2 {
                e.zero(24, 8)?;
            } else {
                e.zero(8, 8)?;
            }
            // Data access: RO (1) or RW (2); instruction access: unspecified (0) or NX
            // (1), never executable; the rest MBZ (DEN0077A v1.2 Table 10.15).
            let data = permissions & 0x3;
            let instr = (permissions >> 2) & 0x3;
            if !(data == 1 || data == 2) || instr > 1 || permissions & 0xf0 != 0 {
                return Err(bad());
            }
            let seen = ids.get(..i).ok_or_else(bad)?;
            if seen.contains(&id) {
                return Err(bad());
            }
            *ids.get_mut(i).ok_or_else(bad)? = id;
            // warden requires all receivers to share one composite descriptor.
            if *composite_offset.get_or_insert(offset) != offset {
                return Err(bad());
            }
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
        // The descriptor ends exactly after the last constituent: no lying counts, no
        // trailing bytes the SPMC might read differently.
        let first = composite + COMPOSITE;
        let expected_len = ranges
            .checked_mul(CONSTITUENT)
            .and_then(|n| n.checked_add(first))
            .ok_or_else(bad)?;
        if expected_len != desc.len() {
            return Err(bad());
        }
        let constituents = desc.get(first..).ok_or_else(bad)?;
        let mut sum: u32 = 0;
        for (address, pages, reserved) in RawConstituents::new(constituents) {
            if pages == 0 || !address.is_multiple_of(PAGE) || reserved != 0 {
                return Err(bad());
            }
            sum = sum.checked_add(pages).ok_or_else(bad)?;
            Constituent { address, pages }.range().ok_or_else(bad)?;
        }
        if sum != total_pages {
            return Err(bad());
        }
        check_attributes_and_flags(attributes, flags, op)?;
        Ok(Self {
            sender,
            attributes,
            flags,
            tag,
            total_pages,
            emads,
            emad_size,
            constituents,
        })
    }

    /// The receivers, in the sender's order (v1.2's implementation-defined bytes zero
    /// from the 16-byte EMAD).
    pub fn receivers(&self) -> impl ExactSizeIterator<Item = Receiver> + '_ {
        let size = self.emad_size;
        self.emads.chunks_exact(size).map(move |e| {
            let mut impdef = [0u8; 16];
            if size == EMAD_V1_2
                && let Some(bytes) = e.get(8..24)
            {
                impdef.copy_from_slice(bytes);
            }
            Receiver {
                id: e.first_chunk::<2>().map_or(0, |b| u16::from_le_bytes(*b)),
                permissions: e.get(2).copied().unwrap_or(0),
                impdef,
            }
        })
    }

    /// The first receiver's ID (for the log).
    pub fn first_receiver(&self) -> u16 {
        self.emads
            .first_chunk::<2>()
            .map_or(0, |b| u16::from_le_bytes(*b))
    }

    /// The constituents, in the sender's order.
    pub fn constituents(&self) -> impl Iterator<Item = Constituent> + '_ {
        RawConstituents::new(self.constituents)
            .map(|(address, pages, _)| Constituent { address, pages })
    }

    pub fn constituent_count(&self) -> usize {
        self.constituents.len() / CONSTITUENT
    }

    /// `validate_for_host` for the view: the sender is the host, every receiver is a
    /// secure partition, every constituent is host RAM, and no two constituents overlap.
    /// The page ranges go to `out` (emptied first), sorted: one pass when the sender
    /// sorted them already (Linux does), a sort otherwise.
    pub fn host_ranges(
        &self,
        host_id: u16,
        is_partition: impl Fn(u16) -> bool,
        is_host_ram: impl Fn(Range) -> bool,
        out: &mut Vec<Range>,
    ) -> Result<(), FfaError> {
        check_for_host(
            self.sender,
            host_id,
            self.receivers().map(|r| r.id),
            self.constituents(),
            is_partition,
            is_host_ram,
            out,
        )
    }

    /// The length of the descriptor in the layout of `version`.
    pub fn emitted_len(&self, version: FfaVersion) -> usize {
        constituents_offset(version, self.emads.len() / self.emad_size) + self.constituents.len()
    }

    /// Where the first constituent starts in the layout of `version`.
    pub fn constituents_offset(&self, version: FfaVersion) -> usize {
        constituents_offset(version, self.emads.len() / self.emad_size)
    }

    /// Writes the descriptor in the layout of `version` (the SPMC's) at the start of
    /// `out`, every field from its checked value, and returns its length; None if `out`
    /// is too short. The constituents are the same 16 bytes in every layout (DEN0077A v1.2
    /// Table 10.14), and each of them was checked whole (reserved bytes included), so
    /// they are copied from the snapshot as one block.
    pub fn emit_into(&self, version: FfaVersion, out: &mut [u8]) -> Option<usize> {
        let len = self.emitted_len(version);
        let out = out.get_mut(..len)?;
        let head = Head {
            sender: self.sender,
            attributes: self.attributes,
            flags: self.flags,
            tag: self.tag,
            total_pages: self.total_pages,
            ranges: self.constituent_count() as u32,
        };
        let at = head.write(version, self.receivers(), out)?;
        out.get_mut(at..)?.copy_from_slice(self.constituents);
        Some(len)
    }
}

/// The constituents of a block of 16-byte constituent descriptors (DEN0077A v1.2 Table
/// 10.14), as (address, page count, reserved word). warden's target requires aligned
/// accesses (strict alignment), so a field read from bytes is a load per byte; a block that
/// lies 8-byte aligned (warden's snapshots always do: the heap aligns them, and the
/// constituents start 8-byte aligned in every layout) is read as two words per
/// constituent instead. A partial constituent at the end is not yielded (the parser
/// checked the length).
enum RawConstituents<'a> {
    Words(core::slice::Iter<'a, [u64; 2]>),
    Bytes(core::slice::ChunksExact<'a, u8>),
}

impl<'a> RawConstituents<'a> {
    fn new(block: &'a [u8]) -> Self {
        let (pairs, rest) = as_words(block).as_chunks::<2>();
        if rest.is_empty() && pairs.len() * CONSTITUENT == block.len() {
            Self::Words(pairs.iter())
        } else {
            Self::Bytes(block.chunks_exact(CONSTITUENT))
        }
    }
}

impl Iterator for RawConstituents<'_> {
    type Item = (u64, u32, u32);
    #[inline(always)]
    fn next(&mut self) -> Option<(u64, u32, u32)> {
        match self {
            Self::Words(it) => it.next().map(|&[address, pages]| {
                let pages = u64::from_le(pages);
                (u64::from_le(address), pages as u32, (pages >> 32) as u32)
            }),
            Self::Bytes(it) => it.next().map(from_bytes),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Self::Words(it) => it.size_hint(),
            Self::Bytes(it) => it.size_hint(),
        }
    }
}

/// One constituent from 16 bytes at any alignment. Never inlined: merged into the word
/// path, its byte loads replaced the word loads there too.
#[inline(never)]
fn from_bytes(c: &[u8]) -> (u64, u32, u32) {
    let c = Bytes {
        bytes: c,
        words: &[],
    };
    (
        c.u64(0).unwrap_or(0),
        c.u32(8).unwrap_or(0),
        c.u32(12).unwrap_or(u32::MAX),
    )
}

/// The fields before the EMADs and in the composite header, for `Head::write`.
struct Head {
    sender: u16,
    attributes: u16,
    flags: u32,
    tag: u64,
    total_pages: u32,
    ranges: u32,
}

/// Appends little-endian 8-byte words to a byte slice, bounds-checked: one store per word
/// where the slice lies aligned (`as_words_mut`), eight byte stores otherwise. Every
/// descriptor layout is a sequence of whole words (each field lies inside one, and every
/// part is a multiple of 8 bytes long), so the emitter composes words and appends them.
struct Writer<'a> {
    bytes: &'a mut [u8],
    at: usize,
}

impl Writer<'_> {
    #[inline(always)]
    fn word(&mut self, value: u64) -> Option<()> {
        let end = self.at.checked_add(8)?;
        let out = self.bytes.get_mut(self.at..end)?;
        match as_words_mut(out).first_mut() {
            Some(word) => *word = value.to_le(),
            None => out.copy_from_slice(&value.to_le_bytes()),
        }
        self.at = end;
        Some(())
    }
}

impl Head {
    /// Writes the header, the EMADs and the composite header in the layout of `version`,
    /// word by word in order (appending, so there is no computed index to get wrong);
    /// returns where the constituents start. Offsets per DEN0077A v1.2 Tables 10.20 (header;
    /// v1.0: Table 5.19 of DEN0077A 1.0), 10.15 (EMAD) and 10.13 (composite).
    fn write(
        &self,
        version: FfaVersion,
        receivers: impl ExactSizeIterator<Item = Receiver>,
        out: &mut [u8],
    ) -> Option<usize> {
        let v1_1 = version >= FfaVersion::V1_1;
        let emad_size = if version >= FfaVersion::V1_2 {
            EMAD_V1_2
        } else {
            EMAD_V1_0
        };
        let header = if v1_1 { HEADER_V1_1 } else { HEADER_V1_0 };
        let count = receivers.len();
        let composite = header + emad_size * count;
        let mut w = Writer { bytes: out, at: 0 };
        // 0: sender ID (2), attributes (2; v1.0: 1 and a reserved byte), flags (4).
        let attributes = if v1_1 {
            u64::from(self.attributes)
        } else {
            u64::from(self.attributes as u8)
        };
        w.word(u64::from(self.sender) | attributes << 16 | u64::from(self.flags) << 32)?;
        // 8: the handle, the SPMC's to allocate. 16: the tag.
        w.word(0)?;
        w.word(self.tag)?;
        // 24: EMAD size (v1.0: reserved), 28: EMAD count.
        let emad_size_field = if v1_1 { emad_size as u64 } else { 0 };
        w.word(emad_size_field | (count as u64) << 32)?;
        if v1_1 {
            // 32: EMAD offset, then 12 reserved bytes.
            w.word(header as u64)?;
            w.word(0)?;
        }
        for r in receivers {
            // ID (2), permissions (1), flags (1), composite offset (4).
            w.word(u64::from(r.id) | u64::from(r.permissions) << 16 | (composite as u64) << 32)?;
            if emad_size == EMAD_V1_2 {
                let (lo, hi) = r.impdef.split_at(8);
                w.word(u64::from_le_bytes(lo.try_into().ok()?))?;
                w.word(u64::from_le_bytes(hi.try_into().ok()?))?;
            }
            // 8 reserved bytes.
            w.word(0)?;
        }
        // Composite: total pages (4), range count (4), 8 reserved bytes.
        w.word(u64::from(self.total_pages) | u64::from(self.ranges) << 32)?;
        w.word(0)?;
        Some(w.at)
    }
}

/// Where the first constituent starts in the layout of `version` with `receivers` EMADs.
fn constituents_offset(version: FfaVersion, receivers: usize) -> usize {
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
    header + emad_size * receivers + COMPOSITE
}

/// The checks that depend on the system (see `validate_for_host`), for either form of a
/// transaction; the sorted ranges go to `out`.
fn check_for_host(
    sender: u16,
    host_id: u16,
    mut receiver_ids: impl Iterator<Item = u16>,
    constituents: impl Iterator<Item = Constituent>,
    is_partition: impl Fn(u16) -> bool,
    is_host_ram: impl Fn(Range) -> bool,
    out: &mut Vec<Range>,
) -> Result<(), FfaError> {
    out.clear();
    // The Relayer checks that the Sender ID names the caller, the owner of the memory,
    // and answers DENIED otherwise (DEN0077A v1.2 §10.5 and §10.6, the error tables of
    // FFA_MEM_LEND and FFA_MEM_SHARE; the FF-A ACS checks the same).
    if sender != host_id {
        return Err(FfaError::Denied);
    }
    if !receiver_ids.all(is_partition) {
        return Err(bad());
    }
    let (n, _) = constituents.size_hint();
    out.try_reserve(n).map_err(|_| FfaError::NoMemory)?;
    // Ranges in ascending order, each ending before the next starts, are sorted and
    // disjoint in one pass (Linux sends them so); anything else is sorted, then checked.
    let mut ascending = true;
    let mut ram = true;
    let mut previous_end = 0;
    for c in constituents {
        let r = c.range().ok_or_else(bad)?;
        ram &= is_host_ram(r);
        ascending &= previous_end <= r.start;
        previous_end = r.end;
        out.push(r);
    }
    if !ram {
        out.clear();
        return Err(FfaError::Denied);
    }
    if !ascending {
        out.sort_unstable();
        if out
            .windows(2)
            .any(|w| matches!(w, [a, b] if a.end > b.start))
        {
            out.clear();
            return Err(bad());
        }
    }
    Ok(())
}

/// Memory region attributes and transaction flags a sender may use (DEN0077A v1.2
/// §10.10 and Table 10.21): no NS bit (bit 6) from the normal world, no device memory,
/// no retrieve-only flags.
#[inline]
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
        let mut ranges = Vec::new();
        check_for_host(
            self.sender,
            host_id,
            self.receivers.iter().map(|r| r.id),
            self.constituents.iter().copied(),
            is_partition,
            is_host_ram,
            &mut ranges,
        )?;
        Ok(ranges)
    }

    /// Emits the descriptor in the layout of `version` (the SPMC's).
    pub fn emit(&self, version: FfaVersion) -> Vec<u8> {
        let at = self.constituents_offset(version);
        let mut d = alloc::vec![0u8; at + CONSTITUENT * self.constituents.len()];
        let head = Head {
            sender: self.sender,
            attributes: self.attributes,
            flags: self.flags,
            tag: self.tag,
            total_pages: self.total_pages,
            ranges: self.constituents.len() as u32,
        };
        // The buffer has exactly the room the layout needs.
        let _ = head.write(version, self.receivers.iter().copied(), &mut d);
        for (c, out) in self.constituents.iter().zip(
            d.get_mut(at..)
                .unwrap_or_default()
                .chunks_exact_mut(CONSTITUENT),
        ) {
            let mut w = Writer { bytes: out, at: 0 };
            let _ = w.word(c.address);
            let _ = w.word(u64::from(c.pages));
        }
        d
    }

    /// Where the first constituent starts in the emitted layout, so that fragments
    /// after the first can be cut at constituent boundaries.
    pub fn constituents_offset(&self, version: FfaVersion) -> usize {
        constituents_offset(version, self.receivers.len())
    }
}

/// The fragments of an emitted descriptor of `desc_len` bytes, at most `max` bytes each,
/// that never split a constituent (the first holds the header, EMADs and composite header):
/// (start, end) pairs in order, computed as they are taken.
pub struct Fragments {
    /// Where the next fragment starts; None before the first.
    next: Option<usize>,
    desc_len: usize,
    first_end: usize,
    per: usize,
}

impl Fragments {
    pub fn new(desc_len: usize, constituents_offset: usize, max: usize) -> Self {
        let per = (max / CONSTITUENT) * CONSTITUENT;
        let first_end = if desc_len <= max {
            desc_len
        } else {
            constituents_offset
                + (max.saturating_sub(constituents_offset) / CONSTITUENT) * CONSTITUENT
        };
        Self {
            next: None,
            desc_len,
            first_end,
            per,
        }
    }
}

impl Iterator for Fragments {
    type Item = (usize, usize);
    fn next(&mut self) -> Option<(usize, usize)> {
        let (start, end) = match self.next {
            None => (0, self.first_end),
            // A buffer smaller than a constituent cannot carry the rest: no more.
            Some(start) if start < self.desc_len && self.per > 0 => {
                (start, start.saturating_add(self.per).min(self.desc_len))
            }
            Some(_) => return None,
        };
        self.next = Some(end);
        Some((start, end))
    }
}

/// Cuts an emitted descriptor into fragments of at most `max` bytes that never split a
/// constituent (the first holds the header, EMADs and composite header).
pub fn fragments(desc_len: usize, constituents_offset: usize, max: usize) -> Vec<(usize, usize)> {
    Fragments::new(desc_len, constituents_offset, max).collect()
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

    /// The view reads the constituents as words when they lie aligned and byte by byte
    /// otherwise: both give the same transaction, the same emitted bytes and the same
    /// refusals.
    #[test]
    fn aligned_and_unaligned_snapshots_agree() {
        for v in V {
            let good = linux_share(&[(0x4000_0000, 2), (0x4010_0000, 1)], v);
            let at = good.len() - 2 * CONSTITUENT;
            let cases = [
                good.clone(),
                patched(&good, at + 12, &[1]),
                patched(&good, at + 8, &[0]),
                patched(&good, at, &[0x10]),
                patched(&good, at + 16 + 15, &[0x80]),
            ];
            for d in cases {
                // One copy 8-byte aligned (the host allocator's, as warden's heap), one at
                // an odd address.
                let aligned = d.clone();
                assert_eq!(aligned.as_ptr() as usize % 8, 0);
                let mut odd = alloc::vec![0u8; d.len() + 1];
                odd[1..].copy_from_slice(&d);
                let a = DescriptorView::parse(&aligned, v, MemOp::Share);
                let b = DescriptorView::parse(&odd[1..], v, MemOp::Share);
                assert_eq!(a.is_ok(), b.is_ok());
                assert_eq!(
                    parse(&aligned, v, MemOp::Share),
                    parse(&odd[1..], v, MemOp::Share)
                );
                if let (Ok(a), Ok(b)) = (a, b) {
                    for to in V {
                        let mut x = alloc::vec![0u8; a.emitted_len(to)];
                        let mut y = alloc::vec![0u8; b.emitted_len(to)];
                        assert_eq!(a.emit_into(to, &mut x), Some(x.len()));
                        assert_eq!(b.emit_into(to, &mut y), Some(y.len()));
                        assert_eq!(x, y);
                        // And into a buffer at an odd address (the byte-wise writer).
                        let mut odd_out = alloc::vec![0u8; x.len() + 1];
                        assert_eq!(a.emit_into(to, &mut odd_out[1..]), Some(x.len()));
                        assert_eq!(odd_out[1..], x[..]);
                        assert_eq!(x, parse(&d, v, MemOp::Share).unwrap().emit(to));
                        let short = x.len() - 1;
                        assert_eq!(a.emit_into(to, &mut x[..short]), None, "too short");
                    }
                }
            }
        }
    }

    /// Field reads by words and by bytes agree at every offset and width, and a field
    /// past the end is refused either way.
    #[test]
    fn word_and_byte_reads_agree() {
        let data: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0x5a).collect();
        let mut odd = alloc::vec![0u8; data.len() + 1];
        odd[1..].copy_from_slice(&data);
        let words = Bytes::new(&data);
        assert_eq!(words.words.len(), 5, "the test vector is aligned");
        let bytes = Bytes::new(&odd[1..]);
        assert!(bytes.words.is_empty());
        for n in [1, 2, 4, 8] {
            for off in 0..=data.len() {
                let want = data
                    .get(off..off + n)
                    .map(|s| s.iter().rev().fold(0u64, |v, &b| (v << 8) | u64::from(b)));
                assert_eq!(words.field(off, n).ok(), want, "{off} {n}");
                assert_eq!(bytes.field(off, n).ok(), want, "{off} {n}");
            }
        }
        let zeros = [0u8; 24];
        assert!(Bytes::new(&zeros).zero(3, 21).is_ok());
        assert!(Bytes::new(&data).zero(0, 1).is_err());
        assert!(Bytes::new(&zeros).zero(20, 5).is_err(), "past the end");
    }

    /// `host_ranges` fills the caller's buffer as `validate_for_host` returns its ranges,
    /// sorting only what the sender did not sort, and empties it on a refusal.
    #[test]
    fn host_ranges_into_a_reused_buffer() {
        let v = FfaVersion::V1_2;
        let sp = |id: u16| id == 0x8001;
        let ram = |r: Range| r.start >= 0x4000_0000 && r.end <= 0x6000_0000;
        let mut out = alloc::vec![Range::new(1, 2); 7];
        for cs in [
            &[(0x4000_0000, 1), (0x4000_2000, 2)][..],
            &[(0x4000_2000, 2), (0x4000_0000, 1)][..],
        ] {
            let d = linux_share(cs, v);
            let view = DescriptorView::parse(&d, v, MemOp::Share).unwrap();
            view.host_ranges(0, sp, ram, &mut out).unwrap();
            assert_eq!(
                out,
                [
                    Range::new(0x4000_0000, 0x4000_1000),
                    Range::new(0x4000_2000, 0x4000_4000)
                ]
            );
            assert_eq!(
                out,
                parse(&d, v, MemOp::Share)
                    .unwrap()
                    .validate_for_host(0, sp, ram)
                    .unwrap()
            );
        }
        let d = linux_share(&[(0x4000_0000, 2), (0x4000_1000, 1)], v);
        let view = DescriptorView::parse(&d, v, MemOp::Share).unwrap();
        assert_eq!(
            view.host_ranges(0, sp, ram, &mut out),
            Err(FfaError::InvalidParameters)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn fragments_are_cut_lazily_as_before() {
        for (len, off, max) in [
            (100, 80, 4096),
            (9000, 112, 4096),
            (70000, 64, 65536),
            (8192, 96, 4096),
        ] {
            let frags: Vec<_> = Fragments::new(len, off, max).collect();
            assert_eq!(frags.first().map(|f| f.0), Some(0));
            assert_eq!(frags.last().map(|f| f.1), Some(len));
            assert!(frags.windows(2).all(|w| w[0].1 == w[1].0));
            assert!(frags.iter().all(|&(s, e)| e > s && e - s <= max));
        }
        assert_eq!(
            Fragments::new(100, 80, 8).count(),
            1,
            "no room: the first only"
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
