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
