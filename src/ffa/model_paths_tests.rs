//! Proxy paths that only a strict SPMC model opens: a transaction the SPMC refuses half way,
//! reclaims of handles no one holds, an EL3 without FF-A, SPMC buffer rules warden must
//! adapt to or refuse.

use std::vec::Vec;

use super::abi::{self, FfaError, Regs, num};
use super::answers;
use super::memory::tests::linux_share;
use super::proxy::{FfaProxy, ProxyEnv, Reply};
use super::spmc_model::*;
use super::version::FfaVersion;
use crate::platform::memmap::Range;

const V1_1: u64 = 0x1_0001;
const HOST_TX: u64 = 0x4000_0000;
const HOST_RX: u64 = 0x4000_1000;
const MEM_SHARE_64: u32 = abi::fid64(num::MEM_SHARE);
const MEM_LEND_32: u32 = abi::fid32(num::MEM_LEND);
const MEM_FRAG_TX: u32 = abi::fid32(num::MEM_FRAG_TX);
const MEM_RECLAIM: u32 = abi::fid32(num::MEM_RECLAIM);
const MEM_FRAG_RX: u64 = abi::fid32(num::MEM_FRAG_RX) as u64;

fn call(fid: u32, args: &[u64]) -> Regs {
    abi::call_regs(fid, args)
}

fn is_error(r: &Reply, e: FfaError) -> bool {
    r.regs[0] == abi::FFA_ERROR as u64 && FfaError::from_reg(r.regs[2]) == Some(e)
}

fn is_success(r: &Reply) -> bool {
    r.regs[0] == abi::FFA_SUCCESS_32 as u64
}

/// A v1.1 host with its buffers, against a v1.2 SPMC model with `rule`, warden's own
/// buffers `pages` long.
fn host_with(rule: BufferRule, pages: u64) -> (FfaProxy, Model) {
    let mut m = Model::new(FfaVersion::V1_2);
    m.buffer_rule = rule;
    let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, pages);
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[V1_1]), &mut m).regs[0],
        0x1_0002
    );
    assert!(is_success(&p.handle(
        &call(abi::FFA_RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]),
        &mut m
    )));
    (p, m)
}

/// Sends `desc` from the host's TX buffer in 4 KiB fragments, as Linux does.
fn send(p: &FfaProxy, m: &mut Model, fid: u32, desc: &[u8]) -> Reply {
    let first = desc.len().min(4096);
    m.write_host(HOST_TX, &desc[..first]);
    let mut r = p.handle(&call(fid, &[desc.len() as u64, first as u64, 0, 0]), m);
    let mut sent = first;
    while r.regs[0] == MEM_FRAG_RX && sent < desc.len() {
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

/// 600 one-page constituents: about 9.7 KiB in the v1.2 layout, three fragments of warden's
/// one-page buffer.
fn big(op_lend: bool) -> Vec<u8> {
    let cs: Vec<(u64, u32)> = (0..600).map(|i| (0x4002_0000 + i * 0x2000, 1)).collect();
    let mut d = linux_share(&cs, FfaVersion::V1_1);
    if op_lend {
        d[2] = 0; // Linux leaves attributes to the borrower on lend.
    }
    d
}

const ANY_LENGTH: BufferRule = BufferRule {
    whole_descriptor: false,
    ..BufferRule::OPTEE
};

#[test]
fn an_spmc_that_fails_mid_stream_gets_the_transaction_reclaimed() {
    for (at, lend) in [
        (Fragment::Nth(0), false),
        (Fragment::Nth(1), false),
        (Fragment::Nth(1), true),
        (Fragment::Last, true),
    ] {
        let (p, mut m) = host_with(ANY_LENGTH, 1);
        let desc = big(lend);
        let fid = if lend { MEM_LEND_32 } else { MEM_SHARE_64 };
        m.fail_at = Some((at, FfaError::Aborted));
        let before = m.fragments_seen;
        let r = send(&p, &mut m, fid, &desc);
        assert!(is_error(&r, FfaError::Aborted), "{at:?}: {r:x?}");
        assert!(m.fail_at.is_none(), "{at:?}: the failure was injected");
        let sent = m.fragments_seen - before;
        // The SPMC holds nothing half-received: what it gave a handle for, warden reclaimed.
        assert_eq!(m.in_progress(), None, "{at:?}");
        assert_eq!(
            m.abandoned.len(),
            usize::from(at != Fragment::Nth(0)),
            "{at:?}"
        );
        if let Some(&h) = m.abandoned.first() {
            let reclaims: Vec<&Regs> = m
                .calls
                .iter()
                .filter(|c| c[0] as u32 == MEM_RECLAIM)
                .collect();
            assert_eq!(reclaims.len(), 1, "{at:?}");
            assert_eq!(reclaims[0][1] | reclaims[0][2] << 32, h);
        }
        match at {
            Fragment::Nth(k) => assert_eq!(sent, k + 1, "{at:?}: stopped at the failure"),
            Fragment::Last => assert_eq!(sent, 3, "{at:?}"),
        }
        // Nothing changed hands: no handle, the lend's pages are mapped again, and the same
        // pages can be sent again.
        assert_eq!(p.live_handles(), 0);
        assert!(m.unmapped.is_empty(), "{at:?}");
        assert!(m.shares.is_empty());
        let h = handle_of(&send(&p, &mut m, fid, &desc));
        assert!(is_success(&reclaim(&p, &mut m, h)));
    }
}

#[test]
fn reclaims_of_handles_the_host_does_not_hold_change_nothing() {
    let (p, mut m) = host_with(ANY_LENGTH, 1);
    let mut one = linux_share(&[(0x4800_0000, 1)], FfaVersion::V1_1);
    one[2] = 0;
    let h = handle_of(&send(&p, &mut m, MEM_LEND_32, &one));
    // A fragmented send in progress, with its hypervisor-allocated handle.
    let desc = big(false);
    m.write_host(HOST_TX, &desc[..4096]);
    let r = p.handle(
        &call(MEM_SHARE_64, &[desc.len() as u64, 4096, 0, 0]),
        &mut m,
    );
    assert_eq!(r.regs[0], MEM_FRAG_RX);
    let pending = r.regs[1] | r.regs[2] << 32;
    let calls = m.calls.len();
    for bad in [
        h + 1,
        h | 1 << 32,
        pending ^ 1,
        pending & !(1 << 63),
        0,
        u64::MAX,
    ] {
        assert!(
            is_error(&reclaim(&p, &mut m, bad), FfaError::InvalidParameters),
            "{bad:#x}"
        );
    }
    assert_eq!(m.calls.len(), calls, "no bad reclaim reaches the SPMC");
    assert_eq!(m.unmapped, [Range::new(0x4800_0000, 0x4800_1000)]);
    // The pending send goes on and completes.
    let mut sent = 4096;
    let mut r = r;
    while r.regs[0] == MEM_FRAG_RX {
        let n = (desc.len() - sent).min(4096);
        m.write_host(HOST_TX, &desc[sent..sent + n]);
        r = p.handle(
            &call(MEM_FRAG_TX, &[r.regs[1], r.regs[2], n as u64, 0]),
            &mut m,
        );
        sent += n;
    }
    let h2 = handle_of(&r);
    assert!(is_success(&reclaim(&p, &mut m, h2)));
    // An SPMC that refuses a reclaim keeps the pages lent: ownership returns only when it
    // agrees (here it has lost the handle).
    m.shares.remove(&h);
    assert!(is_error(
        &reclaim(&p, &mut m, h),
        FfaError::InvalidParameters
    ));
    assert_eq!(p.live_handles(), 1, "warden keeps its record");
    assert_eq!(m.unmapped, [Range::new(0x4800_0000, 0x4800_1000)]);
}

#[test]
fn boot_without_ffa_at_el3() {
    let mut m = Model::without_ffa();
    let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, 4);
    assert!(p.spmc().is_none());
    assert_eq!(
        m.calls.len(),
        1,
        "only FFA_VERSION asked, then warden gave up"
    );
    for n in 0x60..=0xff {
        for fid in [abi::fid32(n), abi::fid64(n)] {
            let r = p.handle(&call(fid, &[0x1_0002, HOST_TX, HOST_RX, 1]), &mut m);
            if fid == abi::FFA_VERSION {
                assert_eq!(r.regs[0], 0xffff_ffff);
            } else {
                assert!(is_error(&r, FfaError::NotSupported), "{fid:#x}");
            }
            assert!(answers::well_formed(fid, &r.regs), "{fid:#x}");
        }
    }
    assert_eq!(m.calls.len(), 1, "nothing of the host's reaches EL3");
}

#[test]
fn spmc_buffer_rules() {
    // A granule warden's 4 KiB pages cannot meet: FF-A stays off, warden's pages are never
    // offered.
    for granule in [1, 2] {
        let mut m = Model::new(FfaVersion::V1_2);
        m.buffer_rule.granule = granule;
        let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, 4);
        assert!(p.spmc().is_none());
        assert!(m.calls.iter().all(|c| c[0] as u32 != abi::FFA_RXTX_MAP_64));
    }
    // An SPMC that maps fewer pages than warden has: one page each.
    let (p, mut m) = host_with(
        BufferRule {
            max_pages: 2,
            ..BufferRule::OPTEE
        },
        4,
    );
    assert_eq!(p.spmc().unwrap().own_buffer_pages, 1);
    // With OP-TEE's rule a descriptor larger than that page is refused whole, and nothing
    // stays behind; below it, it goes through.
    assert!(is_error(
        &send(&p, &mut m, MEM_SHARE_64, &big(false)),
        FfaError::InvalidParameters
    ));
    assert_eq!((p.live_handles(), m.in_progress()), (0, None));
    let cs: Vec<(u64, u32)> = (0..100).map(|i| (0x4002_0000 + i * 0x2000, 1)).collect();
    let h = handle_of(&send(
        &p,
        &mut m,
        MEM_SHARE_64,
        &linux_share(&cs, FfaVersion::V1_1),
    ));
    assert!(is_success(&reclaim(&p, &mut m, h)));
    // Without that rule the same large descriptor goes through in fragments.
    let (p, mut m) = host_with(ANY_LENGTH, 1);
    let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &big(false)));
    assert!(m.fragments_seen >= 3);
    assert!(is_success(&reclaim(&p, &mut m, h)));
}

/// What warden serves a host at `host` against an SPMC model at `spmc`, written out from the
/// README's table of every FF-A function (DEN0077A v1.2 Table 13.1), not from warden's own
/// table: (function number, 64-bit).
fn documented_as_served(n: u32, is_64: bool, host: FfaVersion, spmc: FfaVersion) -> bool {
    let v1_1 = host >= FfaVersion::V1_1;
    let v1_2 = host >= FfaVersion::V1_2;
    // The model offers notifications from v1.1, DIRECT_REQ2 and PARTITION_INFO_GET_REGS
    // at v1.2.
    let notifications = v1_1 && spmc >= FfaVersion::V1_1;
    match (n, is_64) {
        (0x63..=0x69, false) | (0x6d | 0x6f | 0x72 | 0x73 | 0x77 | 0x7b, false) => true,
        (0x66 | 0x6f | 0x72 | 0x73, true) => true,
        (0x85, false) => v1_1 && spmc >= FfaVersion::V1_1,
        (0x7d..=0x80 | 0x82 | 0x83, false) | (0x83, true) => notifications,
        (0x8b | 0x8d, true) => v1_2 && spmc >= FfaVersion::V1_2,
        _ => false,
    }
}

#[test]
fn features_and_the_dispatcher_both_match_the_documented_table() {
    for spmc in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        for host in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
            let mut m = Model::new(spmc);
            let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, 4);
            p.handle(&call(abi::FFA_VERSION, &[host.encode() as u64]), &mut m);
            for n in 0x60..=0xff {
                for fid in [abi::fid32(n), abi::fid64(n)] {
                    let want = documented_as_served(n, fid == abi::fid64(n), host, spmc);
                    let feat = p.handle(&call(abi::FFA_FEATURES, &[fid as u64]), &mut m);
                    assert_eq!(
                        is_success(&feat),
                        want,
                        "FEATURES: spmc {spmc} host {host} fid {fid:#x}"
                    );
                    // Dispatch with arguments every served call accepts, or rejects with
                    // something other than NOT_SUPPORTED.
                    let args: &[u64] = match n {
                        num::MSG_SEND_DIRECT_REQ | num::MSG_SEND_DIRECT_REQ2 => &[0x8001],
                        num::RUN => &[0x8001_0000],
                        num::VERSION => &[host.encode() as u64],
                        num::FEATURES => &[abi::FFA_VERSION as u64],
                        _ => &[],
                    };
                    let r = p.handle(&call(fid, args), &mut m);
                    let refused = if fid == abi::FFA_VERSION {
                        r.regs[0] == 0xffff_ffff
                    } else {
                        is_error(&r, FfaError::NotSupported)
                    };
                    assert_eq!(
                        !refused,
                        want,
                        "dispatch: spmc {spmc} host {host} fid {fid:#x}: {:x?}",
                        &r.regs[..4]
                    );
                }
            }
        }
    }
}
