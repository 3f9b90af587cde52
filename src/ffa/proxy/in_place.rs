//! The host's most frequent FF-A calls answered in the trap frame itself (issue 15): no
//! `Reply` built, returned through three layers and copied back. Each call here runs every
//! check `FfaProxy::handle` runs; whatever one of them would refuse goes to `handle`, which
//! refuses it (and says why), so the answers are the same (tests/in_place.rs compares the
//! two paths register by register).

use super::messaging::direct_req_args;
use super::{FfaProxy, ProxyEnv};
use crate::ffa::abi::{self, Regs, num};
use crate::ffa::answers;
use crate::ffa::version::FfaVersion;

impl FfaProxy {
    /// Handles one host FF-A call with x0-x17 in `x`, and leaves the answer there: x0 to
    /// x(count-1) are results, the other registers keep the host's values. Returns count.
    pub fn handle_in_place(&self, x: &mut Regs, env: &mut impl ProxyEnv) -> usize {
        match self.hot(x, env) {
            Some(count) => count,
            None => self.handle_copied(x, env),
        }
    }

    /// `handle`, its reply copied into `x`: every call `hot` does not answer. The only
    /// part of `handle_in_place` that may log.
    pub fn handle_copied(&self, x: &mut Regs, env: &mut impl ProxyEnv) -> usize {
        let reply = self.handle(x, env);
        // The proxy's counts are 8 and 18: copied register by register (a loop is a call
        // to memcpy, which without SIMD costs a hundred instructions per fragment or
        // reclaim); any other count by the loop.
        #[rustfmt::skip]
        let [r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10, r11, r12, r13, r14, r15, r16, r17] =
            reply.regs;
        match reply.count {
            8 | 18 => {
                #[rustfmt::skip]
                let [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16, x17] = x;
                (*x0, *x1, *x2, *x3, *x4, *x5, *x6, *x7) = (r0, r1, r2, r3, r4, r5, r6, r7);
                if reply.count == 18 {
                    (*x8, *x9, *x10, *x11, *x12) = (r8, r9, r10, r11, r12);
                    (*x13, *x14, *x15, *x16, *x17) = (r13, r14, r15, r16, r17);
                }
            }
            n => {
                for (reg, value) in x.iter_mut().zip(&reply.regs).take(n) {
                    *reg = *value;
                }
            }
        }
        reply.count
    }

    /// FFA_ID_GET and a well-formed FFA_MSG_SEND_DIRECT_REQ (32 or 64), in place; None for
    /// anything else, before any effect but fixing the host's FF-A version, which `handle`
    /// does first in the same way.
    /// Logs nothing: the caller need not hold the console.
    pub fn hot(&self, x: &mut Regs, env: &mut impl ProxyEnv) -> Option<usize> {
        self.hot_with(x, |call| env.spmc_call(call))
    }

    /// `hot` with the SPMC reached through `spmc_call` (what `ProxyEnv::spmc_call` does),
    /// so that the trap path need not build a whole `ProxyEnv` for the calls it answers
    /// here. Inlined into the trap path: with an inlined `spmc_call` the registers of the
    /// request and of the answer never go through memory.
    #[inline(always)]
    pub fn hot_with(&self, x: &mut Regs, spmc_call: impl FnOnce(&Regs) -> Regs) -> Option<usize> {
        // The two function IDs compared whole (what `FfaFunction::decode` accepts for them:
        // the upper half of x0 is ignored, SMCCC §2.5): DIRECT_REQ_32 and _64 differ only
        // in bit 30, the SMC64 bit (SMCCC §2.5), so one compare takes both.
        const DIRECT_REQ_32: u32 = abi::fid32(num::MSG_SEND_DIRECT_REQ);
        const SMC64: u32 = abi::fid64(0) ^ abi::fid32(0);
        let w0 = x[0] as u32;
        if w0 & !SMC64 != DIRECT_REQ_32 {
            return match w0 {
                abi::FFA_ID_GET => self.id_get_in_place(x),
                _ => None,
            };
        }
        let is_64 = w0 & SMC64 != 0;
        // Served from v1.0 on whenever there is an SPMC (`SERVED`; checked by
        // tests/in_place.rs, `hot_calls_are_served_at_every_version`).
        let spmc = self.spmc.as_ref()?;
        let wide = self.negotiation.fix_at_least(FfaVersion::V1_2);
        // The checks of `direct_req` (§15.2), the same function: a refusal goes to `handle`,
        // which refuses it again and logs why.
        direct_req_args(x, is_64, spmc).ok()?;
        // Only w0-w7 (x0-x7 for the 64-bit call) reach the SPMC; x8-x17 are zero. Spelled
        // out register by register: a loop here becomes calls to memset and memcpy, which
        // without SIMD cost more than the rest of the call (issue 15's profile). The two
        // widths are two arrays: 32-bit loads of the 32-bit call's registers, no masks.
        #[rustfmt::skip]
        let call: Regs = if is_64 {
            [x[0] as u32 as u64, x[1], x[2], x[3], x[4], x[5], x[6], x[7], 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        } else {
            let w = |r: u64| r as u32 as u64;
            [w(x[0]), w(x[1]), w(x[2]), w(x[3]), w(x[4]), w(x[5]), w(x[6]), w(x[7]), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        };
        // As `handle`'s `forwarded`: x0-x7 before v1.2; from v1.2 zeros past x7 unless the
        // answer is a DIRECT_RESP2 (README "Result registers"). Copied register by register
        // for the same reason as above (`*x = out` is a call to memcpy).
        #[rustfmt::skip]
        let [o0, o1, o2, o3, o4, o5, o6, o7, o8, o9, o10, o11, o12, o13, o14, o15, o16, o17] =
            spmc_call(&call);
        #[rustfmt::skip]
        let [x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11, x12, x13, x14, x15, x16, x17] = x;
        (*x0, *x1, *x2, *x3, *x4, *x5, *x6, *x7) = (o0, o1, o2, o3, o4, o5, o6, o7);
        if !wide {
            return Some(8);
        }
        if answers::carries_x8_to_x17(o0) {
            (*x8, *x9, *x10, *x11, *x12) = (o8, o9, o10, o11, o12);
            (*x13, *x14, *x15, *x16, *x17) = (o13, o14, o15, o16, o17);
        } else {
            // A zero the compiler cannot see: ten stores of it are fewer instructions than
            // the call to memset it would otherwise make.
            let z = core::hint::black_box(0u64);
            (*x8, *x9, *x10, *x11, *x12) = (z, z, z, z, z);
            (*x13, *x14, *x15, *x16, *x17) = (z, z, z, z, z);
        }
        Some(18)
    }

    /// FFA_ID_GET (32-bit; the 64-bit ID is not an FF-A call and goes to `handle`, which
    /// refuses it): FFA_SUCCESS_32 with the host's ID in w2, x0-x7 (DEN0077A v1.2 §13.8).
    #[inline(never)]
    fn id_get_in_place(&self, x: &mut Regs) -> Option<usize> {
        let spmc = self.spmc.as_ref()?;
        // Fixes the host's version, as `handle` does for every call but FFA_VERSION.
        self.negotiation.fix();
        let [x0, x1, x2, x3, x4, x5, x6, x7, ..] = x;
        (*x0, *x1, *x2) = (abi::FFA_SUCCESS_32 as u64, 0, spmc.host_id as u64);
        (*x3, *x4, *x5, *x6, *x7) = (0, 0, 0, 0, 0);
        Some(8)
    }
}
