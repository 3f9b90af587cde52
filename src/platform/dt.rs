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
    pruned(blob, &[])
}

// Flattened devicetree structure tokens and header layout (Devicetree Specification v0.4
// §5.2, §5.4).
const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
const HEADER_LEN: usize = 40;

fn be32(blob: &[u8], at: usize) -> Option<u32> {
    let b = blob.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// A copy of `blob` without FDT_NOP tokens and without the nodes at `drop` (full paths,
/// unit addresses included) and everything under them, in one pass over the structure
/// block: no tree model is built, so the cost is linear in the blob's size. This is most
/// of warden's boot otherwise (two model round trips of the whole tree). The memory
/// reservation and strings blocks are copied as they are; the header is rewritten for the
/// new layout (version 17).
pub fn pruned(blob: &[u8], drop: &[&str]) -> Result<Vec<u8>, DtError> {
    let bad = || DtError::BadBlob;
    let field = |i: usize| {
        be32(blob, 4 * i)
            .map(|v| v as usize)
            .ok_or(DtError::BadBlob)
    };
    if be32(blob, 0) != Some(FDT_MAGIC) {
        return Err(bad());
    }
    let (total, off_struct, off_strings, off_rsv) = (field(1)?, field(2)?, field(3)?, field(4)?);
    let (strings_len, struct_len) = (field(8)?, field(9)?);
    let blob = blob.get(..total).ok_or_else(bad)?;
    let structure = blob
        .get(off_struct..off_struct.checked_add(struct_len).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    let strings = blob
        .get(off_strings..off_strings.checked_add(strings_len).ok_or_else(bad)?)
        .ok_or_else(bad)?;
    // Memory reservation block: 16-byte (address, size) entries up to an all-zero one.
    let mut rsv_end = off_rsv;
    loop {
        let entry = blob.get(rsv_end..rsv_end + 16).ok_or_else(bad)?;
        rsv_end += 16;
        if entry.iter().all(|&b| b == 0) {
            break;
        }
    }
    let rsv = blob.get(off_rsv..rsv_end).ok_or_else(bad)?;

    let mut out_struct: Vec<u8> = Vec::with_capacity(structure.len());
    // The current node's path ("" for the root, "/a", "/a/b"), and the lengths to cut it
    // back to at each END_NODE.
    let mut path = String::new();
    let mut cuts: Vec<usize> = Vec::new();
    // Depth (in `cuts`) at which a dropped subtree started.
    let mut skipping: Option<usize> = None;
    let mut at = 0;
    let mut ended = false;
    while !ended {
        let token = be32(structure, at).ok_or_else(bad)?;
        let start = at;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let rest = structure.get(at..).ok_or_else(bad)?;
                let name_len = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
                let name = core::str::from_utf8(rest.get(..name_len).ok_or_else(bad)?)
                    .map_err(|_| bad())?;
                at = (at + name_len + 1).next_multiple_of(4);
                cuts.push(path.len());
                if !name.is_empty() {
                    path.push('/');
                    path.push_str(name);
                }
                if skipping.is_none() && drop.contains(&path.as_str()) {
                    skipping = Some(cuts.len());
                }
            }
            FDT_END_NODE => {
                let cut = cuts.pop().ok_or_else(bad)?;
                let depth = cuts.len() + 1;
                path.truncate(cut);
                if skipping == Some(depth) {
                    skipping = None;
                    continue;
                }
            }
            FDT_PROP => {
                let len = be32(structure, at).ok_or_else(bad)? as usize;
                at = (at + 8)
                    .checked_add(len)
                    .ok_or_else(bad)?
                    .next_multiple_of(4);
            }
            FDT_NOP => continue,
            FDT_END => ended = true,
            _ => return Err(bad()),
        }
        if skipping.is_none() {
            out_struct.extend_from_slice(structure.get(start..at).ok_or_else(bad)?);
        }
    }
    if !cuts.is_empty() {
        return Err(bad());
    }

    let off_rsv_new = HEADER_LEN.next_multiple_of(8);
    let off_struct_new = off_rsv_new + rsv.len();
    let off_strings_new = off_struct_new + out_struct.len();
    let total_new = off_strings_new + strings.len();
    let mut out = Vec::with_capacity(total_new);
    let boot_cpu = field(7)? as u32;
    for v in [
        FDT_MAGIC,
        total_new as u32,
        off_struct_new as u32,
        off_strings_new as u32,
        off_rsv_new as u32,
        17,
        16,
        boot_cpu,
        strings.len() as u32,
        out_struct.len() as u32,
    ] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.resize(off_rsv_new, 0);
    out.extend_from_slice(rsv);
    out.extend_from_slice(&out_struct);
    out.extend_from_slice(strings);
    Ok(out)
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
    fn pruned_drops_whole_subtrees_and_nothing_else() {
        let normalized = normalize(VIRT_TFA_RAW).unwrap();
        let before = Fdt::new(&normalized).unwrap();
        let out = pruned(
            VIRT_TFA_RAW,
            &["/fw-cfg@9020000", "/flash@0", "/cpus/cpu@1"],
        )
        .unwrap();
        let after = Fdt::new(&out).unwrap();
        assert!(after.find_node("/fw-cfg@9020000").is_none());
        assert!(after.find_node("/flash@0").is_none());
        assert!(after.find_node("/cpus/cpu@0").is_some());
        let cpus = |f: &Fdt| {
            f.find_node("/cpus")
                .unwrap()
                .children()
                .filter(|n| n.name.starts_with("cpu@"))
                .count()
        };
        assert_eq!((cpus(&before), cpus(&after)), (2, 1));
        let names = |f: &Fdt| {
            f.all_nodes()
                .map(|n| n.name.to_string())
                .collect::<Vec<_>>()
        };
        let mut expected = names(&before);
        expected.retain(|n| !["fw-cfg@9020000", "flash@0", "cpu@1"].contains(&n.as_str()));
        assert_eq!(names(&after), expected);
        // Every property of a kept node is still there, byte for byte.
        for node in after.all_nodes() {
            for prop in node.properties() {
                let chosen = before
                    .all_nodes()
                    .find(|n| n.name == node.name)
                    .and_then(|n| n.property(prop.name))
                    .unwrap();
                assert_eq!(chosen.value, prop.value, "{}/{}", node.name, prop.name);
            }
        }
        // No NOP token is left, and the result reads like the dtc-built tree.
        assert_eq!(
            PlatformInfo::parse(&normalized).unwrap(),
            PlatformInfo::parse(VIRT_DTB).unwrap()
        );
        // A truncated or corrupt blob is refused, never a panic.
        for cut in [0, 8, 40, 100, VIRT_TFA_RAW.len() / 2] {
            let mut b = VIRT_TFA_RAW[..cut].to_vec();
            assert!(pruned(&b, &[]).is_err());
            b.resize(VIRT_TFA_RAW.len(), 0xff);
            let _ = pruned(&b, &[]);
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(normalize(&[0u8; 64]), Err(DtError::BadBlob));
        assert_eq!(PlatformInfo::parse(&[0u8; 64]), Err(DtError::BadBlob));
        assert_eq!(PlatformInfo::parse(&[]), Err(DtError::BadBlob));
    }
}
