//! warden's own HVC interface for the host, in the vendor-specific hypervisor service
//! range (SMCCC owner 6). Anything else gets NOT_SUPPORTED.

use crate::smccc::{FunctionId, NOT_SUPPORTED};

/// Returns warden's interface version in w0 (major in [31:16], minor in [15:0]).
pub const WARDEN_VERSION: u32 = 0x8600_0000;
pub const INTERFACE_VERSION: u64 = 0x0001_0000;

/// Answers a host HVC: x0 carries the result, other registers are returned unchanged.
pub fn handle(regs: &[u64; 18]) -> [u64; 18] {
    let mut out = *regs;
    out[0] = match FunctionId::from_reg(regs[0]).0 {
        WARDEN_VERSION => INTERFACE_VERSION,
        _ => NOT_SUPPORTED,
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_and_unknown() {
        let mut regs = [0u64; 18];
        regs[0] = WARDEN_VERSION as u64;
        assert_eq!(handle(&regs)[0], INTERFACE_VERSION);
        regs[0] = 0x8600_0001;
        assert_eq!(handle(&regs)[0], NOT_SUPPORTED);
        regs[0] = 0;
        assert_eq!(handle(&regs)[0], NOT_SUPPORTED);
    }
}
