//! Finding SMMUv3s in the device tree: `compatible = "arm,smmu-v3"` (Linux's binding,
//! Documentation/devicetree/bindings/iommu/arm,smmu-v3.yaml), their register frame, and
//! how many stream IDs the tree routes to each: through `iommu-map` (PCI host bridges,
//! Documentation/devicetree/bindings/pci/pci-iommu.txt) and `iommus` (other devices,
//! Documentation/devicetree/bindings/iommu/iommu.txt).
// Host input must never be able to panic warden: no unwrap/expect/panic and no
// indexing that can go out of bounds in code that sees host-derived values (tests aside).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use alloc::vec::Vec;

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

fn be32(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(u32::from_be_bytes)
        .collect()
}

/// Every SMMUv3 in `blob` (a tree produced by `dt::normalize`).
pub fn find(blob: &[u8]) -> Vec<SmmuNode> {
    let Ok(fdt) = fdt::Fdt::new(blob) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for node in fdt.all_nodes() {
        if !node
            .compatible()
            .is_some_and(|c| c.all().any(|s| s == COMPATIBLE))
        {
            continue;
        }
        let Some(frame) = node
            .reg()
            .and_then(|mut r| r.next())
            .and_then(|r| Range::from_base_size(r.starting_address as u64, r.size? as u64))
        else {
            continue;
        };
        let phandle = node
            .property("phandle")
            .and_then(|p| p.as_usize())
            .map(|p| p as u32);
        // #iommu-cells = 1: the specifier is the stream ID (the binding's only form).
        let cells = node
            .property("#iommu-cells")
            .and_then(|p| p.as_usize())
            .unwrap_or(1);
        let mut stream_end = 0u64;
        if let (Some(phandle), 1) = (phandle, cells) {
            for user in fdt.all_nodes() {
                // iommu-map = <rid-base iommu-phandle iommu-base length>*
                if let Some(p) = user.property("iommu-map") {
                    for e in be32(p.value).chunks_exact(4) {
                        if let [_, ph, base, len] = *e
                            && ph == phandle
                        {
                            stream_end = stream_end.max(base as u64 + len as u64);
                        }
                    }
                }
                // iommus = <iommu-phandle stream-id>*
                if let Some(p) = user.property("iommus") {
                    for e in be32(p.value).chunks_exact(2) {
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
            dma_coherent: node.property("dma-coherent").is_some(),
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
