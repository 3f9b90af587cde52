//! The host's lifecycle (README "Host lifecycle"): once it holds nothing, a second kernel
//! negotiates its own version.

use super::*;

const CREATE: u32 = abi::fid32(num::NOTIFICATION_BITMAP_CREATE);
const DESTROY: u32 = abi::fid32(num::NOTIFICATION_BITMAP_DESTROY);

fn version(p: &FfaProxy, m: &mut Model, v: u64) -> u64 {
    p.handle(&call(abi::FFA_VERSION, &[v]), m).regs[0]
}

/// A v1.1 host holding all it can: buffers, a bitmap and a lent page.
fn holding_everything() -> (FfaProxy, Model, u64) {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    assert!(is_success(&p.handle(&call(CREATE, &[0, 2]), &mut m)));
    let mut d = linux_share(&[(0x4003_0000, 1)], FfaVersion::V1_1);
    d[2] = 0;
    let h = handle_of(&send(&p, &mut m, MEM_LEND_32, &d));
    (p, m, h)
}

#[test]
fn a_second_kernel_negotiates_another_version_once_the_host_holds_nothing() {
    let (p, mut m, h) = holding_everything();
    // Each release but the last leaves the version fixed.
    assert_eq!(version(&p, &mut m, V1_0), 0xffff_ffff);
    assert!(is_success(&reclaim(&p, &mut m, h)));
    assert_eq!(
        version(&p, &mut m, V1_0),
        0xffff_ffff,
        "buffers, bitmap left"
    );
    assert!(is_success(&p.handle(&call(DESTROY, &[0]), &mut m)));
    assert_eq!(version(&p, &mut m, V1_0), 0xffff_ffff, "buffers left");
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    // Nothing held: a second kernel at v1.0, which may still change its mind.
    assert_eq!(version(&p, &mut m, V1_2), V1_2);
    assert_eq!(version(&p, &mut m, V1_0), V1_2);
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
    ));
    // Served as v1.0: 8-byte partition descriptors with no size in w3, no SPM_ID_GET, no
    // notifications.
    let r = p.handle(&call(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]), &mut m);
    assert!(is_success(&r) && r.regs[2] == 2 && r.regs[3] == 0, "{r:x?}");
    let rx = m.host_bytes(HOST_RX, 16);
    assert_eq!((rx[0], rx[1], rx[8], rx[9]), (0x01, 0x80, 0x02, 0x80));
    for fid in [abi::FFA_SPM_ID_GET, CREATE] {
        assert!(is_error(
            &p.handle(&call(fid, &[0, 2]), &mut m),
            FfaError::NotSupported
        ));
    }
    // Holding buffers again, its version is fixed as the first kernel's was.
    assert_eq!(version(&p, &mut m, V1_1), 0xffff_ffff);
    assert_eq!(version(&p, &mut m, V1_0), V1_2);
}

#[test]
fn whichever_release_comes_last_reopens() {
    // The handle last: buffers unmapped while the page is still lent.
    let (p, mut m, h) = holding_everything();
    assert!(is_success(&p.handle(&call(DESTROY, &[0]), &mut m)));
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    assert_eq!(version(&p, &mut m, V1_2), 0xffff_ffff, "a handle left");
    assert!(is_success(&reclaim(&p, &mut m, h)));
    assert_eq!(version(&p, &mut m, V1_2), V1_2);
    // The bitmap last.
    let (p, mut m, h) = holding_everything();
    assert!(is_success(&reclaim(&p, &mut m, h)));
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    assert_eq!(version(&p, &mut m, V1_2), 0xffff_ffff, "the bitmap left");
    assert!(is_success(&p.handle(&call(DESTROY, &[0]), &mut m)));
    assert_eq!(version(&p, &mut m, V1_2), V1_2);
}

#[test]
fn refused_releases_and_hosts_that_never_held_anything_keep_their_version() {
    // A host that never held anything: the boot rule, fixed at its first other call.
    let (p, mut m) = setup(FfaVersion::V1_2);
    assert_eq!(version(&p, &mut m, V1_1), V1_2);
    assert!(is_success(&p.handle(&call(abi::FFA_ID_GET, &[]), &mut m)));
    assert!(is_error(
        &p.handle(&call(RXTX_UNMAP, &[0]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_error(
        &reclaim(&p, &mut m, 0x1000),
        FfaError::InvalidParameters
    ));
    assert_eq!(version(&p, &mut m, V1_0), 0xffff_ffff);
    // A destroy the SPMC refuses leaves the bitmap, and the version fixed.
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    assert!(is_success(&p.handle(&call(CREATE, &[0, 2]), &mut m)));
    assert!(is_error(
        &p.handle(&call(DESTROY, &[5]), &mut m),
        FfaError::InvalidParameters
    ));
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    assert_eq!(
        version(&p, &mut m, V1_0),
        0xffff_ffff,
        "the bitmap is still there"
    );
    // Released, then a stray call of the first kernel: served at its version, which it fixes.
    assert!(is_success(&p.handle(&call(DESTROY, &[0]), &mut m)));
    let r = p.handle(&call(abi::FFA_SPM_ID_GET, &[]), &mut m);
    assert!(is_success(&r), "still served as v1.1");
    assert_eq!(version(&p, &mut m, V1_0), 0xffff_ffff);
}
