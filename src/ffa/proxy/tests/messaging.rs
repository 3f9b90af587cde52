//! Direct messaging and FFA_RUN.

use super::*;

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
    assert_eq!(r.count, 8, "v1.1 host: x0-x7 only");
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
    assert_eq!(r.count, 18);
    assert_eq!(r.regs[0], abi::fid64(num::MSG_SEND_DIRECT_RESP2) as u64);
    assert_eq!(r.regs[17], 0x1717);
    assert_eq!(m.calls.last().unwrap()[17], 99, "x4-x17 payload forwarded");
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    assert!(is_error(&p.handle(&regs, &mut m), FfaError::NotSupported));
    let (p, mut m) = host(FfaVersion::V1_1, V1_2);
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

/// Issue 14 item 6: in the 64-bit direct requests x1 (endpoints) and x2 (flags) are 32-bit
/// fields; a set upper half is INVALID_PARAMETERS and reaches no partition. The 32-bit
/// call ignores upper halves (SMC32), as before.
#[test]
fn upper_halves_of_x1_and_x2_in_64_bit_direct_requests_are_refused() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let before = m.calls.len();
    for (x1, x2, what) in [
        (1u64 << 32 | 0x8001, 0u64, "x1[63:32]"),
        (0x8001, 1 << 40, "x2[63:32]"),
    ] {
        let r = p.handle(&call(DIRECT_REQ_64, &[x1, x2, 1, 2, 3]), &mut m);
        assert!(is_error(&r, FfaError::InvalidParameters), "{what}");
    }
    let r = p.handle(
        &call(abi::FFA_MSG_SEND_DIRECT_REQ2, &[1 << 32 | 0x8001, 0, 0]),
        &mut m,
    );
    assert!(
        is_error(&r, FfaError::InvalidParameters),
        "DIRECT_REQ2 x1[63:32]"
    );
    assert_eq!(m.calls.len(), before, "nothing refused reaches the SPMC");
    let r = p.handle(&call(DIRECT_REQ_64, &[0x8001, 0, 1 << 40, 2, 3]), &mut m);
    assert_eq!(
        r.regs[3],
        (1 << 40) + 1,
        "64-bit payload registers stay whole"
    );
    let r = p.handle(
        &call(DIRECT_REQ_32, &[1 << 32 | 0x8001, 1 << 32, 1]),
        &mut m,
    );
    assert_eq!(r.regs[0], abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64);
}

/// Issue 14 item 6: FFA_RUN's vCPU ID (w1[15:0]) must name one of the target's execution
/// contexts: OP-TEE in the model has 2, the other partition 1.
#[test]
fn run_checks_the_vcpu_id() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let run = abi::fid32(num::RUN);
    let before = m.calls.len();
    for w1 in [0x8001_0002u64, 0x8001_ffff, 0x8002_0001] {
        assert!(
            is_error(
                &p.handle(&call(run, &[w1]), &mut m),
                FfaError::InvalidParameters
            ),
            "{w1:#x}"
        );
    }
    assert_eq!(m.calls.len(), before);
    for w1 in [0x8001_0001u64, 0x8002_0000] {
        let r = p.handle(&call(run, &[w1]), &mut m);
        assert_eq!(
            r.regs[0],
            abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64,
            "{w1:#x}"
        );
    }
}

#[test]
fn v1_2_hosts_get_zeros_past_x7_from_direct_requests_and_run() {
    let run = abi::fid32(num::RUN);
    let calls = [
        call(DIRECT_REQ_32, &[0x8001, 0, 1]),
        call(DIRECT_REQ_64, &[0x8001, 0, 1]),
        call(run, &[0x8001_0000]),
    ];
    // The model's EL3 leaves its own values in x8-x17 of these answers.
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    for c in calls {
        let r = p.handle(&c, &mut m);
        assert_eq!(r.count, 18, "{:#x}", c[0]);
        assert!(r.regs[..8].iter().any(|&x| x != 0), "{:#x}: answered", c[0]);
        assert_eq!(
            r.regs[8..],
            [0; 10],
            "{:#x}: nothing of EL3's past x7",
            c[0]
        );
    }
    // Earlier hosts: x0-x7 only, their own x8-x17 stay.
    for host_v in [V1_0, V1_1] {
        let (p, mut m) = host(FfaVersion::V1_2, host_v);
        for c in calls {
            assert_eq!(p.handle(&c, &mut m).count, 8, "{:#x}", c[0]);
        }
    }
    // RUN that completes a resumed DIRECT_REQ2 carries its payload in x4-x17.
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let mut resp2 = [0x4444u64; 18];
    resp2[0] = abi::fid64(num::MSG_SEND_DIRECT_RESP2) as u64;
    resp2[1] = 0x8001 << 16;
    m.run_reply = Some(resp2);
    let r = p.handle(&call(run, &[0x8001_0000]), &mut m);
    assert_eq!((r.count, r.regs), (18, resp2));
}
