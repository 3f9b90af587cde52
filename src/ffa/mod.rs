//! The FF-A interface (Arm DEN0077A). At this stage warden forwards the host's FF-A calls
//! to EL3 unchanged; the proxy (version negotiation, buffers, memory sharing) replaces
//! this forwarding function by function.

use crate::smccc::FunctionId;

/// FF-A function numbers occupy 0x60-0xFF of the standard secure service range, SMC32
/// and SMC64 (DEN0077A v1.2 §13.1; TF-A and pKVM classify by the same range).
pub fn is_ffa(fid: FunctionId) -> bool {
    let base = fid.0 & !(1 << 30);
    (0x8400_0060..=0x8400_00ff).contains(&base)
}

pub const FFA_VERSION: u32 = 0x8400_0063;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range() {
        assert!(is_ffa(FunctionId(FFA_VERSION)));
        assert!(is_ffa(FunctionId(0xc400_0066)));
        assert!(!is_ffa(FunctionId(0x8400_0003)));
        assert!(!is_ffa(FunctionId(0x8400_0100)));
        assert!(!is_ffa(FunctionId(0x8500_0063)));
    }
}
