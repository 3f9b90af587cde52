//! DMA isolation with an SMMUv3 (Arm IHI 0070, "SMMU architecture version 3").
//!
//! warden owns the SMMU: the host never maps its registers (they stay out of the host's
//! stage-2) and does not find it in its device tree. Every stream the DT routes to the SMMU
//! translates through one context descriptor whose stage-1 table identity-maps exactly the
//! memory the host owns: host RAM minus warden's memory minus the pages lent to the secure
//! world. Device MMIO is not in that table either, so peer-to-peer DMA and MSI writes are
//! refused. A lend removes its pages from the table, and their cached translations are
//! invalidated (CMD_TLBI_NH_ASID, then CMD_SYNC completed) before the lend goes to the
//! SPMC; a reclaim maps them back. A DMA aimed anywhere else is terminated with an abort
//! (CD.A) and recorded in the event queue (CD.R), which warden drains, logs and counts.
//!
//! Why stage 1 and not stage 2: QEMU 7.2's model implements stage 1 only (SMMU_IDR0.S2P = 0;
//! an STE asking for stage 2 is C_BAD_STE). The stage-1 table is built in the VMSAv8-64
//! EL1&0 format with aarch64-paging. With the host seeing no IOMMU, its devices DMA to
//! physical addresses (IPA = PA under warden's identity stage-2), which is exactly what
//! this identity table constrains.
//!
//! - [`regs`]: the register map, ID register decoding and queue index arithmetic;
//! - [`desc`]: stream table entries, context descriptors, commands and event records;
//! - [`table`]: the DMA table that follows the host's ownership of its RAM;
//!   it consults the lent-page bitmap (`memmap::PageBitmap`), so that a lend is linear;
//! - [`dt`]: finding the SMMUs and the stream IDs routed to them in the device tree;
//! - `hw` (bare-metal only): register access, queues and the take-over at boot.

pub mod desc;
pub mod dt;
pub mod regs;
pub mod table;

#[cfg(all(target_os = "none", feature = "runtime"))]
pub mod hw;

/// What can go wrong while driving the SMMU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmmuError {
    /// The SMMU lacks something warden needs (named).
    Unsupported(&'static str),
    /// A register acknowledgement or a queue did not move in time.
    Timeout(&'static str),
    /// The command queue stopped on an error (SMMU_CMDQ_CONS.ERR, IHI 0070 §7.1).
    Command(u32),
    /// Building or changing the DMA table failed.
    Table,
    /// No memory for the SMMU's structures.
    NoMemory,
    /// A page of a lend is lent already.
    AlreadyLent,
}

impl core::fmt::Display for SmmuError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SmmuError::Unsupported(what) => write!(f, "unsupported: {what}"),
            SmmuError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            SmmuError::Command(err) => write!(f, "command queue error {err:#x}"),
            SmmuError::Table => write!(f, "DMA table update failed"),
            SmmuError::NoMemory => write!(f, "no memory for the SMMU's structures"),
            SmmuError::AlreadyLent => write!(f, "a page is lent already"),
        }
    }
}
