//! FF-A function IDs, error codes and register-level replies (DEN0077A v1.2, chapter 13 and
//! Table 13.1 onwards). Errors are a typed enum mapped to the spec's codes in one place.

/// SMC32 fast call, standard secure service owner.
const FAST32: u32 = 0x8400_0000;
/// SMC64 fast call, standard secure service owner.
const FAST64: u32 = 0xc400_0000;

/// FF-A function numbers (bits [7:0] of the function ID). The 64-bit twin of a function
/// has the same number with bit 30 set.
pub mod num {
    pub const ERROR: u32 = 0x60;
    pub const SUCCESS: u32 = 0x61;
    pub const INTERRUPT: u32 = 0x62;
    pub const VERSION: u32 = 0x63;
    pub const FEATURES: u32 = 0x64;
    pub const RX_RELEASE: u32 = 0x65;
    pub const RXTX_MAP: u32 = 0x66;
    pub const RXTX_UNMAP: u32 = 0x67;
    pub const PARTITION_INFO_GET: u32 = 0x68;
    pub const ID_GET: u32 = 0x69;
    pub const MSG_POLL: u32 = 0x6a;
    pub const MSG_WAIT: u32 = 0x6b;
    pub const YIELD: u32 = 0x6c;
    pub const RUN: u32 = 0x6d;
    pub const MSG_SEND: u32 = 0x6e;
    pub const MSG_SEND_DIRECT_REQ: u32 = 0x6f;
    pub const MSG_SEND_DIRECT_RESP: u32 = 0x70;
    pub const MEM_DONATE: u32 = 0x71;
    pub const MEM_LEND: u32 = 0x72;
    pub const MEM_SHARE: u32 = 0x73;
    pub const MEM_RETRIEVE_REQ: u32 = 0x74;
    pub const MEM_RETRIEVE_RESP: u32 = 0x75;
    pub const MEM_RELINQUISH: u32 = 0x76;
    pub const MEM_RECLAIM: u32 = 0x77;
    pub const MEM_OP_PAUSE: u32 = 0x78;
    pub const MEM_OP_RESUME: u32 = 0x79;
    pub const MEM_FRAG_RX: u32 = 0x7a;
    pub const MEM_FRAG_TX: u32 = 0x7b;
    pub const NORMAL_WORLD_RESUME: u32 = 0x7c;
    pub const NOTIFICATION_BITMAP_CREATE: u32 = 0x7d;
    pub const NOTIFICATION_BITMAP_DESTROY: u32 = 0x7e;
    pub const NOTIFICATION_BIND: u32 = 0x7f;
    pub const NOTIFICATION_UNBIND: u32 = 0x80;
    pub const NOTIFICATION_SET: u32 = 0x81;
    pub const NOTIFICATION_GET: u32 = 0x82;
    pub const NOTIFICATION_INFO_GET: u32 = 0x83;
    pub const RX_ACQUIRE: u32 = 0x84;
    pub const SPM_ID_GET: u32 = 0x85;
    pub const MSG_SEND2: u32 = 0x86;
    pub const SECONDARY_EP_REGISTER: u32 = 0x87;
    pub const MEM_PERM_GET: u32 = 0x88;
    pub const MEM_PERM_SET: u32 = 0x89;
    pub const CONSOLE_LOG: u32 = 0x8a;
    pub const PARTITION_INFO_GET_REGS: u32 = 0x8b;
    pub const EL3_INTR_HANDLE: u32 = 0x8c;
    pub const MSG_SEND_DIRECT_REQ2: u32 = 0x8d;
    pub const MSG_SEND_DIRECT_RESP2: u32 = 0x8e;
}

pub const fn fid32(n: u32) -> u32 {
    FAST32 | n
}
pub const fn fid64(n: u32) -> u32 {
    FAST64 | n
}

pub const FFA_ERROR: u32 = fid32(num::ERROR);
pub const FFA_SUCCESS_32: u32 = fid32(num::SUCCESS);
pub const FFA_SUCCESS_64: u32 = fid64(num::SUCCESS);
pub const FFA_INTERRUPT: u32 = fid32(num::INTERRUPT);
pub const FFA_VERSION: u32 = fid32(num::VERSION);
pub const FFA_FEATURES: u32 = fid32(num::FEATURES);
pub const FFA_RX_RELEASE: u32 = fid32(num::RX_RELEASE);
pub const FFA_RXTX_MAP_64: u32 = fid64(num::RXTX_MAP);
pub const FFA_PARTITION_INFO_GET: u32 = fid32(num::PARTITION_INFO_GET);
pub const FFA_PARTITION_INFO_GET_REGS: u32 = fid64(num::PARTITION_INFO_GET_REGS);
pub const FFA_ID_GET: u32 = fid32(num::ID_GET);
pub const FFA_SPM_ID_GET: u32 = fid32(num::SPM_ID_GET);
pub const FFA_YIELD: u32 = fid32(num::YIELD);
pub const FFA_MSG_SEND_DIRECT_REQ2: u32 = fid64(num::MSG_SEND_DIRECT_REQ2);

/// A decoded FF-A function ID: its number and calling convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FfaFunction {
    pub num: u32,
    pub is_64: bool,
}

impl FfaFunction {
    /// `None` if `fid` is outside the FF-A range (function numbers 0x60-0xff of the
    /// standard secure service, fast calls, reserved bits [23:16] clear).
    pub fn decode(fid: u32) -> Option<Self> {
        let is_64 = fid & (1 << 30) != 0;
        let base = fid & !(1 << 30);
        (base & 0xffff_ff00 == FAST32 && base & 0xff >= 0x60).then_some(Self {
            num: base & 0xff,
            is_64,
        })
    }
    pub fn fid(self) -> u32 {
        if self.is_64 {
            fid64(self.num)
        } else {
            fid32(self.num)
        }
    }
}

/// FF-A status codes (DEN0077A v1.2 Table 13.6 (FF-A error codes)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FfaError {
    NotSupported,
    InvalidParameters,
    NoMemory,
    Busy,
    Interrupted,
    Denied,
    Retry,
    Aborted,
    NoData,
}

impl FfaError {
    pub const fn code(self) -> i32 {
        match self {
            Self::NotSupported => -1,
            Self::InvalidParameters => -2,
            Self::NoMemory => -3,
            Self::Busy => -4,
            Self::Interrupted => -5,
            Self::Denied => -6,
            Self::Retry => -7,
            Self::Aborted => -8,
            Self::NoData => -9,
        }
    }
    /// Reads an error code as the SPMC returned it in w2: SMC32 results arrive
    /// zero-extended, so only the low 32 bits count, as a signed value.
    pub fn from_reg(w2: u64) -> Option<Self> {
        Some(match w2 as u32 as i32 {
            -1 => Self::NotSupported,
            -2 => Self::InvalidParameters,
            -3 => Self::NoMemory,
            -4 => Self::Busy,
            -5 => Self::Interrupted,
            -6 => Self::Denied,
            -7 => Self::Retry,
            -8 => Self::Aborted,
            -9 => Self::NoData,
            _ => return None,
        })
    }
}

/// Registers x0-x17 of an FF-A call or reply.
pub type Regs = [u64; 18];

/// `FFA_ERROR` with `error` in w2 (DEN0077A v1.2 §13.3); all other registers zero.
pub fn error_regs(error: FfaError) -> Regs {
    let mut r = [0; 18];
    r[0] = FFA_ERROR as u64;
    r[2] = error.code() as u32 as u64;
    r
}

/// `FFA_SUCCESS_32` with w2-w7 = `args`; all other registers zero.
pub fn success_regs(args: &[u64]) -> Regs {
    let mut r = [0; 18];
    r[0] = FFA_SUCCESS_32 as u64;
    for (slot, a) in r[2..8].iter_mut().zip(args) {
        *slot = *a as u32 as u64;
    }
    r
}

/// Builds a call: `fid` in x0, `args` from x1 on, the rest zero.
pub fn call_regs(fid: u32, args: &[u64]) -> Regs {
    let mut r = [0; 18];
    r[0] = fid as u64;
    for (slot, a) in r[1..].iter_mut().zip(args) {
        *slot = *a;
    }
    r
}

/// A memory handle from the two registers that carry it, low word first (DEN0077A v1.2
/// §10.2.1; FFA_MEM_RECLAIM w1/w2, FFA_MEM_FRAG_RX/TX w1/w2, FFA_SUCCESS w2/w3). Only the
/// low 32 bits of each register count: these are SMC32 calls.
pub const fn handle_from_regs(lo: u64, hi: u64) -> u64 {
    (lo as u32 as u64) | (hi as u32 as u64) << 32
}

/// A memory handle as the two register values that carry it, low word first.
pub const fn handle_to_regs(handle: u64) -> [u64; 2] {
    [handle as u32 as u64, handle >> 32]
}

/// The result of a call to the SPMC: `Ok` with the registers for FFA_SUCCESS (32 or 64),
/// `Err` with the decoded error for FFA_ERROR or anything unexpected.
pub fn expect_success(r: &Regs) -> Result<&Regs, FfaError> {
    match r[0] as u32 {
        FFA_SUCCESS_32 | FFA_SUCCESS_64 => Ok(r),
        FFA_ERROR => Err(FfaError::from_reg(r[2]).unwrap_or(FfaError::Aborted)),
        _ => Err(FfaError::Aborted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_function_ids() {
        assert_eq!(
            FfaFunction::decode(0x8400_0063),
            Some(FfaFunction {
                num: num::VERSION,
                is_64: false
            })
        );
        assert_eq!(
            FfaFunction::decode(0xc400_0066),
            Some(FfaFunction {
                num: num::RXTX_MAP,
                is_64: true
            })
        );
        assert_eq!(FfaFunction::decode(0x8400_005f), None);
        assert_eq!(FfaFunction::decode(0x8401_0063), None);
        assert_eq!(FfaFunction::decode(0x0400_0063), None);
        assert_eq!(FfaFunction::decode(0x8400_0063).unwrap().fid(), 0x8400_0063);
    }

    #[test]
    fn error_codes_round_trip_as_s32() {
        for e in [
            FfaError::NotSupported,
            FfaError::InvalidParameters,
            FfaError::NoMemory,
            FfaError::Busy,
            FfaError::Interrupted,
            FfaError::Denied,
            FfaError::Retry,
            FfaError::Aborted,
            FfaError::NoData,
        ] {
            let r = error_regs(e);
            assert_eq!(r[0], 0x8400_0060);
            assert!(r[2] <= u32::MAX as u64, "w2 is zero-extended");
            assert_eq!(FfaError::from_reg(r[2]), Some(e));
            // A 64-bit sign-extended value reads the same.
            assert_eq!(FfaError::from_reg(e.code() as i64 as u64), Some(e));
        }
        assert_eq!(FfaError::from_reg(0), None);
    }

    #[test]
    fn handles_round_trip_through_two_registers() {
        let h = 0x8000_0001_2345_6789;
        assert_eq!(handle_to_regs(h), [0x2345_6789, 0x8000_0001]);
        let [lo, hi] = handle_to_regs(h);
        assert_eq!(handle_from_regs(lo, hi), h);
        // Upper halves of the registers are not part of the handle.
        assert_eq!(
            handle_from_regs(0xffff_ffff_0000_0001, 0xdead_0000_0000_0002),
            0x2_0000_0001
        );
    }
}
