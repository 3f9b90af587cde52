//! What is measured, in the order it runs, and the `bench:` lines that report it.
//!
//! Each operation runs a fixed number of iterations; one iteration is one or more calls
//! (MEM_SHARE in fragments, then MEM_RECLAIM), and its sample is the sum of its calls'
//! windows. The client's own work between calls (writing the next fragment into the TX
//! buffer) is outside the windows: it is the same with and without warden.

use alloc::vec::Vec;

use warden::ffa::abi::{
    FFA_ERROR, FFA_FEATURES, FFA_ID_GET, FFA_PARTITION_INFO_GET, FFA_RX_RELEASE, FFA_RXTX_MAP_64,
    FFA_SUCCESS_32, FFA_VERSION, fid32, fid64, num,
};
use warden::hvc::{WARDEN_BOOT_TIMES, WARDEN_VERSION};

use crate::client::El;
use crate::descriptor::Share;
use crate::pmu::{self, Conduit, Counts};
use crate::stats::Summary;

const SMCCC_VERSION: u32 = 0x8000_0000;
const FFA_DIRECT_REQ_32: u32 = fid32(num::MSG_SEND_DIRECT_REQ);
const FFA_DIRECT_RESP_32: u32 = fid32(num::MSG_SEND_DIRECT_RESP);
const FFA_DIRECT_REQ_64: u32 = fid64(num::MSG_SEND_DIRECT_REQ);
const FFA_DIRECT_RESP_64: u32 = fid64(num::MSG_SEND_DIRECT_RESP);
const FFA_MEM_SHARE_64: u32 = fid64(num::MEM_SHARE);
const FFA_MEM_LEND_64: u32 = fid64(num::MEM_LEND);
const FFA_MEM_RECLAIM: u32 = fid32(num::MEM_RECLAIM);
const FFA_MEM_FRAG_RX: u32 = fid32(num::MEM_FRAG_RX);
const FFA_MEM_FRAG_TX: u32 = fid32(num::MEM_FRAG_TX);
const FFA_V1_2: u64 = 0x1_0002;

/// The normal world's single endpoint (with or without warden) and OP-TEE's partition.
const HOST_ID: u16 = 0;
const OPTEE_ID: u16 = 0x8001;
/// OP-TEE's FF-A ABI (optee_os core/include/optee_ffa.h): w3 = 0 is GET_API_VERSION.
const OPTEE_FFA_GET_API_VERSION: u64 = 0;
/// Normal memory, write-back cacheable, inner shareable; what OP-TEE requires of a share.
const NORMAL_WB_INNER: u16 = 0x2f;
const READ_WRITE: u8 = 2;

const PAGE: usize = 4096;

/// One page each of TX and RX, mapped with the SPMC (or warden) at start.
#[repr(C, align(4096))]
struct Mailbox([u8; 2 * PAGE]);
static mut MAILBOX: Mailbox = Mailbox([0; 2 * PAGE]);

fn tx_address() -> u64 {
    &raw const MAILBOX as u64
}

/// Writes into the TX buffer.
fn with_tx<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    // SAFETY: one CPU; the TX page is only read by the other side during this CPU's
    // MEM_SHARE and FRAG_TX calls, never while this borrow lives; nothing else in the
    // client refers to it.
    let tx = unsafe { core::slice::from_raw_parts_mut((&raw mut MAILBOX).cast::<u8>(), PAGE) };
    f(tx)
}

/// Constituent `i` of a scattered share: every other page of linker.ld's `.share` (a
/// contiguous share is constituent 0).
fn share_page(i: usize) -> u64 {
    unsafe extern "C" {
        static __share_start: u8;
    }
    &raw const __share_start as u64 + (2 * PAGE * i) as u64
}

/// Why an operation stopped early.
enum Stop {
    /// Without warden there is no HVC interface to call.
    NotApplicable,
    /// FFA_ERROR with this status.
    Refused(i32),
    /// Anything else: what was being checked and the result registers x0, x2.
    Unexpected(&'static str, u64, u64),
}

fn error_name(code: i32) -> &'static str {
    match code {
        -1 => "NOT_SUPPORTED",
        -2 => "INVALID_PARAMETERS",
        -3 => "NO_MEMORY",
        -4 => "BUSY",
        -5 => "INTERRUPTED",
        -6 => "DENIED",
        -7 => "RETRY",
        -8 => "ABORTED",
        -9 => "NO_DATA",
        _ => "UNKNOWN",
    }
}

/// Accumulates the windows of one iteration.
struct Meter {
    overhead: Counts,
    total: Counts,
}

impl Meter {
    fn call(&mut self, conduit: Conduit, regs: [u64; 8]) -> [u64; 8] {
        let (r, c) = pmu::call(conduit, regs, self.overhead);
        self.total.add(c);
        r
    }
    fn smc(&mut self, fid: u32, args: &[u64]) -> [u64; 8] {
        let mut regs = [0u64; 8];
        regs[0] = fid as u64;
        regs[1..=args.len()].copy_from_slice(args);
        self.call(Conduit::Smc, regs)
    }
}

/// FF-A results are 32-bit: compare w0, and read an error's status from w2.
fn expect(r: &[u64; 8], want: u32, what: &'static str) -> Result<(), Stop> {
    match r[0] as u32 {
        w0 if w0 == want => Ok(()),
        FFA_ERROR => Err(Stop::Refused(r[2] as u32 as i32)),
        _ => Err(Stop::Unexpected(what, r[0], r[2])),
    }
}

fn w32(r: u64) -> u64 {
    r & 0xffff_ffff
}

struct Bench {
    overhead: Counts,
    errors: u32,
}

impl Bench {
    /// Runs `body` `iterations` times and prints one `bench: result` line.
    fn measure(
        &mut self,
        op: &str,
        iterations: usize,
        mut body: impl FnMut(&mut Meter) -> Result<(), Stop>,
    ) {
        let mut samples: Vec<Counts> = Vec::with_capacity(iterations);
        for i in 0..iterations {
            let mut m = Meter {
                overhead: self.overhead,
                total: Counts::default(),
            };
            match body(&mut m) {
                Ok(()) => samples.push(m.total),
                Err(stop) => {
                    match stop {
                        Stop::NotApplicable => {
                            say!("bench: result op={op} iters={iterations} status=n/a")
                        }
                        // Refusals are results (warden or the firmware does not do this),
                        // not failures of the client.
                        Stop::Refused(code) => say!(
                            "bench: result op={op} iters={iterations} status=refused at={i} detail={}",
                            error_name(code)
                        ),
                        Stop::Unexpected(what, x0, x2) => {
                            self.errors += 1;
                            say!(
                                "bench: result op={op} iters={iterations} status=error at={i} detail={what}:x0={x0:#x}:x2={x2:#x}"
                            )
                        }
                    }
                    return;
                }
            }
        }
        let view = |f: fn(&Counts) -> u64| {
            let mut v: Vec<u64> = samples.iter().map(f).collect();
            match Summary::of(&mut v) {
                Some(s) => alloc::format!("{}/{}/{}/{}", s.median, s.min, s.max, s.mean),
                None => alloc::string::String::from("-"),
            }
        };
        say!(
            "bench: result op={op} iters={iterations} status=ok all={} pmu={} el2={} el3={} sel1={} cycles={}",
            view(|c| c.all),
            view(|c| c.pmu),
            view(|c| c.el2),
            view(|c| c.el3),
            view(|c| c.sel1),
            view(|c| c.cycles)
        );
    }

    /// MEM_SHARE (or MEM_LEND, `lend`) of `pages` pages to OP-TEE, then MEM_RECLAIM:
    /// `scattered`, every other page, one constituent each; else one contiguous range. A lend
    /// takes the pages out of the sender's stage-2 under warden until the reclaim; the client
    /// never touches them.
    fn mem_send(&mut self, lend: bool, pages: usize, scattered: bool, iterations: usize) {
        let share = Share {
            sender: HOST_ID,
            receiver: OPTEE_ID,
            // A lend to one borrower leaves the memory attributes to it (DEN0077A v1.2
            // §10.10.4; OP-TEE refuses a lend that sets them).
            attributes: if lend { 0 } else { NORMAL_WB_INNER },
            permissions: READ_WRITE,
            constituents: if scattered { pages } else { 1 },
            pages_each: if scattered { 1 } else { pages as u32 },
        };
        let total = share.total_len();
        let (kind, fid) = if lend {
            ("lend", FFA_MEM_LEND_64)
        } else {
            ("share", FFA_MEM_SHARE_64)
        };
        let op = if scattered {
            alloc::format!("mem_{kind}_reclaim_{pages}")
        } else {
            alloc::format!("mem_{kind}_reclaim_{pages}_contiguous")
        };
        self.measure(&op, iterations, |m| {
            let fragment = |offset: usize| {
                with_tx(|tx| share.fragment(offset, tx, share_page)).ok_or(Stop::Unexpected(
                    "fragment",
                    offset as u64,
                    0,
                ))
            };
            let len = fragment(0)?;
            let mut r = m.smc(fid, &[total as u64, len as u64, 0, 0]);
            let mut sent = len;
            // The SPMC (or warden) asks for the next fragment with FFA_MEM_FRAG_RX: w1/w2
            // the handle, w3 the bytes it has taken so far.
            while r[0] as u32 == FFA_MEM_FRAG_RX {
                let taken = w32(r[3]) as usize;
                if taken == 0 || taken > sent {
                    return Err(Stop::Unexpected("FRAG_RX offset", r[0], r[3]));
                }
                let len = fragment(taken)?;
                sent = taken + len;
                r = m.smc(FFA_MEM_FRAG_TX, &[w32(r[1]), w32(r[2]), len as u64, 0]);
            }
            expect(&r, FFA_SUCCESS_32, "MEM_SHARE/LEND")?;
            if sent != total {
                return Err(Stop::Unexpected("MEM_SHARE/LEND short", r[0], sent as u64));
            }
            let r = m.smc(FFA_MEM_RECLAIM, &[w32(r[2]), w32(r[3]), 0]);
            expect(&r, FFA_SUCCESS_32, "MEM_RECLAIM")
        });
    }
}

/// Runs everything; false if anything failed that should have worked.
pub fn run(el: El, dtb: u64, entry_counter: u64) -> bool {
    let level = match el {
        El::El1 => 1,
        El::El2 => 2,
    };
    say!("bench: start el={level} dtb={dtb:#x}");
    let info = match pmu::init(el) {
        Ok(i) => i,
        Err(i) => {
            say!(
                "bench: PMU unusable: PMCR_EL0 {:#x} (need {} event counters), INST_RETIRED {}",
                i.pmcr,
                pmu::EVENT_COUNTERS,
                i.inst_retired
            );
            return false;
        }
    };
    say!(
        "bench: pmu pmcr={:#x} counters={} pmuver={:#x} inst_retired={}",
        info.pmcr,
        info.pmcr >> 11 & 0x1f,
        info.version,
        info.inst_retired
    );
    let overhead = pmu::calibrate();
    let n = pmu::nops(overhead);
    say!(
        "bench: probe op=window all={} pmu={} el2={} el3={} sel1={} cycles={}",
        overhead.all,
        overhead.pmu,
        overhead.el2,
        overhead.el3,
        overhead.sel1,
        overhead.cycles
    );
    say!(
        "bench: probe op=nop1000 all={} pmu={} el2={} el3={} sel1={} cycles={}",
        n.all,
        n.pmu,
        n.el2,
        n.el3,
        n.sel1,
        n.cycles
    );

    // Boot: the generic counter at this image's first instruction, and warden's own
    // stamps where there is a warden to ask.
    say!(
        "bench: boot entry={entry_counter} cntfrq={}",
        pmu::counter_frequency()
    );
    if el == El::El1 {
        let r = smccc::hvc64(WARDEN_BOOT_TIMES, [0; 17]);
        if r[0] == 0 {
            say!(
                "bench: boot warden_entry={} warden_host_entry={}",
                r[1],
                r[2]
            );
        } else {
            say!("bench: boot warden_times=unsupported x0={:#x}", r[0]);
        }
    }

    // FF-A setup, unmeasured: v1.2, then this client's RX/TX pair.
    let mut regs = [0u64; 17];
    regs[0] = FFA_V1_2;
    let v = smccc::smc64(FFA_VERSION, regs)[0];
    say!("bench: ffa version={v:#x}");
    let tx = tx_address();
    let mut regs = [0u64; 17];
    regs[..3].copy_from_slice(&[tx, tx + PAGE as u64, 1]);
    let m = smccc::smc64(FFA_RXTX_MAP_64, regs);
    say!(
        "bench: ffa rxtx_map={:#x} rxtx_map_w2={:#x}",
        m[0],
        w32(m[2])
    );

    let mut b = Bench {
        overhead,
        errors: 0,
    };
    b.measure("hvc_warden_version", 1000, |m| {
        if el == El::El2 {
            return Err(Stop::NotApplicable);
        }
        let mut regs = [0u64; 8];
        regs[0] = WARDEN_VERSION as u64;
        let r = m.call(Conduit::Hvc, regs);
        if r[0] >> 16 == 1 {
            Ok(())
        } else {
            Err(Stop::Unexpected("WARDEN_VERSION", r[0], r[2]))
        }
    });
    b.measure("smccc_version", 1000, |m| {
        let r = m.smc(SMCCC_VERSION, &[]);
        if (0x1_0002..0x8000_0000).contains(&r[0]) {
            Ok(())
        } else {
            Err(Stop::Unexpected("SMCCC_VERSION", r[0], r[2]))
        }
    });
    b.measure("ffa_version", 1000, |m| {
        let r = m.smc(FFA_VERSION, &[FFA_V1_2]);
        if r[0] as u32 >> 16 == 1 {
            Ok(())
        } else {
            Err(Stop::Unexpected("FFA_VERSION", r[0], r[2]))
        }
    });
    b.measure("ffa_id_get", 1000, |m| {
        let r = m.smc(FFA_ID_GET, &[]);
        expect(&r, FFA_SUCCESS_32, "FFA_ID_GET")
    });
    b.measure("ffa_features_rxtx_map", 1000, |m| {
        let r = m.smc(FFA_FEATURES, &[FFA_RXTX_MAP_64 as u64]);
        expect(&r, FFA_SUCCESS_32, "FFA_FEATURES")
    });
    // The same request as the 32-bit and the 64-bit call: OP-TEE answers the latter with
    // DIRECT_RESP_64 (optee_os thread_spmc.c, `get_direct_resp_fid`), so both are full round
    // trips.
    for (op, request, response, what) in [
        (
            "direct_req_optee_api_version",
            FFA_DIRECT_REQ_32,
            FFA_DIRECT_RESP_32,
            "DIRECT_REQ",
        ),
        (
            "direct_req64_optee_api_version",
            FFA_DIRECT_REQ_64,
            FFA_DIRECT_RESP_64,
            "DIRECT_REQ_64",
        ),
    ] {
        b.measure(op, 1000, |m| {
            let sender_receiver = (HOST_ID as u64) << 16 | OPTEE_ID as u64;
            let r = m.smc(request, &[sender_receiver, 0, OPTEE_FFA_GET_API_VERSION]);
            expect(&r, response, what)
        });
    }
    b.measure("partition_info_get_rx_release", 1000, |m| {
        // Nil UUID: every partition, descriptors into this client's RX buffer.
        let r = m.smc(FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]);
        expect(&r, FFA_SUCCESS_32, "PARTITION_INFO_GET")?;
        if w32(r[2]) == 0 {
            return Err(Stop::Unexpected("no partitions", r[0], r[2]));
        }
        let r = m.smc(FFA_RX_RELEASE, &[]);
        expect(&r, FFA_SUCCESS_32, "RX_RELEASE")
    });
    for (pages, iterations) in [(1, 200), (16, 200), (256, 100), (4096, 20)] {
        b.mem_send(false, pages, true, iterations);
    }
    for (pages, iterations) in [(256, 100), (4096, 20)] {
        b.mem_send(false, pages, false, iterations);
    }
    // Lends: the host's stage-2 changes. 4000 single-page ranges is the most that reaches
    // OP-TEE in one fragment through warden's 16-page buffer (see README, "Fragmented
    // shares"), and the case that must stay linear.
    for (pages, iterations) in [(1, 100), (16, 50), (256, 20), (4000, 5)] {
        b.mem_send(true, pages, true, iterations);
    }
    say!("bench: summary errors={}", b.errors);
    b.errors == 0
}
