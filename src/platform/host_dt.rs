//! The device tree warden hands to the host: the firmware's tree plus a `/reserved-memory`
//! node with `no-map` covering warden's memory, so that the host never allocates it (its
//! accesses would fault at stage-2) and never maps it (so it cannot even speculate into it).
//! Devicetree Specification v0.4 §3.5.

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use dtoolkit::fdt::Fdt;
use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

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

/// Returns a new blob: `blob` with `reserved` listed under `/reserved-memory` as `no-map`,
/// and what `boot` says in `/chosen`.
pub fn for_host(blob: &[u8], reserved: Range, boot: HostBoot) -> Result<Vec<u8>, HostDtError> {
    // Cell sizes come from the existing node when there is one (the firmware's entries
    // stay valid), otherwise a new node uses two cells each.
    let (addr_cells, size_cells) = fdt::Fdt::new(blob)
        .map_err(|_| HostDtError::BadBlob)?
        .find_node("/reserved-memory")
        .map(|n| n.cell_sizes())
        .map_or((2, 2), |c| (c.address_cells, c.size_cells));

    let fdt = Fdt::new(blob).map_err(|_| HostDtError::BadBlob)?;
    let mut tree = DeviceTree::from_fdt(&fdt);
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

    const VIRT_DTB: &[u8] = include_bytes!("../../tests/fixtures/virt.dtb");

    #[test]
    fn adds_no_map_node_that_fdt_readers_see() {
        let warden = Range::new(0x6000_0000, 0x6100_0000);
        let boot = HostBoot {
            bootargs: Some("ffa=1.0 quiet"),
            initrd: Some(Range::new(0x4800_0000, 0x4870_0000)),
        };
        let out = for_host(VIRT_DTB, warden, boot).unwrap();
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
        // And so does everything warden reads.
        let info = crate::platform::dt::PlatformInfo::parse(&out).unwrap();
        assert_eq!(
            info,
            crate::platform::dt::PlatformInfo::parse(VIRT_DTB).unwrap()
        );
    }

    #[test]
    fn garbage_is_refused() {
        assert_eq!(
            for_host(&[1, 2, 3], Range::new(0, 0x1000), HostBoot::default()),
            Err(HostDtError::BadBlob)
        );
    }
}
