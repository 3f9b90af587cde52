//! Setup and discovery (DEN0077A v1.2 §13.2-13.5, §18.3): what warden learns from the
//! SPMC at boot, FFA_FEATURES for the host, and which IDs are partitions.

use alloc::vec::Vec;
use core::fmt;

use log::{info, warn};

use super::buffers::take_partitions;
use super::{FfaProxy, ProxyEnv, RECEIVED, Reply, success};
use crate::ffa::abi::{self, FfaError, FfaFunction, Regs, num};
use crate::ffa::mailbox;
use crate::ffa::partition::{self, PartitionInfo};
use crate::ffa::version::FfaVersion;

/// What warden learnt from the SPMC at boot. Fixed afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpmcInfo {
    /// The version warden and the SPMC use: the SPMC's, capped at warden's own.
    pub version: FfaVersion,
    pub spmc_id: u16,
    /// The ID the SPMD gives the normal world, which is the host's (warden does not take
    /// one of its own: there is a single normal-world endpoint).
    pub host_id: u16,
    pub partitions: Vec<PartitionInfo>,
    /// FFA_FEATURES(FFA_RXTX_MAP) w2[1:0]: minimum buffer size and alignment.
    pub rxtx_granule: u32,
    pub direct_req2: bool,
    pub partition_info_regs: bool,
    /// The size of warden's own RX/TX buffers at the SPMC, in 4 KiB pages.
    pub own_buffer_pages: u64,
    /// The schedule receiver interrupt (an SGI the SPMC raises for the normal world) when
    /// the SPMC offers notifications to the normal world; `None` when it does not.
    pub notification_sri: Option<u32>,
}

impl SpmcInfo {
    /// Whether `id` is a secure partition the SPMC reported: the only endpoints the host
    /// may address (messages, memory receivers, notification senders, RUN targets).
    pub fn is_partition(&self, id: u16) -> bool {
        self.partition(id).is_some()
    }

    /// The secure partition with this ID, as the SPMC reported it.
    pub fn partition(&self, id: u16) -> Option<&PartitionInfo> {
        self.partitions
            .iter()
            .find(|p| p.id == id && partition::is_secure(id))
    }
}

/// Why warden could not set up FF-A with EL3 at boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeError {
    NoFfaAtEl3,
    BadVersionReply,
    UnsupportedMajor,
    IdGet,
    SpmIdGet,
    RxtxMapFeatures,
    LargeBufferGranule,
    OwnBuffersMap,
    PartitionInfoGet,
    BadPartitionDescriptors,
    EarlierBuffersUnmap,
    VersionChangedOnRenegotiation,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoFfaAtEl3 => "EL3 answers FFA_VERSION with NOT_SUPPORTED",
            Self::BadVersionReply => "bad FFA_VERSION reply",
            Self::UnsupportedMajor => "SPMC major version is not 1",
            Self::IdGet => "FFA_ID_GET failed",
            Self::SpmIdGet => "FFA_SPM_ID_GET failed",
            Self::RxtxMapFeatures => "FFA_FEATURES(RXTX_MAP) failed",
            Self::LargeBufferGranule => "SPMC needs RX/TX buffers larger than 4 KiB",
            Self::OwnBuffersMap => "FFA_RXTX_MAP of warden's buffers failed",
            Self::PartitionInfoGet => "FFA_PARTITION_INFO_GET failed",
            Self::BadPartitionDescriptors => "bad partition descriptors from the SPMC",
            Self::EarlierBuffersUnmap => {
                "RX/TX buffers of an earlier boot stage are mapped and RXTX_UNMAP failed"
            }
            Self::VersionChangedOnRenegotiation => {
                "the SPMC's FFA_VERSION changed on renegotiation"
            }
        })
    }
}

/// FFA_FEATURES feature ID of the schedule receiver interrupt (DEN0077A v1.2 §13.3.1.2).
const FEATURE_SRI: u32 = 2;

impl FfaProxy {
    /// Negotiates with EL3 at boot and maps warden's own buffers there
    /// (`own_tx`/`own_rx`: one 4 KiB page each, in warden's memory).
    pub fn init(env: &mut impl ProxyEnv, own_tx: u64, own_rx: u64, own_pages: u64) -> Self {
        match probe_spmc(env, own_tx, own_rx, own_pages) {
            Ok(info) => {
                info!(
                    "FF-A: SPMC {:#06x} at v{}, host ID {}, {} partition(s){}{}",
                    info.spmc_id,
                    info.version,
                    info.host_id,
                    info.partitions.len(),
                    if info.direct_req2 {
                        ", DIRECT_REQ2"
                    } else {
                        ""
                    },
                    if info.partition_info_regs {
                        ", PARTITION_INFO_GET_REGS"
                    } else {
                        ""
                    },
                );
                if let Some(sri) = info.notification_sri {
                    info!("FF-A: notifications for the host, schedule receiver interrupt {sri}");
                }
                for p in &info.partitions {
                    info!(
                        "FF-A: partition {:#06x}: {} context(s), properties {:#x}",
                        p.id, p.exec_ctx_count, p.properties
                    );
                }
                Self::with(Some(info))
            }
            Err(why) => {
                warn!("FF-A: unavailable ({why}); host FF-A calls will get NOT_SUPPORTED");
                Self::absent()
            }
        }
    }

    /// FFA_FEATURES (§13.3): answered from `SERVED`, never forwarded.
    pub(super) fn features(
        &self,
        regs: &Regs,
        version: FfaVersion,
        spmc: &SpmcInfo,
    ) -> Result<Reply, FfaError> {
        let w1 = regs[1] as u32;
        if w1 & (1 << 31) == 0 {
            // Feature IDs. The SRI is an SGI the SPMC raises straight at the normal world,
            // which the host owns (warden does not take interrupts), so its ID is the
            // SPMC's. There is no NPI: that is a virtual interrupt a hypervisor injects into
            // its VMs, and the host is not one. No managed exit for the host either.
            return match (w1, spmc.notification_sri) {
                (FEATURE_SRI, Some(sri)) if version >= FfaVersion::V1_1 => {
                    Ok(success(&[sri as u64]))
                }
                _ => Err(FfaError::NotSupported),
            };
        }
        if RECEIVED.contains(&w1) {
            return Ok(success(&[0]));
        }
        let f = FfaFunction::decode(w1).ok_or(FfaError::NotSupported)?;
        if !self.serves(f, version) {
            return Err(FfaError::NotSupported);
        }
        let props = match f.num {
            // w2[1:0]: minimum size and alignment; v1.2 adds w2[31:16], the maximum
            // buffer size in pages (§13.3.2, Table 13.14).
            num::RXTX_MAP if version >= FfaVersion::V1_2 => {
                spmc.rxtx_granule as u64 | mailbox::MAX_PAGES << 16
            }
            num::RXTX_MAP => spmc.rxtx_granule as u64,
            _ => 0,
        };
        Ok(success(&[props]))
    }
}

/// FFA_FEATURES(fid) at the SPMC: w2 of FFA_SUCCESS, or `None`.
fn feature(env: &mut impl ProxyEnv, fid: u32) -> Option<u32> {
    let r = env.spmc_call(&abi::call_regs(abi::FFA_FEATURES, &[fid as u64]));
    abi::expect_success(&r).ok().map(|r| r[2] as u32)
}

/// Boot-time conversation with EL3 (§18.3 (FF-A setup)): version, IDs, buffer rules,
/// warden's own buffers, and the list of secure partitions.
fn probe_spmc(
    env: &mut impl ProxyEnv,
    own_tx: u64,
    own_rx: u64,
    own_pages: u64,
) -> Result<SpmcInfo, ProbeError> {
    let r = env.spmc_call(&abi::call_regs(
        abi::FFA_VERSION,
        &[FfaVersion::WARDEN.encode() as u64],
    ));
    // A negative w0 (compared as s32: SMC32 results are zero-extended) means no FF-A.
    if (r[0] as u32 as i32) < 0 {
        return Err(ProbeError::NoFfaAtEl3);
    }
    let theirs = FfaVersion::decode(r[0] as u32).ok_or(ProbeError::BadVersionReply)?;
    if theirs.major != 1 {
        return Err(ProbeError::UnsupportedMajor);
    }
    let version = theirs.min(FfaVersion::WARDEN);

    let id = env.spmc_call(&abi::call_regs(abi::FFA_ID_GET, &[]));
    let host_id = abi::expect_success(&id).map_err(|_| ProbeError::IdGet)?[2] as u16;
    let spmc_id = if version >= FfaVersion::V1_1 {
        let r = env.spmc_call(&abi::call_regs(abi::FFA_SPM_ID_GET, &[]));
        abi::expect_success(&r).map_err(|_| ProbeError::SpmIdGet)?[2] as u16
    } else {
        0
    };
    let rxtx_granule = feature(env, abi::FFA_RXTX_MAP_64).ok_or(ProbeError::RxtxMapFeatures)? & 0x3;
    if rxtx_granule != 0 {
        return Err(ProbeError::LargeBufferGranule);
    }
    let direct_req2 =
        version >= FfaVersion::V1_2 && feature(env, abi::FFA_MSG_SEND_DIRECT_REQ2).is_some();
    let partition_info_regs =
        version >= FfaVersion::V1_2 && feature(env, abi::FFA_PARTITION_INFO_GET_REGS).is_some();

    // As many pages as warden has, else one: an SPMC may cap the size (§13.6).
    let mut own_buffer_pages = own_pages;
    let mut r = env.spmc_call(&abi::call_regs(
        abi::FFA_RXTX_MAP_64,
        &[own_tx, own_rx, own_pages],
    ));
    // A boot stage before warden may have used FF-A and left the normal world's pair mapped
    // (U-Boot's FF-A support releases its buffers only at ExitBootServices): the SPMC then
    // refuses another with DENIED (§13.6). The normal world is one endpoint, ID 0, which
    // warden now speaks for: it unmaps that pair (FFA_RXTX_UNMAP with the ID in w1[31:16],
    // §13.7), negotiates its version again (the earlier stage may have asked for another,
    // §13.2.1) and maps its own.
    if abi::expect_success(&r) == Err(FfaError::Denied) {
        let u = env.spmc_call(&abi::call_regs(abi::fid32(num::RXTX_UNMAP), &[0]));
        abi::expect_success(&u).map_err(|_| ProbeError::EarlierBuffersUnmap)?;
        let again = env.spmc_call(&abi::call_regs(
            abi::FFA_VERSION,
            &[FfaVersion::WARDEN.encode() as u64],
        ));
        if FfaVersion::decode(again[0] as u32) != Some(theirs) {
            return Err(ProbeError::VersionChangedOnRenegotiation);
        }
        warn!(
            "FF-A: an earlier boot stage left the normal world's RX/TX buffers mapped at the SPMC (RXTX_MAP: DENIED); unmapped them (RXTX_UNMAP, ID 0) and renegotiated v{version}"
        );
        r = env.spmc_call(&abi::call_regs(
            abi::FFA_RXTX_MAP_64,
            &[own_tx, own_rx, own_pages],
        ));
    }
    if abi::expect_success(&r).is_err() && own_pages > 1 {
        own_buffer_pages = 1;
        let r = env.spmc_call(&abi::call_regs(abi::FFA_RXTX_MAP_64, &[own_tx, own_rx, 1]));
        abi::expect_success(&r).map_err(|_| ProbeError::OwnBuffersMap)?;
    } else {
        abi::expect_success(&r).map_err(|_| ProbeError::OwnBuffersMap)?;
    }

    let r = env.spmc_call(&abi::call_regs(
        abi::FFA_PARTITION_INFO_GET,
        &[0, 0, 0, 0, 0],
    ));
    let r = abi::expect_success(&r).map_err(|_| ProbeError::PartitionInfoGet)?;
    let partitions =
        take_partitions(env, version, r).map_err(|_| ProbeError::BadPartitionDescriptors)?;
    // Notifications for the normal world: the SPMC names its SRI and accepts a bitmap.
    let notification_sri = if version >= FfaVersion::V1_1
        && feature(env, abi::fid32(num::NOTIFICATION_BITMAP_CREATE)).is_some()
    {
        feature(env, FEATURE_SRI)
    } else {
        None
    };

    Ok(SpmcInfo {
        version,
        spmc_id,
        host_id,
        partitions,
        rxtx_granule,
        direct_req2,
        partition_info_regs,
        own_buffer_pages,
        notification_sri,
    })
}
