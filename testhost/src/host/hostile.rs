//! The hostile host: every function ID of the FF-A range, 32- and 64-bit, with edge-case
//! and seeded random arguments. Every answer must be a well-formed FF-A response, warden
//! must keep serving correct calls after every batch, and warden's counters must match
//! what this host did.

use super::{FFA_ERROR, FFA_SUCCESS_32, Report, smc};

const FFA_SUCCESS_64: u64 = 0xc400_0061;
const FFA_INTERRUPT: u64 = 0x8400_0062;
const FFA_YIELD: u64 = 0x8400_006c;
const FFA_DIRECT_RESP_32: u64 = 0x8400_0070;
const FFA_DIRECT_RESP_64: u64 = 0xc400_0070;
const FFA_MEM_FRAG_RX: u64 = 0x8400_007a;
const FFA_DIRECT_RESP2: u64 = 0xc400_008e;
const FFA_VERSION: u32 = 0x8400_0063;
const FFA_ID_GET: u32 = 0x8400_0069;
const FFA_RXTX_UNMAP: u32 = 0x8400_0067;
const WARDEN_COUNTERS: u32 = 0x8600_0001;

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

/// Whether `r` is a response FF-A allows for a call of `fid`.
fn well_formed(fid: u32, r: &[u64; 18]) -> bool {
    if fid == FFA_VERSION {
        return r[0] == 0x1_0002 || r[0] == 0xffff_ffff;
    }
    match r[0] {
        FFA_ERROR => (-9..=-1).contains(&(r[2] as u32 as i32)) && r[1] == 0,
        FFA_SUCCESS_32 | FFA_SUCCESS_64 | FFA_MEM_FRAG_RX | FFA_INTERRUPT | FFA_YIELD => true,
        FFA_DIRECT_RESP_32 | FFA_DIRECT_RESP_64 | FFA_DIRECT_RESP2 => true,
        _ => false,
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
    for n in 0x60u32..=0xff {
        for fid in [0x8400_0000 | n, 0xc400_0000 | n] {
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
            }
        }
        // After every function number's batch: correct calls still work.
        if correct() {
            batches_ok += 1;
        }
    }
    let after = smccc::hvc64(WARDEN_COUNTERS, [0; 17])[1];
    say!(
        "testhost: hostile suite seed {seed:#x}: {calls} calls, {malformed} malformed answers, {batches_ok}/160 batches followed by correct calls"
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
    // The correct calls between batches are FF-A calls too: 2 per batch.
    let expected = calls + 2 * 160;
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
    let d = smc(0x8400_006f, &[optee, 0, 0]);
    id[0] == FFA_SUCCESS_32 && d[0] == FFA_DIRECT_RESP_32 && d[3] == 1
}
