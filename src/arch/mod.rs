//! Architecture: the trap frame, exception syndromes, translation tables and EL2 setup.

pub mod blocks;
pub mod esr;
pub mod frame;

#[cfg(target_os = "none")]
pub mod el2;
#[cfg(target_os = "none")]
pub mod mmu;
#[cfg(target_os = "none")]
pub mod stage2;
