//! The whole proxy under a hostile host: any sequence of FF-A calls (any function ID,
//! 32/64-bit, any arguments, any bytes in the TX buffer, so fragmented memory transactions
//! and FFA_VERSION/FEATURES arguments included) against the SPMC model at v1.0, v1.1 or
//! v1.2. Every answer must be one FF-A allows for the function called
//! (`warden::ffa::answers`), and warden's record of memory handles must always equal the
//! SPMC's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::ffa::abi::{self, FfaError, fid32, fid64, num};
use warden::ffa::answers::well_formed;
use warden::ffa::proxy::FfaProxy;
use warden::ffa::proxy::ProxyEnv;
use warden::ffa::spmc_model::{Fragment, Model, WARDEN_RX, WARDEN_TX};
use warden::ffa::version::FfaVersion;

const HOST_TX: u64 = 0x4000_0000;
const HOST_RX: u64 = 0x4000_1000;

/// Functions worth aiming at (the rest of 0x60-0xff is reached through raw IDs).
const FIDS: [u32; 20] = [
    fid32(num::VERSION),
    fid32(num::FEATURES),
    fid32(num::RX_RELEASE),
    fid64(num::RXTX_MAP),
    fid32(num::RXTX_UNMAP),
    fid32(num::PARTITION_INFO_GET),
    fid32(num::ID_GET),
    fid32(num::RUN),
    fid32(num::MSG_SEND_DIRECT_REQ),
    fid64(num::MSG_SEND_DIRECT_REQ),
    fid64(num::MEM_LEND),
    fid64(num::MEM_SHARE),
    fid32(num::MEM_SHARE),
    fid32(num::MEM_RECLAIM),
    fid32(num::MEM_FRAG_TX),
    fid32(num::NOTIFICATION_BITMAP_CREATE),
    fid32(num::NOTIFICATION_BITMAP_DESTROY),
    fid64(num::NOTIFICATION_INFO_GET),
    fid64(num::MSG_SEND_DIRECT_REQ2),
    fid32(num::SPM_ID_GET),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let spmc = [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2][(sel % 3) as usize];
    // The SPMC's variants: Hafnium's buffer rule (any length in fragments) besides
    // OP-TEE's, and now and then an EL3 without FF-A.
    let mut m = if sel & 0x3c == 0x3c {
        Model::without_ffa()
    } else {
        Model::new(spmc)
    };
    m.buffer_rule.whole_descriptor = sel & 0x20 == 0;
    let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, 1 + u64::from(sel >> 6));
    // A host that has its buffers (most interesting paths need them); the input may
    // still unmap and remap them.
    p.handle(
        &abi::call_regs(abi::FFA_VERSION, &[0x1_0000 | u64::from((sel >> 2) % 3)]),
        &mut m,
    );
    p.handle(
        &abi::call_regs(abi::FFA_RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]),
        &mut m,
    );
    for _ in 0..32 {
        // One call: a selector, 5 argument words, and optionally bytes for the TX buffer.
        let Some((head, tail)) = rest.split_first_chunk::<24>() else {
            break;
        };
        rest = tail;
        let fid = if head[0] & 0x80 == 0 {
            FIDS[usize::from(head[0]) % FIDS.len()]
        } else {
            // Any number of the FF-A range, 0x60-0xff: 0x60 plus a byte modulo 0xa0.
            let n = 0x60 + u32::from(head[1]) % 0xa0;
            if head[0] & 1 != 0 {
                abi::fid64(n)
            } else {
                abi::fid32(n)
            }
        };
        let mut args = [0u64; 5];
        for (i, a) in args.iter_mut().enumerate() {
            let b = &head[4 + i * 4..8 + i * 4];
            let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as u64;
            // Small values are the interesting ones for lengths, counts and IDs.
            *a = if head[2] & (1 << i) != 0 {
                w & 0x1fff
            } else {
                w
            };
        }
        if head[3] & 1 != 0 {
            let n = (usize::from(head[3]) * 8).min(rest.len());
            let (bytes, tail) = rest.split_at(n);
            rest = tail;
            m.write_host(HOST_TX, bytes);
        }
        // head[2] bits 5-7: make this call's memory transaction fail at the SPMC, at the
        // first, the second or the last fragment.
        m.fail_at = match head[2] >> 5 {
            5 => Some((Fragment::Nth(0), FfaError::NoMemory)),
            6 => Some((Fragment::Nth(1), FfaError::Aborted)),
            7 => Some((Fragment::Last, FfaError::InvalidParameters)),
            _ => None,
        };
        let r = p.handle(&abi::call_regs(fid, &args), &mut m);
        assert!(
            well_formed(fid, &r.regs),
            "{fid:#x} {args:x?} -> {:x?}",
            &r.regs[..4]
        );
        assert_eq!(
            p.live_handles(),
            m.shares.len(),
            "warden and the SPMC agree on handles"
        );
        assert_eq!(
            m.in_progress(),
            None,
            "warden leaves no half-sent transaction at the SPMC"
        );
    }
});
