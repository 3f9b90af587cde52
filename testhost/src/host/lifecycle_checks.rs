//! The host's lifecycle (README "Host lifecycle"): once the host holds nothing at warden
//! (buffers unmapped, every memory handle reclaimed, notification bitmap destroyed), the
//! next kernel may negotiate another FF-A version, as a loader and a kernel may at boot.
//! This host plays both kernels in one run: after every other section it lets go of
//! everything, then boots "again" at another version and makes a few calls in it.

use warden::ffa::abi::{self, num};
use warden::hvc::WARDEN_COUNTERS;

use super::{FFA_SUCCESS_32, Report, error_of, ffa_checks, read_u32, smc, write_u32};

const OPTEE_ID: u64 = 0x8001;
const OPTEE_FFA_GET_API_VERSION: u64 = 0;
const NOT_SUPPORTED_W0: u64 = 0xffff_ffff;

/// The checks `run` makes.
pub const PLANNED: u32 = 9;

/// The version the second kernel asks for: as different from the first as can be (v1.0's
/// 8-byte partition descriptors against 24 bytes from v1.1).
pub fn second_version(first: u32) -> u32 {
    if first == 0x1_0000 {
        0x1_0002
    } else {
        0x1_0000
    }
}

pub fn run(r: &mut Report, first: u32) {
    let (tx, rx) = ffa_checks::buffers();
    let ok = |x: &[u64; 18]| x[0] == FFA_SUCCESS_32;

    // The first kernel lets go. Its bitmap may be gone already (the notification checks
    // destroy theirs) or made again by the hostile suite: destroying it is what a kernel
    // does either way, whatever the SPMC answers when there is none.
    if first >= 0x1_0001 {
        let d = smc(abi::fid32(num::NOTIFICATION_BITMAP_DESTROY), &[0]);
        say!(
            "testhost: lifecycle: bitmap destroy {:#x} {:?}",
            d[0],
            error_of(&d)
        );
    }
    let u = smc(abi::fid32(num::RXTX_UNMAP), &[0]);
    let c = smccc::hvc64(WARDEN_COUNTERS, [0; 17]);
    r.check(
        "first kernel: buffers unmapped, no memory handle left at warden",
        ok(&u) && c[3] == 0,
        format_args!(
            "unmap {:#x} {:?}, live handles {}",
            u[0],
            error_of(&u),
            c[3]
        ),
    );

    let second = second_version(first);
    let w = smc(abi::FFA_VERSION, &[second as u64])[0];
    say!(
        "testhost: lifecycle: second kernel asks v{}.{} after v{}.{}: {w:#x}",
        second >> 16,
        second & 0xffff,
        first >> 16,
        first & 0xffff
    );
    r.check(
        "second kernel: FFA_VERSION of another version accepted once the host holds nothing",
        w == 0x1_0002,
        format_args!("{w:#x}"),
    );
    let id = smc(abi::FFA_ID_GET, &[]);
    r.check(
        "second kernel: FFA_ID_GET",
        ok(&id) && id[2] == 0,
        format_args!("{:#x} {:#x}", id[0], id[2]),
    );
    let m = smc(abi::FFA_RXTX_MAP_64, &[tx, rx, 1]);
    r.check(
        "second kernel: RXTX_MAP",
        ok(&m),
        format_args!("{:#x} {:?}", m[0], error_of(&m)),
    );

    // Partition discovery in the second kernel's format: the size in w3 from v1.1 (0 before),
    // and OP-TEE's descriptor at that size.
    // What the first kernel's discovery left in the RX page (24-byte descriptors at v1.2)
    // is cleared first, so that only what warden writes now is read.
    for off in (0..64).step_by(4) {
        write_u32(rx + off, 0);
    }
    let p = smc(abi::FFA_PARTITION_INFO_GET, &[0, 0, 0, 0, 0]);
    let v1_1 = second >= 0x1_0001;
    let first_id = read_u32(rx) & 0xffff;
    let count = p[2].min(4);
    let layout_ok = if v1_1 {
        // OP-TEE's UUID starts at byte 8 of a 24-byte descriptor.
        read_u32(rx + 8) == u32::from_le_bytes([0x48, 0x61, 0x78, 0xe0])
    } else {
        // 8-byte descriptors: a secure partition ID in each, nothing after the last.
        (0..count).all(|i| read_u32(rx + 8 * i) & 0x8000 != 0)
            && read_u32(rx + 8 * count) == 0
            && read_u32(rx + 8 * count + 4) == 0
    };
    r.check(
        "second kernel: PARTITION_INFO_GET in its own version's format",
        ok(&p)
            && p[2] >= 1
            && p[3] == if v1_1 { 24 } else { 0 }
            && u64::from(first_id) == OPTEE_ID
            && layout_ok,
        format_args!(
            "x0 {:#x} count {} w3 {} id {first_id:#x} word at 8 {:#x}",
            p[0],
            p[2],
            p[3],
            read_u32(rx + 8)
        ),
    );
    let spm = smc(abi::FFA_SPM_ID_GET, &[]);
    r.check(
        "second kernel: SPM_ID_GET as its version has it",
        if v1_1 {
            ok(&spm) && spm[2] == 0x8000
        } else {
            error_of(&spm) == Some(-1)
        },
        format_args!("{:#x} {:#x}", spm[0], spm[2]),
    );
    let d = smc(
        abi::fid32(num::MSG_SEND_DIRECT_REQ),
        &[OPTEE_ID, 0, OPTEE_FFA_GET_API_VERSION],
    );
    r.check(
        "second kernel: DIRECT_REQ to OP-TEE",
        d[0] == abi::fid32(num::MSG_SEND_DIRECT_RESP) as u64 && d[3] == 1,
        format_args!("x0 {:#x} x3 {}", d[0], d[3]),
    );
    // Holding buffers again, the second kernel's version is fixed as the first's was.
    let w = smc(abi::FFA_VERSION, &[first as u64])[0];
    r.check(
        "second kernel: its version is fixed again",
        w == NOT_SUPPORTED_W0,
        format_args!("{w:#x}"),
    );
    let rel = smc(abi::FFA_RX_RELEASE, &[]);
    let u = smc(abi::fid32(num::RXTX_UNMAP), &[0]);
    r.check(
        "second kernel: RX_RELEASE and RXTX_UNMAP",
        ok(&rel) && ok(&u),
        format_args!("{:#x} {:#x}", rel[0], u[0]),
    );
}
