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
}
