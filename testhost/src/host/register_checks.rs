//! Result registers (issue 14 item 5): a call whose ABI defines only x0-x7 gives a v1.2 host
//! zeros in x8-x17, never what EL3 left there; a v1.0/v1.1 host keeps its own x8-x17 (SMCCC
//! DEN0028 §2.6: an SMC32 caller's x8-x30 are preserved).

use warden::ffa::abi::{self, num};

use super::{FFA_ERROR, Report};

const OPTEE_ID: u64 = 0x8001;
/// OP-TEE's FF-A ABI (optee_os core/include/optee_ffa.h): w3 selects the function.
const OPTEE_FFA_GET_API_VERSION: u64 = 0;

/// The checks `run` makes for a host at version `v`.
pub fn planned(v: u32) -> u32 {
    match v {
        0x1_0002.. => 2,
        0x1_0001 => 1,
        _ => 0,
    }
}

/// x1-x17 with the host's markers in x8-x17.
fn marked(args: &[u64]) -> [u64; 17] {
    let mut a = [0u64; 17];
    a[..args.len()].copy_from_slice(args);
    for (i, x) in a[7..].iter_mut().enumerate() {
        *x = 0x5a5a_0000 + 8 + i as u64;
    }
    a
}

fn marks_kept(r: &[u64; 18]) -> bool {
    r[8..]
        .iter()
        .enumerate()
        .all(|(i, &x)| x == 0x5a5a_0000 + 8 + i as u64)
}

/// On this stack (TF-A 2.12's SPMD with OP-TEE 4.10) EL3's x8-x17 after these calls are
/// zero already, so the v1.2 checks catch warden handing back anything else (the host's own
/// markers, or values of its own) but cannot show an EL3 that leaks; the unit tests do that
/// against the SPMC model, which leaves values of its own there.
pub fn run(r: &mut Report, v: u32) {
    let info64 = abi::fid64(num::NOTIFICATION_INFO_GET);
    if v >= 0x1_0002 {
        let d = smccc::smc64(
            abi::fid32(num::MSG_SEND_DIRECT_REQ),
            marked(&[OPTEE_ID, 0, OPTEE_FFA_GET_API_VERSION]),
        );
        say!("testhost: DIRECT_REQ at v1.2: x8-x17 {:x?}", &d[8..]);
        r.check(
            "v1.2: DIRECT_REQ answers zeros in x8-x17",
            d[0] == abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64 && d[8..].iter().all(|&x| x == 0),
            format_args!("x0 {:#x} x8-x17 {:x?}", d[0], &d[8..]),
        );
        // No notification is pending here, so OP-TEE answers NO_DATA; the registers past x7
        // are zero either way.
        let n = smccc::smc64(info64, marked(&[]));
        r.check(
            "v1.2: NOTIFICATION_INFO_GET_64 answers zeros in x8-x17",
            (n[0] == abi::FFA_SUCCESS_64 as u64 || n[0] == FFA_ERROR)
                && n[8..].iter().all(|&x| x == 0),
            format_args!("x0 {:#x} x8-x17 {:x?}", n[0], &n[8..]),
        );
    } else if v == 0x1_0001 {
        let n = smccc::smc64(info64, marked(&[]));
        r.check(
            "v1.1: NOTIFICATION_INFO_GET_64 keeps the host's x8-x17",
            (n[0] == abi::FFA_SUCCESS_64 as u64 || n[0] == FFA_ERROR) && marks_kept(&n),
            format_args!("x0 {:#x} x8-x17 {:x?}", n[0], &n[8..]),
        );
    }
}
