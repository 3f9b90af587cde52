//! The host's most frequent FF-A calls answered in the trap frame itself (issue 15): no
//! `Reply` built, returned through three layers and copied back. Each call here runs every
//! check `FfaProxy::handle` runs; whatever one of them would refuse goes to `handle`, which
//! refuses it (and says why), so the answers are the same (tests/in_place.rs compares the
//! two paths register by register).

use super::{FfaProxy, ProxyEnv};
use crate::ffa::abi::{self, FfaFunction, Regs, num};
use crate::ffa::answers;
use crate::ffa::version::FfaVersion;

impl FfaProxy {
    /// Handles one host FF-A call with x0-x17 in `x`, and leaves the answer there: x0 to
    /// x(count-1) are results, the other registers keep the host's values. Returns count.
    pub fn handle_in_place(&self, x: &mut Regs, env: &mut impl ProxyEnv) -> usize {
        if let Some(count) = self.hot(x, env) {
            return count;
        }
        let reply = self.handle(x, env);
        for (reg, value) in x.iter_mut().zip(&reply.regs).take(reply.count) {
            *reg = *value;
        }
        reply.count
    }

    /// FFA_ID_GET and a well-formed FFA_MSG_SEND_DIRECT_REQ (32 or 64), in place; None for
    /// anything else, before any effect but fixing the host's FF-A version, which `handle`
    /// does first in the same way.
    fn hot(&self, x: &mut Regs, env: &mut impl ProxyEnv) -> Option<usize> {
        let f = FfaFunction::decode(x[0] as u32)?;
        let hot = (f.num == num::ID_GET && !f.is_64) || f.num == num::MSG_SEND_DIRECT_REQ;
        if !hot {
            return None;
        }
        // Both are served from v1.0 on whenever there is an SPMC (`SERVED`; checked by
        // tests/in_place.rs, `hot_calls_are_served_at_every_version`).
        let spmc = self.spmc.as_ref()?;
        let version = self.negotiation.lock().lock();
        if f.num == num::ID_GET {
            // FFA_SUCCESS_32 with the host's ID in w2, x0-x7 (DEN0077A v1.2 §13.8).
            let [x0, x1, x2, x3, x4, x5, x6, x7, ..] = x;
            (*x0, *x1, *x2) = (abi::FFA_SUCCESS_32 as u64, 0, spmc.host_id as u64);
            (*x3, *x4, *x5, *x6, *x7) = (0, 0, 0, 0, 0);
            return Some(8);
        }
        // The checks of `direct_req` (§15.2): sender the host, receiver a partition, w2
        // zero, and in the 64-bit call the upper halves of x1 and x2 zero.
        let w1 = x[1] as u32;
        if (w1 >> 16) as u16 != spmc.host_id || !spmc.is_partition(w1 as u16) {
            return None;
        }
        if x[2] as u32 != 0 || (f.is_64 && (x[1] >> 32 != 0 || x[2] >> 32 != 0)) {
            return None;
        }
        // Only w0-w7 (x0-x7 for the 64-bit call) reach the SPMC; x8-x17 are zero.
        let mask = if f.is_64 { u64::MAX } else { u32::MAX as u64 };
        let mut call: Regs = [0; 18];
        call[0] = x[0] as u32 as u64;
        for (arg, r) in call[1..8].iter_mut().zip(&x[1..8]) {
            *arg = r & mask;
        }
        let out = env.spmc_call(&call);
        // As `handle`'s `forwarded`: x0-x7 before v1.2; from v1.2 zeros past x7 unless the
        // answer is a DIRECT_RESP2 (README "Result registers").
        for (reg, value) in x[..8].iter_mut().zip(&out[..8]) {
            *reg = *value;
        }
        if version < FfaVersion::V1_2 {
            return Some(8);
        }
        let wide = answers::carries_x8_to_x17(out[0]);
        for (reg, value) in x[8..].iter_mut().zip(&out[8..]) {
            *reg = if wide { *value } else { 0 };
        }
        Some(18)
    }
}
