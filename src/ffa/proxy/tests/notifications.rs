//! Notifications for the host.

use super::*;

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

/// Issue 17 item 6: FFA_NOTIFICATION_BITMAP_DESTROY of a bitmap that does not exist is
/// DENIED, as is a second CREATE (DEN0077A v1.2 §13.18-13.19; Hafnium's SPMC and the FF-A
/// ACS agree). Neither reaches the SPMC.
#[test]
fn bitmap_destroy_without_a_bitmap_is_denied() {
    let create = abi::fid32(num::NOTIFICATION_BITMAP_CREATE);
    let destroy = abi::fid32(num::NOTIFICATION_BITMAP_DESTROY);
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let before = m.calls.len();
    assert!(is_error(
        &p.handle(&call(destroy, &[0]), &mut m),
        FfaError::Denied
    ));
    assert_eq!(m.calls.len(), before, "refused by warden");
    assert!(is_success(&p.handle(&call(create, &[0, 2]), &mut m)));
    assert!(is_error(
        &p.handle(&call(create, &[0, 2]), &mut m),
        FfaError::Denied
    ));
    assert!(is_success(&p.handle(&call(destroy, &[0]), &mut m)));
    assert!(is_error(
        &p.handle(&call(destroy, &[0]), &mut m),
        FfaError::Denied
    ));
    // Another VM's bitmap is still INVALID_PARAMETERS, created or not.
    assert!(is_error(
        &p.handle(&call(destroy, &[5]), &mut m),
        FfaError::InvalidParameters
    ));
    // A CREATE the SPMC refuses leaves no bitmap behind.
    let mut refusing = tampered(&mut m, |c: &Regs, a: Regs| {
        if c[0] as u32 == create {
            abi::error_regs(FfaError::NoMemory)
        } else {
            a
        }
    });
    assert!(is_error(
        &p.handle(&call(create, &[0, 2]), &mut refusing),
        FfaError::NoMemory
    ));
    assert!(is_error(
        &p.handle(&call(destroy, &[0]), &mut refusing),
        FfaError::Denied
    ));
}

/// Issue 14 item 6: NOTIFICATION_GET's vCPU ID (w1[31:16]) must be one of those the host's
/// bitmap was created for.
#[test]
fn notification_get_checks_the_vcpu_id() {
    let create = abi::fid32(num::NOTIFICATION_BITMAP_CREATE);
    let get = abi::fid32(num::NOTIFICATION_GET);
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    assert!(is_success(&p.handle(&call(create, &[0, 2]), &mut m)));
    let before = m.calls.len();
    for w1 in [2u64 << 16, 0xffff << 16] {
        assert!(
            is_error(
                &p.handle(&call(get, &[w1, 1]), &mut m),
                FfaError::InvalidParameters
            ),
            "{w1:#x}"
        );
    }
    assert_eq!(m.calls.len(), before);
    assert!(is_success(&p.handle(&call(get, &[1 << 16, 1]), &mut m)));
}

#[test]
fn notification_info_get_64_gives_every_version_its_whole_id_list() {
    // Five lists of an endpoint and three vCPU IDs each: 20 IDs, the most x3-x7 hold
    // (DEN0077A v1.2 §13.24: x2[11:7] list count, two bits per list from x2[12]).
    let counts: u64 = (0..5).map(|i| 3 << (2 * i)).sum();
    let flags = 5 << 7 | counts << 12;
    let ids = |base: u64| base | (base + 1) << 16 | (base + 2) << 32 | (base + 3) << 48;
    let list = [flags, ids(0), ids(4), ids(8), ids(12), ids(16)];
    let info64 = abi::fid64(num::NOTIFICATION_INFO_GET);
    let info32 = abi::fid32(num::NOTIFICATION_INFO_GET);
    for (host_v, count) in [(V1_1, 8), (V1_2, 18)] {
        let (p, mut m) = host(FfaVersion::V1_2, host_v);
        m.notification_info = Some(list);
        let r = p.handle(&call(info64, &[]), &mut m);
        assert_eq!(r.regs[0], abi::FFA_SUCCESS_64 as u64);
        assert_eq!(r.regs[2..8], list, "host {host_v:#x}: every ID");
        // x0-x7 for v1.1 (its own x8-x17 stay), and zeros past x7 for v1.2.
        assert_eq!(r.count, count, "host {host_v:#x}");
        if count == 18 {
            assert_eq!(r.regs[8..], [0; 10], "nothing of EL3's past x7");
        }
        // The 32-bit call: ten IDs in w3-w7.
        let r = p.handle(&call(info32, &[]), &mut m);
        assert_eq!(r.regs[0], abi::FFA_SUCCESS_32 as u64);
        assert_eq!(r.regs[3], ids(0) & 0xffff_ffff);
    }
    // GET at v1.2: the bitmaps in w2-w7, zeros past x7.
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let r = p.handle(&call(abi::fid32(num::NOTIFICATION_GET), &[0, 0b11]), &mut m);
    assert!(is_success(&r));
    assert_eq!((r.count, r.regs[8..].to_vec()), (18, std::vec![0; 10]));
}
