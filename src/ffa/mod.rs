//! The FF-A proxy (Arm DEN0077A v1.2): version negotiation with translation for v1.0, v1.1
//! and v1.2 hosts, the host's RX/TX buffers, partition discovery and direct messages.

pub mod abi;
pub mod answers;
pub mod lifecycle;
pub mod mailbox;
pub mod memory;
pub mod ownership;
pub mod partition;
pub mod proxy;
pub mod version;

/// A model of the SPMC, for the unit tests and the fuzz targets (feature `model`).
#[cfg(any(test, feature = "model"))]
pub mod spmc_model;

use crate::smccc::FunctionId;

/// FF-A function numbers occupy 0x60-0xFF of the standard secure service range, SMC32
/// and SMC64 (DEN0077A v1.2 §13.1; TF-A and pKVM classify by the same range).
pub fn is_ffa(fid: FunctionId) -> bool {
    let base = fid.0 & !(1 << 30);
    (0x8400_0060..=0x8400_00ff).contains(&base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range() {
        assert!(is_ffa(FunctionId(abi::FFA_VERSION)));
        assert!(is_ffa(FunctionId(0xc400_0066)));
        assert!(!is_ffa(FunctionId(0x8400_0003)));
        assert!(!is_ffa(FunctionId(0x8400_0100)));
        assert!(!is_ffa(FunctionId(0x8500_0063)));
    }
}
