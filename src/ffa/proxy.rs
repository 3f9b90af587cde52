//! The FF-A proxy: warden's side of the host's FF-A calls and of its own conversation with
//! the SPMC. One table (`SERVED`) says which functions warden serves; the dispatcher and
//! FFA_FEATURES both read it, so they cannot disagree.

use alloc::vec;
use alloc::vec::Vec;

use log::{info, warn};
use spin::Mutex;

use super::abi::{self, FfaError, FfaFunction, Regs, num};
use super::mailbox::{self, HostMailbox, RxOwner};
use super::partition::{self, PartitionInfo};
use super::version::{FfaVersion, Negotiation, VERSION_NOT_SUPPORTED};
use crate::platform::memmap::Range;

/// What the proxy needs from the machine.
pub trait ProxyEnv {
    /// An SMC to EL3 with x0-x17.
    fn spmc_call(&mut self, regs: &Regs) -> Regs;
    /// Whether `r` lies entirely in memory the host owns (RAM, not warden's).
    fn is_host_ram(&self, r: Range) -> bool;
    /// Copies `data` to host memory at `pa`, which `is_host_ram` accepted.
    fn write_host(&mut self, pa: u64, data: &[u8]);
    /// warden's own RX buffer, as the SPMC last wrote it.
    fn own_rx(&self) -> &[u8];
}

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
}

/// How many result registers the host gets back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// x0-x7 (FF-A v1.0/v1.1 and SMC32 results); x8-x17 keep the caller's values.
    Ffa8,
    /// x0-x17 (SMCCC v1.2, for v1.2 hosts).
    Wide,
}

impl Width {
    pub fn count(self) -> usize {
        match self {
            Width::Ffa8 => 8,
            Width::Wide => 18,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub regs: Regs,
    pub width: Width,
}

impl Reply {
    fn local(regs: Regs) -> Self {
        Self {
            regs,
            width: Width::Ffa8,
        }
    }
    fn error(e: FfaError) -> Self {
        Self::local(abi::error_regs(e))
    }
    fn success(args: &[u64]) -> Self {
        Self::local(abi::success_regs(args))
    }
}

/// The functions warden serves for the host: (number, 64-bit, first version).
/// DEN0077A v1.2 Table 13.1 (function IDs) and the "since" column of each ABI.
const SERVED: &[(u32, bool, FfaVersion)] = &[
    (num::VERSION, false, FfaVersion::V1_0),
    (num::FEATURES, false, FfaVersion::V1_0),
    (num::RX_RELEASE, false, FfaVersion::V1_0),
    (num::RXTX_MAP, false, FfaVersion::V1_0),
    (num::RXTX_MAP, true, FfaVersion::V1_0),
    (num::RXTX_UNMAP, false, FfaVersion::V1_0),
    (num::PARTITION_INFO_GET, false, FfaVersion::V1_0),
    (num::ID_GET, false, FfaVersion::V1_0),
    (num::RUN, false, FfaVersion::V1_0),
    (num::MSG_SEND_DIRECT_REQ, false, FfaVersion::V1_0),
    (num::MSG_SEND_DIRECT_REQ, true, FfaVersion::V1_0),
    (num::SPM_ID_GET, false, FfaVersion::V1_1),
    (num::PARTITION_INFO_GET_REGS, true, FfaVersion::V1_2),
    (num::MSG_SEND_DIRECT_REQ2, true, FfaVersion::V1_2),
];

pub struct FfaProxy {
    spmc: Option<SpmcInfo>,
    negotiation: Mutex<Negotiation>,
    /// The host's buffers. Held across PARTITION_INFO_GET, which also uses warden's own
    /// RX buffer, so it serialises every use of both.
    mailbox: Mutex<Option<HostMailbox>>,
}

impl FfaProxy {
    /// A proxy for a system with no FF-A at EL3: every host FF-A call gets NOT_SUPPORTED.
    pub fn absent() -> Self {
        Self::with(None)
    }

    pub fn with(spmc: Option<SpmcInfo>) -> Self {
        Self {
            spmc,
            negotiation: Mutex::new(Negotiation::default()),
            mailbox: Mutex::new(None),
        }
    }

    pub fn spmc(&self) -> Option<&SpmcInfo> {
        self.spmc.as_ref()
    }

    /// Negotiates with EL3 at boot and maps warden's own buffers there
    /// (`own_tx`/`own_rx`: one 4 KiB page each, in warden's memory).
    pub fn init(env: &mut impl ProxyEnv, own_tx: u64, own_rx: u64) -> Self {
        match probe_spmc(env, own_tx, own_rx) {
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

    fn serves(&self, f: FfaFunction, version: FfaVersion) -> bool {
        let Some(spmc) = &self.spmc else { return false };
        let listed = SERVED
            .iter()
            .any(|&(n, is_64, since)| n == f.num && is_64 == f.is_64 && version >= since);
        listed
            && match f.num {
                num::MSG_SEND_DIRECT_REQ2 => spmc.direct_req2,
                num::PARTITION_INFO_GET_REGS => spmc.partition_info_regs,
                num::SPM_ID_GET => spmc.version >= FfaVersion::V1_1,
                _ => true,
            }
    }

    /// Handles one host FF-A call (x0-x17 as the host left them).
    pub fn handle(&self, regs: &Regs, env: &mut impl ProxyEnv) -> Reply {
        let Some(f) = FfaFunction::decode(regs[0] as u32) else {
            return Reply::error(FfaError::NotSupported);
        };
        if f.num == num::VERSION && !f.is_64 {
            let mut r = [0; 18];
            r[0] = match self.spmc {
                Some(_) => self.negotiation.lock().request(regs[1]),
                None => VERSION_NOT_SUPPORTED,
            };
            return Reply::local(r);
        }
        let version = self.negotiation.lock().lock();
        let Some(spmc) = self.spmc.as_ref().filter(|_| self.serves(f, version)) else {
            return Reply::error(FfaError::NotSupported);
        };
        let forwarded = if version >= FfaVersion::V1_2 {
            Width::Wide
        } else {
            Width::Ffa8
        };
        let result = match f.num {
            num::FEATURES => self.features(regs, version, spmc),
            num::ID_GET => Ok(Reply::success(&[spmc.host_id as u64])),
            num::SPM_ID_GET => Ok(Reply::success(&[spmc.spmc_id as u64])),
            num::RXTX_MAP => self.rxtx_map(regs, f.is_64, env),
            num::RXTX_UNMAP => self.rxtx_unmap(regs, spmc),
            num::RX_RELEASE => self.rx_release(),
            num::PARTITION_INFO_GET => self.partition_info_get(regs, version, env),
            num::PARTITION_INFO_GET_REGS => {
                // x1-x3 are the only inputs (§13.10); the SPMC fills x2-x17.
                Ok(Reply {
                    regs: env.spmc_call(&abi::call_regs(regs[0] as u32, &regs[1..4])),
                    width: Width::Wide,
                })
            }
            num::MSG_SEND_DIRECT_REQ => {
                self.direct_req(regs, f.is_64, spmc, env).map(|regs| Reply {
                    regs,
                    width: forwarded,
                })
            }
            num::MSG_SEND_DIRECT_REQ2 => self.direct_req2(regs, spmc, env).map(|regs| Reply {
                regs,
                width: Width::Wide,
            }),
            num::RUN => self.run(regs, spmc, env).map(|regs| Reply {
                regs,
                width: forwarded,
            }),
            _ => Err(FfaError::NotSupported),
        };
        result.unwrap_or_else(Reply::error)
    }

    /// FFA_FEATURES (§13.3): answered from `SERVED`, never forwarded.
    fn features(
        &self,
        regs: &Regs,
        version: FfaVersion,
        spmc: &SpmcInfo,
    ) -> Result<Reply, FfaError> {
        let w1 = regs[1] as u32;
        if w1 & (1 << 31) == 0 {
            // Feature IDs (NPI, SRI, managed exit): warden does not deliver notifications
            // or managed exits to the host yet.
            return Err(FfaError::NotSupported);
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
        Ok(Reply::success(&[props]))
    }

    fn rxtx_map(
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
        info!(
            "FF-A: host mapped TX {:#x} RX {:#x}, {} page(s) each",
            tx, rx, pages
        );
        *slot = Some(mailbox);
        Ok(Reply::success(&[]))
    }

    fn rxtx_unmap(&self, regs: &Regs, spmc: &SpmcInfo) -> Result<Reply, FfaError> {
        // w1[31:16]: the endpoint ID, which for an endpoint is its own (or 0); [15:0] MBZ.
        let w1 = regs[1] as u32;
        if w1 & 0xffff != 0 || (w1 >> 16) as u16 != spmc.host_id {
            return Err(FfaError::InvalidParameters);
        }
        self.mailbox
            .lock()
            .take()
            .ok_or(FfaError::InvalidParameters)?;
        info!("FF-A: host unmapped its RX/TX buffers");
        Ok(Reply::success(&[]))
    }

    fn rx_release(&self) -> Result<Reply, FfaError> {
        let mut slot = self.mailbox.lock();
        let mailbox = slot.as_mut().ok_or(FfaError::Denied)?;
        if mailbox.rx_owner != RxOwner::Host {
            return Err(FfaError::Denied);
        }
        mailbox.rx_owner = RxOwner::Producer;
        Ok(Reply::success(&[]))
    }

    /// FFA_PARTITION_INFO_GET (§13.8): asked of the SPMC through warden's RX buffer, then
    /// re-emitted in the host's descriptor format into the host's RX buffer.
    fn partition_info_get(
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
        let spmc_version = self
            .spmc
            .as_ref()
            .map(|s| s.version)
            .unwrap_or(FfaVersion::V1_0);
        // Ask for the count first when only the count is wanted and the SPMC knows the
        // flag; otherwise fetch the descriptors.
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
        let fetched = spmc_flags == 0;
        let parsed = if fetched {
            let size = if spmc_version >= FfaVersion::V1_1 {
                resp[3] as u32 as usize
            } else {
                partition::SIZE_V1_0
            };
            let parsed = partition::parse_all(env.own_rx(), count, size);
            // Hand warden's RX buffer back to the SPMC whatever it contained.
            release_own_rx(env);
            Some(parsed.map_err(|_| FfaError::Aborted)?)
        } else {
            None
        };
        if count_only {
            return Ok(Reply::success(&[count as u64, size_reg(host_size)]));
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
        env.write_host(mailbox.rx.start, &out);
        mailbox.rx_owner = RxOwner::Host;
        Ok(Reply::success(&[count as u64, size_reg(host_size)]))
    }

    /// FFA_MSG_SEND_DIRECT_REQ (§15.2): from the host to a secure partition it names, never
    /// a framework message (w2 bit 31: only the hypervisor sends those), w2 otherwise MBZ.
    fn direct_req(
        &self,
        regs: &Regs,
        is_64: bool,
        spmc: &SpmcInfo,
        env: &mut impl ProxyEnv,
    ) -> Result<Regs, FfaError> {
        check_endpoints(regs[1], spmc)?;
        if regs[2] as u32 != 0 {
            return Err(FfaError::InvalidParameters);
        }
        // Only w0-w7 are arguments; nothing else of the host's reaches the SPMC.
        let mask = if is_64 { u64::MAX } else { u32::MAX as u64 };
        let args: Vec<u64> = regs[1..8].iter().map(|r| r & mask).collect();
        Ok(env.spmc_call(&abi::call_regs(regs[0] as u32, &args)))
    }

    /// FFA_MSG_SEND_DIRECT_REQ2 (v1.2, §15.4): x2-x3 target UUID, x4-x17 payload.
    fn direct_req2(
        &self,
        regs: &Regs,
        spmc: &SpmcInfo,
        env: &mut impl ProxyEnv,
    ) -> Result<Regs, FfaError> {
        check_endpoints(regs[1], spmc)?;
        Ok(env.spmc_call(regs))
    }

    /// FFA_RUN (§14.1): resumes a partition's execution context after FFA_INTERRUPT or
    /// FFA_YIELD, so that a preempted direct request completes.
    fn run(&self, regs: &Regs, spmc: &SpmcInfo, env: &mut impl ProxyEnv) -> Result<Regs, FfaError> {
        let target = (regs[1] >> 16) as u16;
        if !spmc.partitions.iter().any(|p| p.id == target) {
            return Err(FfaError::InvalidParameters);
        }
        Ok(env.spmc_call(&abi::call_regs(regs[0] as u32, &[regs[1] as u32 as u64])))
    }
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
    if !partition::is_secure(dst) || !spmc.partitions.iter().any(|p| p.id == dst) {
        return Err(FfaError::InvalidParameters);
    }
    Ok(())
}

/// FFA_FEATURES(fid) at the SPMC: w2 of FFA_SUCCESS, or `None`.
fn feature(env: &mut impl ProxyEnv, fid: u32) -> Option<u32> {
    let r = env.spmc_call(&abi::call_regs(abi::FFA_FEATURES, &[fid as u64]));
    abi::expect_success(&r).ok().map(|r| r[2] as u32)
}

fn release_own_rx(env: &mut impl ProxyEnv) {
    let r = env.spmc_call(&abi::call_regs(abi::FFA_RX_RELEASE, &[]));
    if let Err(e) = abi::expect_success(&r) {
        warn!("FF-A: SPMC refused to take back warden's RX buffer: {e:?}");
    }
}

/// Boot-time conversation with EL3 (§18.3 (FF-A setup)): version, IDs, buffer rules,
/// warden's own buffers, and the list of secure partitions.
fn probe_spmc(env: &mut impl ProxyEnv, own_tx: u64, own_rx: u64) -> Result<SpmcInfo, &'static str> {
    let r = env.spmc_call(&abi::call_regs(
        abi::FFA_VERSION,
        &[FfaVersion::WARDEN.encode() as u64],
    ));
    // A negative w0 (compared as s32: SMC32 results are zero-extended) means no FF-A.
    if (r[0] as u32 as i32) < 0 {
        return Err("EL3 answers FFA_VERSION with NOT_SUPPORTED");
    }
    let theirs = FfaVersion::decode(r[0] as u32).ok_or("bad FFA_VERSION reply")?;
    if theirs.major != 1 {
        return Err("SPMC major version is not 1");
    }
    let version = theirs.min(FfaVersion::WARDEN);

    let id = env.spmc_call(&abi::call_regs(abi::FFA_ID_GET, &[]));
    let host_id = abi::expect_success(&id).map_err(|_| "FFA_ID_GET failed")?[2] as u16;
    let spmc_id = if version >= FfaVersion::V1_1 {
        let r = env.spmc_call(&abi::call_regs(abi::FFA_SPM_ID_GET, &[]));
        abi::expect_success(&r).map_err(|_| "FFA_SPM_ID_GET failed")?[2] as u16
    } else {
        0
    };
    let rxtx_granule =
        feature(env, abi::FFA_RXTX_MAP_64).ok_or("FFA_FEATURES(RXTX_MAP) failed")? & 0x3;
    if rxtx_granule != 0 {
        return Err("SPMC needs RX/TX buffers larger than 4 KiB");
    }
    let direct_req2 =
        version >= FfaVersion::V1_2 && feature(env, abi::FFA_MSG_SEND_DIRECT_REQ2).is_some();
    let partition_info_regs =
        version >= FfaVersion::V1_2 && feature(env, abi::FFA_PARTITION_INFO_GET_REGS).is_some();

    let r = env.spmc_call(&abi::call_regs(abi::FFA_RXTX_MAP_64, &[own_tx, own_rx, 1]));
    abi::expect_success(&r).map_err(|_| "FFA_RXTX_MAP of warden's buffers failed")?;

    let r = env.spmc_call(&abi::call_regs(
        abi::FFA_PARTITION_INFO_GET,
        &[0, 0, 0, 0, 0],
    ));
    let r = abi::expect_success(&r).map_err(|_| "FFA_PARTITION_INFO_GET failed")?;
    let count = r[2] as u32 as usize;
    let size = if version >= FfaVersion::V1_1 {
        r[3] as u32 as usize
    } else {
        partition::SIZE_V1_0
    };
    let partitions = partition::parse_all(env.own_rx(), count, size);
    release_own_rx(env);
    let partitions = partitions.map_err(|_| "bad partition descriptors from the SPMC")?;

    Ok(SpmcInfo {
        version,
        spmc_id,
        host_id,
        partitions,
        rxtx_granule,
        direct_req2,
        partition_info_regs,
    })
}

/// Every FF-A function number, for tests and documentation: which ones warden serves.
pub fn served_functions() -> impl Iterator<Item = (u32, bool, FfaVersion)> {
    SERVED.iter().copied()
}
