//! The proxy's unit tests, against the SPMC model at v1.0, v1.1 and v1.2, one file per
//! chapter as the proxy itself; the shared helpers are here.

mod buffers;
mod in_place;
mod lifecycle;
mod memory_management;
mod messaging;
mod notifications;
mod setup;

use std::vec::Vec;

use super::{FfaProxy, ProxyEnv, Reply};
use crate::ffa::abi::{self, FfaError, Regs, num};
use crate::ffa::mailbox;
use crate::ffa::partition::PartitionInfo;
use crate::ffa::spmc_model::*;
use crate::ffa::version::FfaVersion;
use crate::platform::memmap::Range;

fn call(fid: u32, args: &[u64]) -> Regs {
    abi::call_regs(fid, args)
}

fn is_error(r: &Reply, e: FfaError) -> bool {
    r.regs[0] == abi::FFA_ERROR as u64 && FfaError::from_reg(r.regs[2]) == Some(e)
}

fn is_success(r: &Reply) -> bool {
    r.regs[0] == abi::FFA_SUCCESS_32 as u64
}

const V1_0: u64 = 0x1_0000;
const V1_1: u64 = 0x1_0001;
const V1_2: u64 = 0x1_0002;
const RXTX_MAP_64: u32 = abi::FFA_RXTX_MAP_64;
const RXTX_UNMAP: u32 = abi::fid32(num::RXTX_UNMAP);
const DIRECT_REQ_32: u32 = abi::fid32(num::MSG_SEND_DIRECT_REQ);
const DIRECT_REQ_64: u32 = abi::fid64(num::MSG_SEND_DIRECT_REQ);
const HOST_TX: u64 = 0x4000_0000;
const HOST_RX: u64 = 0x4000_1000;

fn setup(spmc: FfaVersion) -> (FfaProxy, Model) {
    setup_pages(spmc, 4)
}

fn setup_pages(spmc: FfaVersion, pages: u64) -> (FfaProxy, Model) {
    let mut m = Model::new(spmc);
    let p = FfaProxy::init(&mut m, WARDEN_TX, WARDEN_RX, pages);
    (p, m)
}

/// A host at `host` version with its buffers mapped.
fn host(spmc: FfaVersion, host: u64) -> (FfaProxy, Model) {
    let (p, mut m) = setup(spmc);
    assert_eq!(
        p.handle(&call(abi::FFA_VERSION, &[host]), &mut m).regs[0],
        V1_2
    );
    assert!(is_success(
        &p.handle(&call(RXTX_MAP_64, &[HOST_TX, HOST_RX, 1]), &mut m)
    ));
    (p, m)
}

/// The model behind `answer(model, call)`, which answers each SPMC call: it may pass the
/// call to the model and change the answer, or answer in the model's place (an SPMC that
/// behaves differently from the model: OP-TEE's quirks, a misbehaving SPMC, state left by an
/// earlier boot stage), without changing the model itself. Everything else is the model's.
/// Counts the proxy's writes to host memory.
struct Intercepted<'a, F> {
    model: &'a mut Model,
    answer: F,
    host_writes: usize,
}

impl<'a, F: FnMut(&mut Model, &Regs) -> Regs> Intercepted<'a, F> {
    fn new(model: &'a mut Model, answer: F) -> Self {
        Self {
            model,
            answer,
            host_writes: 0,
        }
    }
}

/// The model with each of its answers passed through `tamper(call, answer)`.
fn tampered<'a>(
    model: &'a mut Model,
    mut tamper: impl FnMut(&Regs, Regs) -> Regs + 'a,
) -> Intercepted<'a, impl FnMut(&mut Model, &Regs) -> Regs + 'a> {
    Intercepted::new(model, move |model: &mut Model, call: &Regs| {
        let answer = model.spmc_call(call);
        tamper(call, answer)
    })
}

impl<F: FnMut(&mut Model, &Regs) -> Regs> ProxyEnv for Intercepted<'_, F> {
    fn spmc_call(&mut self, regs: &Regs) -> Regs {
        (self.answer)(self.model, regs)
    }
    fn is_host_ram(&self, r: Range) -> bool {
        self.model.is_host_ram(r)
    }
    fn write_host(&mut self, pa: u64, data: &[u8]) {
        self.host_writes += 1;
        self.model.write_host(pa, data)
    }
    fn own_rx(&self) -> &[u8] {
        self.model.own_rx()
    }
    fn read_host(&self, pa: u64, buf: &mut [u8]) {
        self.model.read_host(pa, buf)
    }
    fn write_own_tx(&mut self, data: &[u8]) {
        self.model.write_own_tx(data)
    }
    fn unmap_from_host(&mut self, ranges: &[Range]) -> Result<(), FfaError> {
        self.model.unmap_from_host(ranges)
    }
    fn map_to_host(&mut self, ranges: &[Range]) {
        self.model.map_to_host(ranges)
    }
}

// ---- Memory sharing helpers ----

use crate::ffa::memory::tests::linux_share;

const MEM_SHARE_64: u32 = abi::fid64(num::MEM_SHARE);
const MEM_LEND_32: u32 = abi::fid32(num::MEM_LEND);
const MEM_FRAG_TX: u32 = abi::fid32(num::MEM_FRAG_TX);
const MEM_RECLAIM: u32 = abi::fid32(num::MEM_RECLAIM);
const MEM_FRAG_RX: u64 = abi::fid32(num::MEM_FRAG_RX) as u64;

fn host_version(v: u64) -> FfaVersion {
    FfaVersion::decode(v as u32).unwrap()
}

/// Puts `desc` in the host's TX buffer and sends it with `fid`, in TX-sized fragments
/// (FFA_MEM_FRAG_TX) as Linux does. Returns the final reply.
fn send(p: &FfaProxy, m: &mut impl ProxyEnv, fid: u32, desc: &[u8]) -> Reply {
    let total = desc.len() as u64;
    let first = desc.len().min(4096);
    m.write_host(HOST_TX, &desc[..first]);
    let mut r = p.handle(&call(fid, &[total, first as u64, 0, 0]), m);
    let mut sent = first;
    while r.regs[0] == MEM_FRAG_RX && sent < desc.len() {
        assert_eq!(r.regs[3] as usize, sent);
        let n = (desc.len() - sent).min(4096);
        m.write_host(HOST_TX, &desc[sent..sent + n]);
        r = p.handle(&call(MEM_FRAG_TX, &[r.regs[1], r.regs[2], n as u64, 0]), m);
        sent += n;
    }
    r
}

fn handle_of(r: &Reply) -> u64 {
    assert!(is_success(r), "{r:x?}");
    r.regs[2] | r.regs[3] << 32
}

/// `n` one-page constituents every other page from `base`: more than a page of descriptor
/// from a few hundred on, so the host sends it in fragments.
fn every_other_page(base: u64, n: u64) -> Vec<(u64, u32)> {
    (0..n).map(|i| (base + i * 0x2000, 1)).collect()
}

/// Sends only the first page of `desc` with FFA_MEM_SHARE_64 and asserts that warden asks
/// for the next fragment; returns that FFA_MEM_FRAG_RX, whose w1/w2 hold the handle.
fn share_first_page(p: &FfaProxy, m: &mut Model, desc: &[u8]) -> Reply {
    m.write_host(HOST_TX, &desc[..4096]);
    let r = p.handle(&call(MEM_SHARE_64, &[desc.len() as u64, 4096, 0, 0]), m);
    assert_eq!(r.regs[0], MEM_FRAG_RX);
    r
}

fn reclaim(p: &FfaProxy, m: &mut Model, h: u64) -> Reply {
    p.handle(&call(MEM_RECLAIM, &[h & 0xffff_ffff, h >> 32, 0]), m)
}

/// Every refusal is counted; the first 64 are logged, then one in 4096 (issue 14 item 9,
/// with item 3's rate limit): 100,000 bad calls make 88 lines, not 100,000.
#[test]
fn refusal_lines_are_rate_limited() {
    let logged = (0..100_000u64)
        .filter(|&n| super::refusal_is_logged(n))
        .count();
    assert_eq!(logged, 64 + 24);
    assert!(super::refusal_is_logged(63));
    assert!(!super::refusal_is_logged(64));
    assert!(super::refusal_is_logged(4096));
}
