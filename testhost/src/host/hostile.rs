//! The hostile host: every function ID of the FF-A range, 32- and 64-bit, with edge-case
//! and seeded random arguments. Every answer must be one FF-A allows for the function called
//! (`warden::ffa::answers`: a buffer call never gets a DIRECT_RESP, a call a host may not
//! make gets only NOT_SUPPORTED), warden must keep serving correct calls after every batch,
//! and warden's counters must match what this host did.

use warden::ffa::answers::well_formed;

use super::{FFA_SUCCESS_32, Report, smc};

use warden::ffa::abi::{self, num};
use warden::hvc::WARDEN_COUNTERS;

const FFA_ID_GET: u32 = abi::FFA_ID_GET;
const FFA_RXTX_UNMAP: u32 = abi::fid32(num::RXTX_UNMAP);
const FFA_DIRECT_REQ_32: u32 = abi::fid32(num::MSG_SEND_DIRECT_REQ);
const FFA_DIRECT_RESP_32: u64 = abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64;
const FFA_MEM_FRAG_RX: u64 = abi::fid32(num::MEM_FRAG_RX) as u64;
const FFA_MEM_RECLAIM: u32 = abi::fid32(num::MEM_RECLAIM);

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The checks `run` makes: well-formed answers, correct calls after every batch, the count.
pub const PLANNED: u32 = 3;

/// Runs the suite with `seed`; `warden_mem` and `mmio` are addresses the host must not
/// be able to use. Returns the number of hostile calls made.
pub fn run(
    r: &mut Report,
    seed: u64,
    warden_mem: u64,
    mmio: u64,
    correct: &dyn Fn() -> bool,
) -> u64 {
    let before = smccc::hvc64(WARDEN_COUNTERS, [0; 17])[1];
    let mut rng = Rng(seed | 1);
    let edges = [
        0,
        1,
        u64::MAX,
        0xffff_ffff,
        0x8000_0000_0000_0000,
        0x8001,
        warden_mem,
        mmio,
        0x1000,
    ];
    let mut calls = 0u64;
    let mut malformed = 0u64;
    let mut first_bad = None;
    let mut batches_ok = 0u64;
    let mut given_up = 0u64;
    for n in 0x60u32..=0xff {
        for fid in [abi::fid32(n), abi::fid64(n)] {
            for variant in 0..6 {
                let mut args = [0u64; 17];
                for a in args.iter_mut() {
                    *a = if variant % 2 == 0 {
                        edges[(rng.next() % edges.len() as u64) as usize]
                    } else {
                        rng.next()
                    };
                }
                // Keep the host's buffers: an exact RXTX_UNMAP(0) would legitimately
                // succeed and end the test's mailbox.
                if fid == FFA_RXTX_UNMAP && args[0] as u32 == 0 {
                    args[0] = 1;
                }
                let out = smccc::smc64(fid, args);
                calls += 1;
                if !well_formed(fid, &out) {
                    malformed += 1;
                    first_bad.get_or_insert((fid, out[0], out[2]));
                }
                // A memory transaction the random arguments happened to start (FRAG_RX:
                // warden waits for the next fragment) or complete (SUCCESS with a handle)
                // is given up as a host would, so that this host holds nothing it does not
                // know of (the lifecycle section lets go of everything it holds).
                let memory_call = matches!(n, num::MEM_LEND | num::MEM_SHARE | num::MEM_FRAG_TX);
                if memory_call && (out[0] == FFA_MEM_FRAG_RX || out[0] == FFA_SUCCESS_32) {
                    let (lo, hi) = if out[0] == FFA_MEM_FRAG_RX {
                        (out[1], out[2])
                    } else {
                        (out[2], out[3])
                    };
                    let g = smc(FFA_MEM_RECLAIM, &[lo, hi, 0]);
                    given_up += 1;
                    say!(
                        "testhost: hostile suite: {fid:#x} started a transaction ({:#x}); reclaim {:#x}",
                        out[0],
                        g[0]
                    );
                }
            }
        }
        // After every function number's batch: correct calls still work.
        if correct() {
            batches_ok += 1;
        }
    }
    let after = smccc::hvc64(WARDEN_COUNTERS, [0; 17])[1];
    say!(
        "testhost: hostile suite seed {seed:#x}: {calls} calls, {malformed} malformed answers, {batches_ok}/160 batches followed by correct calls, {given_up} transaction(s) given up"
    );
    r.check(
        "every hostile call got a well-formed FF-A answer",
        malformed == 0,
        format_args!("first {:x?}", first_bad),
    );
    r.check(
        "warden served correct calls after every batch",
        batches_ok == 160,
        format_args!("{batches_ok}"),
    );
    // The correct calls between batches are FF-A calls too: 2 per batch; and the reclaims of
    // transactions given up.
    let expected = calls + given_up + 2 * 160;
    r.check(
        "warden counted exactly the calls this host made",
        after - before == expected,
        format_args!("warden {} host {expected}", after - before),
    );
    calls
}

/// The correct calls made between batches (two FF-A calls, as `run` counts them).
pub fn correct_calls_work(optee: u64) -> bool {
    let id = smc(FFA_ID_GET, &[]);
    let d = smc(FFA_DIRECT_REQ_32, &[optee, 0, 0]);
    id[0] == FFA_SUCCESS_32 && d[0] == FFA_DIRECT_RESP_32 && d[3] == 1
}
