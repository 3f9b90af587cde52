//! What FF-A allows as the answer to each call a normal-world endpoint makes, written from
//! the spec (DEN0077A v1.2, each ABI's "Completion" or "Return" table), independently of
//! warden's own dispatch table. The fuzzer and the test host's hostile suite use it to judge
//! every answer: a hostile call that is wrongly accepted gets an answer its function never
//! gives (a SUCCESS to a call the host may not make, a DIRECT_RESP to a buffer call), so it
//! fails the check.

use super::abi::{self, num};

/// The kinds of answer an FF-A call can complete with, by x0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// FFA_VERSION's own format: a version word (bit 31 clear) or NOT_SUPPORTED in w0.
    Version,
    Success32,
    Success64,
    /// FFA_MEM_FRAG_RX: the callee asks for the next fragment (§10.4.2).
    FragRx,
    DirectResp32,
    DirectResp64,
    DirectResp2,
    /// A direct request or RUN preempted (§14.3) or yielded (§14.2): the caller resumes it
    /// with FFA_RUN.
    Interrupt,
    Yield,
    /// A partition that RUN resumed went back to waiting (§14.1).
    MsgWait,
    /// FFA_ERROR with any status code.
    Error,
    /// FFA_ERROR with NOT_SUPPORTED, and nothing else: functions a normal-world endpoint has
    /// no business calling, and numbers no FF-A version defines.
    NotSupported,
}

use Answer::*;

const FRAG: &[Answer] = &[Success32, FragRx, Error];
const STATUS: &[Answer] = &[Success32, Error];
const STATUS64: &[Answer] = &[Success64, Error];
const DIRECT: &[Answer] = &[DirectResp32, DirectResp64, Interrupt, Yield, Error];
const DIRECT2: &[Answer] = &[DirectResp2, Interrupt, Yield, Error];
const RUN: &[Answer] = &[
    DirectResp32,
    DirectResp64,
    DirectResp2,
    Interrupt,
    Yield,
    MsgWait,
    Success32,
    Error,
];
const ONLY_NOT_SUPPORTED: &[Answer] = &[NotSupported];

/// The answers a normal-world endpoint may get for function ID `fid`.
pub fn allowed(fid: u32) -> &'static [Answer] {
    let Some(f) = abi::FfaFunction::decode(fid) else {
        return ONLY_NOT_SUPPORTED;
    };
    match (f.num, f.is_64) {
        (num::VERSION, false) => &[Version],
        // Calls whose results fit in w2-w7 complete with FFA_SUCCESS_32, the 64-bit variants
        // included (their 64-bit part is in the arguments: addresses, handles).
        (num::FEATURES | num::RX_RELEASE | num::RXTX_UNMAP | num::PARTITION_INFO_GET, false)
        | (num::ID_GET | num::SPM_ID_GET | num::MEM_RECLAIM, false)
        | (num::NOTIFICATION_BITMAP_CREATE..=num::NOTIFICATION_GET, false)
        | (num::NOTIFICATION_INFO_GET, false)
        | (num::RXTX_MAP, _) => STATUS,
        // Results in x-registers: FFA_SUCCESS_64 (§13.10, §13.24).
        (num::PARTITION_INFO_GET_REGS | num::NOTIFICATION_INFO_GET, true) => STATUS64,
        // A memory transaction completes with the handle in w2/w3, or asks for the next
        // fragment (§10.4, §10.5, §10.6).
        (num::MEM_SHARE | num::MEM_LEND | num::MEM_DONATE, _) | (num::MEM_FRAG_TX, false) => FRAG,
        // The partition chooses the width of its response (OP-TEE answers in SMC32).
        (num::MSG_SEND_DIRECT_REQ, _) => DIRECT,
        (num::MSG_SEND_DIRECT_REQ2, true) => DIRECT2,
        (num::RUN, false) => RUN,
        // Answers as calls, partition- and hypervisor-only ABIs, the borrower's side of
        // memory management (no one lends to the host), and everything undefined.
        _ => ONLY_NOT_SUPPORTED,
    }
}

fn kind(x0: u64) -> Option<Answer> {
    let f = x0 as u32;
    if x0 >> 32 != 0 {
        return None;
    }
    Some(match f {
        abi::FFA_SUCCESS_32 => Success32,
        abi::FFA_SUCCESS_64 => Success64,
        abi::FFA_ERROR => Error,
        abi::FFA_INTERRUPT => Interrupt,
        abi::FFA_YIELD => Yield,
        _ if f == abi::fid32(num::MEM_FRAG_RX) => FragRx,
        _ if f == abi::fid32(num::MSG_SEND_DIRECT_RESP) => DirectResp32,
        _ if f == abi::fid64(num::MSG_SEND_DIRECT_RESP) => DirectResp64,
        _ if f == abi::fid64(num::MSG_SEND_DIRECT_RESP2) => DirectResp2,
        _ if f == abi::fid32(num::MSG_WAIT) => MsgWait,
        _ => return None,
    })
}

/// Whether `r` is an answer FF-A allows for a call of `fid` by a normal-world endpoint: its
/// x0 is one the function completes with, and an FFA_ERROR carries a defined status code
/// with w1 zero (§13.4, Table 13.6).
pub fn well_formed(fid: u32, r: &[u64; 18]) -> bool {
    let allowed = allowed(fid);
    if allowed == [Version] {
        // FFA_VERSION: w0 is a version (bit 31 clear, major 1 here) or NOT_SUPPORTED.
        let w0 = r[0];
        return w0 == 0xffff_ffff || (w0 >> 31 == 0 && w0 >> 16 == 1);
    }
    let code = r[2] as u32 as i32;
    match kind(r[0]) {
        Some(Error) => {
            r[1] == 0
                && (-9..=-1).contains(&code)
                && (allowed.contains(&Error) || allowed.contains(&NotSupported) && code == -1)
        }
        Some(k) => allowed.contains(&k),
        None => false,
    }
}

/// Whether an answer to a call whose own results end at x7 (a direct request, RUN, a
/// notification call) still carries results in x8-x17: only FFA_MSG_SEND_DIRECT_RESP2
/// (payload in x4-x17, §15.5), which completes a DIRECT_REQ2 resumed with FFA_RUN.
pub fn carries_x8_to_x17(x0: u64) -> bool {
    x0 == abi::fid64(num::MSG_SEND_DIRECT_RESP2) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(x0: u32, w2: i32) -> [u64; 18] {
        let mut r = [0; 18];
        r[0] = x0 as u64;
        r[2] = w2 as u32 as u64;
        r
    }

    const RESP32: u32 = abi::fid32(num::MSG_SEND_DIRECT_RESP);

    #[test]
    fn each_function_gets_only_its_own_answers() {
        let ok = regs(abi::FFA_SUCCESS_32, 0);
        // Buffer, discovery and notification calls: SUCCESS or an error, never a message.
        for fid in [
            abi::FFA_RX_RELEASE,
            abi::FFA_RXTX_MAP_64,
            abi::FFA_ID_GET,
            abi::fid32(num::NOTIFICATION_BIND),
        ] {
            assert!(well_formed(fid, &ok), "{fid:#x}");
            assert!(!well_formed(fid, &regs(RESP32, 0)), "{fid:#x}");
            assert!(!well_formed(fid, &regs(abi::fid32(num::MEM_FRAG_RX), 0)));
        }
        // A direct request never completes with SUCCESS.
        let req = abi::fid32(num::MSG_SEND_DIRECT_REQ);
        assert!(well_formed(req, &regs(RESP32, 0)));
        assert!(!well_formed(req, &ok));
        assert!(!well_formed(
            req,
            &regs(abi::fid64(num::MSG_SEND_DIRECT_RESP2), 0)
        ));
        // Memory transactions may ask for the next fragment.
        assert!(well_formed(
            abi::fid64(num::MEM_SHARE),
            &regs(abi::fid32(num::MEM_FRAG_RX), 0)
        ));
        // 64-bit results come as SUCCESS_64.
        let info64 = abi::fid64(num::NOTIFICATION_INFO_GET);
        assert!(well_formed(info64, &regs(abi::FFA_SUCCESS_64, 0)));
        assert!(!well_formed(info64, &ok));
    }

    #[test]
    fn calls_a_host_may_not_make_get_only_not_supported() {
        for fid in [
            abi::FFA_ERROR,
            abi::FFA_SUCCESS_32,
            abi::fid32(num::MSG_SEND2),
            abi::fid32(num::MEM_RETRIEVE_REQ),
            abi::fid64(num::RX_RELEASE),
            abi::fid32(0x8f),
            abi::fid64(0xff),
            0x8410_0063,
        ] {
            assert!(well_formed(fid, &regs(abi::FFA_ERROR, -1)), "{fid:#x}");
            assert!(!well_formed(fid, &regs(abi::FFA_ERROR, -2)), "{fid:#x}");
            assert!(!well_formed(fid, &regs(abi::FFA_SUCCESS_32, 0)), "{fid:#x}");
        }
    }

    #[test]
    fn errors_need_a_defined_code_and_w1_zero() {
        let fid = abi::FFA_FEATURES;
        assert!(well_formed(fid, &regs(abi::FFA_ERROR, -9)));
        assert!(!well_formed(fid, &regs(abi::FFA_ERROR, -10)));
        assert!(!well_formed(fid, &regs(abi::FFA_ERROR, 0)));
        let mut r = regs(abi::FFA_ERROR, -2);
        r[1] = 1;
        assert!(!well_formed(fid, &r));
        // Upper bits of x0 set: not an FF-A function ID.
        let mut r = regs(abi::FFA_SUCCESS_32, 0);
        r[0] |= 1 << 32;
        assert!(!well_formed(fid, &r));
    }

    #[test]
    fn version_answers() {
        let v = abi::FFA_VERSION;
        assert!(well_formed(v, &[0x1_0002; 18]));
        assert!(well_formed(v, &regs(0xffff_ffff, 0)));
        assert!(!well_formed(v, &regs(abi::FFA_SUCCESS_32, 0)));
        assert!(!well_formed(v, &regs(0x2_0000, 0)));
    }
}
