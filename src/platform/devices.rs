//! Which of the firmware's devices the host may program: MMIO default-deny.
//!
//! Stage-2 only stops the host's CPU. A device the host programs writes wherever the host
//! tells it to, so a host that owns a DMA-capable frame (QEMU's fw_cfg DMA interface, the
//! GIC ITS with its tables in memory, a virtio transport, a PCIe device) can write warden's
//! memory and pages it has lent. So nothing is mapped by default: a device node of the DT
//! reaches the host's stage-2 only if its kind is known and cannot write memory on its own
//! (a UART, an RTC, a GPIO block, the GIC's distributor and redistributors, a flash bank),
//! or, for a PCIe host bridge, if every stream behind it goes through an SMMU that warden
//! owns. Everything else is unmapped, and its node is removed from the host's DT so that the
//! host is not told about a device it may not use.

use alloc::string::String;
use alloc::vec::Vec;

use super::dt::FlatTree;
use super::memmap::{PAGE, Range, subtract_all};

/// Why a device is kept from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HiddenBecause {
    /// It can write memory on its own (DMA, or tables the device itself updates).
    BusMaster,
    /// A PCIe host bridge whose devices' DMA no SMMU of warden's confines.
    NoSmmu,
    /// The secure world's (`secure-status = "okay"`, `status = "disabled"`).
    Secure,
    /// warden drives it itself (the SMMU).
    Warden,
    /// A hypervisor-only part of a device (the GIC's virtualization control frames).
    HypervisorOnly,
    /// `status` says it is not in use.
    Disabled,
    /// A kind warden does not know: default deny.
    Unknown,
}

impl HiddenBecause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BusMaster => "can write memory by itself",
            Self::NoSmmu => "PCIe devices would DMA with no SMMU of warden's",
            Self::Secure => "secure world's",
            Self::Warden => "owned by warden",
            Self::HypervisorOnly => "hypervisor-only frame",
            Self::Disabled => "disabled in the DT",
            Self::Unknown => "unknown kind (default deny)",
        }
    }
}

/// What warden does with one device node (or one register frame of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    /// Mapped in the host's stage-2 as device memory; the node stays in the host's DT.
    Host,
    /// Unmapped; the node is removed from the host's DT.
    Hidden(HiddenBecause),
}

/// The decision for one DT node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub path: String,
    /// The node's index in the tree the plan was made from (`FlatTree` order), so that the
    /// host DT writer (`host_dt`) finds it without comparing paths.
    pub node: usize,
    /// Frames the host gets (page-aligned in the plan, exact here).
    pub host_frames: Vec<Range>,
    /// `Some` when the node is removed from the host's DT.
    pub hidden: Option<HiddenBecause>,
    /// Frames of a node the host keeps that it still may not map (GICH, GICV).
    pub withheld_frames: Vec<Range>,
}

/// The host's device view: what its stage-2 maps and what its DT no longer lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DevicePlan {
    /// Page-aligned, sorted, disjoint MMIO ranges the host's stage-2 maps as device memory.
    pub host_mmio: Vec<Range>,
    /// One entry per node with registers (and per removed node without).
    pub decisions: Vec<Decision>,
    /// Phandles of removed nodes: references to them (`msi-map`, `iommu-map`, `msi-parent`,
    /// `iommus`) are dropped from the nodes the host keeps.
    pub hidden_phandles: Vec<u32>,
}

impl DevicePlan {
    /// Paths of the nodes the host's DT loses.
    pub fn removed_paths(&self) -> impl Iterator<Item = &str> {
        self.decisions
            .iter()
            .filter(|d| d.hidden.is_some())
            .map(|d| d.path.as_str())
    }
}

/// What the caller knows about the devices warden drives: the register bases of the SMMUs it
/// has taken over and of its own console UART, all hidden from the host.
#[derive(Clone, Copy, Debug, Default)]
pub struct Iommus<'a> {
    pub owned: &'a [u64],
}

fn compatible_has(t: &FlatTree<'_>, node: usize, any: &[&str]) -> bool {
    t.compatible_any(node, any)
}

/// Whether one of the strings of a `compatible` value (read once per node) is one of `any`.
fn value_has(compatible: Option<&[u8]>, any: &[&str]) -> bool {
    compatible.is_some_and(|v| {
        v.split(|&b| b == 0)
            .any(|c| any.iter().any(|w| w.as_bytes() == c))
    })
}

/// A string property as the `fdt` crate's `as_str` reads it: UTF-8, trailing NULs cut.
fn str_prop<'a>(t: &FlatTree<'a>, node: usize, name: &str) -> Option<&'a str> {
    core::str::from_utf8(t.prop(node, name)?)
        .ok()
        .map(|s| s.trim_end_matches('\0'))
}

fn is_secure_only(t: &FlatTree<'_>, node: usize) -> bool {
    status_is_secure_only(t, node, str_prop(t, node, "status"))
}

/// `is_secure_only` with the node's `status` already read.
fn status_is_secure_only(t: &FlatTree<'_>, node: usize, status: Option<&str>) -> bool {
    // `secure-status` is read only for a node that is not in use in the normal world.
    matches!(status, Some("disabled" | "fail"))
        && matches!(str_prop(t, node, "secure-status"), Some("okay" | "ok"))
}

fn regs(t: &FlatTree<'_>, node: usize) -> Vec<Range> {
    t.regs_small(node)
        .filter_map(|(base, size)| Range::from_base_size(base, size?))
        .collect()
}

/// A property value as big-endian 32-bit cells (Devicetree Specification v0.4 §2.2.4).
pub(crate) fn be_cells(value: &[u8]) -> impl Iterator<Item = u32> + '_ {
    value
        .chunks_exact(4)
        .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes))
}

fn u32_prop(t: &FlatTree<'_>, node: usize, name: &str) -> Option<u32> {
    be_cells(t.prop(node, name)?).next()
}

/// A number of `n` cells (1 or 2 used in practice; more keep the low 64 bits).
fn read_number(cells: &[u32]) -> u64 {
    cells.iter().fold(0u64, |acc, &c| acc << 32 | c as u64)
}

/// The CPU-side windows of a PCI host bridge (`ranges`: PCI address of the node's
/// `#address-cells`, parent address of the parent's, size of the node's `#size-cells`;
/// IEEE 1275 PCI binding).
fn pci_windows(t: &FlatTree<'_>, node: usize, parent_addr_cells: usize) -> Vec<Range> {
    let Some(ranges) = t.prop(node, "ranges") else {
        return Vec::new();
    };
    let child = t.address_cells(node, 2) as usize;
    let size = t.size_cells(node, 1) as usize;
    let entry = child + parent_addr_cells + size;
    let cells: Vec<u32> = be_cells(ranges).collect();
    if entry == 0 {
        return Vec::new();
    }
    cells
        .chunks_exact(entry)
        .filter_map(|e| {
            let parent = read_number(e.get(child..child + parent_addr_cells)?);
            let len = read_number(e.get(child + parent_addr_cells..)?);
            Range::from_base_size(parent, len)
        })
        .collect()
}

/// The phandles an `iommu-map`/`msi-map` names: (rid-base, phandle, base, length) entries
/// (Documentation/devicetree/bindings/pci/pci-iommu.txt and pci-msi.txt in Linux).
fn map_phandles(t: &FlatTree<'_>, node: usize, prop: &str) -> Vec<u32> {
    t.prop(node, prop)
        .map(|v| {
            let cells: Vec<u32> = be_cells(v).collect();
            cells
                .chunks_exact(4)
                .filter_map(|e| e.get(1).copied())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every stream of a PCIe host bridge goes through an SMMU warden owns.
fn pci_streams_confined(t: &FlatTree<'_>, node: usize, iommus: Iommus) -> bool {
    let targets = map_phandles(t, node, "iommu-map");
    !targets.is_empty()
        && targets.iter().all(|&ph| {
            t.find_phandle(ph)
                .filter(|&n| compatible_has(t, n, &["arm,smmu-v3"]))
                .and_then(|n| regs(t, n).first().copied())
                .is_some_and(|r| iommus.owned.contains(&r.start))
        })
}

/// How a node with registers (`frames`) is treated, by its kind. The second value lists
/// the indexes of `reg` entries the host gets when it keeps the node (`None`: all of them).
fn classify(
    t: &FlatTree<'_>,
    node: usize,
    frames: &[Range],
    iommus: Iommus,
) -> (Access, Option<Vec<usize>>) {
    use HiddenBecause::*;
    // `status` once for both questions.
    let status = str_prop(t, node, "status");
    if status_is_secure_only(t, node, status) {
        return (Access::Hidden(Secure), None);
    }
    if matches!(status, Some(s) if s != "okay" && s != "ok") {
        return (Access::Hidden(Disabled), None);
    }
    // A device warden drives (an SMMU it took over, its own console UART).
    if !iommus.owned.is_empty()
        && frames
            .first()
            .is_some_and(|r| iommus.owned.contains(&r.start))
    {
        return (Access::Hidden(Warden), None);
    }
    // The node's `compatible`, looked up once for all the kinds below.
    let compatible = t.prop(node, "compatible");
    // Devices that cannot master the bus: registers only.
    if value_has(
        compatible,
        &[
            "arm,pl011",
            "arm,pl031",
            "arm,pl061",
            "cfi-flash",
            "arm,gic-v2m-frame",
        ],
    ) {
        return (Access::Host, None);
    }
    if value_has(compatible, &["arm,gic-v3"]) {
        // GICD, then `#redistributor-regions` GICR regions, then optionally GICC, GICH,
        // GICV (Linux's arm,gic-v3 binding). The host is an EL1 kernel: GICD, GICR and
        // GICC are its; GICH and GICV belong to a hypervisor (warden, which uses neither).
        let redists = u32_prop(t, node, "#redistributor-regions").unwrap_or(1) as usize;
        return (Access::Host, Some((0..redists + 2).collect()));
    }
    if value_has(
        compatible,
        &[
            "arm,gic-400",
            "arm,cortex-a15-gic",
            "arm,cortex-a9-gic",
            "arm,cortex-a7-gic",
        ],
    ) {
        // GICD, GICC, then GICH, GICV (arm,gic binding).
        return (Access::Host, Some(alloc::vec![0, 1]));
    }
    if value_has(compatible, &["arm,gic-v3-its"]) {
        // GITS_CBASER/GITS_BASERn name memory the ITS writes (IHI 0069 §12.19).
        return (Access::Hidden(BusMaster), None);
    }
    if value_has(compatible, &["arm,smmu-v3"]) {
        return (Access::Hidden(Warden), None);
    }
    if value_has(compatible, &["qemu,fw-cfg-mmio", "virtio,mmio"]) {
        return (Access::Hidden(BusMaster), None);
    }
    if value_has(
        compatible,
        &["pci-host-ecam-generic", "pci-host-cam-generic"],
    ) {
        return if pci_streams_confined(t, node, iommus) {
            (Access::Host, None)
        } else {
            (Access::Hidden(NoSmmu), None)
        };
    }
    (Access::Hidden(Unknown), None)
}

/// Subtrees that describe memory, CPUs or firmware, not devices.
fn is_not_a_device(path: &str) -> bool {
    path == "/chosen"
        || path == "/cpus"
        || path == "/aliases"
        || path == "/reserved-memory"
        || path == "/firmware"
        || path == "/__symbols__"
        || path.starts_with("/memory")
}

/// Decides, for every device node of `blob` (FDT_NOP tokens are skipped, so the
/// firmware's own blob reads too), whether the host gets it, and returns the host's MMIO
/// ranges clipped to `[0, ipa_limit)`. Unknown kinds are hidden; so is anything whose
/// registers share a page with a hidden frame (the hidden frame wins).
pub fn plan(blob: &[u8], iommus: Iommus, ipa_limit: u64) -> Option<DevicePlan> {
    Some(plan_tree(&FlatTree::new(blob)?, iommus, ipa_limit))
}

/// `plan` for a tree that is already indexed.
pub(crate) fn plan_tree(t: &FlatTree<'_>, iommus: Iommus, ipa_limit: u64) -> DevicePlan {
    let mut decisions = Vec::new();
    let mut hidden_phandles = Vec::new();
    let mut granted: Vec<Range> = Vec::new();
    let mut denied: Vec<Range> = Vec::new();
    // Depth first in DT order, which is the order of the tree's node indices: a node whose
    // subtree is done with (not a device, or hidden whole) is skipped by jumping past its
    // subtree. `paths` holds the path of each ancestor of the current node, by depth.
    let mut paths: Vec<String> = Vec::new();
    let mut node = 1;
    while node < t.len() {
        let Some(n) = t.node(node) else {
            break;
        };
        let depth = n.depth;
        paths.truncate(depth.saturating_sub(1));
        let parent_path = paths.last().map_or("", String::as_str);
        let name = String::from_utf8_lossy(n.name);
        let mut path = String::with_capacity(parent_path.len() + 1 + name.len());
        path.push_str(parent_path);
        path.push('/');
        path.push_str(&name);
        let next = node + 1;
        let after_subtree = t.subtree_end(node);
        // The subtrees that are not devices are all the root's children.
        if depth == 1 && is_not_a_device(&path) {
            node = after_subtree;
            continue;
        }
        let frames = regs(t, node);
        let secure_no_regs = frames.is_empty() && is_secure_only(t, node);
        if frames.is_empty() && !secure_no_regs {
            // No registers of its own (timers, PMU, PSCI, buses, clocks): its children may.
            paths.push(path);
            node = next;
            continue;
        }
        let (access, indexes) = classify(t, node, &frames, iommus);
        match access {
            Access::Host => {
                let mut host_frames = Vec::new();
                let mut withheld_frames = Vec::new();
                for (i, r) in frames.iter().enumerate() {
                    if indexes.as_ref().is_none_or(|ix| ix.contains(&i)) {
                        host_frames.push(*r);
                    } else {
                        withheld_frames.push(*r);
                    }
                }
                if compatible_has(t, node, &["pci-host-ecam-generic", "pci-host-cam-generic"]) {
                    let parent_cells = t.parent(node).map_or(2, |p| t.address_cells(p, 2)) as usize;
                    host_frames.extend(pci_windows(t, node, parent_cells));
                }
                granted.extend(host_frames.iter().copied());
                denied.extend(withheld_frames.iter().copied());
                decisions.push(Decision {
                    path: path.clone(),
                    node,
                    host_frames,
                    hidden: None,
                    withheld_frames,
                });
                // Children of a kept node are devices of their own (the ITS under the GIC).
                paths.push(path);
                node = next;
            }
            Access::Hidden(why) => {
                denied.extend(frames.iter().copied());
                // A hidden node's whole subtree goes with it.
                hidden_phandles.extend((node..after_subtree).filter_map(|k| {
                    u32_prop(t, k, "phandle").or_else(|| u32_prop(t, k, "linux,phandle"))
                }));
                decisions.push(Decision {
                    path,
                    node,
                    host_frames: Vec::new(),
                    hidden: Some(why),
                    withheld_frames: frames,
                });
                node = after_subtree;
            }
        }
    }
    // Nodes without registers that only refer to hidden ones (gpio-poweroff naming the
    // secure GPIO) are secure-only too and were hidden above by their status.
    let host_mmio = page_ranges(&granted, &denied, ipa_limit);
    DevicePlan {
        host_mmio,
        decisions,
        hidden_phandles,
    }
}

/// `granted` widened to pages, minus `denied` widened to pages, clipped to the IPA space;
/// sorted and merged.
fn page_ranges(granted: &[Range], denied: &[Range], ipa_limit: u64) -> Vec<Range> {
    let mut out: Vec<Range> = granted
        .iter()
        .filter(|r| r.start < ipa_limit)
        .map(|r| {
            let r = r.align_out(PAGE);
            Range::new(r.start, r.end.min(ipa_limit))
        })
        .collect();
    out.sort();
    let mut merged: Vec<Range> = Vec::new();
    for r in out {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    let holes: Vec<Range> = denied.iter().map(|d| d.align_out(PAGE)).collect();
    subtract_all(merged, &holes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIRT_DTB: &[u8] = include_bytes!("../../tests/fixtures/virt.dtb");
    const LIMIT: u64 = 1 << 39;

    fn decision<'a>(p: &'a DevicePlan, path: &str) -> &'a Decision {
        p.decisions.iter().find(|d| d.path == path).unwrap()
    }

    #[test]
    fn qemu_virt_default_deny() {
        let p = plan(VIRT_DTB, Iommus::default(), LIMIT).unwrap();
        assert_eq!(
            p.host_mmio,
            [
                // Flash bank 1 and the GIC distributor (adjacent), the redistributors and
                // the UART (adjacent), the RTC, the normal-world GPIO.
                Range::new(0x0400_0000, 0x0801_0000),
                Range::new(0x080a_0000, 0x0900_1000),
                Range::new(0x0901_0000, 0x0901_1000),
                Range::new(0x0903_0000, 0x0903_1000),
            ]
        );
        use HiddenBecause::*;
        for (path, why) in [
            ("/fw-cfg@9020000", BusMaster),
            ("/virtio_mmio@a000000", BusMaster),
            ("/virtio_mmio@a003e00", BusMaster),
            ("/intc@8000000/its@8080000", BusMaster),
            ("/pcie@10000000", NoSmmu),
            ("/pl011@9040000", Secure),
            ("/secram@e000000", Secure),
            ("/secflash@0", Secure),
            ("/pl061@90b0000", Secure),
            ("/gpio-poweroff", Secure),
            ("/gpio-restart", Secure),
        ] {
            assert_eq!(decision(&p, path).hidden, Some(why), "{path}");
        }
        for path in ["/pl011@9000000", "/pl031@9010000", "/intc@8000000"] {
            assert_eq!(decision(&p, path).hidden, None, "{path}");
        }
        // The ITS's phandle goes, so that the PCIe node's msi-map can be dropped.
        assert!(p.hidden_phandles.contains(&0x8004));
        // Nothing DMA-capable or secure is reachable.
        for addr in [
            0x0902_0000u64,
            0x0808_0000,
            0x0a00_0000,
            0x0904_0000,
            0x0e00_0000,
            0x0,
            0x40_1000_0000,
        ] {
            assert!(!p.host_mmio.iter().any(|r| r.contains(addr)), "{addr:#x}");
        }
    }

    #[test]
    fn pcie_is_the_hosts_only_behind_an_owned_smmu() {
        let dtb = include_bytes!("../../tests/fixtures/virt-smmuv3.dtb");
        let p = plan(dtb, Iommus::default(), LIMIT).unwrap();
        assert_eq!(
            decision(&p, "/pcie@10000000").hidden,
            Some(HiddenBecause::NoSmmu)
        );
        assert_eq!(
            decision(&p, "/smmuv3@9050000").hidden,
            Some(HiddenBecause::Warden)
        );
        let p = plan(
            dtb,
            Iommus {
                owned: &[0x0905_0000],
            },
            LIMIT,
        )
        .unwrap();
        let pcie = decision(&p, "/pcie@10000000");
        assert_eq!(pcie.hidden, None);
        // ECAM, then the PIO, 32-bit and 64-bit windows from `ranges`.
        assert!(
            pcie.host_frames
                .contains(&Range::new(0x40_1000_0000, 0x40_2000_0000))
        );
        assert!(
            pcie.host_frames
                .contains(&Range::new(0x1000_0000, 0x3eff_0000))
        );
        assert!(
            pcie.host_frames
                .contains(&Range::new(0x3eff_0000, 0x3f00_0000))
        );
        assert!(p.host_mmio.iter().any(|r| r.contains(0x1000_0000)));
        // The 64-bit window (512 GiB up) lies beyond a 39-bit IPA space.
        assert!(p.host_mmio.iter().all(|r| r.end <= LIMIT));
        assert!(!p.host_mmio.iter().any(|r| r.contains(0x0905_0000)));
        // Owning some other SMMU does not help.
        let p = plan(
            dtb,
            Iommus {
                owned: &[0x1234_0000],
            },
            LIMIT,
        )
        .unwrap();
        assert_eq!(
            decision(&p, "/pcie@10000000").hidden,
            Some(HiddenBecause::NoSmmu)
        );
    }

    #[test]
    fn gicv2_keeps_distributor_and_cpu_interface_only() {
        let dtb = include_bytes!("../../tests/fixtures/virt-gicv2.dtb");
        let p = plan(dtb, Iommus::default(), LIMIT).unwrap();
        let gic = decision(&p, "/intc@8000000");
        assert_eq!(gic.hidden, None);
        assert_eq!(
            gic.host_frames,
            [
                Range::new(0x0800_0000, 0x0801_0000),
                Range::new(0x0801_0000, 0x0802_0000)
            ]
        );
        // GICH and GICV are withheld.
        assert_eq!(gic.withheld_frames.len(), 2);
        for r in &gic.withheld_frames {
            assert!(!p.host_mmio.iter().any(|m| m.overlaps(r)));
        }
    }

    #[test]
    fn a_shared_page_goes_to_the_hidden_frame() {
        let granted = [Range::new(0x1000, 0x1100)];
        let denied = [Range::new(0x1200, 0x1300)];
        assert_eq!(page_ranges(&granted, &denied, LIMIT), []);
        let granted = [Range::new(0x1000, 0x4000), Range::new(0x4000, 0x5000)];
        let denied = [Range::new(0x2000, 0x2010)];
        assert_eq!(
            page_ranges(&granted, &denied, LIMIT),
            [Range::new(0x1000, 0x2000), Range::new(0x3000, 0x5000)]
        );
    }

    /// The single-pass reader skips FDT_NOP tokens, so the firmware's own blob (TF-A edits
    /// it in place) gets the same decisions as the normalized copy.
    #[test]
    fn the_firmware_blob_plans_like_its_normalized_copy() {
        let raw = include_bytes!("../../tests/fixtures/virt-tfa-raw.dtb");
        let normalized = crate::platform::dt::normalize(raw).unwrap();
        let p = plan(&normalized, Iommus::default(), LIMIT).unwrap();
        assert_eq!(plan(raw, Iommus::default(), LIMIT).unwrap(), p);
        assert!(p.decisions.len() > 10, "{p:?}");
        // Truncated trees give no plan, never a panic.
        for cut in [0, 8, 40, 100, raw.len() / 2, raw.len() - 1] {
            let _ = plan(&raw[..cut], Iommus::default(), LIMIT);
        }
    }

    #[test]
    fn garbage_gives_no_plan() {
        assert_eq!(plan(&[0u8; 16], Iommus::default(), LIMIT), None);
    }
}
