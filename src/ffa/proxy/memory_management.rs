//! Memory management (DEN0077A v1.2 chapter 10, §13.11-13.16): the host shares and lends
//! its pages to secure partitions, in one or several fragments, and reclaims them.
//! Ownership of every page is tracked so that a page is never in two transactions, and a
//! lent page leaves the host's stage-2 until it is reclaimed.

use alloc::collections::BTreeMap;
use alloc::collections::btree_map::Entry;
use alloc::vec::Vec;

use log::{debug, warn};

use super::{FfaProxy, ProxyEnv, Reply, local};
use crate::ffa::abi::{self, FfaError, Regs, num};
use crate::ffa::mailbox;
use crate::ffa::memory::{self, DescriptorView, Fragments, MemOp};
use crate::ffa::ownership::{Handle, Ownership, PageState};
use crate::ffa::version::FfaVersion;
use crate::platform::memmap::Range;

/// FFA_MEM_FRAG_RX: the callee asks for the next fragment (DEN0077A v1.2 §10.4.2).
const FFA_MEM_FRAG_RX: u64 = abi::fid32(num::MEM_FRAG_RX) as u64;
/// Handles warden allocates for transactions the host is still sending in fragments:
/// bit 63 set means "allocated by the hypervisor" (§10.2.1).
const HYP_HANDLE: u64 = 1 << 63;

/// One shared or lent region set, as the SPMC knows it by its handle. Its ranges are the
/// ownership map's, in state `Shared(handle)` or `Lent(handle)`: recorded once, there.
#[derive(Clone, Copy, Debug)]
pub(super) struct Record {
    op: MemOp,
    /// How many ranges it holds (for `MAX_LIVE_RANGES`).
    ranges: usize,
}

/// A transaction the host is sending in fragments (FFA_MEM_FRAG_TX).
pub(super) struct Pending {
    op: MemOp,
    is_64: bool,
    handle: Handle,
    total: usize,
    bytes: Vec<u8>,
}

/// The buffers of a send, kept between calls so that a share or lend allocates nothing
/// once they have grown to the host's usual descriptor: warden's snapshot of the host's
/// descriptor, the descriptor in the SPMC's layout, and the sorted page ranges. Only the
/// sender holding the mailbox lock uses them (taken out of `MemoryState` for the call).
#[derive(Default)]
pub(super) struct Scratch {
    bytes: Vec<u8>,
    out: Vec<u8>,
    ranges: Vec<Range>,
}

impl Scratch {
    /// The capacity in bytes each buffer keeps between calls.
    const KEEP: usize = 4096;

    /// Gives back to the heap a buffer grown by one large descriptor (up to
    /// `memory::MAX_TOTAL_LEN`) rather than holding it for good. After a descriptor of
    /// `len` bytes up to `KEEP / 4`, nothing can have grown past `KEEP` (the SPMC's layout
    /// adds at most 16 bytes per EMAD, growth at most doubles), so there is nothing to check.
    #[inline]
    fn trim_after(&mut self, len: usize) {
        if len <= Self::KEEP / 4 {
            return;
        }
        if self.bytes.capacity() > Self::KEEP {
            self.bytes = Vec::new();
        }
        if self.out.capacity() > Self::KEEP {
            self.out = Vec::new();
        }
        if self.ranges.capacity() > Self::KEEP / 16 {
            self.ranges = Vec::new();
        }
    }
}

/// Makes `v` exactly `len` bytes long without writing the bytes it already has (the caller
/// overwrites all of them): no memset of a reused buffer.
#[inline]
fn set_len(v: &mut Vec<u8>, len: usize) -> Result<(), FfaError> {
    if v.len() < len {
        v.try_reserve(len - v.len())
            .map_err(|_| FfaError::NoMemory)?;
        v.resize(len, 0);
    } else {
        v.truncate(len);
    }
    Ok(())
}

/// The most memory handles the host may hold at once, and the most ranges they may
/// record together (their ownership entries, 32 bytes each: 1 MiB of warden's 8 MiB heap
/// at the limit, 2 MiB with the vector's growth).
pub(super) const MAX_LIVE_HANDLES: usize = 256;
pub(super) const MAX_LIVE_RANGES: usize = 32 * 1024;

#[derive(Default)]
pub(super) struct MemoryState {
    pub(super) ownership: Ownership,
    pub(super) handles: BTreeMap<Handle, Record>,
    pub(super) pending: Option<Pending>,
    next_id: u64,
    /// The ranges of every record in `handles`, summed.
    live_ranges: usize,
    /// Boxed: it moves in and out of the lock at every send, as one pointer.
    scratch: Option<alloc::boxed::Box<Scratch>>,
}

/// An FF-A answer in x0-x7 with the rest zero, built register by register: `[0; 18]`
/// and a copy would be calls to memset and memcpy, which without SIMD cost more than the
/// rest of the answer (issue 15's profile).
fn answer(x0: u64, x2: u64, x3: u64) -> Reply {
    let z = core::hint::black_box(0u64);
    local([x0, z, x2, x3, z, z, z, z, z, z, z, z, z, z, z, z, z, z])
}

/// FFA_SUCCESS_32 with the handle in w2/w3 (§10.5.2, §10.6.2), or with no result.
fn success_handle(handle: Handle) -> Reply {
    let [lo, hi] = abi::handle_to_regs(handle);
    answer(abi::FFA_SUCCESS_32 as u64, lo, hi)
}

/// A call to the SPMC with x1-x4 (the memory calls have no more), the rest zero; built
/// like `answer`.
fn call4(fid: u32, x1: u64, x2: u64, x3: u64, x4: u64) -> Regs {
    let z = core::hint::black_box(0u64);
    [
        fid as u64, x1, x2, x3, x4, z, z, z, z, z, z, z, z, z, z, z, z, z,
    ]
}

impl FfaProxy {
    /// FFA_MEM_SHARE / FFA_MEM_LEND (§10.5, §10.6) with the descriptor in the host's TX
    /// buffer. A descriptor in several fragments is collected (and bounded) before any
    /// page changes hands; then it is checked whole, the pages are claimed, a lend
    /// removes them from the host's stage-2, and the transaction goes to the SPMC in the
    /// SPMC's layout, from warden's own TX buffer. Any failure undoes everything.
    pub(super) fn mem_send(
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
        let mut scratch = {
            let mut memory = self.memory.lock();
            if memory.pending.is_some() {
                return Err(FfaError::Busy);
            }
            memory.scratch.take().unwrap_or_default()
        };
        // One snapshot of the host's bytes, exactly the fragment's length: the host cannot
        // change them under warden.
        let bytes = &mut scratch.bytes;
        if let Err(e) = set_len(bytes, frag) {
            self.memory.lock().scratch = Some(scratch);
            return Err(e);
        }
        env.read_host(mailbox.tx.start, bytes);
        // A first fragment that already holds the whole descriptor contradicts a larger
        // total length: the lengths are invalid, and no transaction starts (the FF-A ACS
        // sends exactly this and expects INVALID_PARAMETERS).
        let result = if frag < total && declared_length(bytes, version).is_some_and(|n| n <= frag) {
            Err(FfaError::InvalidParameters)
        } else if frag < total {
            self.start_fragments(op, is_64, total, bytes)
        } else {
            let Scratch { bytes, out, ranges } = &mut *scratch;
            self.mem_commit(op, is_64, bytes, out, ranges, version, env)
        };
        scratch.trim_after(frag);
        self.memory.lock().scratch = Some(scratch);
        drop(slot);
        result
    }

    /// The first of several fragments: kept (in a buffer of the declared total) until the
    /// last arrives.
    fn start_fragments(
        &self,
        op: MemOp,
        is_64: bool,
        total: usize,
        first: &[u8],
    ) -> Result<Reply, FfaError> {
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(total)
            .map_err(|_| FfaError::NoMemory)?;
        bytes.extend_from_slice(first);
        let mut memory = self.memory.lock();
        memory.next_id += 1;
        let handle = HYP_HANDLE | memory.next_id;
        memory.pending = Some(Pending {
            op,
            is_64,
            handle,
            total,
            bytes,
        });
        Ok(frag_rx(handle, first.len()))
    }

    /// FFA_MEM_FRAG_TX (§10.4.3): the next fragment of the host's pending transaction.
    pub(super) fn mem_frag_tx(
        &self,
        regs: &Regs,
        version: FfaVersion,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let handle = abi::handle_from_regs(regs[1], regs[2]);
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
        let mut scratch = memory.scratch.take().unwrap_or_default();
        drop(memory);
        let result = self.mem_commit(
            done.op,
            done.is_64,
            &done.bytes,
            &mut scratch.out,
            &mut scratch.ranges,
            version,
            env,
        );
        scratch.trim_after(done.total);
        self.memory.lock().scratch = Some(scratch);
        drop(slot);
        result
    }

    /// The whole descriptor is here: check it, claim, send to the SPMC, or undo. `out`
    /// and `ranges` are reused buffers. Called with the mailbox lock held (it serialises
    /// warden's own TX buffer).
    #[allow(clippy::too_many_arguments)]
    fn mem_commit(
        &self,
        op: MemOp,
        is_64: bool,
        desc: &[u8],
        out: &mut Vec<u8>,
        ranges: &mut Vec<Range>,
        version: FfaVersion,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let spmc = self.spmc.as_ref().ok_or(FfaError::NotSupported)?;
        let t = DescriptorView::parse(desc, version, op)?;
        t.host_ranges(
            spmc.host_id,
            |id| spmc.is_partition(id),
            |r| env.is_host_ram(r),
            ranges,
        )?;
        let ranges = &ranges[..];
        let id = {
            let mut memory = self.memory.lock();
            // Every live handle keeps its ranges on warden's heap (in the ownership map):
            // bound them, so that a host that shares and never reclaims gets NO_MEMORY,
            // not a heap panic.
            if memory.handles.len() >= MAX_LIVE_HANDLES
                || memory.live_ranges + ranges.len() > MAX_LIVE_RANGES
            {
                return Err(FfaError::NoMemory);
            }
            memory.next_id += 1;
            let id = memory.next_id;
            memory.ownership.claim(ranges, PageState::Pending(id))?;
            id
        };
        let undo = |env: &mut dyn FnMut(&[Range]), lent: bool| {
            if lent {
                env(ranges);
            }
            self.memory.lock().ownership.release(PageState::Pending(id));
        };
        if op == MemOp::Lend
            && let Err(e) = env.unmap_from_host(ranges)
        {
            undo(&mut |_| {}, false);
            return Err(e);
        }
        let lent = op == MemOp::Lend;
        match send_to_spmc(spmc.own_buffer_pages, &t, op, is_64, spmc.version, out, env) {
            Ok(handle) => {
                let mut memory = self.memory.lock();
                let state = if lent {
                    PageState::Lent(handle)
                } else {
                    PageState::Shared(handle)
                };
                memory.ownership.transition(PageState::Pending(id), state);
                let record = Record {
                    op,
                    ranges: ranges.len(),
                };
                let replaced = memory.handles.insert(handle, record);
                // An SPMC that hands out a live handle again replaces its record; the
                // count follows.
                memory.live_ranges += ranges.len();
                memory.live_ranges -= replaced.map_or(0, |r| r.ranges);
                drop(memory);
                // Per call: debug only (the host sees the handle; the counters count it).
                debug!(
                    "FF-A: host {} {} page(s) in {} range(s) with {:#06x}: handle {handle:#x}",
                    if lent { "lent" } else { "shared" },
                    t.total_pages,
                    ranges.len(),
                    t.first_receiver()
                );
                Ok(success_handle(handle))
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
    pub(super) fn mem_reclaim(
        &self,
        regs: &Regs,
        env: &mut impl ProxyEnv,
    ) -> Result<Reply, FfaError> {
        let handle = abi::handle_from_regs(regs[1], regs[2]);
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
            return Ok(answer(abi::FFA_SUCCESS_32 as u64, 0, 0));
        }
        // One search: the entry found here is the one removed once the SPMC agrees.
        let Entry::Occupied(entry) = memory.handles.entry(handle) else {
            return Err(FfaError::InvalidParameters);
        };
        let record = *entry.get();
        if flags & 1 != 0 && record.op != MemOp::Lend {
            return Err(FfaError::InvalidParameters);
        }
        let [lo, hi] = abi::handle_to_regs(handle);
        let r = env.spmc_call(&call4(
            abi::fid32(num::MEM_RECLAIM),
            lo,
            hi,
            flags as u64,
            0,
        ));
        abi::expect_success(&r)?;
        entry.remove();
        memory.live_ranges -= record.ranges;
        match record.op {
            MemOp::Share => {
                memory.ownership.forget(PageState::Shared(handle));
            }
            // A lent range goes back to the host's stage-2 before the memory lock is
            // released: until then no other CPU can lend its pages anew (and have them
            // mapped back here).
            MemOp::Lend => {
                let lent = memory.ownership.release(PageState::Lent(handle));
                env.map_to_host(&lent);
            }
        }
        drop(memory);
        debug!("FF-A: host reclaimed handle {handle:#x}");
        self.reopen_if_nothing_held();
        Ok(answer(abi::FFA_SUCCESS_32 as u64, 0, 0))
    }
}

/// The total length that the start of a descriptor (the host's first fragment, in the
/// layout of `version`) implies: the composite's offset, its header and its constituents
/// (DEN0077A v1.2 §10). `None` when the fragment is too short to tell; `memory::parse`
/// judges the whole descriptor later.
fn declared_length(first: &[u8], version: FfaVersion) -> Option<usize> {
    let u32_at = |off: usize| -> Option<usize> {
        let bytes = first.get(off..off.checked_add(4)?)?;
        Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
    };
    // v1.1 and later name the EMAD offset (header offset 32); v1.0 EMADs follow its header.
    let emad_offset = if version >= FfaVersion::V1_1 {
        u32_at(32)?
    } else {
        memory::HEADER_V1_0
    };
    // Every receiver shares one composite: the first EMAD names it (EMAD offset 4).
    let composite = u32_at(emad_offset.checked_add(4)?)?;
    let ranges = u32_at(composite.checked_add(4)?)?;
    ranges
        .checked_mul(memory::CONSTITUENT)?
        .checked_add(composite.checked_add(memory::COMPOSITE)?)
}

/// FFA_MEM_FRAG_RX to the host: send the fragment that starts at `offset`.
fn frag_rx(handle: Handle, offset: usize) -> Reply {
    let [lo, hi] = abi::handle_to_regs(handle);
    local(call4(FFA_MEM_FRAG_RX as u32, lo, hi, offset as u64, 0))
}

/// Sends transaction `t` to the SPMC in its layout, in fragments of at most warden's TX
/// buffer (`own_buffer_pages`: all of it, or one page if the SPMC refused more; see setup),
/// and returns the SPMC's handle. `out` is a reused buffer for the emitted descriptor. A
/// transaction the SPMC stops half way is abandoned with FFA_MEM_RECLAIM (§10.4.2).
fn send_to_spmc(
    own_buffer_pages: u64,
    t: &DescriptorView,
    op: MemOp,
    is_64: bool,
    version: FfaVersion,
    out: &mut Vec<u8>,
    env: &mut impl ProxyEnv,
) -> Result<Handle, FfaError> {
    let len = t.emitted_len(version);
    set_len(out, len)?;
    let desc = out.get_mut(..len).ok_or(FfaError::Aborted)?;
    if t.emit_into(version, desc) != Some(len) {
        return Err(FfaError::Aborted);
    }
    let frags = Fragments::new(
        len,
        t.constituents_offset(version),
        (own_buffer_pages * mailbox::PAGE) as usize,
    );
    let n = match op {
        MemOp::Share => num::MEM_SHARE,
        MemOp::Lend => num::MEM_LEND,
    };
    let fid = if is_64 { abi::fid64(n) } else { abi::fid32(n) };
    let mut handle = None;
    for (start, end) in frags {
        env.write_own_tx(desc.get(start..end).ok_or(FfaError::Aborted)?);
        let frag_len = (end - start) as u64;
        let r = if start == 0 {
            env.spmc_call(&call4(fid, len as u64, frag_len, 0, 0))
        } else {
            let [lo, hi] = abi::handle_to_regs(handle.ok_or(FfaError::Aborted)?);
            env.spmc_call(&call4(abi::fid32(num::MEM_FRAG_TX), lo, hi, frag_len, 0))
        };
        let last = end == len;
        match (r[0], last) {
            (x, false) if x == FFA_MEM_FRAG_RX && r[3] as u32 as usize == end => {
                handle = Some(abi::handle_from_regs(r[1], r[2]));
            }
            (x, true) if x == abi::FFA_SUCCESS_32 as u64 || x == abi::FFA_SUCCESS_64 as u64 => {
                return Ok(abi::handle_from_regs(r[2], r[3]));
            }
            (x, _) => {
                let e = abi::expect_success(&r).err().unwrap_or(FfaError::Aborted);
                // The SPMC may have started (FFA_MEM_FRAG_RX at the wrong offset) or
                // completed (FFA_SUCCESS before the last fragment) a transaction this
                // send has not seen a handle for yet: abandon that one too.
                let carried = if x == FFA_MEM_FRAG_RX {
                    Some(abi::handle_from_regs(r[1], r[2]))
                } else if x == abi::FFA_SUCCESS_32 as u64 || x == abi::FFA_SUCCESS_64 as u64 {
                    Some(abi::handle_from_regs(r[2], r[3]))
                } else {
                    None
                };
                if let Some(h) = handle.or(carried) {
                    let [lo, hi] = abi::handle_to_regs(h);
                    let _ = env.spmc_call(&call4(abi::fid32(num::MEM_RECLAIM), lo, hi, 0, 0));
                }
                return Err(e);
            }
        }
    }
    Err(FfaError::Aborted)
}
