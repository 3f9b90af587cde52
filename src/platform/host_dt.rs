//! The device tree warden hands to the host: the firmware's tree plus a `/reserved-memory`
//! node with `no-map` covering warden's memory, so that the host never allocates it (its
//! accesses would fault at stage-2) and never maps it (so it cannot even speculate into it).
//! Devicetree Specification v0.4 §3.5. It also loses every device node the host may not
//! use (`platform::devices`: MMIO default-deny), the references to them, and the secure
//! world's `/secure-chosen` (its seeds are not the host's to read).

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use dtoolkit::fdt::Fdt;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

use super::devices::DevicePlan;
use super::dt::FlatTree;
use super::memmap::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostDtError {
    BadBlob,
    /// `/reserved-memory` uses cell sizes warden cannot express its range in.
    UnsupportedCells,
}

fn cells(value: u64, n: usize) -> Result<Vec<u32>, HostDtError> {
    match n {
        1 => u32::try_from(value)
            .map(|v| vec![v])
            .map_err(|_| HostDtError::UnsupportedCells),
        2 => Ok(vec![(value >> 32) as u32, value as u32]),
        _ => Err(HostDtError::UnsupportedCells),
    }
}

/// What the host is told beyond the firmware's tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostBoot<'a> {
    /// The kernel module's command line (Xen's convention), as `/chosen/bootargs`.
    pub bootargs: Option<&'a str>,
    /// The initramfs module, as `/chosen/linux,initrd-start` and `linux,initrd-end`
    /// (Linux's DT binding, Documentation/devicetree/bindings/chosen.txt).
    pub initrd: Option<Range>,
}

/// Properties that name other nodes by phandle in ways Linux follows to program them: an
/// MSI controller or an IOMMU that is hidden must not be referred to.
const REFERENCE_PROPERTIES: [&str; 4] = ["msi-map", "iommu-map", "msi-parent", "iommus"];

/// Drops, in `node` and below, every reference property that names a hidden phandle (and
/// the `-mask` that goes with a dropped map).
fn drop_references(node: &mut DeviceTreeNode, hidden: &[u32]) {
    use dtoolkit::Property;
    let mut gone = Vec::new();
    for prop in node.properties_mut() {
        let prop = &*prop;
        let name = prop.name();
        if !REFERENCE_PROPERTIES.contains(&name) {
            continue;
        }
        let cells: Vec<u32> = super::devices::be_cells(prop.value()).collect();
        // Maps are (rid-base, phandle, base, length) entries; the others start with a
        // phandle and may list several with arguments: any cell equal to a hidden phandle
        // drops them (dropping too much only costs the host an MSI or IOMMU it could not
        // use anyway).
        let names_hidden = if name.ends_with("-map") {
            cells
                .chunks_exact(4)
                .any(|e| e.get(1).is_some_and(|p| hidden.contains(p)))
        } else {
            cells.iter().any(|c| hidden.contains(c))
        };
        if names_hidden {
            gone.push(name.to_string());
        }
    }
    for name in gone {
        node.remove_property(&format!("{name}-mask"));
        node.remove_property(&name);
    }
    for child in node.children_mut() {
        drop_references(child, hidden);
    }
}

/// A node the host keeps but with frames it may not map (the GIC's hypervisor frames, GICH
/// and GICV) is listed with the host's frames only, and without `interrupts`: in the arm,gic
/// (GICv2, GIC-400) and arm,gic-v3 bindings, GICH and GICV are the last `reg` entries and
/// `interrupts` is the VGIC maintenance interrupt, which exists for GICH's user. The host is
/// an EL1 kernel, so nothing there may look for a hypervisor interface, and warden's
/// stage-2 leaves those frames unmapped either way (`devices::plan`). A `reg` whose entries
/// do not add up to the plan's frames is left as it is.
fn list_host_frames_only(tree: &mut DeviceTree, devices: &DevicePlan) {
    use dtoolkit::Property;
    for d in devices.decisions.iter() {
        if d.hidden.is_some() || d.withheld_frames.is_empty() {
            continue;
        }
        let Some(node) = tree.find_node_mut(&d.path) else {
            continue;
        };
        let Some(reg) = node.property_mut("reg") else {
            continue;
        };
        let entries = d.host_frames.len() + d.withheld_frames.len();
        let len = (&*reg).value().len();
        if len == 0 || !len.is_multiple_of(entries) {
            continue;
        }
        let Some(kept) = (&*reg)
            .value()
            .get(..len / entries * d.host_frames.len())
            .map(<[u8]>::to_vec)
        else {
            continue;
        };
        reg.set_value(kept);
        node.remove_property("interrupts");
    }
}

/// Returns a new blob: `blob` with `reserved` listed under `/reserved-memory` as `no-map`,
/// what `boot` says in `/chosen`, and without the devices `devices` hides.
pub fn for_host(
    blob: &[u8],
    reserved: Range,
    boot: HostBoot,
    devices: &DevicePlan,
) -> Result<Vec<u8>, HostDtError> {
    let tree = FlatTree::new(blob).ok_or(HostDtError::BadBlob)?;
    for_host_tree(&tree, reserved, boot, devices)
}

/// `for_host` for a tree that warden's boot has already indexed (the DT is read once): the
/// index gives the cell sizes, and its blob is what dtoolkit's model is built from.
pub(crate) fn for_host_tree(
    flat: &FlatTree<'_>,
    reserved: Range,
    boot: HostBoot,
    devices: &DevicePlan,
) -> Result<Vec<u8>, HostDtError> {
    let blob = flat.blob();
    // Cell sizes come from the existing node when there is one (the firmware's entries
    // stay valid), otherwise a new node uses two cells each.
    let (addr_cells, size_cells) = flat.child(0, "reserved-memory").map_or((2, 2), |n| {
        (
            flat.address_cells(n, 2) as usize,
            flat.size_cells(n, 1) as usize,
        )
    });

    // The hidden subtrees go first, in one linear pass over the blob (`dt::pruned`),
    // marked by their index in the tree the plan was made from: most of QEMU virt's nodes
    // are hidden devices, and building them into the model only to remove them again was a
    // third of warden's boot.
    let mut removed = vec![false; flat.len()];
    let hidden = devices.decisions.iter().filter(|d| d.hidden.is_some());
    for n in hidden.map(|d| d.node).chain(flat.child(0, "secure-chosen")) {
        *removed.get_mut(n).ok_or(HostDtError::BadBlob)? = true;
    }
    let pruned = super::dt::pruned(blob, &removed).map_err(|_| HostDtError::BadBlob)?;
    let fdt = Fdt::new(&pruned).map_err(|_| HostDtError::BadBlob)?;
    let mut tree = DeviceTree::from_fdt(&fdt);
    drop_references(&mut tree.root, &devices.hidden_phandles);
    list_host_frames_only(&mut tree, devices);
    // Aliases that named a removed node would name nothing.
    if let Some(aliases) = tree.find_node_mut("/aliases") {
        use dtoolkit::Property;
        let stale: Vec<String> = aliases
            .properties_mut()
            .filter(|p| {
                let p = &**p;
                let target = core::str::from_utf8(p.value())
                    .unwrap_or("")
                    .trim_end_matches('\0');
                devices.removed_paths().any(|r| {
                    target
                        .strip_prefix(r)
                        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                })
            })
            .map(|p| (&*p).name().to_string())
            .collect();
        for name in stale {
            aliases.remove_property(&name);
        }
    }
    if tree.find_node("/reserved-memory").is_none() {
        let node = DeviceTreeNode::builder("reserved-memory")
            .map_err(|_| HostDtError::BadBlob)?
            .property(DeviceTreeProperty::new_unchecked("#address-cells", 2u32))
            .property(DeviceTreeProperty::new_unchecked("#size-cells", 2u32))
            .property(DeviceTreeProperty::new_unchecked(
                "ranges",
                Vec::<u8>::new(),
            ))
            .build();
        tree.root.add_child(node);
    }
    let mut reg = cells(reserved.start, addr_cells)?;
    reg.extend(cells(reserved.len(), size_cells)?);
    let node = DeviceTreeNode::builder(format!("warden@{:x}", reserved.start))
        .map_err(|_| HostDtError::BadBlob)?
        .property(DeviceTreeProperty::new_unchecked("reg", reg))
        .property(DeviceTreeProperty::new_unchecked(
            "no-map",
            Vec::<u8>::new(),
        ))
        .build();
    tree.find_node_mut("/reserved-memory")
        .ok_or(HostDtError::BadBlob)?
        .add_child(node);
    let chosen = tree.find_node_mut("/chosen").ok_or(HostDtError::BadBlob)?;
    if let Some(args) = boot.bootargs {
        chosen.remove_property("bootargs");
        chosen.add_property(DeviceTreeProperty::new_unchecked("bootargs", args));
    }
    if let Some(initrd) = boot.initrd {
        for (name, value) in [
            ("linux,initrd-start", initrd.start),
            ("linux,initrd-end", initrd.end),
        ] {
            chosen.remove_property(name);
            chosen.add_property(DeviceTreeProperty::new_unchecked(name, value));
        }
    }
    Ok(tree.to_dtb())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gicv2_hypervisor_frames_are_not_listed_for_the_host() {
        let dtb = include_bytes!("../../tests/fixtures/virt-gicv2.dtb");
        let plan = crate::platform::devices::plan(dtb, Default::default(), 1 << 40).unwrap();
        let boot = HostBoot {
            bootargs: None,
            initrd: None,
        };
        let out = for_host(dtb, Range::new(0x6000_0000, 0x6100_0000), boot, &plan).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let gic = fdt.find_node("/intc@8000000").unwrap();
        let regs: Vec<(u64, Option<usize>)> = gic
            .reg()
            .unwrap()
            .map(|r| (r.starting_address as u64, r.size))
            .collect();
        // GICD and GICC only: GICH (0x8030000) and GICV (0x8040000) are gone.
        assert_eq!(
            regs,
            [(0x0800_0000, Some(0x1_0000)), (0x0801_0000, Some(0x1_0000))]
        );
        assert!(gic.property("interrupts").is_none());
        assert!(gic.property("interrupt-controller").is_some());
        // And the stage-2 plan never maps them.
        for frame in [0x0803_0000u64, 0x0804_0000] {
            assert!(!plan.host_mmio.iter().any(|m| m.contains(frame)));
        }
    }

    #[test]
    fn gicv3_node_is_unchanged() {
        let plan = crate::platform::devices::plan(VIRT_DTB, Default::default(), 1 << 40).unwrap();
        let boot = HostBoot {
            bootargs: None,
            initrd: None,
        };
        let out = for_host(VIRT_DTB, Range::new(0x6000_0000, 0x6100_0000), boot, &plan).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let gic = fdt.find_node("/intc@8000000").unwrap();
        assert_eq!(gic.reg().unwrap().count(), 2);
        assert!(gic.property("interrupts").is_some());
    }

    const VIRT_DTB: &[u8] = include_bytes!("../../tests/fixtures/virt.dtb");

    #[test]
    fn adds_no_map_node_that_fdt_readers_see() {
        let warden = Range::new(0x6000_0000, 0x6100_0000);
        let boot = HostBoot {
            bootargs: Some("ffa=1.0 quiet"),
            initrd: Some(Range::new(0x4800_0000, 0x4870_0000)),
        };
        let out = for_host(VIRT_DTB, warden, boot, &DevicePlan::default()).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let node = fdt.find_node("/reserved-memory/warden@60000000").unwrap();
        assert!(node.property("no-map").is_some());
        let reg = node.reg().unwrap().next().unwrap();
        assert_eq!(reg.starting_address as u64, 0x6000_0000);
        assert_eq!(reg.size, Some(0x100_0000));
        // The firmware's own reservation survives.
        assert!(
            fdt.find_node("/reserved-memory/optee_core@e100000")
                .is_some()
        );
        // The kernel module's command line and the initramfs reach /chosen (Xen's
        // multiboot convention; arm64 booting.rst reads `linux,initrd-start`/`-end`).
        let chosen = fdt.chosen();
        assert_eq!(chosen.bootargs(), Some("ffa=1.0 quiet"));
        let cell = |name: &str| {
            let p = fdt.find_node("/chosen").unwrap().property(name).unwrap();
            p.as_usize().unwrap() as u64
        };
        assert_eq!(cell("linux,initrd-start"), 0x4800_0000);
        assert_eq!(cell("linux,initrd-end"), 0x4870_0000);
        // And so does everything warden reads.
        let info = crate::platform::dt::PlatformInfo::parse(&out).unwrap();
        assert_eq!(
            info,
            crate::platform::dt::PlatformInfo::parse(VIRT_DTB).unwrap()
        );
    }

    #[test]
    fn hidden_devices_and_references_to_them_are_gone() {
        use crate::platform::devices::{Iommus, plan};
        for (dtb, owned) in [
            (VIRT_DTB, &[][..]),
            (
                &include_bytes!("../../tests/fixtures/virt-smmuv3.dtb")[..],
                &[0x0905_0000u64][..],
            ),
        ] {
            let devices = plan(dtb, Iommus { owned }, 1 << 39).unwrap();
            let out = for_host(
                dtb,
                Range::new(0x6000_0000, 0x6100_0000),
                HostBoot::default(),
                &devices,
            )
            .unwrap();
            let fdt = fdt::Fdt::new(&out).unwrap();
            for compatible in [
                "qemu,fw-cfg-mmio",
                "virtio,mmio",
                "arm,gic-v3-its",
                "arm,smmu-v3",
            ] {
                assert!(fdt.find_compatible(&[compatible]).is_none(), "{compatible}");
            }
            assert!(fdt.find_node("/secure-chosen").is_none());
            assert!(fdt.find_node("/pl011@9040000").is_none());
            assert!(fdt.find_node("/gpio-poweroff").is_none());
            assert!(fdt.find_node("/pl011@9000000").is_some());
            assert!(fdt.find_node("/intc@8000000").is_some());
            let pcie = fdt.find_node("/pcie@10000000");
            if owned.is_empty() {
                assert!(pcie.is_none());
            } else {
                let pcie = pcie.unwrap();
                for p in REFERENCE_PROPERTIES {
                    assert!(pcie.property(p).is_none(), "{p}");
                }
                assert!(pcie.property("ranges").is_some());
            }
            // Every phandle reference left resolves.
            for node in fdt.all_nodes() {
                if let Some(p) = node.property("interrupt-parent") {
                    assert!(fdt.find_phandle(p.as_usize().unwrap() as u32).is_some());
                }
            }
        }
    }

    /// A tree without /reserved-memory gets one, with two cells each, and a 1-cell /reserved-memory cannot hold a range above 4 GiB.
    #[test]
    fn reserved_memory_is_added_when_missing() {
        let mut raw = VIRT_DTB.to_vec();
        // Rename the node in place ("reserved-memory" -> "reserved-memorx").
        let at = raw
            .windows(16)
            .position(|w| w == b"reserved-memory\0")
            .unwrap();
        raw[at + 14] = b'x';
        let devices = crate::platform::devices::plan(&raw, Default::default(), 1 << 40).unwrap();
        let reserved = Range::new(0x1_2340_0000, 0x1_2360_0000);
        let out = for_host(&raw, reserved, HostBoot::default(), &devices).unwrap();
        let fdt = fdt::Fdt::new(&out).unwrap();
        let node = fdt.find_node("/reserved-memory/warden@123400000").unwrap();
        let reg = node.reg().unwrap().next().unwrap();
        assert_eq!(reg.starting_address as u64, 0x1_2340_0000);
        assert_eq!(reg.size, Some(0x20_0000));
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            for_host(
                &[1, 2, 3],
                Range::new(0, 0x1000),
                HostBoot::default(),
                &DevicePlan::default()
            ),
            Err(HostDtError::BadBlob)
        );
    }
}
