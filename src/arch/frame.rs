//! The register frame saved on every trap into EL2 (see `boot/vectors.S`).

use core::mem::{offset_of, size_of};

/// The interrupted context: x0-x30 and the exception return state. The vector code saves
/// and restores all of it, so a handler may change any register the host will see.
#[repr(C)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

/// Offsets handed to the assembly so that struct layout and asm cannot drift apart.
pub const FRAME_SIZE: usize = size_of::<TrapFrame>();
pub const FRAME_X30: usize = offset_of!(TrapFrame, x) + 30 * 8;
pub const FRAME_ELR: usize = offset_of!(TrapFrame, elr);

const _: () = assert!(
    FRAME_SIZE.is_multiple_of(16),
    "the EL2 stack must stay 16-byte aligned"
);
const _: () = assert!(FRAME_ELR + 8 == offset_of!(TrapFrame, spsr), "ldp/stp pair");

/// SPSR_EL2 value to enter the host: AArch64 EL1 using SP_EL1, D/A/I/F masked, as the
/// Linux arm64 boot protocol requires.
pub const SPSR_EL1H_MASKED: u64 = 0b1111 << 6 | 0b0101;

impl TrapFrame {
    /// The SMCCC argument registers x0-x17 (SMCCC v1.2, DEN0028 §2.6).
    pub fn smccc_regs(&self) -> [u64; 18] {
        let mut regs = [0; 18];
        regs.copy_from_slice(&self.x[..18]);
        regs
    }

    /// Writes SMCCC results back into x0..x(count-1) (4 for most calls, 8 for FF-A v1.0
    /// and v1.1, 18 for SMCCC v1.2 calls such as FF-A v1.2). Other registers keep the
    /// caller's values, which SMCCC allows for every call.
    pub fn set_smccc_results(&mut self, results: &[u64; 18], count: usize) {
        for (reg, value) in self.x.iter_mut().zip(results).take(count) {
            *reg = *value;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_vectors() {
        assert_eq!(FRAME_SIZE, 272);
        assert_eq!(FRAME_X30, 240);
        assert_eq!(FRAME_ELR, 248);
    }

    #[test]
    fn narrow_results_keep_x4_to_x17() {
        let mut f = TrapFrame::default();
        f.x[4] = 44;
        f.x[17] = 1717;
        let res = [9u64; 18];
        f.set_smccc_results(&res, 4);
        assert_eq!(&f.x[..4], &[9, 9, 9, 9]);
        assert_eq!(f.x[4], 44);
        assert_eq!(f.x[17], 1717);
        f.set_smccc_results(&res, 18);
        assert_eq!(f.x[17], 9);
        f.set_smccc_results(&res, 99);
        assert_eq!(f.x[30], 0);
    }
}
