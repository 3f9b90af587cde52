//! SMC Calling Convention function IDs (Arm DEN0028, SMCCC v1.2 §2.5).

/// Bit 31: fast call. Bit 30: SMC64/HVC64 calling convention. Bits [29:24]: owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FunctionId(pub u32);

/// Service owners (DEN0028 Table 2-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Arch,
    Cpu,
    Sip,
    Oem,
    /// Standard secure services: PSCI, FF-A and others.
    StandardSecure,
    StandardHypervisor,
    VendorHypervisor,
    Other(u8),
}

impl FunctionId {
    /// Reads the function ID from a register: SMCCC uses w0, bits [63:32] are ignored.
    pub fn from_reg(x0: u64) -> Self {
        Self(x0 as u32)
    }
    pub fn is_fast(self) -> bool {
        self.0 & (1 << 31) != 0
    }
    pub fn is_64(self) -> bool {
        self.0 & (1 << 30) != 0
    }
    pub fn owner(self) -> Owner {
        match (self.0 >> 24) & 0x3f {
            0 => Owner::Arch,
            1 => Owner::Cpu,
            2 => Owner::Sip,
            3 => Owner::Oem,
            4 => Owner::StandardSecure,
            5 => Owner::StandardHypervisor,
            6 => Owner::VendorHypervisor,
            o => Owner::Other(o as u8),
        }
    }
    /// The function number, bits [15:0].
    pub fn number(self) -> u16 {
        self.0 as u16
    }
    /// Bits [23:17] must be zero for fast calls (DEN0028 §2.5); bit 16 is the SVE hint.
    pub fn reserved_bits_clear(self) -> bool {
        self.0 & 0x00fe_0000 == 0
    }
    /// The ID without the SMCCC 1.3 SVE hint (bit 16: "the caller's SVE state above the
    /// FP/SIMD registers is not live", DEN0028 §2.5.1). It is only a hint that a callee
    /// may skip saving SVE state, so dropping it is always correct; warden drops it
    /// before routing, so that a host on SVE hardware (Linux sets it there) is served.
    pub fn without_sve_hint(self) -> Self {
        Self(self.0 & !SVE_HINT)
    }
}

/// SMCCC 1.3 function ID bit 16: SVE state not live.
pub const SVE_HINT: u32 = 1 << 16;

/// SMCCC return value for an unknown function ID (DEN0028 §5.2: -1 in w0/x0).
pub const NOT_SUPPORTED: u64 = u64::MAX;

pub const SMCCC_VERSION: u32 = 0x8000_0000;
pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
/// SoC ID (DEN0028 §7.4): a JEP106 code and revision in registers.
pub const SMCCC_ARCH_SOC_ID: u32 = 0x8000_0002;
/// CPU-erratum workarounds (DEN0028 §7.5-7.7): Spectre v2, Spectre v4 (SSBD), Spectre-BHB.
pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7fff;
pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3fff;
/// True Random Number Generator (Arm DEN0098): VERSION, FEATURES, GET_UUID, RND (SMC32 and
/// SMC64).
pub const TRNG_VERSION: u32 = 0x8400_0050;
pub const TRNG_FEATURES: u32 = 0x8400_0051;
pub const TRNG_GET_UUID: u32 = 0x8400_0052;
pub const TRNG_RND32: u32 = 0x8400_0053;
pub const TRNG_RND64: u32 = 0xc400_0053;

/// The SMCCC calls, other than PSCI and FF-A, that warden relays to EL3: each takes and
/// returns registers only, names no memory and no entry point, and means the same whoever
/// calls it. Everything else is refused with NOT_SUPPORTED (README, "SMCCC allow-list").
pub const RELAYED: [u32; 11] = [
    SMCCC_VERSION,
    SMCCC_ARCH_FEATURES,
    SMCCC_ARCH_SOC_ID,
    SMCCC_ARCH_WORKAROUND_1,
    SMCCC_ARCH_WORKAROUND_2,
    SMCCC_ARCH_WORKAROUND_3,
    TRNG_VERSION,
    TRNG_FEATURES,
    TRNG_GET_UUID,
    TRNG_RND32,
    TRNG_RND64,
];

/// Whether warden relays `fid` (without its SVE hint) to EL3 as it is. The router asks
/// only for the owners on the list, after PSCI and FF-A, so the FF-A path never scans it.
/// Inlined: on the trap path the compiler turns the list into a few compares.
#[inline(always)]
pub fn is_relayed(fid: FunctionId) -> bool {
    RELAYED.contains(&fid.0)
}

/// For SMCCC_ARCH_FEATURES and TRNG_FEATURES, whose x1 names another call: whether EL3 may
/// be asked about it. Asking about a call warden refuses is answered NOT_SUPPORTED by
/// warden, so that the host is never told a refused call exists.
#[inline(always)]
pub fn feature_query_allowed(fid: FunctionId, queried: u64) -> bool {
    match fid.0 {
        SMCCC_ARCH_FEATURES | TRNG_FEATURES => is_relayed(FunctionId(queried as u32)),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_fields() {
        let ffa_version = FunctionId(0x8400_0063);
        assert!(ffa_version.is_fast());
        assert!(!ffa_version.is_64());
        assert_eq!(ffa_version.owner(), Owner::StandardSecure);
        assert_eq!(ffa_version.number(), 0x63);
        let rxtx_map_64 = FunctionId::from_reg(0xffff_ffff_c400_0066);
        assert!(rxtx_map_64.is_64());
        assert_eq!(rxtx_map_64.number(), 0x66);
        assert_eq!(FunctionId(SMCCC_VERSION).owner(), Owner::Arch);
        assert_eq!(FunctionId(0xc600_0000).owner(), Owner::VendorHypervisor);
        assert!(FunctionId(0x8401_0063).reserved_bits_clear());
        assert!(!FunctionId(0x8402_0063).reserved_bits_clear());
        assert_eq!(
            FunctionId(0x8401_0063).without_sve_hint(),
            FunctionId(0x8400_0063)
        );
    }

    #[test]
    fn the_allow_list() {
        for fid in RELAYED {
            assert!(is_relayed(FunctionId(fid)), "{fid:#x}");
        }
        // SMCCC_ARCH_WORKAROUND_4 does not exist; an unknown arch call, SDEI, MM, DRTM,
        // the errata ABI, TRNG_RND64 as SMC32 with bit 30 clear... are not on it.
        for fid in [
            0x8000_0003,
            0x8000_00ff,
            0xc400_0020,
            0x8400_0040,
            0xc400_0110,
            0x8400_00f0,
            0x8400_0054,
        ] {
            assert!(!is_relayed(FunctionId(fid)), "{fid:#x}");
        }
        let features = FunctionId(SMCCC_ARCH_FEATURES);
        assert!(feature_query_allowed(
            features,
            SMCCC_ARCH_WORKAROUND_1 as u64
        ));
        assert!(!feature_query_allowed(features, 0x8000_00ff));
        assert!(!feature_query_allowed(
            FunctionId(TRNG_FEATURES),
            0xc400_0020
        ));
        assert!(feature_query_allowed(FunctionId(TRNG_VERSION), 0xc400_0020));
    }
}
