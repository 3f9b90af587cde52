//! A one-level identity map of 1 GiB blocks, for running with the MMU on before the device
//! tree is read. With the MMU off every data access is Device memory, where unaligned
//! accesses fault (DDI 0487 B2.5.2), and compiled Rust may make them (parsing, copies).

/// MAIR index 0: Device-nGnRE. Index 1: Normal, inner/outer write-back, read/write-allocate.
pub const MAIR: u64 = 0x04 | 0xff << 8;

const BLOCK: u64 = 0b01;
const ATTR_NORMAL: u64 = 1 << 2;
const ATTR_DEVICE: u64 = 0;
const AP1: u64 = 1 << 6;
const SH_INNER: u64 = 3 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const XN: u64 = 1 << 54;

/// The translation regime a table is for: AP[1] is RES1 at EL2 and means "EL0 access" at EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Regime {
    El2,
    El1,
}

/// A level-1 table (39-bit VA, 4 KiB granule): 512 blocks of 1 GiB. Blocks for which
/// `normal(index)` holds are normal memory; the rest are device memory, never executable.
pub fn level1_blocks(regime: Regime, normal: impl Fn(u64) -> bool) -> [u64; 512] {
    let ap = match regime {
        Regime::El2 => AP1,
        Regime::El1 => 0,
    };
    let mut table = [0u64; 512];
    for (i, entry) in table.iter_mut().enumerate() {
        let i = i as u64;
        let attrs = if normal(i) {
            ATTR_NORMAL | SH_INNER
        } else {
            ATTR_DEVICE | XN | PXN
        };
        *entry = i << 30 | BLOCK | AF | ap | attrs;
    }
    table
}

/// TCR value for a 39-bit, 4 KiB-granule, write-back table walk: T0SZ = 25, IRGN0 = ORGN0
/// = WB, SH0 = inner. The physical address size field differs between TCR_EL2 and TCR_EL1.
pub const TCR_WALK_39BIT: u64 = 25 | 1 << 8 | 1 << 10 | 3 << 12;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks() {
        let t = level1_blocks(Regime::El2, |i| i == 1);
        assert_eq!(t[1], 0x4000_0000 | 0x705 | 0x40);
        assert_eq!(t[0] & (XN | PXN), XN | PXN);
        assert_eq!(t[0] & 0x1c, 0);
        assert_eq!(t[511] >> 30 & 0x1ff, 511);
        let t = level1_blocks(Regime::El1, |_| true);
        assert_eq!(t[2] & AP1, 0);
    }
}
