//! Devices the host may not program (warden's MMIO default-deny): the DMA-capable frames of
//! QEMU's virt board are out of the host's reach, their nodes are gone from its DT, and a
//! hostile host that aims fw_cfg's DMA or the GIC ITS's tables at warden's memory or at a
//! lent page changes nothing. The addresses are QEMU virt's (hw/arm/virt.c, `base_memmap`):
//! the host's DT no longer names the hidden devices, which is the point.

use warden::ffa::version::FfaVersion;
use warden::platform::memmap::Range;

use warden::hvc::WARDEN_BOOT_TIMES;

use super::mem_checks::{FFA_MEM_LEND_64, desc, handle_of, reclaim, send};
use super::{
    FFA_SUCCESS_32, Report, error_of, fetch_from_first_gib, poke, probe, read_u32, write_u32,
};

const FW_CFG: u64 = 0x0902_0000;
/// The fw_cfg DMA address register: big-endian, a 64-bit write starts the transfer
/// (QEMU docs/specs/fw_cfg.rst).
const FW_CFG_DMA: u64 = FW_CFG + 0x10;
const ITS: u64 = 0x0808_0000;
/// GITS_CBASER and GITS_BASER0 (IHI 0069 §12.19): where the ITS reads commands and
/// writes its device and collection tables.
const GITS_CBASER: u64 = ITS + 0x80;
const GITS_BASER0: u64 = ITS + 0x100;
const VIRTIO_MMIO: u64 = 0x0a00_0000;
const SECURE_UART: u64 = 0x0904_0000;
const SMMU: u64 = 0x0905_0000;
const PCIE_ECAM: u64 = 0x40_1000_0000;
const PCIE_MMIO: u64 = 0x1000_0000;
const GICD: u64 = 0x0800_0000;
const RTC: u64 = 0x0901_0000;
const PAGE: u64 = 4096;
/// The fw_cfg DMA control word: select key 0 (the signature, "QEMU"), then read it.
const FW_CFG_DMA_SELECT_SIGNATURE_READ: u32 = 0x0000_0008 | 0x0000_0002;
/// What a successful fw_cfg DMA of the signature writes, as a little-endian word.
const QEMU_SIGNATURE: u32 = u32::from_le_bytes(*b"QEMU");

/// Compatibles of devices the host must not be told about.
const HIDDEN_KINDS: [&str; 4] = [
    "qemu,fw-cfg-mmio",
    "virtio,mmio",
    "arm,gic-v3-its",
    "arm,smmu-v3",
];

fn is_abort_at(fault: (u64, u64), addr: u64) -> bool {
    fault.0 >> 26 == 0x25 && fault.1 == addr
}

/// The fw_cfg DMA descriptor (FWCfgDmaAccess: be32 control, be32 length, be64 address).
#[repr(C, align(64))]
struct FwCfgDma([u8; 16]);
static mut DMA_DESCRIPTOR: FwCfgDma = FwCfgDma([0; 16]);

/// Asks fw_cfg to DMA its 4-byte signature to `target`; returns the fault, if any.
fn fw_cfg_dma_signature_to(target: u64) -> (u64, u64) {
    let mut d = [0u8; 16];
    d[0..4].copy_from_slice(&FW_CFG_DMA_SELECT_SIGNATURE_READ.to_be_bytes());
    d[4..8].copy_from_slice(&4u32.to_be_bytes());
    d[8..16].copy_from_slice(&target.to_be_bytes());
    // SAFETY: this CPU alone uses the descriptor, and only for the call below.
    unsafe { (&raw mut DMA_DESCRIPTOR).write_volatile(FwCfgDma(d)) };
    let at = &raw const DMA_DESCRIPTOR as u64;
    poke(FW_CFG_DMA, at.swap_bytes())
}

/// The checks [`run`] makes for this host DT and command line.
pub fn planned(tree: &[u8], warden_word: Option<u64>) -> u32 {
    let pcie_is_the_hosts = fdt::Fdt::new(tree)
        .ok()
        .is_some_and(|f| f.find_compatible(&["pci-host-ecam-generic"]).is_some());
    // DT 6, hidden frames 7 (5 when PCIe is the host's), kept frames 2, the fetch 1,
    // fw_cfg into warden 1 (+1 read back with `warden_word`), the lent page 6.
    6 + if pcie_is_the_hosts { 5 } else { 7 } + 2 + 1 + 1 + u32::from(warden_word.is_some()) + 6
}

/// `warden_word`: the address of a word in warden's memory whose value the host can read
/// back through an HVC (the boot-timestamp word; the harness takes it from warden's symbol
/// table), or `None` to aim at the start of warden's memory without reading it back.
pub fn run(
    r: &mut Report,
    tree: &[u8],
    version: u32,
    tx: u64,
    page: u64,
    warden: Option<Range>,
    warden_word: Option<u64>,
) {
    // The host's DT names no device it may not use, and every device it names is usable.
    let Ok(fdt) = fdt::Fdt::new(tree) else {
        r.check("host DT readable", false, format_args!(""));
        return;
    };
    for kind in HIDDEN_KINDS {
        let node = fdt.find_compatible(&[kind]);
        r.check(
            "host DT names no device it may not use",
            node.is_none(),
            format_args!("{kind} at {:?}", node.map(|n| n.name)),
        );
    }
    r.check(
        "host DT has no secure-world node",
        fdt.find_node("/secure-chosen").is_none()
            && fdt
                .all_nodes()
                .all(|n| n.property("secure-status").is_none()),
        format_args!(""),
    );
    let mut listed = 0;
    let mut unusable = None;
    for node in fdt.all_nodes().filter(|n| n.compatible().is_some()) {
        let Some(regs) = node.reg() else {
            continue;
        };
        // CPUs, memory and boot modules have `reg` but are not devices.
        let device_type = node.property("device_type").and_then(|p| p.as_str());
        let module = node
            .compatible()
            .is_some_and(|c| c.all().any(|s| s.starts_with("multiboot,")));
        if matches!(device_type, Some("cpu" | "memory")) || module {
            continue;
        }
        listed += 1;
        // Every frame, not just the first: a GICv2's node may list GICH and GICV after
        // GICD and GICC, and the host's DT must not name frames the host cannot use.
        for reg in regs {
            let addr = reg.starting_address as u64;
            let fault = probe(addr, false);
            if fault.0 != 0 && unusable.is_none() {
                unusable = Some((node.name, addr, fault.0));
            }
        }
    }
    r.check(
        "every device the host DT names reads without an abort",
        listed >= 3 && unusable.is_none(),
        format_args!("{listed} devices, first unusable {unusable:x?}"),
    );

    // Hidden frames fault (stage-2 leaves them unmapped); the host's own devices do not.
    // PCIe is the host's when every stream behind it goes through an SMMU warden owns: its
    // node then stays in the host's DT, and the check above covers it.
    let pcie_is_the_hosts = fdt.find_compatible(&["pci-host-ecam-generic"]).is_some();
    for (name, addr) in [
        ("a read of fw_cfg faults", FW_CFG),
        ("a read of the GIC ITS faults", ITS),
        ("a read of a virtio-mmio transport faults", VIRTIO_MMIO),
        ("a read of the secure UART faults", SECURE_UART),
        (
            "a read of PCIe ECAM (no SMMU of warden's) faults",
            PCIE_ECAM,
        ),
        ("a read of the PCIe MMIO window faults", PCIE_MMIO),
        ("a read of the SMMU's frame faults", SMMU),
    ] {
        if pcie_is_the_hosts && (addr == PCIE_ECAM || addr == PCIE_MMIO) {
            continue;
        }
        let fault = probe(addr, false);
        r.check(
            name,
            is_abort_at(fault, addr),
            format_args!("ESR {:#x} FAR {:#x}", fault.0, fault.1),
        );
    }
    for (name, addr) in [
        ("the host keeps its GIC distributor", GICD),
        ("the host keeps its RTC", RTC),
    ] {
        let fault = probe(addr, false);
        r.check(name, fault.0 == 0, format_args!("ESR {:#x}", fault.0));
    }

    // An instruction fetch from a device page the host does map is a stage-2 permission
    // fault: it must reach the host as an abort, not be retried forever.
    let flash = 0x0400_0000;
    let fault = fetch_from_first_gib(flash);
    r.check(
        "a fetch from a device page reaches the host as an instruction abort",
        fault.0 >> 26 == 0x21 && fault.1 == flash,
        format_args!("ESR {:#x} FAR {:#x}", fault.0, fault.1),
    );

    // fw_cfg's DMA aimed at warden's memory: the register is out of reach, and warden's
    // word reads back as before.
    let boot_times = || smccc::hvc64(WARDEN_BOOT_TIMES, [0; 17])[1];
    let before = boot_times();
    let target = warden_word
        .or(warden.map(|w| w.start))
        .unwrap_or(0x6000_0000);
    let fault = fw_cfg_dma_signature_to(target);
    r.check(
        "fw_cfg DMA into warden's memory: the DMA register faults",
        is_abort_at(fault, FW_CFG_DMA),
        format_args!("ESR {:#x} FAR {:#x}", fault.0, fault.1),
    );
    if warden_word.is_some() {
        let after = boot_times();
        r.check(
            "fw_cfg DMA into warden's memory: warden's word is unchanged",
            after == before && after as u32 != QEMU_SIGNATURE,
            format_args!("{before:#x} -> {after:#x}"),
        );
    }

    // The same DMA aimed at a page the host has lent to OP-TEE.
    let v = FfaVersion::decode(version).unwrap_or(FfaVersion::V1_2);
    write_u32(page, 0xa5a5_a5a5);
    let lend = send(FFA_MEM_LEND_64, &desc(v, &[(page, 1)], true), tx);
    let handle = handle_of(&lend);
    r.check(
        "MEM_LEND of the page fw_cfg will aim at",
        handle.is_some(),
        format_args!("{:#x} {:?}", lend[0], error_of(&lend)),
    );
    let fault = fw_cfg_dma_signature_to(page);
    r.check(
        "fw_cfg DMA into a lent page: the DMA register faults",
        is_abort_at(fault, FW_CFG_DMA),
        format_args!("ESR {:#x} FAR {:#x}", fault.0, fault.1),
    );
    // The GIC ITS's command queue and table bases aimed at the lent page and at warden.
    for (name, reg, at) in [
        (
            "ITS command queue in a lent page: GITS_CBASER faults",
            GITS_CBASER,
            page,
        ),
        (
            "ITS table in warden's memory: GITS_BASER0 faults",
            GITS_BASER0,
            target & !(PAGE - 1),
        ),
    ] {
        let fault = poke(reg, at | 1 << 63);
        r.check(
            name,
            is_abort_at(fault, reg),
            format_args!("ESR {:#x} FAR {:#x}", fault.0, fault.1),
        );
    }
    let rc = reclaim(handle.unwrap_or(0));
    r.check(
        "MEM_RECLAIM of that page",
        rc[0] == FFA_SUCCESS_32,
        format_args!("{:?}", error_of(&rc)),
    );
    let word = read_u32(page);
    r.check(
        "the reclaimed page holds what the host wrote before lending",
        word == 0xa5a5_a5a5,
        format_args!(
            "{word:#x}{}",
            if word == QEMU_SIGNATURE {
                " (fw_cfg's DMA wrote it)"
            } else {
                ""
            }
        ),
    );
}
