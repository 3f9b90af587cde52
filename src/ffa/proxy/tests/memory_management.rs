//! Memory management: share, lend, fragments, reclaim and rollback.

use super::*;

#[test]
fn share_translates_between_every_pair_of_versions() {
    for spmc in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        for hv in [V1_0, V1_1, V1_2] {
            let (p, mut m) = host(spmc, hv);
            let desc = linux_share(&[(0x4002_0000, 1)], host_version(hv));
            let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
            let got =
                crate::ffa::memory::parse(&m.shares[&h], spmc, crate::ffa::memory::MemOp::Share)
                    .unwrap();
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
        m.buffer_rule.whole_descriptor = false;
        p.handle(&call(abi::FFA_VERSION, &[hv]), &mut m);
        assert!(is_success(
            &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
        ));
        let cs = every_other_page(0x4002_0000, 700);
        let desc = linux_share(&cs, host_version(hv));
        assert!(desc.len() > 2 * 4096);
        let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
        let got = crate::ffa::memory::parse(
            &m.shares[&h],
            FfaVersion::V1_2,
            crate::ffa::memory::MemOp::Share,
        )
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
            FfaError::Denied,
            "a sender that is not the host (§10.5: DENIED)",
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
    let cs = every_other_page(0x4002_0000, 400);
    let desc = linux_share(&cs, FfaVersion::V1_2);
    let r = share_first_page(&p, &mut m, &desc);
    let temp = r.regs[1] | r.regs[2] << 32;
    assert_ne!(temp & 1 << 63, 0, "a hypervisor-allocated handle");
    // Meanwhile: another transaction is busy, the wrong handle is refused.
    let one = linux_share(&[(0x4800_0000, 1)], FfaVersion::V1_2);
    assert!(is_error(
        &send(&p, &mut m, MEM_SHARE_64, &one),
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
    let cs = every_other_page(0x4003_0000, 400);
    let desc = linux_share(&cs, FfaVersion::V1_2);
    let r = share_first_page(&p, &mut m, &desc);
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
    m.fail_at = Some((Fragment::Last, FfaError::NoMemory));
    assert!(is_error(
        &send(&p, &mut m, MEM_LEND_32, &desc),
        FfaError::NoMemory
    ));
    assert!(m.unmapped.is_empty(), "the lend was undone");
    assert_eq!(p.live_handles(), 0);
    let h = handle_of(&send(&p, &mut m, MEM_LEND_32, &desc));
    assert!(is_success(&reclaim(&p, &mut m, h)));
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
    let cs = every_other_page(0x4002_0000, 700);
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
fn live_handles_are_bounded_with_no_memory() {
    use crate::ffa::proxy::memory_management::MAX_LIVE_HANDLES;
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

/// The ranges the live handles record together are bounded too (`MAX_LIVE_RANGES`, a
/// running count kept with the records): a share past the bound is NO_MEMORY before it
/// reaches the SPMC, and a reclaim gives its ranges back to the count.
#[test]
fn live_ranges_are_bounded_with_no_memory() {
    use crate::ffa::proxy::memory_management::MAX_LIVE_RANGES;
    const PER_SHARE: u64 = 4000;
    let (p, mut m) = host_with(ANY_LENGTH, 16);
    // Adjacent one-page ranges (each its own constituent), 16 MiB per share.
    let share = |k: u64| {
        let base = 0x4010_0000 + k * PER_SHARE * 0x1000;
        let cs: Vec<(u64, u32)> = (0..PER_SHARE).map(|i| (base + i * 0x1000, 1)).collect();
        linux_share(&cs, FfaVersion::V1_1)
    };
    let fit = MAX_LIVE_RANGES as u64 / PER_SHARE;
    let mut handles = Vec::new();
    for k in 0..fit {
        handles.push(handle_of(&send(&p, &mut m, MEM_SHARE_64, &share(k))));
    }
    let before = m.calls.len();
    let r = send(&p, &mut m, MEM_SHARE_64, &share(fit));
    assert!(is_error(&r, FfaError::NoMemory), "{r:x?}");
    assert_eq!(m.calls.len(), before, "nothing reached the SPMC");
    assert_eq!(p.live_handles(), fit as usize);
    assert!(is_success(&reclaim(&p, &mut m, handles[0])));
    handle_of(&send(&p, &mut m, MEM_SHARE_64, &share(fit)));
}

/// Issue 17 item 3: a first fragment that already holds the whole descriptor, sent with a
/// larger total length (the FF-A ACS sends total + 16), is INVALID_PARAMETERS and starts
/// nothing: the next share is not BUSY.
#[test]
fn a_total_length_beyond_a_complete_first_fragment_is_refused() {
    for host_v in [V1_0, V1_1, V1_2] {
        let (p, mut m) = host(FfaVersion::V1_2, host_v);
        let d = linux_share(&[(0x4002_0000, 1)], host_version(host_v));
        m.write_host(HOST_TX, &d);
        let n = d.len() as u64;
        let r = p.handle(&call(MEM_SHARE_64, &[n + 16, n, 0, 0]), &mut m);
        assert!(
            is_error(&r, FfaError::InvalidParameters),
            "{host_v:#x}: {r:x?}"
        );
        assert!(
            is_error(
                &p.handle(&call(MEM_FRAG_TX, &[0, 1 << 31, 16, 0]), &mut m),
                FfaError::InvalidParameters
            ),
            "no transaction pending"
        );
        let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &d));
        assert!(is_success(&reclaim(&p, &mut m, h)));
    }
}

/// Issue 17 item 4: FFA_RXTX_UNMAP while the host is half way through a fragmented send
/// abandons that transaction (nothing was claimed or sent) and unmaps; the buffers can be
/// mapped again, and the abandoned handle is gone.
#[test]
fn rxtx_unmap_abandons_a_half_sent_transaction() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_2);
    let cs = every_other_page(0x4002_0000, 400);
    let desc = linux_share(&cs, FfaVersion::V1_2);
    let r = share_first_page(&p, &mut m, &desc);
    let calls = m.calls.len();
    assert!(is_success(&p.handle(&call(RXTX_UNMAP, &[0]), &mut m)));
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
    ));
    assert!(is_error(
        &p.handle(&call(MEM_FRAG_TX, &[r.regs[1], r.regs[2], 4096, 0]), &mut m),
        FfaError::InvalidParameters
    ));
    assert_eq!(m.calls.len(), calls, "the SPMC never heard of it");
    let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
    assert!(is_success(&reclaim(&p, &mut m, h)));
}

/// Issue 14 item 6: the reserved cacheability (0b00, 0b10) and shareability (0b01)
/// encodings of normal memory are INVALID_PARAMETERS and never reach the SPMC; every other
/// encoding is shared.
#[test]
fn reserved_cache_and_shareability_encodings_are_refused() {
    let (p, mut m) = host(FfaVersion::V1_2, V1_1);
    let d = linux_share(&[(0x4002_0000, 1)], FfaVersion::V1_1);
    let with = |attributes: u8| {
        let mut d = d.clone();
        d[2] = attributes;
        d
    };
    for reserved in [0x23u8, 0x2b, 0x2d] {
        let before = m.calls.len();
        for fid in [MEM_SHARE_64, MEM_LEND_32] {
            let r = send(&p, &mut m, fid, &with(reserved));
            assert!(is_error(&r, FfaError::InvalidParameters), "{reserved:#x}");
        }
        assert_eq!(m.calls.len(), before);
    }
    for fine in [0x24u8, 0x26, 0x27, 0x2c, 0x2e, 0x2f] {
        let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &with(fine)));
        assert!(is_success(&reclaim(&p, &mut m, h)), "{fine:#x}");
    }
}

/// Issue 14 item 6: when the SPMC answers warden's first fragment unexpectedly (FFA_MEM_FRAG_RX
/// at the wrong offset, or FFA_SUCCESS before the last fragment), the transaction it holds
/// is reclaimed by the handle it named, and the host's share fails with nothing changed.
#[test]
fn an_unexpected_answer_to_the_first_fragment_is_reclaimed() {
    let mem_share_64 = MEM_SHARE_64;
    type Tamper = fn(Regs) -> Regs;
    let wrong_offset: Tamper = |mut a| {
        a[3] += 16;
        a
    };
    let early_success: Tamper = |a| abi::success_regs(&[a[1], a[2]]);
    for tamper in [wrong_offset, early_success] {
        let (p, mut m) = setup_pages(FfaVersion::V1_2, 1);
        m.buffer_rule.whole_descriptor = false;
        p.handle(&call(abi::FFA_VERSION, &[V1_2]), &mut m);
        p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m);
        // Larger than warden's one-page buffer: warden sends it in fragments.
        let cs = every_other_page(0x4002_0000, 400);
        let desc = linux_share(&cs, FfaVersion::V1_2);
        let mut named = None;
        let r = {
            let mut env = tampered(&mut m, |c: &Regs, a: Regs| {
                if c[0] as u32 == mem_share_64 && a[0] == MEM_FRAG_RX {
                    named = Some(a[1] as u32 as u64 | (a[2] as u32 as u64) << 32);
                    tamper(a)
                } else {
                    a
                }
            });
            send(&p, &mut env, MEM_SHARE_64, &desc)
        };
        assert!(r.regs[0] == abi::FFA_ERROR as u64, "{r:x?}");
        let h = named.expect("the SPMC named a handle");
        assert!(
            m.calls
                .iter()
                .any(|c| c[0] as u32 == MEM_RECLAIM && (c[1] | c[2] << 32) == h),
            "warden reclaimed handle {h:#x}"
        );
        assert_eq!(p.live_handles(), 0);
        assert!(m.unmapped.is_empty());
        // Nothing was left claimed: the same pages share again.
        let h = handle_of(&send(&p, &mut m, MEM_SHARE_64, &desc));
        assert!(is_success(&reclaim(&p, &mut m, h)));
    }
}

// ---- Against an SPMC that fails half way, loses handles or has other buffer rules ----

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

/// 600 one-page constituents: about 9.7 KiB in the v1.2 layout, three fragments of warden's
/// one-page buffer.
fn big(op_lend: bool) -> Vec<u8> {
    let cs = every_other_page(0x4002_0000, 600);
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
    let r = share_first_page(&p, &mut m, &desc);
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
fn spmc_buffer_rules_for_warden_s_buffers_and_descriptors() {
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
    let cs = every_other_page(0x4002_0000, 100);
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

/// The dispatcher's look-up table (`SERVED_SINCE`, which memory calls reach first) says
/// what a scan of `SERVED` says, for every function number, width and version.
#[test]
fn served_lookup_agrees_with_the_table() {
    use crate::ffa::proxy::{SERVED, SERVED_SINCE};
    for num in 0..=0xffu32 {
        for is_64 in [false, true] {
            for v in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
                let scan = SERVED
                    .iter()
                    .any(|&(n, w, since)| n == num && w == is_64 && v >= since);
                let lookup = SERVED_SINCE[num as usize][is_64 as usize].is_some_and(|s| v >= s);
                assert_eq!(scan, lookup, "{num:#x} {is_64} {v}");
            }
        }
    }
}
