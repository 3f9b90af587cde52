//! The FF-A proxy: warden's side of the host's FF-A calls and of its own conversation with
//! the SPMC. One table (`SERVED`) says which functions warden serves; the dispatcher and
//! FFA_FEATURES both read it, so they cannot disagree.

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use log::{info, warn};
use spin::Mutex;

use super::abi::{self, FfaError, FfaFunction, Regs, num};
use super::mailbox::{self, HostMailbox, RxOwner};
use super::memory::{self, MemOp};
use super::ownership::{Handle, Ownership, PageState};
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
    /// Copies host memory at `pa` (inside the host's TX buffer) into `buf`.
    fn read_host(&self, pa: u64, buf: &mut [u8]);
    /// Writes `data` at the start of warden's own TX buffer (at most one page).
    fn write_own_tx(&mut self, data: &[u8]);
    /// Removes `ranges` from the host's stage-2 (a lend); all or nothing.
    fn unmap_from_host(&mut self, ranges: &[Range]) -> Result<(), FfaError>;
    /// Gives `ranges` back to the host's stage-2 (reclaim of a lend, or rollback).
    fn map_to_host(&mut self, ranges: &[Range]);
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
    /// The size of warden's own RX/TX buffers at the SPMC, in 4 KiB pages.
    pub own_buffer_pages: u64,
    /// The schedule receiver interrupt (an SGI the SPMC raises for the normal world) when
    /// the SPMC offers notifications to the normal world; `None` when it does not.
    pub notification_sri: Option<u32>,
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
    (num::MEM_SHARE, false, FfaVersion::V1_0),
    (num::MEM_SHARE, true, FfaVersion::V1_0),
    (num::MEM_LEND, false, FfaVersion::V1_0),
    (num::MEM_LEND, true, FfaVersion::V1_0),
    (num::MEM_FRAG_TX, false, FfaVersion::V1_0),
    (num::MEM_RECLAIM, false, FfaVersion::V1_0),
    (num::NOTIFICATION_BITMAP_CREATE, false, FfaVersion::V1_1),
    (num::NOTIFICATION_BITMAP_DESTROY, false, FfaVersion::V1_1),
    (num::NOTIFICATION_BIND, false, FfaVersion::V1_1),
    (num::NOTIFICATION_UNBIND, false, FfaVersion::V1_1),
    (num::NOTIFICATION_GET, false, FfaVersion::V1_1),
    (num::NOTIFICATION_INFO_GET, false, FfaVersion::V1_1),
    (num::NOTIFICATION_INFO_GET, true, FfaVersion::V1_1),
];

/// FFA_FEATURES feature ID of the schedule receiver interrupt (DEN0077A v1.2 §13.3.1.2).
const FEATURE_SRI: u32 = 2;

/// FFA_MEM_FRAG_RX: the callee asks for the next fragment (DEN0077A v1.2 §10.4.2).
const FFA_MEM_FRAG_RX: u64 = abi::fid32(num::MEM_FRAG_RX) as u64;
/// Handles warden allocates for transactions the host is still sending in fragments:
/// bit 63 set means "allocated by the hypervisor" (§10.2.1).
const HYP_HANDLE: u64 = 1 << 63;

/// One shared or lent region set, as the SPMC knows it by its handle.
#[derive(Clone, Debug)]
struct Record {
    op: MemOp,
    ranges: Vec<Range>,
}

/// A transaction the host is sending in fragments (FFA_MEM_FRAG_TX).
struct Pending {
    op: MemOp,
    is_64: bool,
    handle: Handle,
    total: usize,
    bytes: Vec<u8>,
}

/// The most memory handles the host may hold at once, and the most ranges they may
/// record together (one `Range` each, plus their ownership entries: about 2 MiB of
/// warden's 8 MiB heap at the limit).
pub const MAX_LIVE_HANDLES: usize = 256;
pub const MAX_LIVE_RANGES: usize = 32 * 1024;

#[derive(Default)]
struct MemoryState {
    ownership: Ownership,
    handles: BTreeMap<Handle, Record>,
    pending: Option<Pending>,
    next_id: u64,
}

pub struct FfaProxy {
    spmc: Option<SpmcInfo>,
    negotiation: Mutex<Negotiation>,
    /// The host's buffers. Held across PARTITION_INFO_GET, which also uses warden's own
    /// RX buffer, so it serialises every use of both.
    mailbox: Mutex<Option<HostMailbox>>,
    /// Page ownership and the handles the host created. Taken after `mailbox`.
    memory: Mutex<MemoryState>,
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
            memory: Mutex::new(MemoryState::default()),
        }
    }

    pub fn spmc(&self) -> Option<&SpmcInfo> {
        self.spmc.as_ref()
    }

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
                num::NOTIFICATION_BITMAP_CREATE..=num::NOTIFICATION_INFO_GET => {
                    spmc.notification_sri.is_some()
                }
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
            num::MEM_SHARE => self.mem_send(MemOp::Share, f.is_64, regs, version, env),
            num::MEM_LEND => self.mem_send(MemOp::Lend, f.is_64, regs, version, env),
            num::MEM_FRAG_TX => self.mem_frag_tx(regs, version, env),
            num::MEM_RECLAIM => self.mem_reclaim(regs, env),
            num::NOTIFICATION_BITMAP_CREATE..=num::NOTIFICATION_INFO_GET => {
                self.notification(f, regs, spmc, env).map(|regs| Reply {
                    regs,
                    width: forwarded,
                })
            }
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
            // Feature IDs. The SRI is an SGI the SPMC raises straight at the normal world,
            // which the host owns (warden does not take interrupts), so its ID is the
            // SPMC's. There is no NPI: that is a virtual interrupt a hypervisor injects into
            // its VMs, and the host is not one. No managed exit for the host either.
            return match (w1, spmc.notification_sri) {
                (FEATURE_SRI, Some(sri)) if version >= FfaVersion::V1_1 => {
                    Ok(Reply::success(&[sri as u64]))
                }
                _ => Err(FfaError::NotSupported),
            };
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
        Ok(Reply::success(&[]))
    }

    fn rxtx_unmap(&self, regs: &Regs, spmc: &SpmcInfo) -> Result<Reply, FfaError> {
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
        // Not while a fragmented send is still reading from the TX buffer.
        if memory.pending.is_some() {
            return Err(FfaError::Busy);
        }
        memory.ownership.release(PageState::Mailbox);
        *slot = None;
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

    /// FFA_MEM_SHARE / FFA_MEM_LEND (§10.5, §10.6) with the descriptor in the host's TX
    /// buffer. A descriptor in several fragments is collected (and bounded) before any
    /// page changes hands; then it is checked whole, the pages are claimed, a lend
    /// removes them from the host's stage-2, and the transaction goes to the SPMC in the
    /// SPMC's layout, from warden's own TX buffer. Any failure undoes everything.
    fn mem_send(
        &self,
        op: MemOp,
        is_64: bool,
        regs: &Regs,
        version: FfaVersion,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let total = regs[1] as u32 as usize;
        let frag = regs[2] as u32 as usize;
        let (addr, page_count) = if is_64 {
            (regs[3], regs[4] as u32)
        } else {
            (regs[3] as u32 as u64, regs[4] as u32)
        };
        // Dynamically allocated buffers (address != 0) are not supported (§10.4.1).
        if addr != 0 || page_count != 0 {
            return Err(FfaError::InvalidParameters);
        }
        if total > memory::MAX_TOTAL_LEN {
            return Err(FfaError::NoMemory);
        }
        if frag == 0 || frag > total {
            return Err(FfaError::InvalidParameters);
        }
        let slot = self.mailbox.lock();
        let mailbox = slot.as_ref().ok_or(FfaError::Denied)?;
        if frag as u64 > mailbox.tx.len() {
            return Err(FfaError::InvalidParameters);
        }
        if self.memory.lock().pending.is_some() {
            return Err(FfaError::Busy);
        }
        // One snapshot of the host's bytes: the host cannot change them under warden.
        let mut bytes = vec![0u8; frag];
        env.read_host(mailbox.tx.start, &mut bytes);
        if frag < total {
            let mut memory = self.memory.lock();
            memory.next_id += 1;
            let handle = HYP_HANDLE | memory.next_id;
            bytes.reserve_exact(total - frag);
            memory.pending = Some(Pending {
                op,
                is_64,
                handle,
                total,
                bytes,
            });
            return Ok(frag_rx(handle, frag));
        }
        let result = self.mem_commit(op, is_64, &bytes, version, env);
        drop(slot);
        result
    }

    /// FFA_MEM_FRAG_TX (§10.4.3): the next fragment of the host's pending transaction.
    fn mem_frag_tx(
        &self,
        regs: &Regs,
        version: FfaVersion,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let handle = (regs[1] as u32 as u64) | (regs[2] as u32 as u64) << 32;
        let frag = regs[3] as u32 as usize;
        // w4: sender ID, which only a hypervisor sets; MBZ from an endpoint.
        if regs[4] as u32 != 0 {
            return Err(FfaError::InvalidParameters);
        }
        let slot = self.mailbox.lock();
        let mailbox = slot.as_ref().ok_or(FfaError::Denied)?;
        let mut memory = self.memory.lock();
        let pending = memory
            .pending
            .as_mut()
            .filter(|p| p.handle == handle)
            .ok_or(FfaError::InvalidParameters)?;
        let fits = frag > 0
            && frag as u64 <= mailbox.tx.len()
            && pending
                .bytes
                .len()
                .checked_add(frag)
                .is_some_and(|n| n <= pending.total);
        if !fits {
            // A bad fragment ends the transaction: nothing was claimed yet.
            memory.pending = None;
            return Err(FfaError::InvalidParameters);
        }
        let start = pending.bytes.len();
        pending.bytes.resize(start + frag, 0);
        let Some(fresh) = pending.bytes.get_mut(start..) else {
            return Err(FfaError::Aborted);
        };
        env.read_host(mailbox.tx.start, fresh);
        if pending.bytes.len() < pending.total {
            return Ok(frag_rx(handle, pending.bytes.len()));
        }
        let Some(done) = memory.pending.take() else {
            return Err(FfaError::Aborted);
        };
        drop(memory);
        let result = self.mem_commit(done.op, done.is_64, &done.bytes, version, env);
        drop(slot);
        result
    }

    /// The whole descriptor is here: check it, claim, send to the SPMC, or undo.
    /// Called with the mailbox lock held (it serialises warden's own TX buffer).
    fn mem_commit(
        &self,
        op: MemOp,
        is_64: bool,
        desc: &[u8],
        version: FfaVersion,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let spmc = self.spmc.as_ref().ok_or(FfaError::NotSupported)?;
        let t = memory::parse(desc, version, op)?;
        let ranges = t.validate_for_host(
            spmc.host_id,
            |id| partition::is_secure(id) && spmc.partitions.iter().any(|p| p.id == id),
            |r| env.is_host_ram(r),
        )?;
        let id = {
            let mut memory = self.memory.lock();
            // Every live handle keeps its ranges on warden's heap: bound them, so that a
            // host that shares and never reclaims gets NO_MEMORY, not a heap panic.
            let recorded: usize = memory.handles.values().map(|r| r.ranges.len()).sum();
            if memory.handles.len() >= MAX_LIVE_HANDLES || recorded + ranges.len() > MAX_LIVE_RANGES
            {
                return Err(FfaError::NoMemory);
            }
            memory.next_id += 1;
            let id = memory.next_id;
            memory.ownership.claim(&ranges, PageState::Pending(id))?;
            id
        };
        let undo = |env: &mut dyn FnMut(&[Range]), lent: bool| {
            if lent {
                env(&ranges);
            }
            self.memory.lock().ownership.release(PageState::Pending(id));
        };
        if op == MemOp::Lend
            && let Err(e) = env.unmap_from_host(&ranges)
        {
            undo(&mut |_| {}, false);
            return Err(e);
        }
        let lent = op == MemOp::Lend;
        match send_to_spmc(spmc.own_buffer_pages, &t, op, is_64, spmc.version, env) {
            Ok(handle) => {
                let mut memory = self.memory.lock();
                let state = if lent {
                    PageState::Lent(handle)
                } else {
                    PageState::Shared(handle)
                };
                memory.ownership.transition(PageState::Pending(id), state);
                memory.handles.insert(
                    handle,
                    Record {
                        op,
                        ranges: ranges.clone(),
                    },
                );
                info!(
                    "FF-A: host {} {} page(s) in {} range(s) with {:#06x}: handle {handle:#x}",
                    if lent { "lent" } else { "shared" },
                    t.total_pages,
                    ranges.len(),
                    t.receivers.first().map_or(0, |r| r.id)
                );
                Ok(Reply::success(&[handle as u32 as u64, handle >> 32]))
            }
            Err(e) => {
                undo(&mut |r| env.map_to_host(r), lent);
                warn!("FF-A: the SPMC refused the host's memory transaction: {e:?}; undone");
                Err(e)
            }
        }
    }

    /// FFA_MEM_RECLAIM (§10.8): only for handles the host created (or its own fragmented
    /// send still in progress, which this abandons); ownership returns once the SPMC agrees.
    fn mem_reclaim(&self, regs: &Regs, env: &mut impl ProxyEnv) -> Result<Reply, FfaError> {
        let handle = (regs[1] as u32 as u64) | (regs[2] as u32 as u64) << 32;
        let flags = regs[3] as u32;
        // Bit 0: zero memory before reclaim; bit 1: time slicing; the rest MBZ.
        if flags & !0b11 != 0 {
            return Err(FfaError::InvalidParameters);
        }
        // The memory lock is held across the SPMC's reclaim: the SPMC may hand the same
        // handle value to another CPU's share as soon as it has freed it, and that share's
        // record must not be inserted before this one is gone (found by the SMP stress).
        let mut memory = self.memory.lock();
        if memory.pending.as_ref().is_some_and(|p| p.handle == handle) {
            memory.pending = None;
            return Ok(Reply::success(&[]));
        }
        let record = memory
            .handles
            .get(&handle)
            .cloned()
            .ok_or(FfaError::InvalidParameters)?;
        if flags & 1 != 0 && record.op != MemOp::Lend {
            return Err(FfaError::InvalidParameters);
        }
        let r = env.spmc_call(&abi::call_regs(
            abi::fid32(num::MEM_RECLAIM),
            &[handle as u32 as u64, handle >> 32, flags as u64],
        ));
        abi::expect_success(&r)?;
        memory.handles.remove(&handle);
        let state = match record.op {
            MemOp::Share => PageState::Shared(handle),
            MemOp::Lend => PageState::Lent(handle),
        };
        // A lent range goes back to the host's stage-2 before its pages are free again:
        // otherwise another CPU could lend them anew and have them mapped back here.
        if record.op == MemOp::Lend {
            env.map_to_host(&record.ranges);
        }
        memory.ownership.release(state);
        drop(memory);
        info!("FF-A: host reclaimed handle {handle:#x}");
        Ok(Reply::success(&[]))
    }

    /// Notifications (DEN0077A v1.2 §13.18-13.24): the host receives notifications from
    /// partitions. Every ID is checked and only the argument registers go to the SPMC: the
    /// bitmap is the host's (VM ID = host ID), BIND/UNBIND bind a listed partition as
    /// sender to the host as receiver, GET reads the host's own. SET is not offered:
    /// OP-TEE's SPMC does not accept it from the normal world.
    fn notification(
        &self,
        f: FfaFunction,
        regs: &Regs,
        spmc: &SpmcInfo,
        env: &mut impl ProxyEnv,
    ) -> Result<Regs, FfaError> {
        let w1 = regs[1] as u32;
        let (hi, lo) = ((w1 >> 16) as u16, w1 as u16);
        let is_partition = |id: u16| spmc.partitions.iter().any(|p| p.id == id);
        let host = spmc.host_id;
        let args: &[u64] = match f.num {
            // w1 = VM ID, w2 = vCPU count.
            num::NOTIFICATION_BITMAP_CREATE if w1 == u32::from(host) => &regs[1..3],
            num::NOTIFICATION_BITMAP_DESTROY if w1 == u32::from(host) => &regs[1..2],
            // w1 = sender [31:16] | receiver [15:0], w2 flags, w3-w4 bitmap.
            num::NOTIFICATION_BIND | num::NOTIFICATION_UNBIND if lo == host && is_partition(hi) => {
                &regs[1..5]
            }
            // w1 = vCPU [31:16] | receiver [15:0], w2 flags.
            num::NOTIFICATION_GET if lo == host => &regs[1..3],
            num::NOTIFICATION_INFO_GET => &[],
            _ => return Err(FfaError::InvalidParameters),
        };
        let mask = if f.is_64 {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        let args: Vec<u64> = args.iter().map(|a| a & mask).collect();
        Ok(env.spmc_call(&abi::call_regs(f.fid(), &args)))
    }

    /// Handles the host holds, for tests and counters.
    pub fn live_handles(&self) -> usize {
        self.memory.lock().handles.len()
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

fn frag_rx(handle: Handle, offset: usize) -> Reply {
    Reply::local(abi::call_regs(
        FFA_MEM_FRAG_RX as u32,
        &[handle as u32 as u64, handle >> 32, offset as u64],
    ))
}

/// Sends transaction `t` to the SPMC in its layout, in fragments of at most one page
/// (warden's TX buffer), and returns the SPMC's handle. A transaction the SPMC stops
/// half way is abandoned with FFA_MEM_RECLAIM (§10.4.2).
fn send_to_spmc(
    own_buffer_pages: u64,
    t: &memory::MemTransaction,
    op: MemOp,
    is_64: bool,
    version: FfaVersion,
    env: &mut impl ProxyEnv,
) -> Result<Handle, FfaError> {
    let desc = t.emit(version);
    let frags = memory::fragments(
        desc.len(),
        t.constituents_offset(version),
        (own_buffer_pages * mailbox::PAGE) as usize,
    );
    let n = match op {
        MemOp::Share => num::MEM_SHARE,
        MemOp::Lend => num::MEM_LEND,
    };
    let fid = if is_64 { abi::fid64(n) } else { abi::fid32(n) };
    let mut handle = None;
    for (i, &(start, end)) in frags.iter().enumerate() {
        env.write_own_tx(desc.get(start..end).ok_or(FfaError::Aborted)?);
        let len = (end - start) as u64;
        let r = if i == 0 {
            env.spmc_call(&abi::call_regs(fid, &[desc.len() as u64, len, 0, 0]))
        } else {
            let h = handle.ok_or(FfaError::Aborted)?;
            env.spmc_call(&abi::call_regs(
                abi::fid32(num::MEM_FRAG_TX),
                &[h & 0xffff_ffff, h >> 32, len, 0],
            ))
        };
        let last = i + 1 == frags.len();
        match (r[0], last) {
            (x, false) if x == FFA_MEM_FRAG_RX && r[3] as u32 as usize == end => {
                handle = Some((r[1] as u32 as u64) | (r[2] as u32 as u64) << 32);
            }
            (x, true) if x == abi::FFA_SUCCESS_32 as u64 || x == abi::FFA_SUCCESS_64 as u64 => {
                return Ok((r[2] as u32 as u64) | (r[3] as u32 as u64) << 32);
            }
            _ => {
                let e = abi::expect_success(&r).err().unwrap_or(FfaError::Aborted);
                if let Some(h) = handle {
                    let _ = env.spmc_call(&abi::call_regs(
                        abi::fid32(num::MEM_RECLAIM),
                        &[h & 0xffff_ffff, h >> 32, 0],
                    ));
                }
                return Err(e);
            }
        }
    }
    Err(FfaError::Aborted)
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
fn probe_spmc(
    env: &mut impl ProxyEnv,
    own_tx: u64,
    own_rx: u64,
    own_pages: u64,
) -> Result<SpmcInfo, &'static str> {
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

    // As many pages as warden has, else one: an SPMC may cap the size (§13.6).
    let mut own_buffer_pages = own_pages;
    let r = env.spmc_call(&abi::call_regs(
        abi::FFA_RXTX_MAP_64,
        &[own_tx, own_rx, own_pages],
    ));
    if abi::expect_success(&r).is_err() && own_pages > 1 {
        own_buffer_pages = 1;
        let r = env.spmc_call(&abi::call_regs(abi::FFA_RXTX_MAP_64, &[own_tx, own_rx, 1]));
        abi::expect_success(&r).map_err(|_| "FFA_RXTX_MAP of warden's buffers failed")?;
    } else {
        abi::expect_success(&r).map_err(|_| "FFA_RXTX_MAP of warden's buffers failed")?;
    }

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

/// Every FF-A function number, for tests and documentation: which ones warden serves.
pub fn served_functions() -> impl Iterator<Item = (u32, bool, FfaVersion)> {
    SERVED.iter().copied()
}
