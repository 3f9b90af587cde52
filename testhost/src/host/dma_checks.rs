//! DMA isolation: the host programs a PCI device to DMA at its own RAM, at warden's memory
//! and at a page it lent to OP-TEE. warden's SMMU must let the first through and block
//! the others, change nothing, and report them in its counters (WARDEN_COUNTERS x4).
//!
//! The DMA engine is QEMU's `edu` device (hw/misc/edu.c, vendor 0x1234, device 0x11e8):
//! BAR0 registers 0x80 source, 0x88 destination, 0x90 count, 0x98 command (bit 0 start,
//! bit 1 direction: 0 RAM to device, 1 device to RAM); its buffer is at device address
//! 0x40000 (4 KiB); a transfer completes about 100 ms of virtual time after the command,
//! when bit 0 clears. QEMU's default DMA mask is 28 bits: the harness passes
//! `dma_mask=0xffffffffffffffff` so that RAM at 0x40000000 is reachable.
//! QEMU models no caches, so the buffers need no cache maintenance around the transfers.

use warden::ffa::version::FfaVersion;
use warden::platform::memmap::Range;

use warden::hvc::{WARDEN_BOOT_TIMES, WARDEN_COUNTERS, WARDEN_VERSION};

use super::mem_checks::{FFA_MEM_LEND_64, desc, handle_of, reclaim, send};
use super::{FFA_SUCCESS_32, Report, cntpct, error_of, read_u32, write_u32};

const PAGE: u64 = 4096;
const EDU_VENDOR_DEVICE: u32 = 0x11e8_1234;
const EDU_BUFFER: u64 = 0x4_0000;
/// Bytes per transfer: QEMU 7.2's edu stops the machine (hw_error) for a transfer that
/// ends at the end of its 4 KiB buffer (an off-by-one in edu_check_range), so transfers
/// are half a page; checks compare that half.
const LEN: u64 = PAGE / 2;

/// A PCI host bridge with an ECAM window (`pci-host-ecam-generic`, Linux's
/// Documentation/devicetree/bindings/pci/host-generic-pci.yaml) and its 32-bit memory
/// window from `ranges` (PCI bus binding, IEEE 1275: phys.hi space code 0b10).
struct HostBridge {
    ecam: u64,
    mem_cpu: u64,
    mem_pci: u64,
    mem_size: u64,
}

fn cells(bytes: &[u8]) -> alloc::vec::Vec<u64> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64)
        .collect()
}

fn host_bridge(tree: &[u8]) -> Option<HostBridge> {
    let fdt = fdt::Fdt::new(tree).ok()?;
    let node = fdt.find_compatible(&["pci-host-ecam-generic"])?;
    let ecam = node.reg()?.next()?.starting_address as u64;
    // ranges = <phys.hi phys.mid phys.lo  cpu (2 cells)  size (2 cells)>*
    let ranges = cells(node.property("ranges")?.value);
    let window = ranges.chunks_exact(7).find(|e| (e[0] >> 24) & 3 == 0b10)?;
    Some(HostBridge {
        ecam,
        mem_pci: window[1] << 32 | window[2],
        mem_cpu: window[3] << 32 | window[4],
        mem_size: window[5] << 32 | window[6],
    })
}

fn write64(addr: u64, v: u64) {
    // SAFETY: ECAM and BAR space are device memory in the test host's map (outside its
    // normal-memory blocks) and mapped for the host by warden; edu's DMA registers take
    // 8-byte accesses.
    unsafe { (addr as *mut u64).write_volatile(v) }
}

fn fill(page: u64, f: impl Fn(usize) -> u8) {
    for i in 0..PAGE as usize {
        // SAFETY: `page` is a page of the host's scratch RAM, identity-mapped normal.
        unsafe { ((page + i as u64) as *mut u8).write_volatile(f(i)) };
    }
}
fn holds(page: u64, f: impl Fn(usize) -> u8) -> bool {
    (0..LEN as usize).all(|i| {
        // SAFETY: as in `fill`.
        unsafe { ((page + i as u64) as *const u8).read_volatile() == f(i) }
    })
}
fn first_word(page: u64) -> u64 {
    // SAFETY: as in `fill`.
    unsafe { (page as *const u64).read_volatile() }
}

/// QEMU's edu device, its BAR0 assigned and bus mastering on.
struct Edu {
    regs: u64,
    stream: u32,
}

impl Edu {
    /// Looks for the device on bus 0 and sets it up. Returns `None` when there is none.
    fn find(pci: &HostBridge) -> Option<Edu> {
        let (devfn, cfg) = (0..32u64)
            .map(|dev| (dev << 3, pci.ecam + (dev << 15)))
            .find(|&(_, cfg)| read_u32(cfg) == EDU_VENDOR_DEVICE)?;
        // BAR0: a 32-bit memory BAR; its size from the bits that stay zero.
        write_u32(cfg + 0x10, u32::MAX);
        let size = (!(read_u32(cfg + 0x10) & !0xf)).wrapping_add(1) as u64;
        if size == 0 || size > pci.mem_size {
            return None;
        }
        let bar = pci.mem_pci.next_multiple_of(size);
        write_u32(cfg + 0x10, bar as u32);
        // Command: memory space and bus master enable (PCI Local Bus 3.0 §6.2.2).
        write_u32(cfg + 0x04, read_u32(cfg + 0x04) & 0xffff | 0x6);
        Some(Edu {
            regs: pci.mem_cpu + (bar - pci.mem_pci),
            // Bus 0: the requester ID is the devfn, which QEMU's SMMU uses as stream ID.
            stream: devfn as u32,
        })
    }

    /// Runs one transfer of `len` bytes (less than a page) and waits for it (at most 5 s of
    /// counter time).
    fn transfer(&self, src: u64, dst: u64, len: u64, to_ram: bool) -> bool {
        write64(self.regs + 0x80, src);
        write64(self.regs + 0x88, dst);
        write64(self.regs + 0x90, len);
        write64(self.regs + 0x98, 1 | (to_ram as u64) << 1);
        let freq: u64;
        // SAFETY: reading the counter frequency has no side effects.
        unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) freq) };
        let deadline = cntpct() + 5 * freq;
        while read_u32(self.regs + 0x98) & 1 != 0 {
            if cntpct() > deadline {
                return false;
            }
            core::hint::spin_loop();
        }
        true
    }
    /// `LEN` bytes of RAM (or anything) at `addr` into the device's buffer.
    fn read_into_device(&self, addr: u64) -> bool {
        self.transfer(addr, EDU_BUFFER, LEN, false)
    }
    /// `LEN` bytes of the device's buffer to `addr`.
    fn write_from_device(&self, addr: u64) -> bool {
        self.transfer(EDU_BUFFER, addr, LEN, true)
    }
}

fn dma_faults() -> u64 {
    smccc::hvc64(WARDEN_COUNTERS, [0; 17])[4]
}

fn pattern(seed: u8) -> impl Fn(usize) -> u8 {
    move |i| (i as u8).wrapping_mul(7).wrapping_add(seed) | 1
}

/// The checks [`run`] makes: all six whenever the host's DT has a PCI host bridge (which
/// warden leaves there only behind an SMMU it owns, where the scenario supplies edu).
pub fn planned(tree: &[u8]) -> u32 {
    if host_bridge(tree).is_some() { 6 } else { 0 }
}

/// Runs the DMA checks if the DT has a PCI host bridge with an edu device on it;
/// `scratch` is 1 MiB of host RAM for the buffers. `warden_word` is the address of
/// warden's boot-timestamp word (the harness takes it from warden's symbol table), which
/// the host reads back through WARDEN_BOOT_TIMES; without it, the DMA aims at the start
/// of warden's memory.
pub fn run(
    r: &mut Report,
    tree: &[u8],
    version: u32,
    tx: u64,
    scratch: Range,
    warden: Range,
    warden_word: Option<u64>,
) {
    let Some(pci) = host_bridge(tree) else {
        say!("testhost: no PCI host bridge: DMA checks skipped");
        return;
    };
    let Some(edu) = Edu::find(&pci) else {
        say!("testhost: no edu device: DMA checks skipped");
        return;
    };
    let id = read_u32(edu.regs);
    say!(
        "testhost: edu at stream {:#x}, registers at {:#x} (ID {id:#x})",
        edu.stream,
        edu.regs
    );
    let v = FfaVersion::decode(version).unwrap_or(FfaVersion::V1_2);
    let [src, dst, lent, spare] = [0, 1, 2, 3].map(|i| scratch.start + i * PAGE);

    // (a) A round trip through host RAM: a pattern in, the same pattern out.
    fill(src, pattern(0x11));
    fill(dst, |_| 0);
    let ok = edu.read_into_device(src) && edu.write_from_device(dst);
    r.check(
        "DMA round trip through host RAM",
        ok && holds(dst, pattern(0x11)),
        format_args!("completed {ok}, first word {:#x}", first_word(dst)),
    );

    // (c) From warden's first page into the host's: nothing of warden's arrives. The
    // device buffer holds a known pattern; a blocked read leaves it (QEMU reads zeros for
    // an aborted transaction, hence either).
    let before = dma_faults();
    fill(src, pattern(0x22));
    fill(dst, |_| 0x5a);
    let ok = edu.read_into_device(src)
        && edu.read_into_device(warden.start)
        && edu.write_from_device(dst);
    let clean = holds(dst, pattern(0x22)) || holds(dst, |_| 0);
    let faults = dma_faults() - before;
    r.check(
        "DMA from warden's memory leaks nothing and is recorded",
        ok && clean && faults >= 1,
        format_args!(
            "completed {ok}, first word read {:#x}, {faults} fault(s) recorded",
            first_word(dst)
        ),
    );

    // (d) A page lent to OP-TEE: a DMA to it during the lend changes nothing, one from
    // it reads nothing; after the reclaim it holds what the host wrote, and DMA works.
    let before = dma_faults();
    fill(lent, pattern(0x33));
    let l = send(FFA_MEM_LEND_64, &desc(v, &[(lent, 1)], true), tx);
    let h = handle_of(&l);
    r.check(
        "MEM_LEND of the DMA target page",
        h.is_some(),
        format_args!("{:#x} {:?}", l[0], error_of(&l)),
    );
    fill(src, pattern(0x44));
    fill(spare, |_| 0);
    let ok = edu.read_into_device(src)
        && edu.write_from_device(lent)
        && edu.read_into_device(lent)
        && edu.write_from_device(spare);
    let faults = dma_faults() - before;
    let rc = reclaim(h.unwrap_or(0));
    let untouched = holds(lent, pattern(0x33));
    let nothing_read = !holds(spare, pattern(0x33));
    r.check(
        "DMA to and from a lent page is blocked and recorded",
        ok && rc[0] == FFA_SUCCESS_32 && untouched && nothing_read && faults >= 2,
        format_args!(
            "completed {ok}, reclaim {:#x}, page first word {:#x}, read {:#x}, {faults} fault(s)",
            rc[0],
            first_word(lent),
            first_word(spare)
        ),
    );
    // (A blocked read leaves the device buffer as QEMU answers it: reload it.)
    let ok = edu.read_into_device(src) && edu.write_from_device(lent);
    r.check(
        "DMA to the reclaimed page works again",
        ok && holds(lent, pattern(0x44)),
        format_args!("completed {ok}, first word {:#x}", first_word(lent)),
    );

    // (b) Into warden's memory: its boot-timestamp word (8 bytes), or the start of its
    // memory (its entry code). Blocked, recorded, and warden carries on
    // unchanged. Last, because without an SMMU that could break warden for good.
    let times = smccc::hvc64(WARDEN_BOOT_TIMES, [0; 17]);
    let before = dma_faults();
    fill(src, pattern(0x55));
    let (target, len) = warden_word.map_or((warden.start, LEN), |w| (w, 8));
    let ok = edu.read_into_device(src) && edu.transfer(EDU_BUFFER, target, len, true);
    let faults = dma_faults() - before;
    let version_now = smccc::hvc64(WARDEN_VERSION, [0; 17])[0];
    let times_now = smccc::hvc64(WARDEN_BOOT_TIMES, [0; 17]);
    r.check(
        "DMA into warden's memory is blocked and recorded; warden unaffected",
        ok && faults >= 1 && version_now == 0x1_0002 && times_now[..3] == times[..3],
        format_args!(
            "completed {ok}, {faults} fault(s), version {version_now:#x}, boot word {:#x} -> {:#x}",
            times[1], times_now[1]
        ),
    );
    say!(
        "testhost: warden recorded {} blocked DMA(s) in all",
        dma_faults()
    );
}
