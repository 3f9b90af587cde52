//! A model of an SPMC (as TF-A's SPMD + OP-TEE present it to the normal world) that can be
//! set to v1.0, v1.1 or v1.2, plus host RAM, for testing the proxy on the host. The
//! end-to-end tests use the real one.

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

pub const HOST_RAM: Range = Range::new(0x4000_0000, 0x5000_0000);
pub const WARDEN_TX: u64 = 0x6000_0000;
pub const WARDEN_RX: u64 = 0x6001_0000;

pub struct Model {
    pub version: FfaVersion,
    pub calls: Vec<Regs>,
    own_rx: Vec<u8>,
    own_tx: Vec<u8>,
    pub own_rx_busy: bool,
    mapped: bool,
    pub host_mem: BTreeMap<u64, u8>,
    /// The memory transaction being received (total length, bytes so far).
    receiving: Option<(usize, Vec<u8>)>,
    /// Descriptors the SPMC accepted, by handle.
    pub shares: BTreeMap<u64, Vec<u8>>,
    next_handle: u64,
    /// Make the next memory transaction fail with this error.
    pub fail_next: Option<FfaError>,
    /// Ranges the host cannot access (lent).
    pub unmapped: Vec<Range>,
    pub fragments_seen: usize,
    own_pages: usize,
    /// OP-TEE's rule: a descriptor must fit whole in the SPMC's buffer, even when sent in
    /// fragments. Other SPMCs (Hafnium) take any length in fragments.
    pub whole_in_buffer: bool,
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
            fail_next: None,
            unmapped: Vec::new(),
            fragments_seen: 0,
            own_pages: 0,
            whole_in_buffer: true,
        }
    }

    pub fn host_bytes(&self, pa: u64, len: usize) -> Vec<u8> {
        (pa..pa + len as u64)
            .map(|a| *self.host_mem.get(&a).unwrap_or(&0))
            .collect()
    }

    fn mem_fragment(&mut self, len: usize) -> Regs {
        self.fragments_seen += 1;
        let Some((total, mut bytes)) = self.receiving.take() else {
            return abi::error_regs(FfaError::InvalidParameters);
        };
        assert!(len <= 4096 * self.own_pages);
        bytes.extend_from_slice(&self.own_tx[..len]);
        if bytes.len() < total {
            let n = bytes.len();
            self.receiving = Some((total, bytes));
            return abi::call_regs(
                abi::fid32(num::MEM_FRAG_RX),
                &[self.next_handle, 0, n as u64],
            );
        }
        if let Some(e) = self.fail_next.take() {
            return abi::error_regs(e);
        }
        // The SPMC checks what it receives in its own layout.
        super::memory::parse(&bytes, self.version, super::memory::MemOp::Lend)
            .or_else(|_| super::memory::parse(&bytes, self.version, super::memory::MemOp::Share))
            .expect("warden sent a descriptor the SPMC can parse");
        let h = self.next_handle;
        self.next_handle += 1;
        self.shares.insert(h, bytes);
        abi::success_regs(&[h & 0xffff_ffff, h >> 32])
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
                abi::FFA_RXTX_MAP_64 => abi::success_regs(&[0]),
                0x8400_007d if v11 => abi::success_regs(&[0]),
                2 if v11 => abi::success_regs(&[8]),
                abi::FFA_MSG_SEND_DIRECT_REQ2 | abi::FFA_PARTITION_INFO_GET_REGS if v12 => {
                    abi::success_regs(&[0])
                }
                _ => abi::error_regs(FfaError::NotSupported),
            },
            (num::RXTX_MAP, true) => {
                assert_eq!((r[1], r[2]), (WARDEN_TX, WARDEN_RX), "warden's own pair");
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
                out
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
                // Like OP-TEE's SPMC: the whole descriptor must fit in the buffer.
                if self.whole_in_buffer && r[1] as usize > 4096 * self.own_pages {
                    return abi::error_regs(FfaError::InvalidParameters);
                }
                self.receiving = Some((r[1] as usize, Vec::new()));
                self.mem_fragment(r[2] as usize)
            }
            (num::MEM_FRAG_TX, false) => self.mem_fragment(r[3] as usize),
            (num::MEM_RECLAIM, false) => {
                let h = r[1] | r[2] << 32;
                if self.receiving.take().is_some() {
                    return abi::success_regs(&[]);
                }
                match self.shares.remove(&h) {
                    Some(_) => abi::success_regs(&[]),
                    None => abi::error_regs(FfaError::InvalidParameters),
                }
            }
            (num::NOTIFICATION_BITMAP_CREATE..=num::NOTIFICATION_GET, false) if v11 => {
                abi::success_regs(&[])
            }
            (num::NOTIFICATION_INFO_GET, _) if v11 => abi::error_regs(FfaError::NoData),
            (num::RUN, false) => {
                let mut out = [0; 18];
                out[0] = abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64;
                out
            }
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
