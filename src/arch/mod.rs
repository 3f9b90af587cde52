//! Architecture: the trap frame, exception syndromes, translation tables and EL2 setup.

/// The bits of an address-size field (ID_AA64MMFR0_EL1.PARange, and the same encoding in
/// SMMU_IDR5.OAS): DDI 0487 D23.2.74, IHI 0070 §6.3.6.
pub fn address_size_bits(encoding: u64) -> u32 {
    match encoding {
        0 => 32,
        1 => 36,
        2 => 40,
        3 => 42,
        4 => 44,
        5 => 48,
        _ => 52,
    }
}

pub mod blocks;
pub mod el2_config;
pub mod esr;
pub mod frame;

#[cfg(target_os = "none")]
pub mod el2;
#[cfg(target_os = "none")]
pub mod mmu;
pub mod stage2;
