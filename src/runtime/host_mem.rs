//! The machine as the FF-A proxy sees it (`ProxyEnv`): the host's RAM, which warden reads
//! and writes only after checking it is the host's, the host's stage-2 and the SMMUs'
//! DMA tables for lends, EL3, and warden's own buffers with the SPMC.

use core::cell::OnceCell;

use log::error;
use spin::Mutex;

use super::OwnedSmmu;
use super::own_mailbox::{OWN_MAILBOX, OwnMailboxGuard};
use super::trap::El3;
use crate::arch::stage2::HostStage2;
use crate::ffa::abi::{FfaError, Regs};
use crate::ffa::proxy::ProxyEnv;
use crate::platform::memmap::{self, Range};
use crate::router::SecureMonitor;

pub struct HostFfaEnv<'a> {
    pub ram: &'a [Range],
    pub warden_mem: Range,
    /// None only during boot, before the host has a stage-2 (no lends then).
    pub stage2: Option<&'a Mutex<HostStage2>>,
    /// The SMMUs whose DMA tables follow the stage-2.
    pub smmus: &'a [OwnedSmmu],
    /// warden's own buffers, locked at their first use in this call and released when the
    /// call ends. The proxy uses them only under its mailbox lock and takes that lock once
    /// per call, so this lock always comes after it: no CPU can wait for the mailbox lock
    /// while holding this one.
    own: OnceCell<OwnMailboxGuard<'static>>,
}

impl<'a> HostFfaEnv<'a> {
    pub fn new(
        ram: &'a [Range],
        warden_mem: Range,
        stage2: Option<&'a Mutex<HostStage2>>,
        smmus: &'a [OwnedSmmu],
    ) -> Self {
        Self {
            ram,
            warden_mem,
            stage2,
            smmus,
            own: OnceCell::new(),
        }
    }
}

impl ProxyEnv for HostFfaEnv<'_> {
    // Inlined: the argument and result arrays then stay in registers on the hot direct
    // request (issue 15) instead of being built in memory and copied on both sides.
    #[inline(always)]
    fn spmc_call(&mut self, regs: &Regs) -> Regs {
        El3.call(regs)
    }
    fn is_host_ram(&self, r: Range) -> bool {
        memmap::is_host_ram(self.ram, &[self.warden_mem], r)
    }
    fn write_host(&mut self, pa: u64, data: &[u8]) {
        let r = Range::new(pa, pa.saturating_add(data.len() as u64));
        if !self.is_host_ram(r) {
            error!(
                "FF-A: refusing to write {} bytes at {pa:#x}: not host RAM",
                data.len()
            );
            return;
        }
        // SAFETY: `r` is host RAM (checked just above), which warden's stage-1 maps
        // read-write, and it does not overlap warden's own memory.
        unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
    }
    fn read_host(&self, pa: u64, buf: &mut [u8]) {
        let r = Range::new(pa, pa.saturating_add(buf.len() as u64));
        if !self.is_host_ram(r) {
            error!(
                "FF-A: refusing to read {} bytes at {pa:#x}: not host RAM",
                buf.len()
            );
            buf.fill(0);
            return;
        }
        // SAFETY: `r` is host RAM (checked just above), mapped in warden's stage-1. The
        // host may write it concurrently: the copy is a snapshot that warden then parses
        // as untrusted bytes.
        unsafe { core::ptr::copy_nonoverlapping(pa as *const u8, buf.as_mut_ptr(), buf.len()) };
    }
    fn write_own_tx(&mut self, data: &[u8]) {
        let _ = self.own.get_or_init(|| OWN_MAILBOX.lock());
        if let Some(own) = self.own.get_mut() {
            own.write_tx(data);
        }
    }
    fn unmap_from_host(&mut self, ranges: &[Range]) -> Result<(), FfaError> {
        let s2 = self.stage2.ok_or(FfaError::Denied)?;
        // The guard ends with the statement: nothing is logged while the stage-2 lock is
        // held (and the restore below would otherwise wait for it for ever).
        let lent = s2.lock().lend(ranges);
        if let Err(e) = lent {
            // Whatever was unmapped goes back.
            let _ = s2.lock().restore(ranges);
            error!("host stage-2: lend failed: {e}; undone");
            return Err(FfaError::Aborted);
        }
        // Then DMA: when this returns, no device reaches the pages either, and the lend
        // may go to the SPMC.
        for (i, smmu) in self.smmus.iter().enumerate() {
            let lent = smmu.control.lock().lend(ranges);
            if let Err(e) = lent {
                error!("SMMU: lend failed: {e}; undone");
                for earlier in self.smmus.iter().take(i) {
                    let _ = earlier.control.lock().restore(ranges);
                }
                let _ = s2.lock().restore(ranges);
                return Err(FfaError::Aborted);
            }
        }
        Ok(())
    }
    fn map_to_host(&mut self, ranges: &[Range]) {
        let restored = self.stage2.map(|s2| s2.lock().restore(ranges));
        if let Some(Err(e)) = restored {
            error!(
                "host stage-2: restoring {} range(s) failed: {e}",
                ranges.len()
            );
        }
        for smmu in self.smmus {
            let restored = smmu.control.lock().restore(ranges);
            if let Err(e) = restored {
                error!("SMMU: restoring {} range(s) failed: {e}", ranges.len());
            }
        }
    }
    fn own_rx(&self) -> &[u8] {
        self.own.get_or_init(|| OWN_MAILBOX.lock()).rx()
    }
}
