//! Unit tests of the DT readers and writers, on the fixtures in tests/fixtures.

use super::*;
use fdt::Fdt;

/// Built from `tests/fixtures/virt.dts` (QEMU virt's tree as TF-A hands it over, plus
/// the multiboot modules the harness adds) with `dtc -O dtb`.
const VIRT_DTB: &[u8] = include_bytes!("../../../tests/fixtures/virt.dtb");

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
const VIRT_TFA_RAW: &[u8] = include_bytes!("../../../tests/fixtures/virt-tfa-raw.dtb");

#[test]
fn normalize_makes_firmware_edited_trees_readable() {
    let normalized = normalize(VIRT_TFA_RAW).unwrap();
    let info = PlatformInfo::parse(&normalized).unwrap();
    assert_eq!(info, PlatformInfo::parse(VIRT_DTB).unwrap());
    // The platform reader skips NOPs itself (the `fdt` crate, which the device plan
    // and the SMMU reader use, misses everything after the first one).
    assert_eq!(
        PlatformInfo::parse(VIRT_TFA_RAW).unwrap(),
        PlatformInfo::parse(VIRT_DTB).unwrap()
    );
    assert!(
        Fdt::new(VIRT_TFA_RAW)
            .unwrap()
            .find_node("/cpus/cpu@1")
            .is_none(),
        "why normalize stays for the other readers"
    );
}

#[test]
fn pruned_drops_whole_subtrees_and_nothing_else() {
    let normalized = normalize(VIRT_TFA_RAW).unwrap();
    let before = Fdt::new(&normalized).unwrap();
    let index = FlatTree::new(VIRT_TFA_RAW).unwrap();
    let mut drop = vec![false; index.len()];
    for path in ["/fw-cfg@9020000", "/flash@4000000", "/cpus/cpu@1"] {
        drop[index.find(path).unwrap()] = true;
    }
    let out = pruned(VIRT_TFA_RAW, &drop).unwrap();
    let after = Fdt::new(&out).unwrap();
    assert!(after.find_node("/fw-cfg@9020000").is_none());
    assert!(after.find_node("/flash@4000000").is_none());
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
    expected.retain(|n| !["fw-cfg@9020000", "flash@4000000", "cpu@1"].contains(&n.as_str()));
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

/// Every QEMU tree warden boots on reads the same platform facts.
#[test]
fn reads_every_fixture() {
    // QEMU's own trees have no /psci: TF-A adds it.
    for (blob, psci) in [
        (
            &include_bytes!("../../../tests/fixtures/virt-gicv2.dtb")[..],
            None,
        ),
        (
            &include_bytes!("../../../tests/fixtures/virt-smmuv3.dtb")[..],
            None,
        ),
        (VIRT_TFA_RAW, Some(Conduit::Smc)),
        (VIRT_DTB, Some(Conduit::Smc)),
    ] {
        let info = PlatformInfo::parse(blob).unwrap();
        assert_eq!(info.memory.len(), 1);
        assert_eq!(info.memory[0].start, 0x4000_0000);
        assert_eq!(info.console, Some(Range::new(0x0900_0000, 0x0900_1000)));
        assert!(!info.cpus.is_empty());
        assert_eq!(info.cpus[0], 0);
        assert_eq!(info.psci, psci, "{info:?}");
    }
    // Truncated trees are refused, never a panic.
    for cut in [0, 8, 40, 100, VIRT_DTB.len() / 2, VIRT_DTB.len() - 1] {
        let _ = PlatformInfo::parse(&VIRT_DTB[..cut]);
    }
}

#[test]
fn rejects_garbage() {
    assert_eq!(normalize(&[0u8; 64]), Err(DtError::BadBlob));
    assert_eq!(PlatformInfo::parse(&[0u8; 64]), Err(DtError::BadBlob));
    assert_eq!(PlatformInfo::parse(&[]), Err(DtError::BadBlob));
}

/// The one index warden's boot builds of the firmware's blob refuses at least every blob
/// that the normalizing copy it replaced refused: whatever byte of the header, the
/// reservation block or the structure block is corrupted, the DT checks at boot are not
/// weaker.
#[test]
fn the_index_refuses_what_normalize_refused() {
    let structure_end = {
        let field =
            |i: usize| u32::from_be_bytes(VIRT_TFA_RAW[4 * i..4 * i + 4].try_into().unwrap());
        (field(2) + field(9)) as usize
    };
    let mut refused = 0;
    for at in (0..structure_end).step_by(5) {
        for v in [0x00, 0x01, 0x02, 0x03, 0x04, 0x09, 0x80, 0xff] {
            let mut blob = VIRT_TFA_RAW.to_vec();
            blob[at] = v;
            if normalize(&blob).is_err() {
                refused += 1;
                assert!(FlatTree::new(&blob).is_none(), "byte {at:#x} = {v:#x}");
            }
        }
    }
    assert!(refused > 100, "{refused}");
}

/// `children` and `subtree_end` step over subtrees with the ends recorded at parse time;
/// they give what a walk by depth gives, on every fixture; so do the cell counts recorded
/// then.
#[test]
fn children_and_subtree_ends_match_a_walk_by_depth() {
    for blob in [
        VIRT_DTB,
        VIRT_TFA_RAW,
        &include_bytes!("../../../tests/fixtures/virt-gicv2.dtb")[..],
        &include_bytes!("../../../tests/fixtures/virt-smmuv3.dtb")[..],
    ] {
        let t = FlatTree::new(blob).unwrap();
        let depth = |n: usize| t.node(n).unwrap().depth;
        for n in 0..t.len() {
            let end = (n + 1..t.len())
                .find(|&i| depth(i) <= depth(n))
                .unwrap_or(t.len());
            assert_eq!(t.subtree_end(n), end, "node {n}");
            let children: Vec<usize> = (n + 1..end).filter(|&i| depth(i) == depth(n) + 1).collect();
            assert_eq!(t.children(n).collect::<Vec<_>>(), children, "node {n}");
            for &c in &children {
                assert_eq!(t.parent(c), Some(n));
            }
            // The cell counts found while indexing are what a lookup by name finds.
            assert_eq!(t.address_cells(n, 7), t.cells(n, "#address-cells", 7));
            assert_eq!(t.size_cells(n, 7), t.cells(n, "#size-cells", 7));
        }
        assert_eq!(t.children(t.len()).count(), 0);
        assert_eq!(t.subtree_end(0), t.len());
    }
}
