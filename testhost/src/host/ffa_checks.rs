//! FF-A through warden, as a host at a chosen version sees it against the real SPMC
//! (TF-A's SPMD + OP-TEE): negotiation, buffers, partition discovery in the host's
//! format, direct requests to OP-TEE, and hostile calls that must fail with the right
//! error and change nothing.

use warden::platform::memmap::Range;

use warden::ffa::abi::{
    FFA_ERROR, FFA_FEATURES, FFA_ID_GET, FFA_INTERRUPT,
    FFA_MSG_SEND_DIRECT_REQ2 as FFA_DIRECT_REQ2, FFA_PARTITION_INFO_GET, FFA_RX_RELEASE,
    FFA_RXTX_MAP_64, FFA_SPM_ID_GET, FFA_SUCCESS_64, FFA_VERSION, FfaError, fid32, fid64, num,
};

use super::{FFA_SUCCESS_32, Report, error_of, smc};

// Function IDs and error codes from warden's FF-A vocabulary (DEN0077A v1.2 §13).
const FFA_RXTX_UNMAP: u32 = fid32(num::RXTX_UNMAP);
const FFA_RUN: u32 = fid32(num::RUN);
const FFA_DIRECT_REQ_32: u32 = fid32(num::MSG_SEND_DIRECT_REQ);
const FFA_DIRECT_REQ_64: u32 = fid64(num::MSG_SEND_DIRECT_REQ);
const FFA_DIRECT_RESP_32: u64 = fid32(num::MSG_SEND_DIRECT_RESP) as u64;
const FFA_MSG_SEND2: u32 = fid32(num::MSG_SEND2);

const NOT_SUPPORTED: i32 = FfaError::NotSupported.code();
const INVALID_PARAMETERS: i32 = FfaError::InvalidParameters.code();
const BUSY: i32 = FfaError::Busy.code();
const DENIED: i32 = FfaError::Denied.code();

/// OP-TEE's FF-A ABI (optee_os core/include/optee_ffa.h): w3 selects the function.
const OPTEE_FFA_GET_API_VERSION: u64 = 0;
const OPTEE_FFA_GET_OS_VERSION: u64 = 1;
const OPTEE_ID: u64 = 0x8001;
/// OP-TEE's FF-A partition UUID, 486178e0-e7f8-11e3-bc5e-0002a5d5c51b, as its descriptor
/// carries it (the UUID Linux's OP-TEE driver binds to).
const OPTEE_UUID: [u8; 16] = [
    0x48, 0x61, 0x78, 0xe0, 0xe7, 0xf8, 0x11, 0xe3, 0xbc, 0x5e, 0x00, 0x02, 0xa5, 0xd5, 0xc5, 0x1b,
];

#[repr(C, align(4096))]
struct Buffers([u8; 4 * 4096]);
static mut BUFFERS: Buffers = Buffers([0; 4 * 4096]);

pub(crate) fn buffers() -> (u64, u64) {
    let base = &raw const BUFFERS as u64;
    (base, base + 4096)
}

fn rx() -> [u8; 4096] {
    rx_at(buffers().1)
}

fn rx_at(rx: u64) -> [u8; 4096] {
    // SAFETY: the RX page of BUFFERS, which only warden writes (through FF-A) while the
    // host waits in an SMC; read as a copy.
    unsafe { (rx as *const [u8; 4096]).read_volatile() }
}

fn expect_error(r: &mut Report, name: &str, out: &[u64; 18], want: i32) {
    let got = error_of(out);
    r.check(
        name,
        got == Some(want),
        format_args!("x0 {:#x} w2 {:?}, want error {want}", out[0], got),
    );
}

/// The checks `run` makes for a host at version `v`, block by block.
pub fn planned(v: u32) -> u32 {
    let (v1_1, v1_2) = (v >= 0x1_0001, v >= 0x1_0002);
    let negotiation = 7;
    // SPM_ID_GET, RXTX_MAP's properties, SRI, NPI, the mandatory interfaces the host receives.
    let ids_and_features = 5;
    let buffers = 10;
    // The listing, the version warden serves, an unknown UUID, then the flags (two checks
    // from v1.1, one before).
    let partitions = 5 + 1 + 1 + if v1_1 { 2 } else { 1 };
    // GET_API_VERSION, x8-x17 kept before v1.2, the five refused requests (three 32-bit,
    // x1[63:32] in the 64-bit call, RUN with a vCPU ID no context has).
    let direct = 1 + u32::from(!v1_2) + 5;
    let not_offered = 5 * 2 + 1;
    let remap = 4;
    let notifications = if v1_1 { 5 } else { 0 };
    let still_served = 1;
    negotiation
        + ids_and_features
        + buffers
        + partitions
        + direct
        + not_offered
        + remap
        + notifications
        + still_served
}

pub fn run(r: &mut Report, v: u32, warden: Option<Range>) {
    let other = if v == 0x1_0000 { 0x1_0001 } else { 0x1_0000 };
    // Negotiation, before any other FF-A call.
    let w = smc(FFA_VERSION, &[0x8001_0002])[0];
    r.check(
        "FFA_VERSION with bit 31 set refused",
        w == 0xffff_ffff,
        format_args!("{w:#x}"),
    );
    let w = smc(FFA_VERSION, &[0x2_0000])[0];
    r.check(
        "FFA_VERSION of another major refused",
        w == 0xffff_ffff,
        format_args!("{w:#x}"),
    );
    let w = smc(FFA_VERSION, &[other as u64])[0];
    r.check(
        "FFA_VERSION answers warden's v1.2",
        w == 0x1_0002,
        format_args!("{w:#x}"),
    );
    let w = smc(FFA_VERSION, &[v as u64])[0];
    r.check(
        "renegotiation before other calls",
        w == 0x1_0002,
        format_args!("{w:#x}"),
    );
    say!("testhost: FFA_VERSION({}.{}) = {w:#x}", v >> 16, v & 0xffff);
    let answered = w;

    let id = smc(FFA_ID_GET, &[]);
    r.check(
        "FFA_ID_GET: host is ID 0",
        id[0] == FFA_SUCCESS_32 && id[2] == 0,
        format_args!("{:#x} {:#x}", id[0], id[2]),
    );
    let w = smc(FFA_VERSION, &[v as u64])[0];
    r.check(
        "same version after lock answered",
        w == 0x1_0002,
        format_args!("{w:#x}"),
    );
    let w = smc(FFA_VERSION, &[other as u64])[0];
    r.check(
        "other version after lock refused",
        w == 0xffff_ffff,
        format_args!("{w:#x}"),
    );

    let spm = smc(FFA_SPM_ID_GET, &[]);
    if v >= 0x1_0001 {
        r.check(
            "FFA_SPM_ID_GET is the SPMC",
            spm[0] == FFA_SUCCESS_32 && spm[2] == 0x8000,
            format_args!("{:#x} {:#x}", spm[0], spm[2]),
        );
    } else {
        expect_error(r, "FFA_SPM_ID_GET is not v1.0", &spm, NOT_SUPPORTED);
    }
    let f = smc(FFA_FEATURES, &[FFA_RXTX_MAP_64 as u64]);
    let want_props = if v >= 0x1_0002 { 16 << 16 } else { 0 };
    r.check(
        "FFA_FEATURES(RXTX_MAP_64)",
        f[0] == FFA_SUCCESS_32 && f[2] == want_props,
        format_args!("{:#x} {:#x}", f[0], f[2]),
    );
    // The SRI is the SPMC's SGI, for v1.1+ hosts; NPI never (the host is not a VM).
    let sri = smc(FFA_FEATURES, &[2]);
    if v >= 0x1_0001 {
        r.check(
            "FFA_FEATURES(SRI) is an SGI",
            sri[0] == FFA_SUCCESS_32 && sri[2] < 16,
            format_args!("{:#x} {:#x}", sri[0], sri[2]),
        );
    } else {
        expect_error(r, "FFA_FEATURES(SRI) not for v1.0", &sri, NOT_SUPPORTED);
    }
    expect_error(
        r,
        "FFA_FEATURES(NPI) never",
        &smc(FFA_FEATURES, &[1]),
        NOT_SUPPORTED,
    );
    // FFA_ERROR_32, FFA_SUCCESS_32/64 and FFA_INTERRUPT_32 are mandatory interfaces the host
    // receives (DEN0077A v1.2 §13.3): FEATURES says SUCCESS, with no properties.
    let received = [
        FFA_ERROR,
        fid32(num::SUCCESS),
        FFA_SUCCESS_64,
        FFA_INTERRUPT,
    ]
    .map(|fid| smc(FFA_FEATURES, &[fid as u64]));
    r.check(
        "FFA_FEATURES: ERROR, SUCCESS 32/64, INTERRUPT are supported",
        received
            .iter()
            .all(|f| f[0] == FFA_SUCCESS_32 && f[2..8].iter().all(|&x| x == 0)),
        format_args!("{:x?}", received.map(|f| (f[0], f[2]))),
    );

    // Buffers: hostile first.
    let (tx, rxp) = buffers();
    expect_error(
        r,
        "RX_RELEASE with no buffers",
        &smc(FFA_RX_RELEASE, &[]),
        DENIED,
    );
    expect_error(
        r,
        "RXTX_UNMAP with no buffers",
        &smc(FFA_RXTX_UNMAP, &[0]),
        INVALID_PARAMETERS,
    );
    if let Some(w) = warden {
        expect_error(
            r,
            "RXTX_MAP of warden memory",
            &smc(FFA_RXTX_MAP_64, &[w.start, rxp, 1]),
            INVALID_PARAMETERS,
        );
    }
    let uart = el1kit::console::base();
    expect_error(
        r,
        "RXTX_MAP of MMIO",
        &smc(FFA_RXTX_MAP_64, &[tx, uart, 1]),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "RXTX_MAP unaligned",
        &smc(FFA_RXTX_MAP_64, &[tx + 8, rxp, 1]),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "RXTX_MAP overlapping",
        &smc(FFA_RXTX_MAP_64, &[tx, tx + 4096, 2]),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "RXTX_MAP of no pages",
        &smc(FFA_RXTX_MAP_64, &[tx, rxp, 0]),
        INVALID_PARAMETERS,
    );
    let m = smc(FFA_RXTX_MAP_64, &[tx, rxp, 1]);
    r.check(
        "RXTX_MAP of host pages",
        m[0] == FFA_SUCCESS_32,
        format_args!("{:#x} {:?}", m[0], error_of(&m)),
    );
    expect_error(
        r,
        "RXTX_MAP twice",
        &smc(FFA_RXTX_MAP_64, &[tx, rxp, 1]),
        DENIED,
    );
    expect_error(
        r,
        "RX_RELEASE with no message",
        &smc(FFA_RX_RELEASE, &[]),
        DENIED,
    );

    // Partition discovery, in this host's format.
    let p = smc(FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]);
    let size = if v >= 0x1_0001 { 24 } else { 8 };
    let want_w3 = if v >= 0x1_0001 { 24 } else { 0 };
    r.check(
        "PARTITION_INFO_GET lists the partitions",
        p[0] == FFA_SUCCESS_32 && p[2] >= 1 && p[3] == want_w3,
        format_args!("x0 {:#x} count {} w3 {}", p[0], p[2], p[3]),
    );
    // The version warden serves this host at, as the host sees it (FFA_VERSION answers 1.2 to
    // every 1.x request): SPM_ID_GET exists from v1.1, PARTITION_INFO_GET gives the descriptor
    // size in w3 from v1.1, and RXTX_MAP's page limit is reported from v1.2.
    let spm_ok = spm[0] == FFA_SUCCESS_32;
    let page_limit = f[2] >> 16;
    let served = match (spm_ok, p[3], page_limit) {
        (false, 0, 0) => "v1.0",
        (true, 24, 0) => "v1.1",
        (true, 24, 16) => "v1.2",
        _ => "an unknown version",
    };
    say!(
        "testhost: FF-A v{}.{} asked, FFA_VERSION answered {answered:#x}, served as {served} (SPM_ID_GET {}, partition descriptor size {}, RXTX_MAP page limit {page_limit})",
        v >> 16,
        v & 0xffff,
        if spm_ok { "served" } else { "not served" },
        p[3]
    );
    let asked = [0x1_0000, 0x1_0001, 0x1_0002].iter().position(|&x| x == v);
    r.check(
        "warden serves the version the host asked for",
        asked.map(|i| ["v1.0", "v1.1", "v1.2"][i]) == Some(served),
        format_args!("served as {served}"),
    );
    let buf = rx();
    let id = u16::from_le_bytes([buf[0], buf[1]]) as u64;
    r.check(
        "first partition is OP-TEE",
        id == OPTEE_ID,
        format_args!("{id:#x}"),
    );
    let mut uuid = [0u8; 16];
    if size == 24 {
        uuid.copy_from_slice(&buf[8..24]);
        say!("testhost: OP-TEE UUID bytes {:02x?}", uuid);
        r.check(
            "OP-TEE's UUID is in the descriptor",
            uuid == OPTEE_UUID,
            format_args!("{uuid:02x?}"),
        );
    } else {
        // Every 8-byte slot holds a secure partition (ID bit 15, at least one execution
        // context), and the 16 bytes after the last slot are untouched: 24-byte descriptors
        // would put a UUID at offset 8 of the first one.
        let count = (p[2] as usize).min(buf.len() / 8 - 2);
        let slot_ok = |i: usize| {
            let id = u16::from_le_bytes([buf[8 * i], buf[8 * i + 1]]);
            let contexts = u16::from_le_bytes([buf[8 * i + 2], buf[8 * i + 3]]);
            id & 0x8000 != 0 && contexts > 0
        };
        let tail = &buf[8 * count..8 * count + 16];
        r.check(
            "v1.0 descriptors are 8 bytes",
            count > 0 && (0..count).all(slot_ok) && tail.iter().all(|&b| b == 0),
            format_args!("count {count}: {:02x?}", &buf[..8 * count + 16]),
        );
    }
    expect_error(
        r,
        "PARTITION_INFO_GET while the host owns RX",
        &smc(FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]),
        BUSY,
    );
    let rel = smc(FFA_RX_RELEASE, &[]);
    r.check(
        "RX_RELEASE after a message",
        rel[0] == FFA_SUCCESS_32,
        format_args!("{:#x}", rel[0]),
    );
    // OP-TEE answers SUCCESS with no descriptors for a UUID no partition has; DEN0077A
    // v1.2 §13.8 says INVALID_PARAMETERS, and warden translates.
    expect_error(
        r,
        "PARTITION_INFO_GET of an unknown UUID",
        &smc(FFA_PARTITION_INFO_GET, &[1, 2, 3, 4, 0]),
        INVALID_PARAMETERS,
    );
    if v >= 0x1_0001 {
        let words: [u64; 4] = core::array::from_fn(|i| {
            u32::from_le_bytes(uuid[i * 4..i * 4 + 4].try_into().unwrap()) as u64
        });
        let c = smc(
            FFA_PARTITION_INFO_GET,
            &[words[0], words[1], words[2], words[3], 1],
        );
        // With the count-only flag, w3 (the descriptor size) is MBZ (§13.8).
        r.check(
            "count-only query by OP-TEE's UUID, w3 zero",
            c[0] == FFA_SUCCESS_32 && c[2] == 1 && c[3] == 0,
            format_args!("{:#x} {} {}", c[0], c[2], c[3]),
        );
        expect_error(
            r,
            "reserved PARTITION_INFO_GET flags",
            &smc(FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 2]),
            INVALID_PARAMETERS,
        );
    } else {
        expect_error(
            r,
            "v1.0 has no PARTITION_INFO_GET flags",
            &smc(FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 1]),
            INVALID_PARAMETERS,
        );
    }

    // Direct requests to OP-TEE, with markers in x8-x17 that a pre-1.2 host keeps.
    let mut args = [0u64; 17];
    args[0] = OPTEE_ID;
    args[2] = OPTEE_FFA_GET_API_VERSION;
    for (i, a) in args[7..].iter_mut().enumerate() {
        *a = 0xa0 + i as u64;
    }
    let d = smccc::smc64(FFA_DIRECT_REQ_32, args);
    say!("testhost: OP-TEE API version {}.{}", d[3], d[4]);
    r.check(
        "DIRECT_REQ to OP-TEE: GET_API_VERSION",
        d[0] == FFA_DIRECT_RESP_32 && d[1] == OPTEE_ID << 16 && d[3] == 1,
        format_args!("x0 {:#x} x1 {:#x} x3 {:#x}", d[0], d[1], d[3]),
    );
    if v < 0x1_0002 {
        r.check(
            "x8-x17 kept for a pre-1.2 host",
            d[8..]
                .iter()
                .enumerate()
                .all(|(i, &x)| x == 0xa0 + i as u64),
            format_args!("{:x?}", &d[8..]),
        );
    }
    expect_error(
        r,
        "DIRECT_REQ with a spoofed sender",
        &smc(FFA_DIRECT_REQ_32, &[0x0005_0000 | OPTEE_ID, 0, 1]),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "DIRECT_REQ framework message from the host",
        &smc(FFA_DIRECT_REQ_32, &[OPTEE_ID, 1 << 31 | 4, 0, 0]),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "DIRECT_REQ to a non-partition",
        &smc(FFA_DIRECT_REQ_32, &[0x0001, 0, 1]),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "64-bit DIRECT_REQ with x1[63:32] set",
        &smc(
            FFA_DIRECT_REQ_64,
            &[1 << 32 | OPTEE_ID, 0, OPTEE_FFA_GET_API_VERSION],
        ),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "RUN with a vCPU ID no context has",
        &smc(FFA_RUN, &[OPTEE_ID << 16 | 0xffff]),
        INVALID_PARAMETERS,
    );

    for (fid, what) in [
        (fid32(0xff), "unknown FF-A function"),
        (fid64(num::VERSION), "64-bit FFA_VERSION"),
        (FFA_MSG_SEND2, "MSG_SEND2 (not mediated)"),
        (
            fid64(num::MEM_DONATE),
            "MEM_DONATE (the host never gives memory away)",
        ),
        (
            fid64(num::MEM_RETRIEVE_REQ),
            "MEM_RETRIEVE_REQ (the host is never a borrower)",
        ),
    ] {
        expect_error(r, what, &smc(fid, &[]), NOT_SUPPORTED);
        let feat = smc(FFA_FEATURES, &[fid as u64]);
        expect_error(r, "FFA_FEATURES agrees", &feat, NOT_SUPPORTED);
    }
    let feat = smc(FFA_FEATURES, &[FFA_DIRECT_REQ2 as u64]);
    let call = smc(FFA_DIRECT_REQ2, &[OPTEE_ID, 0, 0]);
    r.check(
        "DIRECT_REQ2: FEATURES and the call agree",
        (feat[0] == FFA_SUCCESS_32) == (error_of(&call) != Some(NOT_SUPPORTED)),
        format_args!("features {:#x} call {:#x}", feat[0], call[0]),
    );

    expect_error(
        r,
        "RXTX_UNMAP of another ID",
        &smc(FFA_RXTX_UNMAP, &[OPTEE_ID << 16]),
        INVALID_PARAMETERS,
    );
    let u = smc(FFA_RXTX_UNMAP, &[0]);
    r.check(
        "RXTX_UNMAP",
        u[0] == FFA_SUCCESS_32,
        format_args!("{:#x}", u[0]),
    );
    // Two-page buffers this time (warden takes 1-16), used by PARTITION_INFO_GET.
    let rx2 = tx + 2 * 4096;
    let m = smc(FFA_RXTX_MAP_64, &[tx, rx2, 2]);
    r.check(
        "RXTX_MAP of two pages each after unmap",
        m[0] == FFA_SUCCESS_32,
        format_args!("{:#x}", m[0]),
    );
    let p = smc(FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]);
    let id = u16::from_le_bytes([rx_at(rx2)[0], rx_at(rx2)[1]]) as u64;
    r.check(
        "PARTITION_INFO_GET into the two-page RX buffer",
        p[0] == FFA_SUCCESS_32 && id == OPTEE_ID && smc(FFA_RX_RELEASE, &[])[0] == FFA_SUCCESS_32,
        format_args!("{:#x} id {id:#x}", p[0]),
    );
    if v >= 0x1_0001 {
        notifications(r);
    }

    // After all of that, warden still serves correct calls.
    let d = smc(FFA_DIRECT_REQ_32, &[OPTEE_ID, 0, OPTEE_FFA_GET_OS_VERSION]);
    say!("testhost: OP-TEE OS version {}.{}", d[3], d[4]);
    r.check(
        "DIRECT_REQ still served: GET_OS_VERSION",
        d[0] == FFA_DIRECT_RESP_32 && d[3] >= 4,
        format_args!("x0 {:#x} x3 {}", d[0], d[3]),
    );
}

/// One correct call that must still work after the hostile ones and the stage-2 faults.
pub fn still_served(r: &mut Report) {
    let d = smc(FFA_DIRECT_REQ_32, &[OPTEE_ID, 0, OPTEE_FFA_GET_API_VERSION]);
    say!(
        "testhost: DIRECT_REQ after the faults: x0 {:#x} x3 {}",
        d[0],
        d[3]
    );
    r.check(
        "warden serves FF-A after the faults",
        d[0] == FFA_DIRECT_RESP_32 && d[3] == 1,
        format_args!("{:#x}", d[0]),
    );
}

/// A notification round trip with OP-TEE as the sender: the host's bitmap, a binding, a
/// GET of the host's own notifications, and the undoing of both; SET is not offered.
fn notifications(r: &mut Report) {
    const CREATE: u32 = fid32(num::NOTIFICATION_BITMAP_CREATE);
    const DESTROY: u32 = fid32(num::NOTIFICATION_BITMAP_DESTROY);
    const BIND: u32 = fid32(num::NOTIFICATION_BIND);
    const UNBIND: u32 = fid32(num::NOTIFICATION_UNBIND);
    const SET: u32 = fid32(num::NOTIFICATION_SET);
    const GET: u32 = fid32(num::NOTIFICATION_GET);
    let ok = |x: &[u64; 18]| x[0] == FFA_SUCCESS_32;
    let c = smc(CREATE, &[0, 4]);
    let b = smc(BIND, &[OPTEE_ID << 16, 0, 1 << 5, 0]);
    let g = smc(GET, &[0, 0b11]);
    // The bitmap was created for 4 vCPUs: vCPU ID 4 names none of them (§13.23).
    let bad_vcpu = smc(GET, &[4 << 16, 0b11]);
    let u = smc(UNBIND, &[OPTEE_ID << 16, 0, 1 << 5, 0]);
    let d = smc(DESTROY, &[0]);
    // No bitmap any more: DESTROY is DENIED (§13.19; OP-TEE itself answers SUCCESS).
    let again = smc(DESTROY, &[0]);
    say!(
        "testhost: notifications: create {:#x} bind {:#x} get {:#x} (SP bitmap {:#x}) unbind {:#x} destroy {:#x}",
        c[0],
        b[0],
        g[0],
        g[2],
        u[0],
        d[0]
    );
    r.check(
        "notification round trip: create, bind, get, unbind, destroy",
        ok(&c) && ok(&b) && ok(&g) && ok(&u) && ok(&d),
        format_args!(
            "{:?}",
            [
                error_of(&c),
                error_of(&b),
                error_of(&g),
                error_of(&u),
                error_of(&d)
            ]
        ),
    );
    expect_error(
        r,
        "NOTIFICATION_GET for a vCPU the bitmap does not have",
        &bad_vcpu,
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "NOTIFICATION_BITMAP_DESTROY without a bitmap",
        &again,
        DENIED,
    );
    expect_error(
        r,
        "NOTIFICATION_BIND for another receiver",
        &smc(BIND, &[OPTEE_ID << 16 | 5, 0, 1, 0]),
        INVALID_PARAMETERS,
    );
    expect_error(
        r,
        "NOTIFICATION_SET is not offered",
        &smc(SET, &[OPTEE_ID, 0, 1, 0]),
        NOT_SUPPORTED,
    );
}
