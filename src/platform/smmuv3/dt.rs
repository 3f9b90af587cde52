//! Finding SMMUv3s in the device tree: `compatible = "arm,smmu-v3"` (Linux's binding,
//! Documentation/devicetree/bindings/iommu/arm,smmu-v3.yaml), their register frame, and
//! how many stream IDs the tree routes to each: through `iommu-map` (PCI host bridges,
//! Documentation/devicetree/bindings/pci/pci-iommu.txt) and `iommus` (other devices,
//! Documentation/devicetree/bindings/iommu/iommu.txt).

use alloc::vec::Vec;

use crate::platform::devices::be_cells;
use crate::platform::dt::FlatTree;
use crate::platform::memmap::Range;

pub const COMPATIBLE: &str = "arm,smmu-v3";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmmuNode {
    /// The register frame (`reg`).
    pub frame: Range,
    /// One past the largest stream ID the tree routes to this SMMU (0 if none).
    pub stream_end: u64,
    /// The node says `dma-coherent`.
    pub dma_coherent: bool,
}

impl SmmuNode {
    /// The stream ID bits the stream table must cover.
    pub fn stream_bits(&self) -> u32 {
        match self.stream_end {
            0 | 1 => 0,
            n => 64 - (n - 1).leading_zeros(),
        }
    }
}

/// A property value read as the `fdt` crate's `as_usize` does: one or two big-endian cells.
fn as_number(v: &[u8]) -> Option<u64> {
    match *v {
        [a, b, c, d] => Some(u32::from_be_bytes([a, b, c, d]).into()),
        [a, b, c, d, e, f, g, h] => Some(u64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => None,
    }
}

/// Every SMMUv3 in `blob` (FDT_NOP tokens are skipped), read with the single-pass
/// `FlatTree`. The stream IDs routed to each SMMU come from one more pass over the tree's
/// `iommu-map` and `iommus` properties per SMMU.
pub fn find(blob: &[u8]) -> Vec<SmmuNode> {
    FlatTree::new(blob).map_or_else(Vec::new, |t| find_in(&t))
}

/// `find` for a tree that is already indexed.
pub(crate) fn find_in(t: &FlatTree<'_>) -> Vec<SmmuNode> {
    let mut out = Vec::new();
    for node in 0..t.len() {
        if !t.compatible_any(node, &[COMPATIBLE]) {
            continue;
        }
        let Some(frame) = t
            .regs_small(node)
            .next()
            .and_then(|(base, size)| Range::from_base_size(base, size?))
        else {
            continue;
        };
        // `phandle` as the `fdt` crate reads it (truncated to 32 bits like the cells that
        // refer to it).
        let phandle = t
            .prop(node, "phandle")
            .and_then(as_number)
            .map(|p| p as u32);
        // #iommu-cells = 1: the specifier is the stream ID (the binding's only form).
        let cells = t
            .prop(node, "#iommu-cells")
            .and_then(as_number)
            .unwrap_or(1);
        let mut stream_end = 0u64;
        if let (Some(phandle), 1) = (phandle, cells) {
            for user in 0..t.len() {
                // iommu-map = <rid-base iommu-phandle iommu-base length>*
                if let Some(v) = t.prop(user, "iommu-map") {
                    let cells: Vec<u32> = be_cells(v).collect();
                    for e in cells.chunks_exact(4) {
                        if let [_, ph, base, len] = *e
                            && ph == phandle
                        {
                            stream_end = stream_end.max(base as u64 + len as u64);
                        }
                    }
                }
                // iommus = <iommu-phandle stream-id>*
                if let Some(v) = t.prop(user, "iommus") {
                    let cells: Vec<u32> = be_cells(v).collect();
                    for e in cells.chunks_exact(2) {
                        if let [ph, sid] = *e
                            && ph == phandle
                        {
                            stream_end = stream_end.max(sid as u64 + 1);
                        }
                    }
                }
            }
        }
        out.push(SmmuNode {
            frame,
            stream_end,
            dma_coherent: t.prop(node, "dma-coherent").is_some(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2 virt's own tree with `iommu=smmuv3` (`dumpdtb`).
    const VIRT_SMMU_DTB: &[u8] = include_bytes!("../../../tests/fixtures/virt-smmuv3.dtb");

    #[test]
    fn qemu_virt_smmu() {
        let tree = crate::platform::dt::normalize(VIRT_SMMU_DTB).unwrap();
        let smmus = find(&tree);
        assert_eq!(
            smmus,
            [SmmuNode {
                frame: Range::new(0x0905_0000, 0x0907_0000),
                stream_end: 0x1_0000,
                dma_coherent: true,
            }]
        );
        assert_eq!(smmus[0].stream_bits(), 16);
    }

    #[test]
    fn none_without_iommu() {
        let tree =
            crate::platform::dt::normalize(include_bytes!("../../../tests/fixtures/virt.dtb"))
                .unwrap();
        assert_eq!(find(&tree), []);
        assert_eq!(find(&[0u8; 16]), []);
    }

    #[test]
    fn stream_bits() {
        let n = |stream_end| SmmuNode {
            frame: Range::new(0, 1),
            stream_end,
            dma_coherent: false,
        };
        assert_eq!(n(0).stream_bits(), 0);
        assert_eq!(n(1).stream_bits(), 0);
        assert_eq!(n(2).stream_bits(), 1);
        assert_eq!(n(0x100).stream_bits(), 8);
        assert_eq!(n(0x101).stream_bits(), 9);
    }
}
