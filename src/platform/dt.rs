//! Reads what warden needs from the firmware's device tree. Nothing platform-specific is
//! a constant in warden: every address comes from here.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use fdt::Fdt;

use super::memmap::Range;

/// A boot module named in `/chosen` with Xen's multiboot convention
/// (docs/misc/arm/device-tree/booting.txt in Xen), which U-Boot can also produce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Module {
    pub range: Range,
    /// The module's `bootargs`: for the kernel, its command line.
    pub bootargs: Option<String>,
}

/// How the host reaches PSCI (`/psci` `method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Smc,
    Hvc,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformInfo {
    /// RAM from the `/memory` nodes, sorted by address.
    pub memory: Vec<Range>,
    /// The PL011 that `/chosen/stdout-path` names, if it is one.
    pub console: Option<Range>,
    /// MPIDR affinity values of the CPUs, in DT order: warden's CPU index is the position.
    pub cpus: Vec<u64>,
    pub psci: Option<Conduit>,
    /// The host kernel (`multiboot,kernel`).
    pub kernel: Option<Module>,
    /// The host's initramfs (`multiboot,ramdisk`).
    pub ramdisk: Option<Module>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtError {
    /// The blob is not a flattened device tree.
    BadBlob,
    /// No usable `/memory` node.
    NoMemory,
}

fn first_reg(node: fdt::node::FdtNode<'_, '_>) -> Option<Range> {
    let r = node.reg()?.next()?;
    Range::from_base_size(r.starting_address as u64, r.size? as u64)
}

fn has_compatible(node: fdt::node::FdtNode<'_, '_>, want: &str) -> bool {
    node.compatible()
        .is_some_and(|c| c.all().any(|s| s == want))
}

/// Re-serialises a tree without the FDT_NOP tokens that libfdt leaves behind when
/// firmware edits a tree in place (TF-A's BL2 does): the `fdt` crate (0.1.5) stops walking
/// a node at the first one and would miss `/cpus` and `/chosen`.
pub fn normalize(blob: &[u8]) -> Result<Vec<u8>, DtError> {
    let fdt = dtoolkit::fdt::Fdt::new(blob).map_err(|_| DtError::BadBlob)?;
    Ok(dtoolkit::model::DeviceTree::from_fdt(&fdt).to_dtb())
}

impl PlatformInfo {
    /// Reads a tree produced by [`normalize`].
    pub fn parse(blob: &[u8]) -> Result<Self, DtError> {
        let fdt = Fdt::new(blob).map_err(|_| DtError::BadBlob)?;

        let mut memory: Vec<Range> = fdt
            .find_all_nodes("/memory")
            .flat_map(|n| n.reg().into_iter().flatten())
            .filter_map(|r| Range::from_base_size(r.starting_address as u64, r.size? as u64))
            .collect();
        memory.sort_by_key(|r| r.start);
        if memory.is_empty() {
            return Err(DtError::NoMemory);
        }

        let chosen = fdt.find_node("/chosen");
        let console = chosen
            .and_then(|c| c.property("stdout-path"))
            .and_then(|p| p.as_str())
            .and_then(|path| fdt.find_node(path.split(':').next().unwrap_or(path)))
            .filter(|n| has_compatible(*n, "arm,pl011"))
            .and_then(first_reg);

        let cpus = fdt
            .find_node("/cpus")
            .into_iter()
            .flat_map(|c| c.children())
            .filter(|n| n.name.starts_with("cpu@"))
            .filter_map(|n| n.reg()?.next().map(|r| r.starting_address as u64))
            .collect();

        let psci = fdt
            .find_compatible(&["arm,psci-1.0", "arm,psci-0.2", "arm,psci"])
            .and_then(|n| n.property("method"))
            .and_then(|p| p.as_str())
            .and_then(|m| match m {
                "smc" => Some(Conduit::Smc),
                "hvc" => Some(Conduit::Hvc),
                _ => None,
            });

        let module = |kind: &str| {
            chosen
                .into_iter()
                .flat_map(|c| c.children())
                .find(|n| has_compatible(*n, kind))
                .and_then(|n| {
                    Some(Module {
                        range: first_reg(n)?,
                        bootargs: n
                            .property("bootargs")
                            .and_then(|p| p.as_str())
                            .map(|s| s.to_string()),
                    })
                })
        };

        Ok(Self {
            memory,
            console,
            cpus,
            psci,
            kernel: module("multiboot,kernel"),
            ramdisk: module("multiboot,ramdisk"),
        })
    }

    /// warden's index for the CPU with this MPIDR (affinity bits only).
    pub fn cpu_index(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & 0xff_00ff_ffff;
        self.cpus.iter().position(|&c| c == aff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Built from `tests/fixtures/virt.dts` (QEMU virt's tree as TF-A hands it over, plus
    /// the multiboot modules the harness adds) with `dtc -O dtb`.
    const VIRT_DTB: &[u8] = include_bytes!("../../tests/fixtures/virt.dtb");

    #[test]
    fn parses_qemu_virt() {
        let info = PlatformInfo::parse(VIRT_DTB).unwrap();
        assert_eq!(info.memory, [Range::new(0x4000_0000, 0x8000_0000)]);
        assert_eq!(info.console, Some(Range::new(0x0900_0000, 0x0900_1000)));
        assert_eq!(info.cpus, [0x0, 0x1]);
        assert_eq!(info.psci, Some(Conduit::Smc));
        let kernel = info.kernel.as_ref().unwrap();
        assert_eq!(kernel.range, Range::new(0x4800_0000, 0x4800_952b));
        assert_eq!(kernel.bootargs, None);
        assert_eq!(info.ramdisk, None);
        assert_eq!(info.cpu_index(0x8000_0001), Some(1));
        assert_eq!(info.cpu_index(0x2), None);
    }

    /// The same tree as TF-A leaves it in memory, FDT_NOP tokens included.
    const VIRT_TFA_RAW: &[u8] = include_bytes!("../../tests/fixtures/virt-tfa-raw.dtb");

    #[test]
    fn normalize_makes_firmware_edited_trees_readable() {
        let normalized = normalize(VIRT_TFA_RAW).unwrap();
        let info = PlatformInfo::parse(&normalized).unwrap();
        assert_eq!(info, PlatformInfo::parse(VIRT_DTB).unwrap());
        // Without it, the `fdt` crate misses everything after the first NOP.
        assert_eq!(PlatformInfo::parse(VIRT_TFA_RAW).unwrap().cpus, []);
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(normalize(&[0u8; 64]), Err(DtError::BadBlob));
        assert_eq!(PlatformInfo::parse(&[0u8; 64]), Err(DtError::BadBlob));
        assert_eq!(PlatformInfo::parse(&[]), Err(DtError::BadBlob));
    }
}
