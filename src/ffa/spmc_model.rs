//! A model of an SPMC (as TF-A's SPMD + OP-TEE present it to the normal world) that can be
//! set to v1.0, v1.1 or v1.2, plus host RAM, for testing the proxy on the host. The
//! end-to-end tests use the real one.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::abi::{self, FfaError, Regs, num};
use super::mailbox;
use super::partition::{PartitionInfo, SIZE_V1_0, SIZE_V1_1};
use super::proxy::{FfaProxy, ProxyEnv, Reply, Width};
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

const HOST_RAM: Range = Range::new(0x4000_0000, 0x4010_0000);
const WARDEN_TX: u64 = 0x6000_0000;
const WARDEN_RX: u64 = 0x6000_1000;

pub struct Model {
    pub version: FfaVersion,
    pub calls: Vec<Regs>,
    own_rx: Vec<u8>,
    own_rx_busy: bool,
    mapped: bool,
    pub host_mem: BTreeMap<u64, u8>,
}

impl Model {
    pub fn new(version: FfaVersion) -> Self {
        Self {
            version,
            calls: Vec::new(),
            own_rx: vec![0; 4096],
            own_rx_busy: false,
            mapped: false,
            host_mem: BTreeMap::new(),
        }
    }

    pub fn host_bytes(&self, pa: u64, len: usize) -> Vec<u8> {
        (pa..pa + len as u64)
            .map(|a| *self.host_mem.get(&a).unwrap_or(&0))
            .collect()
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
                abi::FFA_MSG_SEND_DIRECT_REQ2 | abi::FFA_PARTITION_INFO_GET_REGS if v12 => {
                    abi::success_regs(&[0])
                }
                _ => abi::error_regs(FfaError::NotSupported),
            },
            (num::RXTX_MAP, true) => {
                assert_eq!(
                    (r[1], r[2], r[3]),
                    (WARDEN_TX, WARDEN_RX, 1),
                    "warden's own pair"
                );
                self.mapped = true;
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
}

fn call(fid: u32, args: &[u64]) -> Regs {
    abi::call_regs(fid, args)
}

fn is_error(r: &Reply, e: FfaError) -> bool {
    r.regs[0] == abi::FFA_ERROR as u64 && FfaError::from_reg(r.regs[2]) == Some(e)
}

fn is_success(r: &Reply) -> bool {
    r.regs[0] == abi::FFA_SUCCESS_32 as u64
}

const V1_0: u64 = 0x1_0000;
const V1_1: u64 = 0x1_0001;
const V1_2: u64 = 0x1_0002;
const RXTX_MAP_64: u32 = abi::FFA_RXTX_MAP_64;
const RXTX_UNMAP: u32 = abi::fid32(num::RXTX_UNMAP);
const DIRECT_REQ_32: u32 = abi::fid32(num::MSG_SEND_DIRECT_REQ);
const DIRECT_REQ_64: u32 = abi::fid64(num::MSG_SEND_DIRECT_REQ);
const HOST_TX: u64 = 0x4000_0000;
const HOST_RX: u64 = 0x4000_1000;

fn setup(spmc: FfaVersion) -> (FfaProxy, Model) {
    let mut m = Model::new(spmc);
    let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX);
    (p, m)
}

/// A host at `host` version with its buffers mapped.
fn host(spmc: FfaVersion, host: u64) -> (FfaProxy, Model) {
    let (p, mut m) = setup(spmc);
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[host]), &mut m).regs[0],
        V1_2
    );
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
    ));
    (p, m)
}

#[test]
fn init_learns_the_spmc_at_each_version() {
    for (v, id, req2) in [
        (FfaVersion::V1_0, 0, false),
        (FfaVersion::V1_1, 0x8000, false),
        (FfaVersion::V1_2, 0x8000, true),
    ] {
        let (p, m) = setup(v);
        let info = p.spmc().unwrap();
        assert_eq!(info.version, v);
        assert_eq!(info.spmc_id, id);
        assert_eq!(info.direct_req2, req2);
        assert_eq!(info.partitions.len(), 2);
        assert_eq!(info.partitions[0].id, 0x8001);
        if v >= FfaVersion::V1_1 {
            assert_eq!(info.partitions[0].uuid, OPTEE.uuid);
        }
        assert!(!m.own_rx_busy, "warden released its RX buffer");
    }
}

#[test]
fn no_ffa_at_el3_means_not_supported_everywhere() {
    let p = FfaProxy::absent();
    let mut m = Model::new(FfaVersion::V1_2);
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m).regs[0],
        0xffff_ffff
    );
    for fid in [
        abi::FFA_ID_GET,
        abi::FFA_FEATURES,
        RXTX_MAP_64,
        DIRECT_REQ_32,
    ] {
        assert!(is_error(
            &p.handle(&call(fid, &[]), &mut m),
            FfaError::NotSupported
        ));
    }
    assert!(m.calls.is_empty());
}

#[test]
fn version_is_per_host_and_locks_at_first_other_call() {
    let (p, mut m) = setup(FfaVersion::V1_1);
    let calls_before = m.calls.len();
    // Warden answers v1.2 even though the SPMC is v1.1: it translates.
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[V1_0]), &mut m).regs[0],
        V1_2
    );
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m).regs[0],
        V1_2
    );
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[0x8001_0002]), &mut m)
            .regs[0],
        0xffff_ffff
    );
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[0x2_0000]), &mut m).regs[0],
        0xffff_ffff
    );
    assert_eq!(
        m.calls.len(),
        calls_before,
        "FFA_VERSION never reaches the SPMC"
    );
    assert!(is_success(&p.handle(&call(abi::FFA_ID_GET, &[]), &mut m)));
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[V1_0]), &mut m).regs[0],
        0xffff_ffff
    );
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m).regs[0],
        V1_2
    );
}

#[test]
fn id_get_and_spm_id_get() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let r = p.handle(&call(abi::FFA_ID_GET, &[]), &mut m);
    assert!(is_success(&r) && r.regs[2] == 0);
    let r = p.handle(&call(abi::FFA_SPM_ID_GET, &[]), &mut m);
    assert!(is_success(&r) && r.regs[2] == 0x8000);
    // v1.0 hosts do not have FFA_SPM_ID_GET.
    let (p, mut m) = host(FfaVersion::V1_2, V1_0);
    assert!(is_error(
        &p.handle(&call(abi::FFA_SPM_ID_GET, &[]), &mut m),
        FfaError::NotSupported
    ));
}

#[test]
fn partition_info_in_every_host_format_from_every_spmc() {
    for spmc in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        for (host_v, size) in [(V1_0, 8usize), (V1_1, 24), (V1_2, 24)] {
            let (p, mut m) = host(spmc, host_v);
            let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]), &mut m);
            assert!(is_success(&r), "spmc {spmc} host {host_v:#x}: {r:?}");
            assert_eq!(r.regs[2], 2);
            assert_eq!(r.regs[3], if host_v == V1_0 { 0 } else { size as u64 });
            let bytes = m.host_bytes(HOST_RX, 2 * size);
            let first = PartitionInfo::parse(&bytes, 0, size).unwrap();
            assert_eq!(first.id, 0x8001);
            if size == 24 && spmc >= FfaVersion::V1_1 {
                assert_eq!(first.uuid, OPTEE.uuid);
            }
            assert_eq!(PartitionInfo::parse(&bytes, 1, size).unwrap().id, 0x8002);
            assert!(!m.own_rx_busy, "warden's RX is back with the SPMC");
            // The host owns its RX until it releases it.
            let again = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]), &mut m);
            assert!(is_error(&again, FfaError::Busy));
            assert!(is_success(
                &p.handle(&call(abi::FFA_RX_RELEASE, &[]), &mut m)
            ));
            assert!(is_error(
                &p.handle(&call(abi::FFA_RX_RELEASE, &[]), &mut m),
                FfaError::Denied
            ));
            assert!(is_success(&p.handle(
                &call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]),
                &mut m
            )));
        }
    }
}

#[test]
fn partition_info_uuid_filter_and_count_only() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let words: Vec<u64> = OPTEE
        .uuid
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
        .collect();
    let mut args = words.clone();
    args.push(1);
    let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &args), &mut m);
    assert!(is_success(&r) && r.regs[2] == 1 && r.regs[3] == 24);
    assert!(
        m.host_bytes(HOST_RX, 24).iter().all(|&b| b == 0),
        "count only writes nothing"
    );
    // Count-only does not give the host its RX buffer.
    assert!(is_error(
        &p.handle(&call(abi::FFA_RX_RELEASE, &[]), &mut m),
        FfaError::Denied
    ));
    let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[1, 2, 3, 4, 0]), &mut m);
    assert!(is_error(&r, FfaError::InvalidParameters), "unknown UUID");
    let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 2]), &mut m);
    assert!(
        is_error(&r, FfaError::InvalidParameters),
        "reserved flag bits"
    );
    // v1.0 has no flags at all.
    let (p, mut m) = host(FfaVersion::V1_2, V1_0);
    let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 1]), &mut m);
    assert!(is_error(&r, FfaError::InvalidParameters));
}

#[test]
fn partition_info_without_buffers_is_denied() {
    let (p, mut m) = setup(FfaVersion::V1_2);
    p.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m);
    let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]), &mut m);
    assert!(is_error(&r, FfaError::Denied));
}

#[test]
fn rxtx_map_and_unmap_rules() {
    let (p, mut m) = setup(FfaVersion::V1_2);
    p.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m);
    let bad = [
        [0x6000_0000, HOST_RX, 1], // warden memory
        [HOST_TX + 8, HOST_RX, 1], // unaligned
        [HOST_TX, HOST_TX, 1],     // overlapping
        [HOST_TX, HOST_RX, 0],     // no pages
        [HOST_TX, HOST_RX, mailbox::MAX_PAGES + 1],
        [0x0900_0000, HOST_RX, 1], // MMIO
    ];
    for args in bad {
        let r = p.handle(&call(RXTX_MAP_64, &args), &mut m);
        assert!(is_error(&r, FfaError::InvalidParameters), "{args:x?}");
    }
    assert!(is_error(
        &p.handle(&call(RXTX_UNMAP, &[0]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, 0x4000_4000, 2]), &mut m)
    ));
    assert!(is_error(
        &p.handle(&call(RXTX_MAP_64, &[0x4008_0000, 0x4009_0000, 1]), &mut m),
        FfaError::Denied
    ));
    assert!(is_error(
        &p.handle(&call(RXTX_UNMAP, &[0x8001 << 16]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_error(
        &p.handle(&call(RXTX_UNMAP, &[1]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    // 32-bit variant, masked to 32-bit addresses.
    let map32 = abi::fid32(num::RXTX_MAP);
    assert!(is_success(&p.handle(
        &call(map32, &[0xdead_0000_4000_0000, HOST_RX, 1]),
        &mut m
    )));
    assert!(
        m.calls.iter().all(|c| c[0] as u32 != map32),
        "host buffers never reach the SPMC"
    );
}

#[test]
fn direct_requests_are_checked_and_forwarded_with_only_their_arguments() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let mut regs = call(DIRECT_REQ_32, &[0x8001, 0, 10, 20, 30, 40, 50]);
    for r in &mut regs[8..] {
        *r = 0xbad;
    }
    regs[3] |= 0xffff_0000_0000_0000;
    let before = m.calls.len();
    let r = p.handle(&regs, &mut m);
    assert_eq!(r.width, Width::Ffa8, "v1.1 host: x0-x7 only");
    assert_eq!(r.regs[0], abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64);
    assert_eq!(r.regs[1], 0x8001 << 16);
    assert_eq!(
        r.regs[3], 11,
        "upper bits of a 32-bit argument are not forwarded"
    );
    let sent = m.calls[before];
    assert!(
        sent[8..].iter().all(|&x| x == 0),
        "host's x8-x17 stay with the host"
    );

    let refused = [
        ([0x0005_8001u64, 0], "spoofed sender"),
        ([0x0000_0001, 0], "receiver not a secure partition"),
        ([0x0000_8003, 0], "unknown partition"),
        ([0x0000_8001, 1 << 31], "framework message"),
        ([0x0000_8001, 5], "w2 reserved bits"),
    ];
    let before = m.calls.len();
    for ([w1, w2], what) in refused {
        let r = p.handle(&call(DIRECT_REQ_64, &[w1, w2, 1, 2, 3]), &mut m);
        assert!(is_error(&r, FfaError::InvalidParameters), "{what}");
    }
    assert_eq!(m.calls.len(), before, "nothing refused reaches the SPMC");
}

#[test]
fn direct_req2_only_for_v1_2_hosts_and_spmcs() {
    let req2 = abi::FFA_MSG_SEND_DIRECT_REQ2;
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let mut regs = call(req2, &[0x8001, 1, 2]);
    regs[17] = 99;
    let r = p.handle(&regs, &mut m);
    assert_eq!(r.width, Width::Wide);
    assert_eq!(r.regs[0], abi::fid64(num::MSG_SEND_DIRECT_RESP2) as u64);
    assert_eq!(r.regs[17], 0x1717);
    assert_eq!(m.calls.last().unwrap()[17], 99, "x4-x17 payload forwarded");
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    assert!(is_error(&p.handle(&regs, &mut m), FfaError::NotSupported));
    let (p, mut m) = host(FfaVersion::V1_1, V1_2);
    assert!(is_error(&p.handle(&regs, &mut m), FfaError::NotSupported));
}

#[test]
fn partition_info_get_regs_for_v1_2_hosts() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let mut regs = call(abi::FFA_PARTITION_INFO_GET_REGS, &[0, 0, 0]);
    regs[9] = 0xbad;
    let r = p.handle(&regs, &mut m);
    assert_eq!(r.width, Width::Wide);
    assert_eq!(r.regs[0], abi::FFA_SUCCESS_64 as u64);
    assert_eq!(r.regs[3] & 0xffff, 0x8001);
    assert_eq!(m.calls.last().unwrap()[9], 0, "only x1-x3 reach the SPMC");
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    assert!(is_error(&p.handle(&regs, &mut m), FfaError::NotSupported));
}

#[test]
fn run_only_targets_partitions() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let run = abi::fid32(num::RUN);
    assert!(is_error(
        &p.handle(&call(run, &[0x0001_0000]), &mut m),
        FfaError::InvalidParameters
    ));
    let r = p.handle(&call(run, &[0x8001_0000]), &mut m);
    assert_eq!(r.regs[0], abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64);
}

#[test]
fn features_agree_with_the_dispatcher_for_every_function_id() {
    for host_v in [V1_0, V1_1, V1_2] {
        let (p, mut m) = host(FfaVersion::V1_2, host_v);
        for n in 0x60..=0xff {
            for fid in [abi::fid32(n), abi::fid64(n)] {
                let feat = p.handle(&call(abi::FFA_FEATURES, &[fid as u64]), &mut m);
                // Dispatch with arguments that every served call accepts or rejects
                // with something other than NOT_SUPPORTED.
                let args: &[u64] = match n {
                    num::MSG_SEND_DIRECT_REQ | num::MSG_SEND_DIRECT_REQ2 => &[0x8001],
                    num::RUN => &[0x8001_0000],
                    num::VERSION => &[V1_2],
                    num::FEATURES => &[abi::FFA_VERSION as u64],
                    _ => &[],
                };
                let served = !is_error(&p.handle(&call(fid, args), &mut m), FfaError::NotSupported);
                assert_eq!(is_success(&feat), served, "host {host_v:#x} fid {fid:#x}");
            }
        }
    }
}

#[test]
fn features_reports_buffer_rules() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let r = p.handle(&call(abi::FFA_FEATURES, &[RXTX_MAP_64 as u64]), &mut m);
    assert_eq!(r.regs[2], mailbox::MAX_PAGES << 16);
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let r = p.handle(&call(abi::FFA_FEATURES, &[RXTX_MAP_64 as u64]), &mut m);
    assert_eq!(r.regs[2], 0);
    for feature_id in [1u64, 2, 3] {
        assert!(is_error(
            &p.handle(&call(abi::FFA_FEATURES, &[feature_id]), &mut m),
            FfaError::NotSupported
        ));
    }
}

#[test]
fn calls_before_version_are_served_as_v1_0() {
    let (p, mut m) = setup(FfaVersion::V1_2);
    // No FFA_VERSION: a v1.0 caller.
    assert!(is_error(
        &p.handle(&call(abi::FFA_SPM_ID_GET, &[]), &mut m),
        FfaError::NotSupported
    ));
    assert!(is_success(&p.handle(&call(abi::FFA_ID_GET, &[]), &mut m)));
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m).regs[0],
        0xffff_ffff
    );
}
