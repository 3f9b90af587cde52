//! Reads what warden needs from the firmware's device tree. Nothing platform-specific is
//! a constant in warden: every address comes from here.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

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

// Inlined: the single-pass readers call it once per token, and a call costs more than
// the load.
#[inline(always)]
fn be32(blob: &[u8], at: usize) -> Option<u32> {
    let b: [u8; 4] = blob.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

/// A copy of `blob` without FDT_NOP tokens and without the nodes `drop` marks and
/// everything under them, in one pass over the structure block: no tree model is built, so
/// the cost is linear in the blob's size. `drop` is indexed by node, in the order of
/// `FlatTree` (the nth FDT_BEGIN_NODE, NOPs skipped, the root 0), so that no node's path is
/// built or compared; a node past its end is kept. The memory reservation and strings blocks
/// are copied as they are; the header is rewritten for the new layout (version 17).
pub fn pruned(blob: &[u8], drop: &[bool]) -> Result<Vec<u8>, DtError> {
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
    // The depth of the open nodes, and the index of the next node.
    let mut depth = 0usize;
    let mut node = 0usize;
    // Depth at which a dropped subtree started.
    let mut skipping: Option<usize> = None;
    let mut at = 0;
    let mut ended = false;
    // Kept tokens are copied in runs, not one by one: a run ends at a NOP or a dropped
    // subtree (most trees have neither, so the structure block is one copy).
    let mut run: Option<usize> = None;
    let flush = |out: &mut Vec<u8>, run: &mut Option<usize>, end: usize| {
        if let Some(from) = run.take() {
            out.extend_from_slice(structure.get(from..end).ok_or_else(bad)?);
        }
        Ok::<(), DtError>(())
    };
    while !ended {
        let token = be32(structure, at).ok_or_else(bad)?;
        let start = at;
        at += 4;
        let mut keep = true;
        match token {
            FDT_BEGIN_NODE => {
                let rest = structure.get(at..).ok_or_else(bad)?;
                let name_len = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
                core::str::from_utf8(rest.get(..name_len).ok_or_else(bad)?).map_err(|_| bad())?;
                at = (at + name_len + 1).next_multiple_of(4);
                depth += 1;
                if skipping.is_none() && drop.get(node).copied().unwrap_or(false) {
                    skipping = Some(depth);
                }
                node += 1;
            }
            FDT_END_NODE => {
                if depth == 0 {
                    return Err(bad());
                }
                depth -= 1;
                if skipping == Some(depth + 1) {
                    skipping = None;
                    keep = false;
                }
            }
            FDT_PROP => {
                let len = be32(structure, at).ok_or_else(bad)? as usize;
                at = (at + 8)
                    .checked_add(len)
                    .ok_or_else(bad)?
                    .next_multiple_of(4);
            }
            FDT_NOP => keep = false,
            FDT_END => ended = true,
            _ => return Err(bad()),
        }
        if keep && skipping.is_none() {
            run.get_or_insert(start);
        } else {
            flush(&mut out_struct, &mut run, start)?;
        }
    }
    flush(&mut out_struct, &mut run, at)?;
    if depth != 0 {
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

/// A device tree indexed in one pass over the structure block: every node with its depth,
/// parent, subtree end and properties (names left as bytes in the strings block), with
/// FDT_NOP tokens skipped, so the firmware's own blob is indexed in place. Lookups compare
/// bytes; nothing is validated as UTF-8 except node names and the few strings warden reads.
/// The `fdt` crate walks the tree again and validates every property name it passes on each
/// lookup, which made reading the platform a sixth of warden's boot. warden's boot builds one
/// index of the firmware's blob and every reader shares it: the platform
/// (`PlatformInfo::from_tree`), the SMMUs (`smmuv3::dt`), the console, the device plan
/// (`devices::plan_tree`) and the host DT writer (`host_dt`).
pub(crate) struct FlatTree<'a> {
    /// The whole blob, as long as its header says (the host DT writer reads it again).
    blob: &'a [u8],
    strings: &'a [u8],
    nodes: Vec<FlatNode<'a>>,
    props: Vec<(u32, &'a [u8])>,
}

pub(crate) struct FlatNode<'a> {
    pub(crate) name: &'a [u8],
    parent: usize,
    pub(crate) depth: usize,
    /// Indices into `props`.
    props: core::ops::Range<usize>,
    /// One past the last node of this node's subtree, so that walking a node's children
    /// steps over their subtrees instead of visiting every node under it.
    end: usize,
    /// The values of the node's `#address-cells` and `#size-cells`, found while indexing:
    /// every `reg` lookup needs its parent's, and looking them up by name each time was
    /// most of the device plan's string comparisons.
    address_cells: Option<&'a [u8]>,
    size_cells: Option<&'a [u8]>,
}

impl<'a> FlatTree<'a> {
    pub(crate) fn new(blob: &'a [u8]) -> Option<Self> {
        if be32(blob, 0)? != FDT_MAGIC {
            return None;
        }
        let field = |i: usize| be32(blob, 4 * i).map(|v| v as usize);
        let (total, off_struct, off_strings, off_rsv) =
            (field(1)?, field(2)?, field(3)?, field(4)?);
        let (strings_len, struct_len) = (field(8)?, field(9)?);
        let blob = blob.get(..total)?;
        let structure = blob.get(off_struct..off_struct.checked_add(struct_len)?)?;
        let strings = blob.get(off_strings..off_strings.checked_add(strings_len)?)?;
        // Memory reservation block: 16-byte (address, size) entries up to an all-zero one
        // (Devicetree Specification v0.4 §5.3), which must lie inside the blob.
        let mut rsv_end = off_rsv;
        loop {
            let entry = blob.get(rsv_end..rsv_end.checked_add(16)?)?;
            rsv_end += 16;
            if entry.iter().all(|&b| b == 0) {
                break;
            }
        }
        blob.get(off_rsv..rsv_end)?;
        // Sized from the structure block so that the vectors grow once or never: a node
        // takes at least 12 bytes of it, a property at least 12.
        let mut tree = FlatTree {
            blob,
            strings,
            nodes: Vec::with_capacity(struct_len / 64),
            props: Vec::with_capacity(struct_len / 24),
        };
        let mut stack: Vec<usize> = Vec::new();
        let mut at = 0;
        loop {
            let token = be32(structure, at)?;
            at += 4;
            match token {
                FDT_BEGIN_NODE => {
                    let rest = structure.get(at..)?;
                    let len = rest.iter().position(|&b| b == 0)?;
                    let name = rest.get(..len)?;
                    // Node names are ASCII (Devicetree Specification v0.4 §2.2.1): a name
                    // that is not even UTF-8 marks a corrupt blob.
                    core::str::from_utf8(name).ok()?;
                    at = (at + len + 1).next_multiple_of(4);
                    let index = tree.nodes.len();
                    tree.nodes.push(FlatNode {
                        name,
                        parent: stack.last().copied().unwrap_or(index),
                        depth: stack.len(),
                        props: tree.props.len()..tree.props.len(),
                        end: index + 1,
                        address_cells: None,
                        size_cells: None,
                    });
                    stack.push(index);
                }
                FDT_END_NODE => {
                    let closed = stack.pop()?;
                    let end = tree.nodes.len();
                    tree.nodes.get_mut(closed)?.end = end;
                }
                FDT_PROP => {
                    let len = be32(structure, at)? as usize;
                    let name = be32(structure, at + 4)?;
                    let value = structure.get(at + 8..(at + 8).checked_add(len)?)?;
                    at = (at + 8 + len).next_multiple_of(4);
                    let node = tree.nodes.get_mut(*stack.last()?)?;
                    // Properties come before a node's children (Devicetree Spec. §5.4.2).
                    if node.props.end != tree.props.len() {
                        return None;
                    }
                    tree.props.push((name, value));
                    node.props.end = tree.props.len();
                    // The first of each, as `prop` finds it. Only names starting with '#'
                    // are compared further.
                    let name = strings.get(name as usize..).unwrap_or(&[]);
                    if name.first() == Some(&b'#') {
                        if name.starts_with(b"#address-cells\0") {
                            node.address_cells.get_or_insert(value);
                        } else if name.starts_with(b"#size-cells\0") {
                            node.size_cells.get_or_insert(value);
                        }
                    }
                }
                FDT_NOP => {}
                FDT_END => break,
                _ => return None,
            }
        }
        stack.is_empty().then_some(tree)
    }

    /// The blob this index was built from.
    pub(crate) fn blob(&self) -> &'a [u8] {
        self.blob
    }

    /// The child of `parent` named exactly `name` (unit address included).
    pub(crate) fn child(&self, parent: usize, name: &str) -> Option<usize> {
        self.children(parent)
            .find(|&c| self.nodes.get(c).is_some_and(|n| n.name == name.as_bytes()))
    }

    pub(crate) fn prop(&self, node: usize, name: &str) -> Option<&'a [u8]> {
        let n = self.nodes.get(node)?;
        let want = name.as_bytes();
        self.props
            .get(n.props.clone())?
            .iter()
            .find_map(|&(off, value)| {
                let s = self.strings.get(off as usize..)?;
                // The terminator and the first byte first: most names differ there, and
                // the full comparison is a call to memcmp.
                let matches = s.len() > want.len()
                    && s.get(want.len()) == Some(&0)
                    && s.first() == want.first()
                    && s.get(..want.len()) == Some(want);
                matches.then_some(value)
            })
    }

    pub(crate) fn str_prop(&self, node: usize, name: &str) -> Option<&'a str> {
        let v = self.prop(node, name)?;
        let v = v.strip_suffix(&[0]).unwrap_or(v);
        core::str::from_utf8(v).ok()
    }

    pub(crate) fn has_compatible(&self, node: usize, want: &str) -> bool {
        self.prop(node, "compatible")
            .is_some_and(|v| v.split(|&b| b == 0).any(|c| c == want.as_bytes()))
    }

    pub(crate) fn children(&self, node: usize) -> impl Iterator<Item = usize> + '_ {
        let end = self.subtree_end(node);
        // Each child's subtree ends where the next child starts.
        core::iter::successors(Some(node + 1).filter(|&c| c < end), move |&c| {
            Some(self.subtree_end(c)).filter(|&next| next > c && next < end)
        })
    }

    /// The node at `path` ("/a/b"; a component without a unit address matches the
    /// first node whose name before '@' is the same, as the `fdt` crate does).
    pub(crate) fn find(&self, path: &str) -> Option<usize> {
        let mut node = 0;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let part = part.as_bytes();
            let any_unit = !part.contains(&b'@');
            // The first byte first: most siblings differ there, and the full comparison
            // is a call to memcmp.
            node = self.children(node).find(|&c| {
                self.nodes.get(c).is_some_and(|n| {
                    n.name.first() == part.first()
                        && n.name.starts_with(part)
                        && match n.name.get(part.len()) {
                            None => true,
                            Some(&b) => any_unit && b == b'@',
                        }
                })
            })?;
        }
        Some(node)
    }

    /// A cell count by name, looked up among the node's properties (the tests' reference
    /// for `address_cells` and `size_cells`).
    #[cfg(test)]
    pub(crate) fn cells(&self, node: usize, name: &str, default: u32) -> u32 {
        self.prop(node, name)
            .and_then(|v| be32(v, 0))
            .unwrap_or(default)
    }

    /// `node`'s `#address-cells` (`default` if absent), as `cells` reads it.
    pub(crate) fn address_cells(&self, node: usize, default: u32) -> u32 {
        self.nodes
            .get(node)
            .and_then(|n| n.address_cells)
            .and_then(|v| be32(v, 0))
            .unwrap_or(default)
    }

    /// `node`'s `#size-cells` (`default` if absent), as `cells` reads it.
    pub(crate) fn size_cells(&self, node: usize, default: u32) -> u32 {
        self.nodes
            .get(node)
            .and_then(|n| n.size_cells)
            .and_then(|v| be32(v, 0))
            .unwrap_or(default)
    }

    /// `reg` entries of `node` as (address, size), with its parent's cell counts
    /// (defaults 2 and 1, Devicetree Specification v0.4 §2.3.5); None for a size of 0 cells.
    pub(crate) fn regs(&self, node: usize) -> impl Iterator<Item = (u64, Option<u64>)> + '_ {
        let parent = self.nodes.get(node).map_or(0, |n| n.parent);
        let ac = self.address_cells(parent, 2) as usize;
        let sc = self.size_cells(parent, 1) as usize;
        let value = self.prop(node, "reg").unwrap_or(&[]);
        let entry = 4 * (ac + sc);
        let read = |cells: &[u8]| {
            cells
                .chunks_exact(4)
                .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes))
                .fold(0u64, |acc, c| acc << 32 | u64::from(c))
        };
        value
            .chunks_exact(entry.max(4))
            .filter(move |_| ac > 0 && entry > 0)
            .map(move |e| {
                let (a, s) = e.split_at((4 * ac).min(e.len()));
                (read(a), (sc > 0).then(|| read(s)))
            })
    }

    pub(crate) fn first_reg(&self, node: usize) -> Option<Range> {
        let (base, size) = self.regs(node).next()?;
        Range::from_base_size(base, size?)
    }

    /// How many nodes the tree has; node indices are `0..len()` in DT order (depth first,
    /// parents before children), the root is 0.
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }

    pub(crate) fn node(&self, node: usize) -> Option<&FlatNode<'a>> {
        self.nodes.get(node)
    }

    /// The parent of `node`; None for the root.
    pub(crate) fn parent(&self, node: usize) -> Option<usize> {
        self.nodes
            .get(node)
            .map(|n| n.parent)
            .filter(|&p| p != node)
    }

    /// One past the last node of `node`'s subtree: `node..subtree_end(node)` is the node and
    /// everything under it.
    pub(crate) fn subtree_end(&self, node: usize) -> usize {
        self.nodes.get(node).map_or(node, |n| n.end)
    }

    /// Whether one of `node`'s `compatible` strings is one of `any`.
    pub(crate) fn compatible_any(&self, node: usize, any: &[&str]) -> bool {
        self.prop(node, "compatible").is_some_and(|v| {
            v.split(|&b| b == 0)
                .any(|c| any.iter().any(|w| w.as_bytes() == c))
        })
    }

    /// `reg` as the `fdt` crate reads it: 1 or 2 address cells and 0 to 2 size cells of
    /// the parent's (defaults 2 and 1; the root's own `reg` uses the defaults), nothing
    /// for other cell counts; a size of 0 cells reads as None.
    pub(crate) fn regs_small(&self, node: usize) -> impl Iterator<Item = (u64, Option<u64>)> + '_ {
        let (ac, sc) = match self.parent(node) {
            Some(p) => (self.address_cells(p, 2), self.size_cells(p, 1)),
            None => (2, 1),
        };
        let usable = matches!(ac, 1 | 2) && sc <= 2;
        let entry = 4 * (ac + sc) as usize;
        let value = if usable {
            self.prop(node, "reg").unwrap_or(&[])
        } else {
            &[]
        };
        let read = |cells: &[u8]| {
            cells
                .chunks_exact(4)
                .filter_map(|c| c.try_into().ok().map(u32::from_be_bytes))
                .fold(0u64, |acc, c| acc << 32 | u64::from(c))
        };
        value.chunks_exact(entry.max(4)).map(move |e| {
            let (a, s) = e.split_at((4 * ac as usize).min(e.len()));
            (read(a), (sc > 0).then(|| read(s)))
        })
    }

    /// The first node (in DT order) whose `phandle` is `phandle`.
    pub(crate) fn find_phandle(&self, phandle: u32) -> Option<usize> {
        (0..self.nodes.len()).find(|&n| {
            self.prop(n, "phandle")
                .and_then(|v| be32(v, 0))
                .is_some_and(|p| p == phandle)
        })
    }
}

impl PlatformInfo {
    /// Reads a tree (FDT_NOP tokens are skipped, so the firmware's own blob reads too).
    pub fn parse(blob: &[u8]) -> Result<Self, DtError> {
        Self::from_tree(&FlatTree::new(blob).ok_or(DtError::BadBlob)?)
    }

    /// Reads a tree that is already indexed (warden's boot indexes the firmware's tree
    /// once and every reader shares it).
    pub(crate) fn from_tree(t: &FlatTree<'_>) -> Result<Self, DtError> {
        let mut memory: Vec<Range> = t
            .children(0)
            .filter(|&n| {
                t.nodes
                    .get(n)
                    .is_some_and(|n| n.name.split(|&b| b == b'@').next() == Some(b"memory"))
            })
            .flat_map(|n| t.regs(n).collect::<Vec<_>>())
            .filter_map(|(base, size)| Range::from_base_size(base, size?))
            .collect();
        memory.sort_by_key(|r| r.start);
        if memory.is_empty() {
            return Err(DtError::NoMemory);
        }

        let chosen = t.find("/chosen");
        let console = chosen
            .and_then(|c| t.str_prop(c, "stdout-path"))
            .map(|p| p.split(':').next().unwrap_or(p))
            .and_then(|path| {
                if path.starts_with('/') {
                    t.find(path)
                } else {
                    // An alias (Devicetree Specification v0.4 §3.3).
                    let aliases = t.find("/aliases")?;
                    t.find(t.str_prop(aliases, path)?)
                }
            })
            .filter(|&n| t.has_compatible(n, "arm,pl011"))
            .and_then(|n| t.first_reg(n));

        let cpus = t
            .find("/cpus")
            .into_iter()
            .flat_map(|c| t.children(c))
            .filter(|&n| t.nodes.get(n).is_some_and(|n| n.name.starts_with(b"cpu@")))
            .filter_map(|n| t.regs(n).next().map(|(address, _)| address))
            .collect();

        let psci = ["arm,psci-1.0", "arm,psci-0.2", "arm,psci"]
            .iter()
            .find_map(|c| (0..t.nodes.len()).find(|&n| t.has_compatible(n, c)))
            .and_then(|n| t.str_prop(n, "method"))
            .and_then(|m| match m {
                "smc" => Some(Conduit::Smc),
                "hvc" => Some(Conduit::Hvc),
                _ => None,
            });

        let module = |kind: &str| {
            chosen
                .into_iter()
                .flat_map(|c| t.children(c))
                .find(|&n| t.has_compatible(n, kind))
                .and_then(|n| {
                    Some(Module {
                        range: t.first_reg(n)?,
                        bootargs: t.str_prop(n, "bootargs").map(|s| s.to_string()),
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
mod tests;
