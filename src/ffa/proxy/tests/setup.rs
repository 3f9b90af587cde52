//! Setup and discovery: FFA_VERSION, FFA_FEATURES, the IDs and the boot-time probe.

use super::*;

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
                    // FFA_FEATURES also reports the interfaces every FF-A instance must have
                    // (§13.3): ERROR, SUCCESS and INTERRUPT, which the host receives but
                    // does not call.
                    let received =
                        matches!(fid, 0x8400_0060 | 0x8400_0061 | 0xc400_0061 | 0x8400_0062);
                    let feat = p.handle(&call(abi::FFA_FEATURES, &[fid as u64]), &mut m);
                    assert_eq!(
                        is_success(&feat),
                        want || received,
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

/// Issue 17 item 1: FFA_ERROR_32, FFA_SUCCESS_32/64 and FFA_INTERRUPT_32 are interfaces the
/// host receives from warden, mandatory at every FF-A instance: FFA_FEATURES answers
/// SUCCESS for them at every version, while calling them is still NOT_SUPPORTED. The other
/// mandatory interfaces (the FF-A ACS list) are served.
#[test]
fn features_reports_the_mandatory_interfaces() {
    for host_v in [V1_0, V1_1, V1_2] {
        let (p, mut m) = host(FfaVersion::V1_2, host_v);
        for fid in [
            abi::FFA_ERROR,
            abi::FFA_SUCCESS_32,
            abi::FFA_SUCCESS_64,
            abi::FFA_INTERRUPT,
        ] {
            let r = p.handle(&call(abi::FFA_FEATURES, &[fid as u64]), &mut m);
            assert!(
                is_success(&r),
                "host {host_v:#x} FEATURES({fid:#x}): {r:x?}"
            );
            assert!(r.regs[2..8].iter().all(|&x| x == 0), "no properties");
            assert!(is_error(
                &p.handle(&call(fid, &[]), &mut m),
                FfaError::NotSupported
            ));
        }
        for fid in [
            abi::FFA_VERSION,
            abi::FFA_FEATURES,
            abi::FFA_RX_RELEASE,
            RXTX_MAP_64,
            RXTX_UNMAP,
            abi::FFA_PARTITION_INFO_GET,
            abi::FFA_ID_GET,
        ] {
            let r = p.handle(&call(abi::FFA_FEATURES, &[fid as u64]), &mut m);
            assert!(is_success(&r), "host {host_v:#x} FEATURES({fid:#x})");
        }
    }
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
            assert!(crate::ffa::answers::well_formed(fid, &r.regs), "{fid:#x}");
        }
    }
    assert_eq!(m.calls.len(), 1, "nothing of the host's reaches EL3");
}

#[test]
fn an_spmc_buffer_granule_warden_cannot_meet_leaves_ffa_off() {
    // A granule warden's 4 KiB pages cannot meet: FF-A stays off, warden's pages are never
    // offered.
    for granule in [1, 2] {
        let mut m = Model::new(FfaVersion::V1_2);
        m.buffer_rule.granule = granule;
        let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, 4);
        assert!(p.spmc().is_none());
        assert!(m.calls.iter().all(|c| c[0] as u32 != abi::FFA_RXTX_MAP_64));
    }
}

/// Every function ID, at every host version, with arguments that reach the SPMC and with
/// arguments that do not: each answer is one FF-A allows for that function (`answers`, the
/// fuzzer's and the hostile suite's judge).
#[test]
fn every_answer_is_one_its_function_may_give() {
    for host_v in [V1_0, V1_1, V1_2] {
        let (p, mut m) = host(FfaVersion::V1_2, host_v);
        for n in 0x60..=0xff {
            for fid in [abi::fid32(n), abi::fid64(n)] {
                for args in [
                    &[0x8001, 0, 0, 0, 0][..],
                    &[0x8001_0000, 2, 0, 0, 0],
                    &[u64::MAX; 5],
                    &[0, 0x1000, 0x1000, 0, 0],
                ] {
                    let r = p.handle(&call(fid, args), &mut m);
                    assert!(
                        crate::ffa::answers::well_formed(fid, &r.regs),
                        "host {host_v:#x} fid {fid:#x} {args:x?}: {:x?}",
                        &r.regs[..4]
                    );
                }
            }
        }
    }
}

/// An SPMC that still holds the normal world's RX/TX pair from a boot stage before warden
/// (U-Boot's FF-A support): RXTX_MAP is DENIED until that pair is unmapped (issue 13).
/// The rest is the model's.
struct LeftMapped {
    stale_pair: bool,
    unmap_fails: bool,
}

impl LeftMapped {
    fn answer(&mut self, model: &mut Model, r: &Regs) -> Regs {
        match r[0] as u32 {
            RXTX_MAP_64 if self.stale_pair => {
                model.calls.push(*r);
                abi::error_regs(FfaError::Denied)
            }
            RXTX_UNMAP => {
                model.calls.push(*r);
                // OP-TEE's SPMC: the normal world's pair, ID 0 in w1[31:16].
                if self.unmap_fails || !self.stale_pair || r[1] >> 16 != 0 {
                    return abi::error_regs(FfaError::InvalidParameters);
                }
                self.stale_pair = false;
                abi::success_regs(&[])
            }
            _ => model.spmc_call(r),
        }
    }

    /// warden's boot against this SPMC at v1.2: the proxy, the model's record of the calls
    /// and what is left of the stale pair.
    fn boot_warden(mut self) -> (FfaProxy, Model, Self) {
        let mut model = Model::new(FfaVersion::V1_2);
        let mut env = Intercepted::new(&mut model, |m: &mut Model, r: &Regs| self.answer(m, r));
        let p = FfaProxy::init(&mut env, WARDEN_TX, WARDEN_RX, 4);
        (p, model, self)
    }
}

#[test]
fn init_unmaps_buffers_an_earlier_boot_stage_left_mapped() {
    let (p, model, spmc) = LeftMapped {
        stale_pair: true,
        unmap_fails: false,
    }
    .boot_warden();
    let info = p.spmc().expect("FF-A is up after the stale pair is gone");
    assert_eq!(info.version, FfaVersion::V1_2);
    assert_eq!(info.own_buffer_pages, 4);
    assert_eq!(info.partitions.len(), 2);
    assert!(!spmc.stale_pair);
    // DENIED, then the unmap with ID 0, a new FFA_VERSION, and warden's own pair.
    let fids: Vec<u32> = model.calls.iter().map(|r| r[0] as u32).collect();
    let denied = fids.iter().position(|&f| f == RXTX_MAP_64).unwrap();
    assert_eq!(
        fids[denied + 1..denied + 4],
        [RXTX_UNMAP, abi::FFA_VERSION, RXTX_MAP_64]
    );
    assert_eq!(model.calls[denied + 1][1], 0, "ID 0 in w1[31:16]");
    assert_eq!(model.calls[denied + 2][1], V1_2);
}

#[test]
fn init_without_a_stale_pair_never_unmaps() {
    let (p, model, _) = LeftMapped {
        stale_pair: false,
        unmap_fails: false,
    }
    .boot_warden();
    assert!(p.spmc().is_some());
    assert!(!model.calls.iter().any(|r| r[0] as u32 == RXTX_UNMAP));
}

#[test]
fn a_stale_pair_that_cannot_be_unmapped_leaves_ffa_off() {
    let (p, _, _) = LeftMapped {
        stale_pair: true,
        unmap_fails: true,
    }
    .boot_warden();
    assert!(p.spmc().is_none());
}
