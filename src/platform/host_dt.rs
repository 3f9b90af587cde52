//! The device tree warden hands to the host: the firmware's tree plus a `/reserved-memory`
//! node with `no-map` covering warden's memory, so that the host never allocates it (its
//! accesses would fault at stage-2) and never maps it (so it cannot even speculate into it).
//! Devicetree Specification v0.4 §3.5. It also loses every device node the host may not
//! use (`platform::devices`: MMIO default-deny), the references to them, and the secure
//! world's `/secure-chosen` (its seeds are not the host's to read).

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

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

/// Whether the reference property `name` (one of `REFERENCE_PROPERTIES`) with `value`
/// names a hidden phandle. Maps are (rid-base, phandle, base, length) entries; the others
/// start with a phandle and may list several with arguments: any cell equal to a hidden
/// phandle counts (dropping too much only costs the host an MSI or IOMMU it could not use
/// anyway).
fn names_hidden(name: &str, value: &[u8], hidden: &[u32]) -> bool {
    let mut cells = super::devices::be_cells(value);
    if name.ends_with("-map") {
        let cells: Vec<u32> = cells.collect();
        cells
            .chunks_exact(4)
            .any(|e| e.get(1).is_some_and(|p| hidden.contains(p)))
    } else {
        cells.any(|c| hidden.contains(&c))
    }
}

/// Flattened devicetree structure tokens (Devicetree Specification v0.4 §5.4.1).
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_END: u32 = 9;
const FDT_MAGIC: u32 = 0xd00d_feed;

/// Writes a flattened tree token by token (Devicetree Specification v0.4 §5): the
/// structure block and the strings block grow side by side; the strings block starts as the
/// source tree's, so that the properties copied from it keep their name offsets.
struct FdtWriter {
    structure: Vec<u8>,
    strings: Vec<u8>,
}

impl FdtWriter {
    fn token(&mut self, token: u32) {
        self.structure.extend_from_slice(&token.to_be_bytes());
    }

    fn pad(&mut self) {
        let len = self.structure.len().next_multiple_of(4);
        self.structure.resize(len, 0);
    }

    fn begin_node(&mut self, name: &[u8]) {
        self.token(FDT_BEGIN_NODE);
        self.structure.extend_from_slice(name);
        self.structure.push(0);
        self.pad();
    }

    fn end_node(&mut self) {
        self.token(FDT_END_NODE);
    }

    fn prop(&mut self, name_offset: u32, value: &[u8]) -> Result<(), HostDtError> {
        let len = u32::try_from(value.len()).map_err(|_| HostDtError::BadBlob)?;
        self.token(FDT_PROP);
        self.structure.extend_from_slice(&len.to_be_bytes());
        self.structure.extend_from_slice(&name_offset.to_be_bytes());
        self.structure.extend_from_slice(value);
        self.pad();
        Ok(())
    }

    /// The offset of `name` in the strings block: an existing string equal to it, or a new
    /// one appended. Only the few names warden adds are looked up.
    fn string(&mut self, name: &str) -> Result<u32, HostDtError> {
        let mut at = 0;
        for s in self.strings.split(|&b| b == 0) {
            if s == name.as_bytes() {
                return u32::try_from(at).map_err(|_| HostDtError::BadBlob);
            }
            at += s.len() + 1;
        }
        let at = u32::try_from(self.strings.len()).map_err(|_| HostDtError::BadBlob)?;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        Ok(at)
    }

    fn named_prop(&mut self, name: &str, value: &[u8]) -> Result<(), HostDtError> {
        let offset = self.string(name)?;
        self.prop(offset, value)
    }

    /// The blob: header, `reservations` (terminator included), structure, strings.
    fn finish(mut self, reservations: &[u8], boot_cpu: u32) -> Result<Vec<u8>, HostDtError> {
        self.token(FDT_END);
        let fit = |n: usize| u32::try_from(n).map_err(|_| HostDtError::BadBlob);
        let off_rsv = 40usize.next_multiple_of(8);
        let off_struct = off_rsv + reservations.len();
        let off_strings = off_struct + self.structure.len();
        let total = off_strings + self.strings.len();
        let mut out = Vec::with_capacity(total);
        for v in [
            FDT_MAGIC,
            fit(total)?,
            fit(off_struct)?,
            fit(off_strings)?,
            fit(off_rsv)?,
            17,
            16,
            boot_cpu,
            fit(self.strings.len())?,
            fit(self.structure.len())?,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        out.resize(off_rsv, 0);
        out.extend_from_slice(reservations);
        out.extend_from_slice(&self.structure);
        out.extend_from_slice(&self.strings);
        Ok(out)
    }
}

/// What happens to one kept node's properties.
#[derive(Clone, Copy, Default)]
struct NodeEdit {
    /// A node the host keeps with frames it may not map (the GIC's hypervisor frames,
    /// GICH and GICV): `reg` keeps this many bytes and `interrupts` goes. In the arm,gic
    /// (GICv2, GIC-400) and arm,gic-v3 bindings, GICH and GICV are the last `reg` entries
    /// and `interrupts` is the VGIC maintenance interrupt, which exists for GICH's user. The
    /// host is an EL1 kernel, so nothing there may look for a hypervisor interface, and
    /// warden's stage-2 leaves those frames unmapped either way (`devices::plan`).
    reg_keep: Option<usize>,
}

/// Returns a new blob: `blob` with `reserved` listed under `/reserved-memory` as `no-map`,
/// what `boot` says in `/chosen`, and without the devices `devices` hides (a plan of
/// `blob`).
pub fn for_host(
    blob: &[u8],
    reserved: Range,
    boot: HostBoot,
    devices: &DevicePlan,
) -> Result<Vec<u8>, HostDtError> {
    let tree = FlatTree::new(blob).ok_or(HostDtError::BadBlob)?;
    for_host_tree(&tree, reserved, boot, devices)
}

/// `for_host` for a tree that is already indexed; `devices` must be a plan of `t`
/// (`devices::plan_tree`), whose node indices it uses. One pass over the tree writes the
/// new blob: the hidden subtrees are skipped, the kept nodes are copied with their edits,
/// and warden's nodes and properties are written where they belong. No tree model is built
/// (building one for QEMU virt's tree and writing it out was a fifth of warden's boot).
pub(crate) fn for_host_tree(
    t: &FlatTree<'_>,
    reserved: Range,
    boot: HostBoot,
    devices: &DevicePlan,
) -> Result<Vec<u8>, HostDtError> {
    let chosen = t.child(0, "chosen").ok_or(HostDtError::BadBlob)?;
    let reserved_memory = t.child(0, "reserved-memory");
    let aliases = t.child(0, "aliases");
    // Cell sizes come from the existing node when there is one (the firmware's entries
    // stay valid), otherwise a new node uses two cells each.
    let (addr_cells, size_cells) = reserved_memory.map_or((2, 2), |n| {
        (t.address_cells(n, 2) as usize, t.size_cells(n, 1) as usize)
    });
    let mut warden_reg = cells(reserved.start, addr_cells)?;
    warden_reg.extend(cells(reserved.len(), size_cells)?);
    let warden_reg: Vec<u8> = warden_reg.iter().flat_map(|c| c.to_be_bytes()).collect();
    let warden_name = format!("warden@{:x}", reserved.start);

    // Per node: removed (with its subtree), or kept with an edit.
    let mut removed = vec![false; t.len()];
    let mut edits = vec![NodeEdit::default(); t.len()];
    if let Some(secure_chosen) = t.child(0, "secure-chosen").and_then(|n| removed.get_mut(n)) {
        *secure_chosen = true;
    }
    for d in &devices.decisions {
        let (Some(gone), Some(edit)) = (removed.get_mut(d.node), edits.get_mut(d.node)) else {
            return Err(HostDtError::BadBlob);
        };
        if d.hidden.is_some() {
            *gone = true;
        } else if !d.withheld_frames.is_empty() {
            // A `reg` whose entries do not add up to the plan's frames is left as it is.
            let entries = d.host_frames.len() + d.withheld_frames.len();
            let len = t.prop(d.node, "reg").map_or(0, <[u8]>::len);
            if len != 0 && len.is_multiple_of(entries) {
                edit.reg_keep = Some(len / entries * d.host_frames.len());
            }
        }
    }

    let mut w = FdtWriter {
        structure: Vec::with_capacity(t.structure_len() + 256),
        strings: t.strings().to_vec(),
    };
    // The depths of the nodes written and not yet closed, with their indices.
    let mut open: Vec<(usize, usize)> = Vec::new();
    let close = |w: &mut FdtWriter, node: usize| -> Result<(), HostDtError> {
        if Some(node) == reserved_memory {
            write_warden_node(w, &warden_name, &warden_reg)?;
        }
        if node == 0 && reserved_memory.is_none() {
            w.begin_node(b"reserved-memory");
            w.named_prop("#address-cells", &2u32.to_be_bytes())?;
            w.named_prop("#size-cells", &2u32.to_be_bytes())?;
            w.named_prop("ranges", &[])?;
            write_warden_node(w, &warden_name, &warden_reg)?;
            w.end_node();
        }
        w.end_node();
        Ok(())
    };
    let mut node = 0;
    while node < t.len() {
        if removed.get(node).copied().unwrap_or(false) {
            node = t.subtree_end(node);
            continue;
        }
        let n = t.node(node).ok_or(HostDtError::BadBlob)?;
        while let Some(&(depth, open_node)) = open.last()
            && depth >= n.depth
        {
            open.pop();
            close(&mut w, open_node)?;
        }
        w.begin_node(n.name);
        let edit = edits.get(node).copied().unwrap_or_default();
        write_props(
            &mut w,
            t,
            node,
            edit,
            &devices.hidden_phandles,
            |name, value| {
                if node == chosen {
                    return !((boot.bootargs.is_some() && name == b"bootargs")
                        || (boot.initrd.is_some()
                            && (name == b"linux,initrd-start" || name == b"linux,initrd-end")));
                }
                // Aliases that named a removed node would name nothing.
                if Some(node) == aliases {
                    let target = core::str::from_utf8(value)
                        .unwrap_or("")
                        .trim_end_matches('\0');
                    return !devices.removed_paths().any(|r| {
                        target
                            .strip_prefix(r)
                            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
                    });
                }
                true
            },
        )?;
        if node == chosen {
            if let Some(args) = boot.bootargs {
                let mut value = Vec::with_capacity(args.len() + 1);
                value.extend_from_slice(args.as_bytes());
                value.push(0);
                w.named_prop("bootargs", &value)?;
            }
            if let Some(initrd) = boot.initrd {
                w.named_prop("linux,initrd-start", &initrd.start.to_be_bytes())?;
                w.named_prop("linux,initrd-end", &initrd.end.to_be_bytes())?;
            }
        }
        open.push((n.depth, node));
        node += 1;
    }
    while let Some((_, open_node)) = open.pop() {
        close(&mut w, open_node)?;
    }
    w.finish(t.reservations(), t.boot_cpu())
}

fn write_warden_node(w: &mut FdtWriter, name: &str, reg: &[u8]) -> Result<(), HostDtError> {
    w.begin_node(name.as_bytes());
    w.named_prop("reg", reg)?;
    w.named_prop("no-map", &[])?;
    w.end_node();
    Ok(())
}

/// Copies `node`'s properties that `keep` (name, value) accepts, with `edit` applied and
/// without the reference properties (and the `-mask` of a dropped map) that name a phandle
/// in `hidden`.
fn write_props(
    w: &mut FdtWriter,
    t: &FlatTree<'_>,
    node: usize,
    edit: NodeEdit,
    hidden: &[u32],
    keep: impl Fn(&[u8], &[u8]) -> bool,
) -> Result<(), HostDtError> {
    let props = t.props_of(node);
    // The reference properties this node loses, by index in REFERENCE_PROPERTIES. Their
    // names all start with 'm' or 'i': other names are not compared further.
    let mut gone = [false; REFERENCE_PROPERTIES.len()];
    if !hidden.is_empty() {
        for &(offset, value) in props {
            let name = t.string_at(offset).ok_or(HostDtError::BadBlob)?;
            if !matches!(name.first(), Some(b'm' | b'i')) {
                continue;
            }
            for (r, g) in REFERENCE_PROPERTIES.iter().zip(gone.iter_mut()) {
                if r.as_bytes() == name {
                    *g = names_hidden(r, value, hidden);
                }
            }
        }
    }
    let any_gone = gone.contains(&true);
    for &(offset, value) in props {
        let name = t.string_at(offset).ok_or(HostDtError::BadBlob)?;
        if any_gone
            && REFERENCE_PROPERTIES.iter().zip(gone).any(|(r, g)| {
                g && (name == r.as_bytes() || name.strip_suffix(b"-mask") == Some(r.as_bytes()))
            })
        {
            continue;
        }
        let mut value = value;
        if let Some(keep_bytes) = edit.reg_keep {
            if name == b"interrupts" {
                continue;
            }
            if name == b"reg" {
                value = value.get(..keep_bytes).ok_or(HostDtError::BadBlob)?;
            }
        }
        if !keep(name, value) {
            continue;
        }
        w.prop(offset, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every token of a blob's structure block with names resolved: two blobs that give
    /// the same list describe the same tree, whatever their strings blocks' layout.
    fn tokens(blob: &[u8]) -> Vec<(usize, Vec<u8>, Option<Vec<u8>>)> {
        let t = FlatTree::new(blob).unwrap();
        let mut out = Vec::new();
        for n in 0..t.len() {
            let node = t.node(n).unwrap();
            out.push((node.depth, node.name.to_vec(), None));
            for &(offset, value) in t.props_of(n) {
                let name = t.string_at(offset).unwrap().to_vec();
                out.push((node.depth, name, Some(value.to_vec())));
            }
        }
        out
    }

    /// The one-pass writer writes the same tree as the model-based one it replaced, on every
    /// fixture (the firmware's raw blob with FDT_NOPs, GICv2, an SMMU that warden owns or
    /// not), with and without boot arguments and an initramfs, a reservation node present
    /// or not.
    #[test]
    fn one_pass_writer_agrees_with_the_model() {
        use crate::platform::devices::{Iommus, plan};
        let fixtures: [(&[u8], &[u64]); 5] = [
            (VIRT_DTB, &[]),
            (include_bytes!("../../tests/fixtures/virt-tfa-raw.dtb"), &[]),
            (include_bytes!("../../tests/fixtures/virt-gicv2.dtb"), &[]),
            (include_bytes!("../../tests/fixtures/virt-smmuv3.dtb"), &[]),
            (
                include_bytes!("../../tests/fixtures/virt-smmuv3.dtb"),
                &[0x0905_0000],
            ),
        ];
        let boots = [
            HostBoot::default(),
            HostBoot {
                bootargs: Some("console=ttyAMA0 ffa=1.1"),
                initrd: Some(Range::new(0x4800_0000, 0x4870_0000)),
            },
        ];
        let mut compared = 0;
        for (dtb, owned) in fixtures {
            for boot in boots {
                for reserved in [
                    Range::new(0x6000_0000, 0x6100_0000),
                    Range::new(0x1_2340_0000, 0x1_2360_0000),
                ] {
                    let devices = plan(dtb, Iommus { owned }, 1 << 40).unwrap();
                    let new = for_host(dtb, reserved, boot, &devices);
                    let model = reference::reference_for_host(dtb, reserved, boot, &devices);
                    assert_eq!(new.is_ok(), model.is_ok(), "{reserved:?}");
                    if let (Ok(new), Ok(model)) = (new, model) {
                        assert_eq!(tokens(&new), tokens(&model));
                        // Both are trees the `fdt` crate reads whole.
                        let fdt = fdt::Fdt::new(&new).unwrap();
                        assert_eq!(fdt.all_nodes().count(), FlatTree::new(&new).unwrap().len());
                        compared += 1;
                    }
                }
            }
        }
        assert!(compared >= 10, "{compared}");
    }

    /// A tree without /reserved-memory gets one, with two cells each (the model's
    /// choice too), and a 1-cell /reserved-memory cannot hold a range above 4 GiB.
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
        assert_eq!(
            tokens(&out),
            tokens(
                &reference::reference_for_host(&raw, reserved, HostBoot::default(), &devices)
                    .unwrap()
            )
        );
        let fdt = fdt::Fdt::new(&out).unwrap();
        let node = fdt.find_node("/reserved-memory/warden@123400000").unwrap();
        let reg = node.reg().unwrap().next().unwrap();
        assert_eq!(reg.starting_address as u64, 0x1_2340_0000);
        assert_eq!(reg.size, Some(0x20_0000));
    }

    mod reference {
        //! The model-based writer that `for_host` replaced, kept to check the one-pass
        //! writer against.
        use alloc::format;
        use alloc::string::{String, ToString};
        use alloc::vec::Vec;

        use dtoolkit::fdt::Fdt;
        use dtoolkit::model::{DeviceTree, DeviceTreeNode, DeviceTreeProperty};

        use super::super::{HostBoot, HostDtError, cells};
        use crate::platform::devices::DevicePlan;
        use crate::platform::memmap::Range;

        /// Properties that name other nodes by phandle in ways Linux follows to program them: an
        /// MSI controller or an IOMMU that is hidden must not be referred to.
        const REFERENCE_PROPERTIES_MODEL: [&str; 4] =
            ["msi-map", "iommu-map", "msi-parent", "iommus"];

        /// Drops, in `node` and below, every reference property that names a hidden phandle (and
        /// the `-mask` that goes with a dropped map).
        fn drop_references(node: &mut DeviceTreeNode, hidden: &[u32]) {
            use dtoolkit::Property;
            let mut gone = Vec::new();
            for prop in node.properties_mut() {
                let prop = &*prop;
                let name = prop.name();
                if !REFERENCE_PROPERTIES_MODEL.contains(&name) {
                    continue;
                }
                let cells: Vec<u32> = crate::platform::devices::be_cells(prop.value()).collect();
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

        /// The model-based writer that `for_host` replaced (dtoolkit's `DeviceTree`: build,
        /// edit, write out), kept as the reference the one-pass writer must agree with.
        /// Returns a new blob: `blob` with `reserved` listed under `/reserved-memory` as `no-map`,
        /// what `boot` says in `/chosen`, and without the devices `devices` hides.
        pub(super) fn reference_for_host(
            blob: &[u8],
            reserved: Range,
            boot: HostBoot,
            devices: &DevicePlan,
        ) -> Result<Vec<u8>, HostDtError> {
            // Cell sizes come from the existing node when there is one (the firmware's entries
            // stay valid), otherwise a new node uses two cells each.
            let flat = crate::platform::dt::FlatTree::new(blob).ok_or(HostDtError::BadBlob)?;
            let (addr_cells, size_cells) = flat.find("/reserved-memory").map_or((2, 2), |n| {
                (
                    flat.cells(n, "#address-cells", 2) as usize,
                    flat.cells(n, "#size-cells", 1) as usize,
                )
            });

            // The hidden subtrees go first, in one linear pass over the blob (`dt::pruned`):
            // most of QEMU virt's nodes are hidden devices, and building them into the model only
            // to remove them again was a third of warden's boot.
            let removed: Vec<&str> = devices.removed_paths().chain(["/secure-chosen"]).collect();
            let pruned =
                crate::platform::dt::pruned(blob, &removed).map_err(|_| HostDtError::BadBlob)?;
            let fdt = Fdt::new(&pruned).map_err(|_| HostDtError::BadBlob)?;
            let mut tree = DeviceTree::from_fdt(&fdt);
            for path in devices.removed_paths().chain(["/secure-chosen"]) {
                let (parent, name) = path.rsplit_once('/').ok_or(HostDtError::BadBlob)?;
                let parent = if parent.is_empty() { "/" } else { parent };
                if let Some(p) = tree.find_node_mut(parent) {
                    p.remove_child(name);
                }
            }
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
                        devices
                            .removed_paths()
                            .any(|r| target == r || target.starts_with(&format!("{r}/")))
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
    }

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
