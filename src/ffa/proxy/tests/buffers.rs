//! The host's RX/TX buffers and partition discovery.

use super::*;

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
    assert!(is_success(&r) && r.regs[2] == 1);
    assert_eq!(r.regs[3], 0, "count only: w3 (descriptor size) is MBZ");
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
fn partition_info_get_regs_for_v1_2_hosts() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let mut regs = call(abi::FFA_PARTITION_INFO_GET_REGS, &[0, 0, 0]);
    regs[9] = 0xbad;
    let r = p.handle(&regs, &mut m);
    assert_eq!(r.count, 18);
    assert_eq!(r.regs[0], abi::FFA_SUCCESS_64 as u64);
    assert_eq!(r.regs[3] & 0xffff, 0x8001);
    assert_eq!(m.calls.last().unwrap()[9], 0, "only x1-x3 reach the SPMC");
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    assert!(is_error(&p.handle(&regs, &mut m), FfaError::NotSupported));
}

/// Issue 17 item 2: with the count-only flag, w3 (the descriptor size) is MBZ, whatever
/// the SPMC's version.
#[test]
fn count_only_answers_no_descriptor_size() {
    for spmc in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        for host_v in [V1_1, V1_2] {
            let (p, mut m) = host(spmc, host_v);
            let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 1]), &mut m);
            assert!(
                is_success(&r) && r.regs[2] == 2,
                "{spmc} {host_v:#x}: {r:x?}"
            );
            assert_eq!(r.regs[3], 0, "{spmc} {host_v:#x}: w3 MBZ");
        }
    }
}

/// Issue 14 item 6: OP-TEE answers SUCCESS with count 0 for a UUID no partition has.
/// DEN0077A v1.2 §13.8 says INVALID_PARAMETERS, and warden translates; it writes nothing
/// to the host's RX buffer (no zero-byte write, which the runtime would log as "not host
/// RAM") and the host does not get its RX buffer.
#[test]
fn an_unknown_uuid_is_invalid_parameters_even_when_the_spmc_says_success() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let mut optee_like = tampered(&mut m, |call: &Regs, answer: Regs| {
        if call[0] as u32 == abi::FFA_PARTITION_INFO_GET && answer[0] as u32 == abi::FFA_ERROR {
            abi::success_regs(&[0, 24])
        } else {
            answer
        }
    });
    for flags in [0, 1] {
        let r = p.handle(
            &call(abi::FFA_PARTITION_INFO_GET, &[1, 2, 3, 4, flags]),
            &mut optee_like,
        );
        assert!(
            is_error(&r, FfaError::InvalidParameters),
            "flags {flags}: {r:x?}"
        );
    }
    assert_eq!(optee_like.host_writes, 0, "nothing written to the host");
    assert!(is_error(
        &p.handle(&call(abi::FFA_RX_RELEASE, &[]), &mut optee_like),
        FfaError::Denied
    ));
    // The nil UUID still lists everything.
    let r = p.handle(
        &call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]),
        &mut optee_like,
    );
    assert!(is_success(&r) && r.regs[2] == 2);
}

/// Issue 15: the nil UUID is answered from the list read at boot, with no SMC, in every
/// host format; a named UUID still asks the SPMC.
#[test]
fn partition_info_for_every_partition_is_served_from_the_boot_list() {
    for spmc in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        let (p, mut m) = host(spmc, V1_2);
        let before = m.calls.len();
        let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]), &mut m);
        assert!(is_success(&r) && r.regs[2] == 2, "{r:?}");
        assert_eq!(m.calls.len(), before, "no SMC for the nil UUID");
        assert!(is_success(
            &p.handle(&call(abi::FFA_RX_RELEASE, &[]), &mut m)
        ));
        let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 1]), &mut m);
        assert!(is_success(&r) && r.regs[2] == 2 && r.regs[3] == 0);
        assert_eq!(m.calls.len(), before, "nor for its count");
        let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[1, 2, 3, 4, 0]), &mut m);
        assert!(is_error(&r, FfaError::InvalidParameters));
        assert!(m.calls.len() > before, "a named UUID goes to the SPMC");
    }
}
