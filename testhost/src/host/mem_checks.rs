//! Memory sharing through warden against the real OP-TEE: share, lend and reclaim, in the
//! host's descriptor layout, small and in fragments, and the hostile cases.

use warden::ffa::memory::{Constituent, MemTransaction, Receiver};
use warden::ffa::version::FfaVersion;
use warden::platform::memmap::Range;

use warden::ffa::abi::{
    FFA_RXTX_MAP_64, FfaError, fid32, fid64, handle_from_regs, handle_to_regs, num,
};

use super::{FFA_SUCCESS_32, Report, error_of, probe, read_u32, smc};

// Function IDs and error codes from warden's FF-A vocabulary (DEN0077A v1.2 §13).
const FFA_DIRECT_REQ_32: u32 = fid32(num::MSG_SEND_DIRECT_REQ);
const FFA_DIRECT_RESP_32: u64 = fid32(num::MSG_SEND_DIRECT_RESP) as u64;
const FFA_MEM_SHARE_64: u32 = fid64(num::MEM_SHARE);
pub(crate) const FFA_MEM_LEND_64: u32 = fid64(num::MEM_LEND);
const FFA_MEM_RECLAIM: u32 = fid32(num::MEM_RECLAIM);
const FFA_MEM_FRAG_RX: u64 = fid32(num::MEM_FRAG_RX) as u64;
const FFA_MEM_FRAG_TX: u32 = fid32(num::MEM_FRAG_TX);
const FFA_RXTX_UNMAP: u32 = fid32(num::RXTX_UNMAP);
const INVALID_PARAMETERS: i32 = FfaError::InvalidParameters.code();
const BUSY: i32 = FfaError::Busy.code();
const DENIED: i32 = FfaError::Denied.code();
const OPTEE_ID: u16 = 0x8001;
/// OP-TEE's FF-A ABI (optee_ffa.h): a yielding call whose argument struct lives in
/// shared memory named by its handle (w4/w5) and offset (w6), and the release of it.
const OPTEE_FFA_YIELDING_CALL_WITH_ARG: u64 = 1 << 31;
const OPTEE_FFA_UNREGISTER_SHM: u64 = 3;
const PAGE: u64 = 4096;

pub(crate) fn desc(version: FfaVersion, ranges: &[(u64, u32)], lend: bool) -> alloc::vec::Vec<u8> {
    MemTransaction {
        sender: 0,
        // Normal memory, write-back, inner shareable, as Linux shares; a lend leaves it
        // to the borrower.
        attributes: if lend { 0 } else { 0x2f },
        flags: 0,
        tag: 0,
        receivers: alloc::vec![Receiver {
            id: OPTEE_ID,
            permissions: 2,
            impdef: [0; 16]
        }],
        total_pages: ranges.iter().map(|r| r.1).sum(),
        constituents: ranges
            .iter()
            .map(|&(address, pages)| Constituent { address, pages })
            .collect(),
    }
    .emit(version)
}

/// Sends `d` through the TX buffer, fragmenting at one page as Linux does.
pub(crate) fn send(fid: u32, d: &[u8], tx: u64) -> [u64; 18] {
    let first = d.len().min(PAGE as usize);
    write(tx, &d[..first]);
    let mut r = smc(fid, &[d.len() as u64, first as u64, 0, 0]);
    let mut sent = first;
    while r[0] == FFA_MEM_FRAG_RX && sent < d.len() {
        let n = (d.len() - sent).min(PAGE as usize);
        write(tx, &d[sent..sent + n]);
        r = smc(FFA_MEM_FRAG_TX, &[r[1], r[2], n as u64, 0]);
        sent += n;
    }
    r
}

fn write(pa: u64, data: &[u8]) {
    // SAFETY: `pa` is the host's own TX buffer or scratch RAM, identity-mapped normal.
    unsafe { core::ptr::copy_nonoverlapping(data.as_ptr(), pa as *mut u8, data.len()) };
}

pub(crate) fn handle_of(r: &[u64; 18]) -> Option<u64> {
    (r[0] == FFA_SUCCESS_32).then_some(handle_from_regs(r[2], r[3]))
}

pub(crate) fn reclaim(h: u64) -> [u64; 18] {
    let [lo, hi] = handle_to_regs(h);
    smc(FFA_MEM_RECLAIM, &[lo, hi, 0])
}

/// The checks `run` makes: one page shared with OP-TEE (6), the large shares (4), the lend
/// (5), the hostile descriptors (9), the abandoned fragment stream (5), a total length the
/// first fragment contradicts (2) and an unmap during a fragmented send (3).
pub const PLANNED: u32 = 6 + 4 + 5 + 9 + 5 + 2 + 3;

pub fn run(r: &mut Report, version: u32, tx: u64, scratch: Range, warden: Option<Range>) {
    let v = FfaVersion::decode(version).unwrap_or(FfaVersion::V1_2);
    let page = scratch.start;

    // One page, and OP-TEE uses it: an optee_msg_arg asking to close a session that does
    // not exist (OPTEE_MSG_CMD_CLOSE_SESSION, no parameters). OP-TEE reads it through the
    // handle and writes its answer (ret, ret_origin = TEE_ORIGIN_TEE) into the page.
    let arg = [2u32, 0, 0x1234, 0, 0, 0x5a5a_5a5a, 0x5a5a_5a5a, 0];
    let bytes: alloc::vec::Vec<u8> = arg.iter().flat_map(|w| w.to_le_bytes()).collect();
    write(page, &bytes);
    let share = send(FFA_MEM_SHARE_64, &desc(v, &[(page, 1)], false), tx);
    let h = handle_of(&share);
    r.check(
        "MEM_SHARE of one page",
        h.is_some(),
        format_args!("{:#x} {:?}", share[0], error_of(&share)),
    );
    let h = h.unwrap_or(0);
    say!("testhost: shared {page:#x} as handle {h:#x}");
    let [h_lo, h_hi] = handle_to_regs(h);
    let call = smc(
        FFA_DIRECT_REQ_32,
        &[
            OPTEE_ID as u64,
            0,
            OPTEE_FFA_YIELDING_CALL_WITH_ARG,
            h_lo,
            h_hi,
            0,
        ],
    );
    let ret = read_u32(page + 20);
    let origin = read_u32(page + 24);
    say!(
        "testhost: OP-TEE call with the shared arg: x0 {:#x} w3 {:#x} w4 {:#x}; arg.ret {ret:#x}",
        call[0],
        call[3],
        call[4]
    );
    r.check(
        "OP-TEE reads and writes the shared page",
        call[0] == FFA_DIRECT_RESP_32 && call[3] == 0 && ret != 0x5a5a_5a5a && origin == 3,
        format_args!(
            "x0 {:#x} w3 {:#x} ret {ret:#x} origin {origin}",
            call[0], call[3]
        ),
    );
    let un = smc(
        FFA_DIRECT_REQ_32,
        &[OPTEE_ID as u64, 0, OPTEE_FFA_UNREGISTER_SHM, h_lo, h_hi],
    );
    r.check(
        "OP-TEE releases the handle",
        un[0] == FFA_DIRECT_RESP_32 && un[3] == 0,
        format_args!("x0 {:#x} w3 {:#x}", un[0], un[3]),
    );
    let again = send(FFA_MEM_SHARE_64, &desc(v, &[(page, 1)], false), tx);
    r.check(
        "sharing a shared page is DENIED",
        error_of(&again) == Some(DENIED),
        format_args!("{:?}", error_of(&again)),
    );
    let rc = reclaim(h);
    r.check(
        "MEM_RECLAIM",
        rc[0] == FFA_SUCCESS_32,
        format_args!("{:#x} {:?}", rc[0], error_of(&rc)),
    );
    let rc = reclaim(h);
    r.check(
        "MEM_RECLAIM twice",
        error_of(&rc) == Some(INVALID_PARAMETERS),
        format_args!("{:?}", error_of(&rc)),
    );

    // Hundreds of constituents: fragments from the host to warden and from warden to
    // the SPMC. Every other page, so that no two constituents merge.
    let many: alloc::vec::Vec<(u64, u32)> = (0..400)
        .map(|i| (page + 0x10_0000 + i * 2 * PAGE, 1))
        .collect();
    let d = desc(v, &many, false);
    let big = send(FFA_MEM_SHARE_64, &d, tx);
    let hb = handle_of(&big);
    say!(
        "testhost: 400 constituents ({} bytes of descriptor): handle {:?}",
        d.len(),
        hb
    );
    r.check(
        "MEM_SHARE of 400 constituents in fragments",
        hb.is_some(),
        format_args!("{:#x} {:?}", big[0], error_of(&big)),
    );
    let rc = reclaim(hb.unwrap_or(0));
    r.check(
        "MEM_RECLAIM of the large share",
        rc[0] == FFA_SUCCESS_32,
        format_args!("{:?}", error_of(&rc)),
    );
    // One contiguous range of 2048 pages (8 MiB) in one constituent.
    let large = send(
        FFA_MEM_SHARE_64,
        &desc(v, &[(page + 0x40_0000, 2048)], false),
        tx,
    );
    r.check(
        "MEM_SHARE of 2048 contiguous pages",
        handle_of(&large).is_some(),
        format_args!("{:?}", error_of(&large)),
    );
    if let Some(h) = handle_of(&large) {
        let rc = reclaim(h);
        r.check(
            "MEM_RECLAIM of 2048 pages",
            rc[0] == FFA_SUCCESS_32,
            format_args!("{:?}", error_of(&rc)),
        );
    }

    // Lend: the host loses access until reclaim.
    let lent_page = page + PAGE;
    let lend = send(FFA_MEM_LEND_64, &desc(v, &[(lent_page, 1)], true), tx);
    let hl = handle_of(&lend);
    r.check(
        "MEM_LEND of one page",
        hl.is_some(),
        format_args!("{:#x} {:?}", lend[0], error_of(&lend)),
    );
    let (esr, far) = probe(lent_page, false);
    r.check(
        "a lent page faults in the host",
        esr >> 26 == 0x25 && far == lent_page,
        format_args!("ESR {esr:#x} FAR {far:#x}"),
    );
    let (esr, _) = probe(page, true);
    r.check(
        "its neighbour does not",
        esr == 0,
        format_args!("ESR {esr:#x}"),
    );
    let rc = reclaim(hl.unwrap_or(0));
    r.check(
        "MEM_RECLAIM of the lend",
        rc[0] == FFA_SUCCESS_32,
        format_args!("{:?}", error_of(&rc)),
    );
    let (esr, _) = probe(lent_page, true);
    r.check(
        "the reclaimed page is the host's again",
        esr == 0,
        format_args!("ESR {esr:#x}"),
    );

    // Hostile cases: each refused, nothing left behind.
    let mut hostile = |name: &str, d: &[u8], want: i32| {
        let x = send(FFA_MEM_SHARE_64, d, tx);
        r.check(
            name,
            error_of(&x) == Some(want),
            format_args!("x0 {:#x} {:?}", x[0], error_of(&x)),
        );
    };
    if let Some(w) = warden {
        hostile(
            "MEM_SHARE of warden memory",
            &desc(v, &[(w.start, 1)], false),
            DENIED,
        );
    }
    hostile(
        "MEM_SHARE of MMIO",
        &desc(v, &[(0x0900_0000, 1)], false),
        DENIED,
    );
    hostile(
        "MEM_SHARE of the host's TX buffer",
        &desc(v, &[(tx, 1)], false),
        DENIED,
    );
    hostile(
        "overlapping constituents",
        &desc(v, &[(page, 2), (page + PAGE, 1)], false),
        INVALID_PARAMETERS,
    );
    let mut lying = desc(v, &[(page, 1)], false);
    let n = lying.len();
    lying[n - 16 - 12] = 2; // the composite's address-range count says 2
    hostile("a lying range count", &lying, INVALID_PARAMETERS);
    // The sender must be the caller, the owner of the memory: DENIED otherwise (DEN0077A
    // v1.2 §10.5; the FF-A ACS expects the same).
    let mut spoofed = desc(v, &[(page, 1)], false);
    spoofed[0] = 0x05;
    hostile("a spoofed sender is DENIED", &spoofed, DENIED);
    // Reserved encodings of normal memory (§10.10): cacheability 0b10, shareability 0b01.
    let mut reserved_cache = desc(v, &[(page, 1)], false);
    reserved_cache[2] = 0x2b;
    hostile(
        "a reserved cacheability",
        &reserved_cache,
        INVALID_PARAMETERS,
    );
    let mut reserved_share = desc(v, &[(page, 1)], false);
    reserved_share[2] = 0x2d;
    hostile(
        "a reserved shareability",
        &reserved_share,
        INVALID_PARAMETERS,
    );
    let rc = reclaim(0xdead_beef);
    r.check(
        "reclaim of a handle the host never had",
        error_of(&rc) == Some(INVALID_PARAMETERS),
        format_args!("{:?}", error_of(&rc)),
    );

    // A fragment stream that stops half way, then is abandoned.
    let d = desc(v, &many, false);
    write(tx, &d[..PAGE as usize]);
    let first = smc(FFA_MEM_SHARE_64, &[d.len() as u64, PAGE, 0, 0]);
    r.check(
        "first fragment asks for more",
        first[0] == FFA_MEM_FRAG_RX && first[3] == PAGE,
        format_args!("{:#x} {}", first[0], first[3]),
    );
    let busy = send(FFA_MEM_SHARE_64, &desc(v, &[(page, 1)], false), tx);
    r.check(
        "another share meanwhile is BUSY",
        error_of(&busy) == Some(BUSY),
        format_args!("{:?}", error_of(&busy)),
    );
    let gone = reclaim(handle_from_regs(first[1], first[2]));
    r.check(
        "reclaim abandons the half-sent transaction",
        gone[0] == FFA_SUCCESS_32,
        format_args!("{:?}", error_of(&gone)),
    );
    let ok = send(FFA_MEM_SHARE_64, &desc(v, &[(page, 1)], false), tx);
    r.check(
        "warden shares again afterwards",
        handle_of(&ok).is_some(),
        format_args!("{:?}", error_of(&ok)),
    );
    if let Some(h) = handle_of(&ok) {
        let rc = reclaim(h);
        r.check(
            "and reclaims",
            rc[0] == FFA_SUCCESS_32,
            format_args!("{:?}", error_of(&rc)),
        );
    }

    // A first fragment that holds the whole descriptor, with a total length 16 bytes
    // larger (what the FF-A ACS sends): INVALID_PARAMETERS, and no transaction starts.
    let one = desc(v, &[(page, 1)], false);
    write(tx, &one);
    let n = one.len() as u64;
    let x = smc(FFA_MEM_SHARE_64, &[n + 16, n, 0, 0]);
    r.check(
        "a total length the first fragment contradicts",
        error_of(&x) == Some(INVALID_PARAMETERS),
        format_args!("x0 {:#x} {:?}", x[0], error_of(&x)),
    );
    let next = send(FFA_MEM_SHARE_64, &one, tx);
    let back = handle_of(&next).map(reclaim);
    r.check(
        "nothing pending afterwards: the next share is served",
        back.is_some_and(|rc| rc[0] == FFA_SUCCESS_32),
        format_args!("{:?}", error_of(&next)),
    );

    // FFA_RXTX_UNMAP half way through a fragmented send abandons the send and unmaps; the
    // buffers map again (as ffa_checks left them: two pages each, RX after TX's two).
    write(tx, &d[..PAGE as usize]);
    let first = smc(FFA_MEM_SHARE_64, &[d.len() as u64, PAGE, 0, 0]);
    let unmap = smc(FFA_RXTX_UNMAP, &[0]);
    r.check(
        "RXTX_UNMAP during a fragmented send",
        first[0] == FFA_MEM_FRAG_RX && unmap[0] == FFA_SUCCESS_32,
        format_args!("{:#x} {:?}", first[0], error_of(&unmap)),
    );
    let map = smc(FFA_RXTX_MAP_64, &[tx, tx + 2 * PAGE, 2]);
    r.check(
        "RXTX_MAP again after it",
        map[0] == FFA_SUCCESS_32,
        format_args!("{:?}", error_of(&map)),
    );
    let rest = &d[PAGE as usize..];
    write(tx, rest);
    let gone = smc(FFA_MEM_FRAG_TX, &[first[1], first[2], rest.len() as u64, 0]);
    r.check(
        "the abandoned send is gone",
        error_of(&gone) == Some(INVALID_PARAMETERS),
        format_args!("x0 {:#x} {:?}", gone[0], error_of(&gone)),
    );
}
