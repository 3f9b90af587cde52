//! The host's RX/TX buffers and partition discovery (DEN0077A v1.2 §13.6-13.10): the
//! host's pair is validated and kept by warden, never registered with the SPMC, and
//! PARTITION_INFO_GET goes through warden's own pair.

use alloc::vec;
use alloc::vec::Vec;

use log::{info, warn};

use super::{FfaProxy, ProxyEnv, Reply, SpmcInfo, success};
use crate::ffa::abi::{self, FfaError, Regs};
use crate::ffa::mailbox::{HostMailbox, RxOwner};
use crate::ffa::ownership::PageState;
use crate::ffa::partition::{self, PartitionInfo, PartitionInfoError};
use crate::ffa::version::FfaVersion;

impl FfaProxy {
    pub(super) fn rxtx_map(
        &self,
        regs: &Regs,
        is_64: bool,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let (tx, rx) = if is_64 {
            (regs[1], regs[2])
        } else {
            (regs[1] as u32 as u64, regs[2] as u32 as u64)
        };
        let pages = regs[3] as u32 as u64;
        let mut slot = self.mailbox.lock();
        if slot.is_some() {
            return Err(FfaError::Denied);
        }
        let mailbox = HostMailbox::validate(tx, rx, pages, |r| env.is_host_ram(r))?;
        // Pages the host has shared or lent cannot become its buffers, and its buffers
        // can never be shared or lent.
        let mut sorted = [mailbox.tx, mailbox.rx];
        sorted.sort();
        self.memory
            .lock()
            .ownership
            .claim(&sorted, PageState::Mailbox)?;
        info!(
            "FF-A: host mapped TX {:#x} RX {:#x}, {} page(s) each",
            tx, rx, pages
        );
        *slot = Some(mailbox);
        Ok(success(&[]))
    }

    pub(super) fn rxtx_unmap(&self, regs: &Regs, spmc: &SpmcInfo) -> Result<Reply, FfaError> {
        // w1[31:16]: the endpoint ID, which for an endpoint is its own (or 0); [15:0] MBZ.
        let w1 = regs[1] as u32;
        if w1 & 0xffff != 0 || (w1 >> 16) as u16 != spmc.host_id {
            return Err(FfaError::InvalidParameters);
        }
        let mut slot = self.mailbox.lock();
        if slot.is_none() {
            return Err(FfaError::InvalidParameters);
        }
        let mut memory = self.memory.lock();
        // A transaction the host is still sending in fragments reads from the TX buffer
        // that goes away: it is abandoned. Nothing was claimed or sent for it yet, so this
        // changes nothing else. FFA_RXTX_UNMAP has no BUSY answer (DEN0077A v1.2 §13.7),
        // and refusing would leave a host that did not know with its buffers mapped for
        // good (every later FFA_RXTX_MAP would be DENIED).
        memory.pending = None;
        memory.ownership.release(PageState::Mailbox);
        *slot = None;
        drop(memory);
        drop(slot);
        info!("FF-A: host unmapped its RX/TX buffers");
        self.reopen_if_nothing_held();
        Ok(success(&[]))
    }

    pub(super) fn rx_release(&self) -> Result<Reply, FfaError> {
        let mut slot = self.mailbox.lock();
        let mailbox = slot.as_mut().ok_or(FfaError::Denied)?;
        if mailbox.rx_owner != RxOwner::Host {
            return Err(FfaError::Denied);
        }
        mailbox.rx_owner = RxOwner::Producer;
        Ok(success(&[]))
    }

    /// FFA_PARTITION_INFO_GET (§13.8): asked of the SPMC through warden's RX buffer, then
    /// re-emitted in the host's descriptor format into the host's RX buffer.
    pub(super) fn partition_info_get(
        &self,
        regs: &Regs,
        version: FfaVersion,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let flags = regs[5] as u32;
        // v1.1 added w5 bit 0 (return count only); everything else is MBZ.
        let allowed = if version >= FfaVersion::V1_1 { 1 } else { 0 };
        if flags & !allowed != 0 {
            return Err(FfaError::InvalidParameters);
        }
        let count_only = flags & 1 != 0;
        let host_size = partition::descriptor_size(version);
        let size_reg = |n: usize| {
            if version >= FfaVersion::V1_1 {
                n as u64
            } else {
                0
            }
        };

        let mut slot = self.mailbox.lock();
        if !count_only {
            let mailbox = slot.as_ref().ok_or(FfaError::Denied)?;
            if mailbox.rx_owner == RxOwner::Host {
                return Err(FfaError::Busy);
            }
        }
        // The nil UUID (every partition) is answered from the list warden read at boot
        // with the same query (`setup::probe`), as Xen does: the SPMC's partitions are
        // fixed once the normal world runs (TF-A's SPMD, OP-TEE and Hafnium load them at
        // boot), so the list is never refreshed. No SMC, and no use of warden's RX buffer.
        // A named UUID still goes to the SPMC, which alone knows how it matches.
        let nil_uuid = regs[1..5].iter().all(|&w| w as u32 == 0);
        let (count, parsed) = match self.spmc.as_ref() {
            Some(spmc) if nil_uuid => (spmc.partitions.len(), Some(spmc.partitions.clone())),
            _ => {
                let spmc_version = self
                    .spmc
                    .as_ref()
                    .map(|s| s.version)
                    .unwrap_or(FfaVersion::V1_0);
                // Ask for the count first when only the count is wanted and the SPMC
                // knows the flag; otherwise fetch the descriptors.
                let spmc_flags = if count_only && spmc_version >= FfaVersion::V1_1 {
                    1
                } else {
                    0
                };
                let call = abi::call_regs(
                    abi::FFA_PARTITION_INFO_GET,
                    &[
                        regs[1] as u32 as u64,
                        regs[2] as u32 as u64,
                        regs[3] as u32 as u64,
                        regs[4] as u32 as u64,
                        spmc_flags,
                    ],
                );
                let resp = env.spmc_call(&call);
                let resp = abi::expect_success(&resp)?;
                let count = resp[2] as u32 as usize;
                let parsed = if spmc_flags == 0 {
                    Some(take_partitions(env, spmc_version, resp).map_err(|_| FfaError::Aborted)?)
                } else {
                    None
                };
                (count, parsed)
            }
        };
        // A UUID that names no partition is INVALID_PARAMETERS (§13.8); an SPMC that
        // answers SUCCESS with no descriptors (OP-TEE does) is corrected here.
        if count == 0 && !nil_uuid {
            return Err(FfaError::InvalidParameters);
        }
        if count_only {
            // With the count-only flag, w3 (the descriptor size) is MBZ (§13.8).
            return Ok(success(&[count as u64, 0]));
        }
        let infos = parsed.unwrap_or_default();
        let mailbox = slot.as_mut().ok_or(FfaError::Denied)?;
        let needed = count.checked_mul(host_size).ok_or(FfaError::NoMemory)?;
        if needed as u64 > mailbox.rx.len() {
            return Err(FfaError::NoMemory);
        }
        let mut out = vec![0u8; needed];
        for (info, chunk) in infos.iter().zip(out.chunks_mut(host_size)) {
            info.emit(version, chunk).map_err(|_| FfaError::Aborted)?;
        }
        if !out.is_empty() {
            env.write_host(mailbox.rx.start, &out);
        }
        mailbox.rx_owner = RxOwner::Host;
        Ok(success(&[count as u64, size_reg(host_size)]))
    }
}

/// The partition descriptors the SPMC wrote into warden's RX buffer, read at `version`
/// from its FFA_PARTITION_INFO_GET success `resp` (§13.8: w2 the count; w3 the size of
/// each from v1.1 on, fixed before). Warden's RX buffer goes back to the SPMC whatever it
/// held, so a bad answer does not keep it. Inlined: out of line it costs
/// PARTITION_INFO_GET about 20 more instructions (scripts/bench).
#[inline(always)]
pub(super) fn take_partitions(
    env: &mut impl ProxyEnv,
    version: FfaVersion,
    resp: &Regs,
) -> Result<Vec<PartitionInfo>, PartitionInfoError> {
    let count = resp[2] as u32 as usize;
    let size = if version >= FfaVersion::V1_1 {
        resp[3] as u32 as usize
    } else {
        partition::SIZE_V1_0
    };
    let parsed = partition::parse_all(env.own_rx(), count, size);
    release_own_rx(env);
    parsed
}

/// Gives warden's own RX buffer back to the SPMC (FFA_RX_RELEASE, §13.7).
pub(super) fn release_own_rx(env: &mut impl ProxyEnv) {
    let r = env.spmc_call(&abi::call_regs(abi::FFA_RX_RELEASE, &[]));
    if let Err(e) = abi::expect_success(&r) {
        warn!("FF-A: SPMC refused to take back warden's RX buffer: {e:?}");
    }
}
