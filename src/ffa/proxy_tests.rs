//! The proxy's unit tests, against the SPMC model at v1.0, v1.1 and v1.2.

use std::vec::Vec;

use super::abi::{self, FfaError, Regs, num};
use super::mailbox;
use super::partition::PartitionInfo;
use super::proxy::{FfaProxy, ProxyEnv, Reply, Width};
use super::spmc_model::*;
use super::version::FfaVersion;
use crate::platform::memmap::Range;

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
    setup_pages(spmc, 4)
}

fn setup_pages(spmc: FfaVersion, pages: u64) -> (FfaProxy, Model) {
    let mut m = Model::new(spmc);
    let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, pages);
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
    // NPI and managed exit: never for the host; SRI: the SPMC's, for v1.1+ hosts.
    for feature_id in [1u64, 3] {
        assert!(is_error(
            &p.handle(&call(abi::FFA_FEATURES, &[feature_id]), &mut m),
            FfaError::NotSupported
        ));
    }
    let sri = p.handle(&call(abi::FFA_FEATURES, &[2]), &mut m);
    assert!(is_success(&sri) && sri.regs[2] == 8);
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

// ---- Memory sharing ----

use super::memory::tests::linux_share;

const MEM_SHARE_64: u32 = abi::fid64(num::MEM_SHARE);
const MEM_LEND_32: u32 = abi::fid32(num::MEM_LEND);
const MEM_FRAG_TX: u32 = abi::fid32(num::MEM_FRAG_TX);
const MEM_RECLAIM: u32 = abi::fid32(num::MEM_RECLAIM);
const MEM_FRAG_RX: u64 = abi::fid32(num::MEM_FRAG_RX) as u64;

fn host_version(v: u64) -> FfaVersion {
    FfaVersion::decode(v as u32).unwrap()
}

/// Puts `desc` in the host's TX buffer and sends it with `fid`, in TX-sized fragments
/// (FFA_MEM_FRAG_TX) as Linux does. Returns the final reply.
fn send(p: &FfaProxy, m: &mut Model, fid: u32, desc: &[u8]) -> Reply {
    let total = desc.len() as u64;
    let first = desc.len().min(4096);
    m.write_host(HOST_TX, &desc[..first]);
    let mut r = p.handle(&call(fid, &[total, first as u64, 0, 0]), m);
    let mut sent = first;
    while r.regs[0] == MEM_FRAG_RX && sent < desc.len() {
        assert_eq!(r.regs[3] as usize, sent);
        let n = (desc.len() - sent).min(4096);
        m.write_host(HOST_TX, &desc[sent..sent + n]);
        r = p.handle(&call(MEM_FRAG_TX, &[r.regs[1], r.regs[2], n as u64, 0]), m);
        sent += n;
    }
    r
}

fn handle_of(r: &Reply) -> u64 {
    assert!(is_success(r), "{r:x?}");
    r.regs[2] | r.regs[3] << 32
}

fn reclaim(p: &FfaProxy, m: &mut Model, h: u64) -> Reply {
    p.handle(&call(MEM_RECLAIM, &[h & 0xffff_ffff, h >> 32, 0]), m)
}

#[test]
fn share_translates_between_every_pair_of_versions() {
    for spmc in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        for hv in [V1_0, V1_1, V1_2] {
            let (p, mut m) = host(spmc, hv);
            let desc = linux_share(&[(0x4002_0000, 1)], host_version(hv));
            let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
            let got =
                super::memory::parse(&m.shares[&h], spmc, super::memory::MemOp::Share).unwrap();
            assert_eq!(got.constituents[0].address, 0x4002_0000);
            assert_eq!(got.receivers[0].id, 0x8001);
            assert!(m.unmapped.is_empty(), "a share leaves the host its access");
            assert_eq!(p.live_handles(), 1);
            // Already shared: refused, nothing reaches the SPMC.
            let before = m.calls.len();
            assert!(is_error(
                &send(&p, &mut m, MEM_SHARE_64, &desc),
                FfaError::Denied
            ));
            assert_eq!(m.calls.len(), before);
            assert!(is_success(&reclaim(&p, &mut m, h)));
            assert_eq!(p.live_handles(), 0);
            handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
        }
    }
}

#[test]
fn lend_unmaps_until_reclaim() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let mut desc = linux_share(&[(0x4003_0000, 2)], FfaVersion::V1_1);
    desc[2] = 0; // Linux leaves attributes to the borrower on lend.
    let h = handle_of(&send(&p, &mut m, MEM_LEND_32, &desc));
    assert_eq!(m.unmapped, [Range::new(0x4003_0000, 0x4003_2000)]);
    assert!(is_success(&reclaim(&p, &mut m, h)));
    assert!(m.unmapped.is_empty());
    assert!(
        is_error(&reclaim(&p, &mut m, h), FfaError::InvalidParameters),
        "twice"
    );
}

#[test]
fn hundreds_of_constituents_in_fragments_both_ways() {
    for hv in [V1_0, V1_2] {
        let (p, mut m) = setup_pages(FfaVersion::V1_2, 1);
        m.whole_in_buffer = false;
        p.handle(&call(abi::FFA_VERSION, &[hv]), &mut m);
        assert!(is_success(
            &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
        ));
        let cs: Vec<(u64, u32)> = (0..700)
            .map(|i| (0x4002_0000 + i * 0x1000 * 2, 1))
            .collect();
        let desc = linux_share(&cs, host_version(hv));
        assert!(desc.len() > 2 * 4096);
        let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
        let got =
            super::memory::parse(&m.shares[&h], FfaVersion::V1_2, super::memory::MemOp::Share)
                .unwrap();
        assert_eq!(got.constituents.len(), 700);
        assert_eq!(got.total_pages, 700);
        assert!(
            m.fragments_seen >= 3,
            "forwarded in fragments of warden's buffer size"
        );
        assert!(is_success(&reclaim(&p, &mut m, h)));
    }
}

#[test]
fn hostile_shares_change_nothing() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let v = FfaVersion::V1_1;
    let cases: Vec<(Vec<u8>, FfaError, &str)> = vec![
        (
            linux_share(&[(0x6000_0000, 1)], v),
            FfaError::Denied,
            "warden memory",
        ),
        (
            linux_share(&[(0x0900_0000, 1)], v),
            FfaError::Denied,
            "MMIO",
        ),
        (
            linux_share(&[(HOST_RX, 1)], v),
            FfaError::Denied,
            "the host's own RX buffer",
        ),
        (
            linux_share(&[(0x4002_0000, 2), (0x4002_1000, 1)], v),
            FfaError::InvalidParameters,
            "overlap",
        ),
        (
            {
                let mut d = linux_share(&[(0x4002_0000, 1)], v);
                d[0] = 5;
                d
            },
            FfaError::InvalidParameters,
            "wrong sender",
        ),
        (
            {
                let mut d = linux_share(&[(0x4002_0000, 1)], v);
                d[48] = 0x01;
                d[49] = 0x00;
                d
            },
            FfaError::InvalidParameters,
            "receiver is not a partition",
        ),
    ];
    let before = m.calls.len();
    for (d, e, what) in cases {
        assert!(is_error(&send(&p, &mut m, MEM_SHARE_64, &d), e), "{what}");
    }
    assert_eq!(m.calls.len(), before, "nothing hostile reaches the SPMC");
    assert_eq!(p.live_handles(), 0);
    // Dynamic buffers and lying lengths.
    let d = linux_share(&[(0x4002_0000, 1)], v);
    m.write_host(HOST_TX, &d);
    let n = d.len() as u64;
    assert!(is_error(
        &p.handle(&call(MEM_SHARE_64, &[n, n, 0x4000_0000, 1]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_error(
        &p.handle(&call(MEM_SHARE_64, &[n, n + 1, 0, 0]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_error(
        &p.handle(&call(MEM_SHARE_64, &[n, 0, 0, 0]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_error(
        &p.handle(&call(MEM_SHARE_64, &[1 << 30, 4096, 0, 0]), &mut m),
        FfaError::NoMemory
    ));
    assert!(is_error(
        &p.handle(&call(MEM_SHARE_64, &[n + 16, n + 16, 0, 0]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(
        is_error(&reclaim(&p, &mut m, 0x1234), FfaError::InvalidParameters),
        "someone else's handle"
    );
    // Still works afterwards.
    handle_of(&send(&p, &mut m, MEM_SHARE_64, &d));
}

#[test]
fn a_fragment_stream_that_stops_half_way() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let cs: Vec<(u64, u32)> = (0..400).map(|i| (0x4002_0000 + i * 0x2000, 1)).collect();
    let desc = linux_share(&cs, FfaVersion::V1_2);
    m.write_host(HOST_TX, &desc[..4096]);
    let r = p.handle(
        &call(MEM_SHARE_64, &[desc.len() as u64, 4096, 0, 0]),
        &mut m,
    );
    assert_eq!(r.regs[0], MEM_FRAG_RX);
    let temp = r.regs[1] | r.regs[2] << 32;
    assert_ne!(temp & 1 << 63, 0, "a hypervisor-allocated handle");
    // Meanwhile: another transaction is busy, unmapping the buffers is busy, the wrong
    // handle is refused.
    let one = linux_share(&[(0x4800_0000, 1)], FfaVersion::V1_2);
    assert!(is_error(
        &send(&p, &mut m, MEM_SHARE_64, &one),
        FfaError::Busy
    ));
    assert!(is_error(
        &p.handle(&call(RXTX_UNMAP, &[0]), &mut m),
        FfaError::Busy
    ));
    assert!(is_error(
        &p.handle(&call(MEM_FRAG_TX, &[temp + 1, 0, 16, 0]), &mut m),
        FfaError::InvalidParameters
    ));
    // The host gives up: reclaim of the pending handle abandons it; nothing was claimed.
    assert!(is_success(&reclaim(&p, &mut m, temp)));
    assert!(
        m.calls.iter().all(|c| c[0] as u32 != MEM_SHARE_64),
        "the SPMC never saw it"
    );
    handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
    // A fragment that overruns the announced total ends the transaction.
    let cs: Vec<(u64, u32)> = (0..400).map(|i| (0x4003_0000 + i * 0x2000, 1)).collect();
    let desc = linux_share(&cs, FfaVersion::V1_2);
    m.write_host(HOST_TX, &desc[..4096]);
    let r = p.handle(
        &call(MEM_SHARE_64, &[desc.len() as u64, 4096, 0, 0]),
        &mut m,
    );
    let over = p.handle(&call(MEM_FRAG_TX, &[r.regs[1], r.regs[2], 4096, 0]), &mut m);
    assert!(is_error(&over, FfaError::InvalidParameters));
    assert!(is_error(
        &p.handle(&call(MEM_FRAG_TX, &[r.regs[1], r.regs[2], 16, 0]), &mut m),
        FfaError::InvalidParameters
    ));
}

#[test]
fn an_spmc_refusal_rolls_everything_back() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let mut desc = linux_share(&[(0x4003_0000, 4)], FfaVersion::V1_1);
    desc[2] = 0;
    m.fail_next = Some(FfaError::NoMemory);
    assert!(is_error(
        &send(&p, &mut m, MEM_LEND_32, &desc),
        FfaError::NoMemory
    ));
    assert!(m.unmapped.is_empty(), "the lend was undone");
    assert_eq!(p.live_handles(), 0);
    let h = handle_of(&send(&p, &mut m, MEM_LEND_32, &desc));
    assert!(is_success(&reclaim(&p, &mut m, h)));
    // Also when it fails half way through a fragmented send.
    let cs: Vec<(u64, u32)> = (0..600).map(|i| (0x4002_0000 + i * 0x2000, 1)).collect();
    let big = linux_share(&cs, FfaVersion::V1_1);
    m.fail_next = Some(FfaError::Aborted);
    assert!(is_error(
        &send(&p, &mut m, MEM_SHARE_64, &big),
        FfaError::Aborted
    ));
    handle_of(&send(&p, &mut m, MEM_SHARE_64, &big));
}

#[test]
fn buffers_and_shared_pages_never_mix() {
    let (p, mut m) = setup(FfaVersion::V1_2);
    p.handle(&call(abi::FFA_VERSION, &[V1_1]), &mut m);
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
    ));
    let d = linux_share(&[(0x4005_0000, 1)], FfaVersion::V1_1);
    let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &d));
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    // The shared page cannot become a buffer.
    let r = p.handle(&call(RXTX_MAP_64, &[0x4005_0000, HOST_RX, 1]), &mut m);
    assert!(is_error(&r, FfaError::Denied));
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
    ));
    assert!(is_success(&reclaim(&p, &mut m, h)));
    // Without buffers there is nothing to send from.
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    assert!(is_error(
        &p.handle(&call(MEM_SHARE_64, &[96, 96, 0, 0]), &mut m),
        FfaError::Denied
    ));
}

#[test]
fn descriptors_larger_than_warden_buffers_fail_cleanly() {
    // One-page buffers at the SPMC: a 700-constituent descriptor cannot be accepted by an
    // SPMC that needs it whole in its buffer; the refusal leaves nothing behind.
    let (p, mut m) = setup_pages(FfaVersion::V1_2, 1);
    p.handle(&call(abi::FFA_VERSION, &[V1_1]), &mut m);
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
    ));
    let cs: Vec<(u64, u32)> = (0..700).map(|i| (0x4002_0000 + i * 0x2000, 1)).collect();
    let desc = linux_share(&cs, FfaVersion::V1_1);
    assert!(is_error(
        &send(&p, &mut m, MEM_SHARE_64, &desc),
        FfaError::InvalidParameters
    ));
    assert_eq!(p.live_handles(), 0);
    handle_of(&send(
        &p,
        &mut m,
        MEM_SHARE_64,
        &linux_share(&cs[..100], FfaVersion::V1_1),
    ));
}

#[test]
fn notifications_for_the_host_only() {
    let create = abi::fid32(num::NOTIFICATION_BITMAP_CREATE);
    let bind = abi::fid32(num::NOTIFICATION_BIND);
    let get = abi::fid32(num::NOTIFICATION_GET);
    let info64 = abi::fid64(num::NOTIFICATION_INFO_GET);
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let before = m.calls.len();
    for (fid, args, what) in [
        (create, [5u64, 2, 0, 0], "bitmap of another VM"),
        (bind, [0x8001_0005, 0, 1, 0], "receiver is not the host"),
        (bind, [0x0003_0000, 0, 1, 0], "sender is not a partition"),
        (
            get,
            [0x0000_0007, 0xf, 0, 0],
            "another receiver's notifications",
        ),
    ] {
        assert!(
            is_error(
                &p.handle(&call(fid, &args), &mut m),
                FfaError::InvalidParameters
            ),
            "{what}"
        );
    }
    assert_eq!(m.calls.len(), before, "nothing refused reaches the SPMC");
    let mut r = call(bind, &[0x8001_0000, 0, 1, 0]);
    r[9] = 0xbad;
    assert!(is_success(&p.handle(&r, &mut m)));
    assert_eq!(m.calls.last().unwrap()[9], 0, "only the argument registers");
    assert!(is_success(&p.handle(&call(create, &[0, 2]), &mut m)));
    assert!(is_error(
        &p.handle(&call(info64, &[]), &mut m),
        FfaError::NoData
    ));
    // A v1.0 host has no notifications; nor does anyone when the SPMC is v1.0.
    let (p, mut m) = host(FfaVersion::V1_2, V1_0);
    assert!(is_error(
        &p.handle(&call(create, &[0, 2]), &mut m),
        FfaError::NotSupported
    ));
    let (p, mut m) = host(FfaVersion::V1_0, V1_1);
    assert!(is_error(
        &p.handle(&call(create, &[0, 2]), &mut m),
        FfaError::NotSupported
    ));
    assert!(is_error(
        &p.handle(&call(abi::FFA_FEATURES, &[2]), &mut m),
        FfaError::NotSupported
    ));
}

#[test]
fn live_handles_are_bounded_with_no_memory() {
    use super::proxy::MAX_LIVE_HANDLES;
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let page = |i: u64| 0x4010_0000 + i * 0x1000;
    let mut handles = Vec::new();
    for i in 0..MAX_LIVE_HANDLES as u64 {
        let desc = linux_share(&[(page(i), 1)], FfaVersion::V1_2);
        handles.push(handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc)));
    }
    // One more: refused before anything reaches the SPMC or changes ownership.
    let desc = linux_share(&[(page(MAX_LIVE_HANDLES as u64), 1)], FfaVersion::V1_2);
    let before = m.calls.len();
    assert!(is_error(
        &send(&p, &mut m, MEM_SHARE_64, &desc),
        FfaError::NoMemory
    ));
    assert_eq!(m.calls.len(), before);
    assert_eq!(p.live_handles(), MAX_LIVE_HANDLES);
    // A reclaim makes room again, for that very page.
    assert!(is_success(&reclaim(&p, &mut m, handles[0])));
    handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
}
