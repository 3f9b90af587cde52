//! The FF-A proxy: warden's side of the host's FF-A calls and of its own conversation with
//! the SPMC, split by the chapters of DEN0077A v1.2 as Hafnium splits its own:
//!
//! - `setup`: version, features, IDs and the boot-time probe of the SPMC (chapter 13.2-13.5);
//! - `buffers`: the host's RX/TX buffers and partition discovery (§13.6-13.10);
//! - `messaging`: direct requests and FFA_RUN (chapters 14, 15);
//! - `memory_management`: share, lend, fragments and reclaim (chapter 10, §13.11-13.16);
//! - `notifications`: the host's bitmap, bind and get (§13.18-13.24).
//!
//! This module holds the dispatcher and the one table (`SERVED`) that says which functions
//! warden serves; the dispatcher and FFA_FEATURES both read it, so they cannot disagree.

use core::sync::atomic::{AtomicU64, Ordering};

use log::{info, warn};
use spin::Mutex;

use super::abi::{self, FfaError, FfaFunction, Regs, num};
use super::answers;
use super::lifecycle::Holdings;
use super::mailbox::HostMailbox;
use super::memory::MemOp;
use super::version::{FfaVersion, HostVersion, VERSION_NOT_SUPPORTED};
use crate::platform::memmap::Range;
pub use crate::router::Reply;

mod buffers;
mod in_place;
mod memory_management;
mod messaging;
mod notifications;
mod setup;
#[cfg(test)]
mod tests;

use memory_management::MemoryState;
pub use setup::{ProbeError, SpmcInfo};

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
    /// Writes `data` at the start of warden's own TX buffer (at most its size, the
    /// `own_buffer_pages` the SPMC accepted at setup).
    fn write_own_tx(&mut self, data: &[u8]);
    /// Removes `ranges` from the host's stage-2 (a lend); all or nothing.
    fn unmap_from_host(&mut self, ranges: &[Range]) -> Result<(), FfaError>;
    /// Gives `ranges` back to the host's stage-2 (reclaim of a lend, or rollback).
    fn map_to_host(&mut self, ranges: &[Range]);
}

/// A locally answered FF-A result: x0-x7 (every FF-A version reads these).
fn local(regs: Regs) -> Reply {
    Reply::ffa(regs)
}

fn error(e: FfaError) -> Reply {
    local(abi::error_regs(e))
}

/// Refusals logged so far (every one is counted, see `refusal_is_logged`).
static REFUSALS: AtomicU64 = AtomicU64::new(0);

/// Whether the `n`th refusal (0-based) gets a log line: the first 64, then one in 4096, so
/// that a host cannot flood the console with bad calls (issue 14 item 3) and a burst still
/// shows with its running count.
pub fn refusal_is_logged(n: u64) -> bool {
    n < 64 || n.is_multiple_of(4096)
}

/// Says why a host call was refused: the function, its first arguments and the error.
/// Called after the handler returned, with no proxy lock held.
fn refused(regs: &Regs, e: FfaError) -> Reply {
    let n = REFUSALS.fetch_add(1, Ordering::Relaxed);
    if refusal_is_logged(n) {
        warn!(
            "FF-A: refused {:#010x} (w1 {:#x} w2 {:#x} w3 {:#x} w4 {:#x}): {e:?} (refusal #{})",
            regs[0] as u32,
            regs[1] as u32,
            regs[2] as u32,
            regs[3] as u32,
            regs[4] as u32,
            n + 1
        );
    }
    error(e)
}

fn success(args: &[u64]) -> Reply {
    local(abi::success_regs(args))
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

/// `SERVED` by function number (0x60-0xff, the FF-A range) and width: the earliest version
/// that may call it. Built from `SERVED` at compile time, so the two cannot disagree; the
/// dispatcher's look-up is one load instead of a scan of the table (a scan cost a share or
/// reclaim about a hundred instructions, issue 15's profile).
#[allow(clippy::indexing_slicing)] // Indices are a u8 into 256 rows and a bool into 2.
const SERVED_SINCE: [[Option<FfaVersion>; 2]; 256] = {
    let mut table: [[Option<FfaVersion>; 2]; 256] = [[None; 2]; 256];
    let mut rest = SERVED;
    while let [(n, is_64, since), tail @ ..] = rest {
        let slot = &mut table[*n as u8 as usize][*is_64 as usize];
        *slot = match *slot {
            Some(earlier)
                if earlier.major < since.major
                    || (earlier.major == since.major && earlier.minor <= since.minor) =>
            {
                Some(earlier)
            }
            _ => Some(*since),
        };
        rest = tail;
    }
    table
};

/// Interfaces the host receives from warden rather than calls: FFA_FEATURES reports them
/// (SUCCESS, no properties) because DEN0077A v1.2 makes them mandatory at every FF-A
/// instance (§13.3; the FF-A ACS checks FFA_ERROR_32, FFA_INTERRUPT_32 and one of the
/// FFA_SUCCESS pair), but as calls they get NOT_SUPPORTED.
const RECEIVED: &[u32] = &[
    abi::FFA_ERROR,
    abi::FFA_SUCCESS_32,
    abi::FFA_SUCCESS_64,
    abi::FFA_INTERRUPT,
];

pub struct FfaProxy {
    spmc: Option<SpmcInfo>,
    negotiation: HostVersion,
    /// The host's buffers. Held across PARTITION_INFO_GET, which also uses warden's own
    /// RX buffer, so it serialises every use of both.
    mailbox: Mutex<Option<HostMailbox>>,
    /// Page ownership and the handles the host created. Taken after `mailbox`.
    memory: Mutex<MemoryState>,
    /// The host's notification bitmap at the SPMC: its vCPU count once created.
    bitmap: Mutex<Option<u32>>,
}

impl FfaProxy {
    /// A proxy for a system with no FF-A at EL3: every host FF-A call gets NOT_SUPPORTED.
    pub fn absent() -> Self {
        Self::with(None)
    }

    pub fn with(spmc: Option<SpmcInfo>) -> Self {
        Self {
            spmc,
            negotiation: HostVersion::new(),
            mailbox: Mutex::new(None),
            memory: Mutex::new(MemoryState::default()),
            bitmap: Mutex::new(None),
        }
    }

    pub fn spmc(&self) -> Option<&SpmcInfo> {
        self.spmc.as_ref()
    }

    /// Handles the host holds, for tests and counters.
    pub fn live_handles(&self) -> usize {
        self.memory.lock().handles.len()
    }

    fn serves(&self, f: FfaFunction, version: FfaVersion) -> bool {
        let Some(spmc) = &self.spmc else { return false };
        let listed = u8::try_from(f.num)
            .ok()
            .and_then(|n| SERVED_SINCE.get(n as usize))
            .and_then(|row| row.get(usize::from(f.is_64)).copied().flatten())
            .is_some_and(|since| version >= since);
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
            return refused(regs, FfaError::NotSupported);
        };
        if f.num == num::VERSION && !f.is_64 {
            let mut r = [0; 18];
            r[0] = match self.spmc {
                Some(_) => self.negotiation.request(regs[1]),
                None => VERSION_NOT_SUPPORTED,
            };
            return local(r);
        }
        let version = self.negotiation.fix();
        let Some(spmc) = self.spmc.as_ref().filter(|_| self.serves(f, version)) else {
            return refused(regs, FfaError::NotSupported);
        };
        // Calls whose results end at x7 (direct requests, RUN, notifications): a v1.2 host
        // (SMCCC v1.2, x0-x17 results) gets zeros past x7, never what EL3 left there, unless
        // the answer is a DIRECT_RESP2 that RUN completed; an earlier host keeps its own
        // x8-x17 (README "Result registers").
        let forwarded = |regs: Regs| {
            if version < FfaVersion::V1_2 {
                return Reply::ffa(regs);
            }
            if answers::carries_x8_to_x17(regs[0]) {
                return Reply::wide(regs);
            }
            let [x0, x1, x2, x3, x4, x5, x6, x7, ..] = regs;
            Reply::wide([x0, x1, x2, x3, x4, x5, x6, x7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        };
        let result = match f.num {
            num::FEATURES => self.features(regs, version, spmc),
            num::ID_GET => Ok(success(&[spmc.host_id as u64])),
            num::SPM_ID_GET => Ok(success(&[spmc.spmc_id as u64])),
            num::RXTX_MAP => self.rxtx_map(regs, f.is_64, env),
            num::RXTX_UNMAP => self.rxtx_unmap(regs, spmc),
            num::RX_RELEASE => self.rx_release(),
            num::PARTITION_INFO_GET => self.partition_info_get(regs, version, env),
            num::PARTITION_INFO_GET_REGS => {
                // x1-x3 are the only inputs (§13.10); the SPMC fills x2-x17.
                Ok(Reply::wide(
                    env.spmc_call(&abi::call_regs(regs[0] as u32, &regs[1..4])),
                ))
            }
            num::MSG_SEND_DIRECT_REQ => self.direct_req(regs, f.is_64, spmc, env).map(forwarded),
            num::MSG_SEND_DIRECT_REQ2 => self.direct_req2(regs, spmc, env).map(Reply::wide),
            num::RUN => self.run(regs, spmc, env).map(forwarded),
            num::MEM_SHARE => self.mem_send(MemOp::Share, f.is_64, regs, version, env),
            num::MEM_LEND => self.mem_send(MemOp::Lend, f.is_64, regs, version, env),
            num::MEM_FRAG_TX => self.mem_frag_tx(regs, version, env),
            num::MEM_RECLAIM => self.mem_reclaim(regs, env),
            // One of the three calls by which the host lets go of something (with
            // RXTX_UNMAP and MEM_RECLAIM): when it succeeds, the host may hold nothing any
            // more (README "Host lifecycle").
            num::NOTIFICATION_BITMAP_DESTROY => self
                .notification(f, regs, spmc, env)
                .inspect(|r| {
                    if abi::expect_success(r).is_ok() {
                        self.reopen_if_nothing_held();
                    }
                })
                .map(forwarded),
            num::NOTIFICATION_BITMAP_CREATE..=num::NOTIFICATION_INFO_GET => {
                self.notification(f, regs, spmc, env).map(forwarded)
            }
            _ => Err(FfaError::NotSupported),
        };
        result.unwrap_or_else(|e| refused(regs, e))
    }

    /// README "Host lifecycle": when the host has let go of the last thing it held through
    /// warden (after a successful RXTX_UNMAP, MEM_RECLAIM or NOTIFICATION_BITMAP_DESTROY),
    /// its FF-A version is open again for the next kernel. Decided under the locks that
    /// guard each holding, in their order; called with none of them held.
    pub(super) fn reopen_if_nothing_held(&self) {
        let reopened = {
            let mailbox = self.mailbox.lock();
            // The common case, a running kernel's reclaim: its buffers are still mapped.
            if mailbox.is_some() {
                return;
            }
            let memory = self.memory.lock();
            let held = Holdings {
                buffers: mailbox.is_some(),
                handles: memory.handles.len(),
                sending: memory.pending.is_some(),
                notification_bitmap: self.bitmap.lock().is_some(),
            };
            if held.nothing() {
                self.negotiation.reopen();
            }
            held.nothing()
        };
        // Logged with no lock held (the console may be slow).
        if reopened {
            info!("FF-A: the host holds nothing; its FF-A version is open again");
        }
    }
}
