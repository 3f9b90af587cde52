//! `FfaProxy::handle_in_place` (the trap path) against `handle`: the same registers for
//! the host and the same calls to the SPMC, for the calls it answers itself and for those
//! it hands to `handle`.

use super::*;

/// `handle`'s reply applied to the host's registers as the trap path did before: x0 to
/// x(count-1) replaced, the others kept.
fn applied(regs: &Regs, r: &Reply) -> Regs {
    let mut out = *regs;
    out[..r.count].copy_from_slice(&r.regs[..r.count]);
    out
}

fn with_junk(mut r: Regs) -> Regs {
    for (i, x) in r[8..].iter_mut().enumerate() {
        *x = 0xbad0 + i as u64;
    }
    r
}

#[test]
fn in_place_answers_equal_handle_for_every_host_version() {
    let mut upper = call(DIRECT_REQ_32, &[0x8001, 0, 10, 20, 30, 40, 50]);
    upper[3] |= 0xffff_0000_0000_0000;
    upper[1] |= 1 << 40;
    let mut upper64 = call(DIRECT_REQ_64, &[0x8001, 0, 10]);
    upper64[2] |= 1 << 33;
    let calls = [
        call(abi::FFA_ID_GET, &[]),
        call(abi::fid64(num::ID_GET), &[]),
        call(abi::FFA_SPM_ID_GET, &[]),
        call(DIRECT_REQ_32, &[0x8001, 0, 10, 20, 30, 40, 50]),
        call(DIRECT_REQ_64, &[0x8001, 0, 1 << 40, 20, 30, 40, 50]),
        upper,
        upper64,
        call(DIRECT_REQ_64, &[0x0005_8001, 0, 1]),
        call(DIRECT_REQ_32, &[0x0000_0001, 0, 1]),
        call(DIRECT_REQ_32, &[0x0000_8003, 0, 1]),
        call(DIRECT_REQ_32, &[0x0000_8001, 1 << 31, 1]),
        call(DIRECT_REQ_32, &[0x0000_8001, 5, 1]),
        call(abi::fid32(num::RUN), &[0x8001_0000]),
        call(abi::FFA_VERSION, &[V1_1]),
    ];
    for host_v in [V1_0, V1_1, V1_2] {
        let (p1, mut m1) = host(FfaVersion::V1_2, host_v);
        let (p2, mut m2) = host(FfaVersion::V1_2, host_v);
        for c in calls.map(with_junk) {
            let expected = applied(&c, &p1.handle(&c, &mut m1));
            let mut got = c;
            let count = p2.handle_in_place(&mut got, &mut m2);
            assert_eq!(got, expected, "host {host_v:#x}, call {:#x}", c[0]);
            assert!(count == 8 || count == 18 || count == 4);
            assert_eq!(m1.calls, m2.calls, "host {host_v:#x}, call {:#x}", c[0]);
        }
    }
}

#[test]
fn in_place_answers_equal_handle_before_any_version_and_without_an_spmc() {
    let calls = [
        call(abi::FFA_ID_GET, &[]),
        call(DIRECT_REQ_32, &[0x8001, 0, 1]),
    ];
    let (p1, mut m1) = setup(FfaVersion::V1_2);
    let (p2, mut m2) = setup(FfaVersion::V1_2);
    for c in calls.map(with_junk) {
        let expected = applied(&c, &p1.handle(&c, &mut m1));
        let mut got = c;
        p2.handle_in_place(&mut got, &mut m2);
        assert_eq!(got, expected, "call {:#x}", c[0]);
        assert_eq!(m1.calls, m2.calls);
    }
    // The first call fixed v1.0 on both paths (DEN0077A v1.2 §13.2.1).
    assert_eq!(
        p2.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m2).regs[0],
        p1.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m1).regs[0],
    );
    let absent = FfaProxy::absent();
    let mut m = Model::new(FfaVersion::V1_2);
    for c in calls.map(with_junk) {
        let expected = applied(&c, &absent.handle(&c, &mut m));
        let mut got = c;
        absent.handle_in_place(&mut got, &mut m);
        assert_eq!(got, expected);
    }
}

#[test]
fn hot_calls_are_served_at_every_version() {
    let (p, _) = setup(FfaVersion::V1_2);
    for v in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        for f in [
            abi::FfaFunction::decode(abi::FFA_ID_GET).unwrap(),
            abi::FfaFunction::decode(DIRECT_REQ_32).unwrap(),
            abi::FfaFunction::decode(DIRECT_REQ_64).unwrap(),
        ] {
            assert!(p.serves(f, v), "{f:?} at {v:?}");
        }
    }
}

/// The in-place path reads the host's version from `HostVersion`'s atomic once it is
/// fixed: a reopen (README "Host lifecycle") must clear it, so that the next kernel's
/// version, not the first kernel's, decides the result registers, and its first direct
/// request fixes it again.
#[test]
fn in_place_direct_request_follows_a_reopened_version() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let req = with_junk(call(DIRECT_REQ_32, &[0x8001, 0, 10]));
    let mut x = req;
    assert_eq!(p.handle_in_place(&mut x, &mut m), 8, "a v1.1 host: x0-x7");
    assert_eq!(x[8..], req[8..], "a v1.1 host keeps its x8-x17");
    let version = |p: &FfaProxy, m: &mut Model, v| p.handle(&call(abi::FFA_VERSION, &[v]), m);
    assert_eq!(
        version(&p, &mut m, V1_2).regs[0],
        0xffff_ffff,
        "fixed at v1.1"
    );
    // The host lets go of its buffers, the only thing it held: open again.
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    assert_eq!(version(&p, &mut m, V1_2).regs[0], V1_2);
    let mut x = req;
    assert_eq!(
        p.handle_in_place(&mut x, &mut m),
        18,
        "now a v1.2 host: x0-x17"
    );
    assert!(x[8..].iter().all(|&r| r == 0), "{x:x?}");
    // That request fixed v1.2.
    assert_eq!(version(&p, &mut m, V1_1).regs[0], 0xffff_ffff);
    assert_eq!(version(&p, &mut m, V1_2).regs[0], V1_2);
}
