//! A model of an SPMC (as TF-A's SPMD + OP-TEE present it to the normal world) that can be
//! set to v1.0, v1.1 or v1.2, plus host RAM, for testing the proxy on the host. The
//! end-to-end tests use the real one.
//!
//! It is strict where the real one is, so that the proxy's paths for a misbehaving or
//! different secure world can be tested:
//! - failure injection at any fragment of a memory transaction ([`Model::fail_at`]); a
//!   transaction that fails after the first fragment stays half-received at the SPMC until
//!   the sender reclaims it (the handle was given out with FFA_MEM_FRAG_RX, §10.4.2);
//! - FFA_MEM_RECLAIM checks the handle: only the one in progress abandons a half-received
//!   transaction, any other must be a completed one;
//! - an EL3 without FF-A ([`Model::without_ffa`]), which answers every call with SMCCC
//!   NOT_SUPPORTED;
//! - the SPMC's buffer rule ([`BufferRule`]): granule, the most pages it maps for warden's
//!   own pair, and whether a descriptor must fit whole in the buffer.

extern crate std;

use std::collections::BTreeMap;
use std::vec;
use std::vec::Vec;

use super::abi::{self, FfaError, Regs, num};
use super::partition::{PartitionInfo, SIZE_V1_0, SIZE_V1_1};
use super::proxy::ProxyEnv;
use super::version::FfaVersion;
use crate::platform::memmap::Range;

pub const OPTEE: PartitionInfo = PartitionInfo {
    id: 0x8001,
    exec_ctx_count: 2,
    properties: 0x3,
    uuid: [
        0x48, 0x6b, 0x8b, 0xe9, 0x4b, 0x8a, 0x41, 0x48, 0x9c, 0x1c, 0x3f, 0x0a, 0xb7, 0x1b, 0x75,
        0x52,
    ],
};
pub const OTHER_SP: PartitionInfo = PartitionInfo {
    id: 0x8002,
    exec_ctx_count: 1,
    properties: 0x1,
    uuid: [7; 16],
};

/// What EL3 leaves in x8-x17 of replies whose ABI defines only x0-x7 (direct responses,
/// RUN, notifications): the SPMD returns x0-x17 of the SPMC's context, and nothing says
/// those registers are clean.
pub const EL3_LEFTOVER: u64 = 0x1e17_0000_0000_0000;

fn with_leftovers(mut out: Regs) -> Regs {
    for (i, r) in out.iter_mut().enumerate().skip(8) {
        *r = EL3_LEFTOVER | i as u64;
    }
    out
}

pub const HOST_RAM: Range = Range::new(0x4000_0000, 0x5000_0000);
pub const WARDEN_TX: u64 = 0x6000_0000;
pub const WARDEN_RX: u64 = 0x6001_0000;

/// The SPMC's rules for RX/TX buffers (DEN0077A v1.2 §13.6, FFA_FEATURES(FFA_RXTX_MAP)
/// Table 13.14).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BufferRule {
    /// FFA_FEATURES(FFA_RXTX_MAP) w2[1:0]: 0 = 4 KiB, 1 = 64 KiB, 2 = 16 KiB minimum.
    pub granule: u32,
    /// The most pages FFA_RXTX_MAP accepts for warden's own pair; more gets NO_MEMORY.
    pub max_pages: u64,
    /// OP-TEE's rule: a descriptor must fit whole in the SPMC's buffer, even when sent in
    /// fragments. Other SPMCs (Hafnium) take any length in fragments.
    pub whole_descriptor: bool,
}

impl BufferRule {
    /// OP-TEE 4.10 as an S-EL1 SPMC.
    pub const OPTEE: Self = Self {
        granule: 0,
        max_pages: 16,
        whole_descriptor: true,
    };
}

/// Which fragment of a memory transaction the injected failure hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fragment {
    /// The n-th fragment (0 = the first, sent with FFA_MEM_SHARE/LEND).
    Nth(usize),
    /// The last one, whatever its number.
    Last,
}

/// A transaction the SPMC is receiving in fragments.
struct Receiving {
    handle: u64,
    total: usize,
    bytes: Vec<u8>,
    /// Fragments received so far.
    fragments: usize,
    /// A fragment failed: the transaction is dead, but it holds its handle until the
    /// sender reclaims it.
    failed: bool,
}

pub struct Model {
    pub version: FfaVersion,
    pub calls: Vec<Regs>,
    own_rx: Vec<u8>,
    own_tx: Vec<u8>,
    pub own_rx_busy: bool,
    mapped: bool,
    pub host_mem: BTreeMap<u64, u8>,
    receiving: Option<Receiving>,
    /// Descriptors the SPMC accepted, by handle.
    pub shares: BTreeMap<u64, Vec<u8>>,
    next_handle: u64,
    /// Make the next memory transaction fail with this error at this fragment (then clear).
    pub fail_at: Option<(Fragment, FfaError)>,
    /// Handles of half-received transactions the sender reclaimed (abandoned).
    pub abandoned: Vec<u64>,
    /// Ranges the host cannot access (lent).
    pub unmapped: Vec<Range>,
    pub fragments_seen: usize,
    own_pages: usize,
    pub buffer_rule: BufferRule,
    /// EL3 has no FF-A at all (no SPMD): every call gets SMCCC NOT_SUPPORTED.
    no_ffa: bool,
    /// FFA_NOTIFICATION_INFO_GET's x2-x7 (flags and the ID list, §13.24) while
    /// notifications are pending; `None` answers NO_DATA.
    pub notification_info: Option<[u64; 6]>,
    /// What FFA_RUN completes with (default: a DIRECT_RESP with EL3's leftovers past x7),
    /// for example the DIRECT_RESP2 of a resumed DIRECT_REQ2.
    pub run_reply: Option<Regs>,
}

impl Model {
    pub fn new(version: FfaVersion) -> Self {
        Self {
            version,
            calls: Vec::new(),
            own_rx: vec![0; 4096],
            own_tx: vec![0; 4096],
            own_rx_busy: false,
            mapped: false,
            host_mem: BTreeMap::new(),
            receiving: None,
            shares: BTreeMap::new(),
            next_handle: 0x1000,
            fail_at: None,
            abandoned: Vec::new(),
            unmapped: Vec::new(),
            fragments_seen: 0,
            own_pages: 0,
            buffer_rule: BufferRule::OPTEE,
            no_ffa: false,
            notification_info: None,
            run_reply: None,
        }
    }

    /// An EL3 without FF-A: FFA_VERSION and every other FF-A call get NOT_SUPPORTED
    /// (SMCCC DEN0028 §5.2: -1 in x0, as TF-A's SMC_UNK).
    pub fn without_ffa() -> Self {
        Self {
            no_ffa: true,
            ..Self::new(FfaVersion::V1_2)
        }
    }

    /// The handle of a transaction the SPMC is still receiving (or that failed half way
    /// and was never reclaimed).
    pub fn in_progress(&self) -> Option<u64> {
        self.receiving.as_ref().map(|r| r.handle)
    }

    pub fn host_bytes(&self, pa: u64, len: usize) -> Vec<u8> {
        (pa..pa + len as u64)
            .map(|a| *self.host_mem.get(&a).unwrap_or(&0))
            .collect()
    }

    /// The first fragment of a transaction of `total` bytes.
    fn mem_start(&mut self, total: usize, len: usize) -> Regs {
        if self.receiving.is_some() {
            // One transaction at a time from the normal world's single TX buffer.
            return abi::error_regs(FfaError::Busy);
        }
        // Like OP-TEE's SPMC: the whole descriptor must fit in the buffer.
        if self.buffer_rule.whole_descriptor && total > 4096 * self.own_pages {
            return abi::error_regs(FfaError::InvalidParameters);
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        self.receiving = Some(Receiving {
            handle,
            total,
            bytes: Vec::new(),
            fragments: 0,
            failed: false,
        });
        self.mem_fragment(len)
    }

    /// The next fragment, of `len` bytes in warden's TX buffer.
    fn mem_fragment(&mut self, len: usize) -> Regs {
        self.fragments_seen += 1;
        let Some(mut rx) = self.receiving.take() else {
            return abi::error_regs(FfaError::InvalidParameters);
        };
        if rx.failed {
            self.receiving = Some(rx);
            return abi::error_regs(FfaError::InvalidParameters);
        }
        assert!(len <= 4096 * self.own_pages);
        let n = rx.fragments;
        rx.fragments += 1;
        rx.bytes.extend_from_slice(&self.own_tx[..len]);
        let last = rx.bytes.len() >= rx.total;
        let fails = match self.fail_at {
            Some((Fragment::Nth(k), _)) => k == n,
            Some((Fragment::Last, _)) => last,
            None => false,
        };
        if fails && let Some((_, e)) = self.fail_at.take() {
            // After the first fragment the sender holds the handle (from FRAG_RX), so the
            // dead transaction waits for its reclaim; the first has given nothing out.
            if n > 0 {
                rx.failed = true;
                self.receiving = Some(rx);
            }
            return abi::error_regs(e);
        }
        if !last {
            let got = rx.bytes.len();
            let h = rx.handle;
            self.receiving = Some(rx);
            return abi::call_regs(
                abi::fid32(num::MEM_FRAG_RX),
                &[h & 0xffff_ffff, h >> 32, got as u64],
            );
        }
        // The SPMC checks what it receives in its own layout.
        super::memory::parse(&rx.bytes, self.version, super::memory::MemOp::Lend)
            .or_else(|_| super::memory::parse(&rx.bytes, self.version, super::memory::MemOp::Share))
            .expect("warden sent a descriptor the SPMC can parse");
        let h = rx.handle;
        self.shares.insert(h, rx.bytes);
        abi::success_regs(&[h & 0xffff_ffff, h >> 32])
    }

    /// FFA_MEM_FRAG_TX: the next fragment of the transaction `handle`.
    fn mem_frag_tx(&mut self, handle: u64, len: usize) -> Regs {
        match &self.receiving {
            Some(rx) if rx.handle == handle => self.mem_fragment(len),
            _ => abi::error_regs(FfaError::InvalidParameters),
        }
    }

    /// FFA_MEM_RECLAIM: of the transaction in progress (abandons it), or of a completed one.
    fn mem_reclaim(&mut self, handle: u64) -> Regs {
        if self
            .receiving
            .as_ref()
            .is_some_and(|rx| rx.handle == handle)
        {
            self.receiving = None;
            self.abandoned.push(handle);
            return abi::success_regs(&[]);
        }
        match self.shares.remove(&handle) {
            Some(_) => abi::success_regs(&[]),
            None => abi::error_regs(FfaError::InvalidParameters),
        }
    }

    fn partition_info(&mut self, r: &Regs) -> Regs {
        let uuid: Vec<u8> = r[1..5]
            .iter()
            .flat_map(|w| (*w as u32).to_le_bytes())
            .collect();
        let list: Vec<PartitionInfo> = [OPTEE, OTHER_SP]
            .into_iter()
            .filter(|p| uuid.iter().all(|&b| b == 0) || p.uuid[..] == uuid[..])
            .collect();
        if list.is_empty() {
            return abi::error_regs(FfaError::InvalidParameters);
        }
        let count_only = self.version >= FfaVersion::V1_1 && r[5] & 1 != 0;
        let size = if self.version >= FfaVersion::V1_1 {
            SIZE_V1_1
        } else {
            SIZE_V1_0
        };
        if !count_only {
            if self.own_rx_busy || !self.mapped {
                return abi::error_regs(FfaError::Busy);
            }
            for (i, p) in list.iter().enumerate() {
                p.emit(self.version, &mut self.own_rx[i * size..]).unwrap();
            }
            self.own_rx_busy = true;
        }
        let size_reg = if self.version >= FfaVersion::V1_1 {
            size as u64
        } else {
            0
        };
        abi::success_regs(&[list.len() as u64, size_reg])
    }
}

impl ProxyEnv for Model {
    fn spmc_call(&mut self, r: &Regs) -> Regs {
        self.calls.push(*r);
        if self.no_ffa {
            let mut out = [0; 18];
            out[0] = u64::MAX;
            return out;
        }
        let f = abi::FfaFunction::decode(r[0] as u32).unwrap();
        let v11 = self.version >= FfaVersion::V1_1;
        let v12 = self.version >= FfaVersion::V1_2;
        match (f.num, f.is_64) {
            (num::VERSION, false) => {
                let mut out = [0; 18];
                out[0] = self.version.encode() as u64;
                out
            }
            (num::ID_GET, false) => abi::success_regs(&[0]),
            (num::SPM_ID_GET, false) if v11 => abi::success_regs(&[0x8000]),
            (num::FEATURES, false) => match r[1] as u32 {
                abi::FFA_RXTX_MAP_64 => abi::success_regs(&[self.buffer_rule.granule as u64]),
                0x8400_007d if v11 => abi::success_regs(&[0]),
                2 if v11 => abi::success_regs(&[8]),
                abi::FFA_MSG_SEND_DIRECT_REQ2 | abi::FFA_PARTITION_INFO_GET_REGS if v12 => {
                    abi::success_regs(&[0])
                }
                _ => abi::error_regs(FfaError::NotSupported),
            },
            (num::RXTX_MAP, true) => {
                assert_eq!((r[1], r[2]), (WARDEN_TX, WARDEN_RX), "warden's own pair");
                if self.mapped {
                    return abi::error_regs(FfaError::Denied);
                }
                if r[3] == 0 || r[3] > self.buffer_rule.max_pages {
                    return abi::error_regs(FfaError::NoMemory);
                }
                self.mapped = true;
                self.own_pages = r[3] as usize;
                self.own_tx = vec![0; 4096 * self.own_pages];
                abi::success_regs(&[])
            }
            (num::RX_RELEASE, false) => {
                if !self.own_rx_busy {
                    return abi::error_regs(FfaError::Denied);
                }
                self.own_rx_busy = false;
                abi::success_regs(&[])
            }
            (num::PARTITION_INFO_GET, false) => self.partition_info(r),
            (num::MSG_SEND_DIRECT_REQ, is_64) => {
                // Echo with the receiver as sender, payload + 1.
                let mut out = [0; 18];
                out[0] =
                    abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64 | if is_64 { 1 << 30 } else { 0 };
                out[1] = (r[1] & 0xffff) << 16 | r[1] >> 16 & 0xffff;
                for i in 3..8 {
                    out[i] = r[i] + 1;
                }
                with_leftovers(out)
            }
            (num::MSG_SEND_DIRECT_REQ2, true) if v12 => {
                let mut out = *r;
                out[0] = abi::fid64(num::MSG_SEND_DIRECT_RESP2) as u64;
                out[1] = (r[1] & 0xffff) << 16 | r[1] >> 16 & 0xffff;
                out[17] = 0x1717;
                out
            }
            (num::PARTITION_INFO_GET_REGS, true) if v12 => {
                // Two partitions: last index 1, current index 1, descriptors of 24 bytes.
                let mut out = [0; 18];
                out[0] = abi::FFA_SUCCESS_64 as u64;
                out[2] = 1 | 1 << 16 | 24 << 48;
                out[3] = OPTEE.id as u64 | (OPTEE.exec_ctx_count as u64) << 16;
                out[6] = OTHER_SP.id as u64 | (OTHER_SP.exec_ctx_count as u64) << 16;
                out
            }
            (num::MEM_SHARE | num::MEM_LEND, _) => {
                assert_eq!((r[3], r[4]), (0, 0), "descriptor in warden's TX buffer");
                self.mem_start(r[1] as usize, r[2] as usize)
            }
            (num::MEM_FRAG_TX, false) => self.mem_frag_tx(r[1] | r[2] << 32, r[3] as usize),
            (num::MEM_RECLAIM, false) => self.mem_reclaim(r[1] | r[2] << 32),
            (num::NOTIFICATION_BITMAP_CREATE..=num::NOTIFICATION_GET, false) if v11 => {
                with_leftovers(abi::success_regs(&[]))
            }
            (num::NOTIFICATION_INFO_GET, is_64) if v11 => match self.notification_info {
                Some(list) => {
                    let mut out = abi::success_regs(&[]);
                    out[0] = if is_64 {
                        abi::FFA_SUCCESS_64
                    } else {
                        abi::FFA_SUCCESS_32
                    } as u64;
                    let mask = if is_64 { u64::MAX } else { u32::MAX as u64 };
                    for (o, w) in out[2..8].iter_mut().zip(list) {
                        *o = w & mask;
                    }
                    with_leftovers(out)
                }
                None => with_leftovers(abi::error_regs(FfaError::NoData)),
            },
            (num::RUN, false) => self.run_reply.unwrap_or_else(|| {
                let mut out = [0; 18];
                out[0] = abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64;
                with_leftovers(out)
            }),
            _ => abi::error_regs(FfaError::NotSupported),
        }
    }
    fn is_host_ram(&self, r: Range) -> bool {
        HOST_RAM.start <= r.start && r.end <= HOST_RAM.end
    }
    fn write_host(&mut self, pa: u64, data: &[u8]) {
        assert!(self.is_host_ram(Range::new(pa, pa + data.len() as u64)));
        for (i, b) in data.iter().enumerate() {
            self.host_mem.insert(pa + i as u64, *b);
        }
    }
    fn own_rx(&self) -> &[u8] {
        &self.own_rx
    }
    fn read_host(&self, pa: u64, buf: &mut [u8]) {
        buf.copy_from_slice(&self.host_bytes(pa, buf.len()));
    }
    fn write_own_tx(&mut self, data: &[u8]) {
        self.own_tx[..data.len()].copy_from_slice(data);
    }
    fn unmap_from_host(&mut self, ranges: &[Range]) -> Result<(), FfaError> {
        self.unmapped.extend_from_slice(ranges);
        Ok(())
    }
    fn map_to_host(&mut self, ranges: &[Range]) {
        self.unmapped.retain(|u| !ranges.contains(u));
    }
}
