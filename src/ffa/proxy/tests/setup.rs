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

#[test]
fn features_agree_with_the_dispatcher_for_every_function_id() {
    for host_v in [V1_0, V1_1, V1_2] {
        let (p, mut m) = host(FfaVersion::V1_2, host_v);
        for n in 0x60..=0xff {
            for fid in [abi::fid32(n), abi::fid64(n)] {
                if RECEIVED.contains(&fid) {
                    continue;
                }
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
