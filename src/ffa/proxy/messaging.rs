//! Direct messaging and FFA_RUN (DEN0077A v1.2 chapters 14 and 15): the host talks to the
//! secure partitions the SPMC reported, as itself, with only the argument registers.

use log::warn;

use super::{FfaProxy, ProxyEnv, SpmcInfo};
use crate::ffa::abi::{self, FfaError, Regs};

impl FfaProxy {
    /// FFA_MSG_SEND_DIRECT_REQ (§15.2): from the host to a secure partition it names, never
    /// a framework message (w2 bit 31: only the hypervisor sends those), w2 otherwise MBZ.
    pub(super) fn direct_req(
        &self,
        regs: &Regs,
        is_64: bool,
        spmc: &SpmcInfo,
        env: &mut impl ProxyEnv,
    ) -> Result<Regs, FfaError> {
        if let Err(refusal) = direct_req_args(regs, is_64, spmc) {
            if let DirectReqRefusal::SpoofedSender(src) = refusal {
                warn!("FF-A: host message with spoofed sender {src:#06x} refused");
            }
            return Err(FfaError::InvalidParameters);
        }
        // Only w0-w7 are arguments; nothing else of the host's reaches the SPMC.
        // (On the stack: this is the hottest forwarded call, and a heap vector cost a
        // few hundred instructions per request.)
        let mask = if is_64 { u64::MAX } else { u32::MAX as u64 };
        let mut args = [0u64; 7];
        for (arg, r) in args.iter_mut().zip(&regs[1..8]) {
            *arg = r & mask;
        }
        Ok(env.spmc_call(&abi::call_regs(regs[0] as u32, &args)))
    }

    /// FFA_MSG_SEND_DIRECT_REQ2 (v1.2, §15.4): x2-x3 target UUID, x4-x17 payload.
    pub(super) fn direct_req2(
        &self,
        regs: &Regs,
        spmc: &SpmcInfo,
        env: &mut impl ProxyEnv,
    ) -> Result<Regs, FfaError> {
        check_endpoints(regs[1], spmc)?;
        // x1 holds the 32-bit endpoint field; its upper half is reserved, MBZ (§15.4).
        if regs[1] >> 32 != 0 {
            return Err(FfaError::InvalidParameters);
        }
        Ok(env.spmc_call(regs))
    }

    /// FFA_RUN (§14.1): resumes a partition's execution context after FFA_INTERRUPT or
    /// FFA_YIELD, so that a preempted direct request completes.
    pub(super) fn run(
        &self,
        regs: &Regs,
        spmc: &SpmcInfo,
        env: &mut impl ProxyEnv,
    ) -> Result<Regs, FfaError> {
        // w1: target endpoint [31:16], vCPU ID [15:0], which must name one of the
        // partition's execution contexts (§14.1; Hafnium answers the same).
        let w1 = regs[1] as u32;
        let (target, vcpu) = ((w1 >> 16) as u16, w1 as u16);
        let Some(partition) = spmc.partition(target) else {
            return Err(FfaError::InvalidParameters);
        };
        if vcpu >= partition.exec_ctx_count {
            return Err(FfaError::InvalidParameters);
        }
        Ok(env.spmc_call(&abi::call_regs(regs[0] as u32, &[regs[1] as u32 as u64])))
    }
}

/// Why the arguments of a direct request are refused (all INVALID_PARAMETERS).
pub(super) enum DirectReqRefusal {
    SpoofedSender(u16),
    NotAPartition,
    ReservedBits,
}

/// The argument checks of FFA_MSG_SEND_DIRECT_REQ (§15.2), shared by `direct_req` and the
/// in-place path (`in_place.rs`), which must refuse exactly the same calls: the endpoints
/// as `check_endpoints`, w2 (flags) zero (bit 31 would make it a framework message, which
/// only the hypervisor sends), and in the 64-bit call the upper halves of x1 and x2, 32-bit
/// fields whose upper halves are reserved, MBZ (they would otherwise reach the partition).
/// Logs nothing: the in-place path runs without the console.
#[inline(always)]
pub(super) fn direct_req_args(
    regs: &Regs,
    is_64: bool,
    spmc: &SpmcInfo,
) -> Result<(), DirectReqRefusal> {
    let w1 = regs[1] as u32;
    let (src, dst) = ((w1 >> 16) as u16, w1 as u16);
    if src != spmc.host_id {
        return Err(DirectReqRefusal::SpoofedSender(src));
    }
    if !spmc.is_partition(dst) {
        return Err(DirectReqRefusal::NotAPartition);
    }
    if regs[2] as u32 != 0 || (is_64 && (regs[1] >> 32 != 0 || regs[2] >> 32 != 0)) {
        return Err(DirectReqRefusal::ReservedBits);
    }
    Ok(())
}

/// w1 of a message: sender [31:16] must be the host, receiver [15:0] a secure partition
/// the SPMC reported.
fn check_endpoints(w1: u64, spmc: &SpmcInfo) -> Result<(), FfaError> {
    let w1 = w1 as u32;
    let (src, dst) = ((w1 >> 16) as u16, w1 as u16);
    if src != spmc.host_id {
        warn!("FF-A: host message with spoofed sender {src:#06x} refused");
        return Err(FfaError::InvalidParameters);
    }
    if !spmc.is_partition(dst) {
        return Err(FfaError::InvalidParameters);
    }
    Ok(())
}
