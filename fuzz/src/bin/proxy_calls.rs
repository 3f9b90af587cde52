//! The whole proxy under a hostile host: any sequence of FF-A calls (any function ID,
//! 32/64-bit, any arguments, any bytes in the TX buffer, so fragmented memory transactions
//! and FFA_VERSION/FEATURES arguments included) against the SPMC model at v1.0, v1.1 or
//! v1.2. Every answer must be a well-formed FF-A response, and warden's record of memory
//! handles must always equal the SPMC's.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::ffa::abi;
use warden::ffa::proxy::FfaProxy;
use warden::ffa::proxy::ProxyEnv;
use warden::ffa::spmc_model::{Model, WARDEN_RX, WARDEN_TX};
use warden::ffa::version::FfaVersion;

const HOST_TX: u64 = 0x4000_0000;
const HOST_RX: u64 = 0x4000_1000;

fn well_formed(fid: u32, r: &[u64; 18]) -> bool {
    if fid == abi::FFA_VERSION {
        return r[0] == 0x1_0002 || r[0] == 0xffff_ffff;
    }
    match r[0] as u32 {
        abi::FFA_ERROR => (-9..=-1).contains(&(r[2] as u32 as i32)),
        abi::FFA_SUCCESS_32 | abi::FFA_SUCCESS_64 => true,
        // FRAG_RX, direct and REQ2 responses, RUN results.
        0x8400_007a | 0x8400_0070 | 0xc400_0070 | 0xc400_008e => true,
        _ => false,
    }
}

/// Functions worth aiming at (the rest of 0x60-0xff is reached through raw IDs).
const FIDS: [u32; 16] = [
    0x8400_0063,
    0x8400_0064,
    0x8400_0065,
    0xc400_0066,
    0x8400_0067,
    0x8400_0068,
    0x8400_0069,
    0x8400_006f,
    0xc400_006f,
    0xc400_0072,
    0xc400_0073,
    0x8400_0073,
    0x8400_0077,
    0x8400_007b,
    0xc400_008d,
    0x8400_0085,
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let spmc = [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2][(sel % 3) as usize];
    let mut m = Model::new(spmc);
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
            FIDS[(head[0] % 16) as usize]
        } else {
            0x8400_0060
                | u32::from(head[0] & 0x7f) + 0x60 - 0x60
                | if head[1] & 1 != 0 { 1 << 30 } else { 0 }
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
    }
});
