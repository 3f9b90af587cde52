//! Unit tests of the SMMU DMA table: its map, lends and reclaims, and the per-range work bound.

use super::*;
use std::vec;

const MIB: u64 = 0x10_0000;

/// Records what the table asked of the SMMU.
#[derive(Default)]
struct Smmu {
    invalidations: usize,
    publishes: usize,
    fail: bool,
}
impl TableSync for Smmu {
    fn publish(&mut self, tables: &[usize]) {
        assert!(!tables.is_empty());
        self.publishes += 1;
    }
    fn invalidate(&mut self, _: &[usize]) -> Result<(), SmmuError> {
        self.invalidations += 1;
        if self.fail {
            Err(SmmuError::Timeout("CMD_SYNC"))
        } else {
            Ok(())
        }
    }
}

/// QEMU virt's RAM with warden's 16 MiB at 0x60000000 taken out.
fn qemu_ram() -> Vec<Range> {
    vec![
        Range::new(0x4000_0000, 0x6000_0000),
        Range::new(0x6100_0000, 0x8000_0000),
    ]
}

fn check_matches(t: &DmaTable, within: Range, owned: &dyn Fn(u64) -> bool) {
    let mut a = within.start;
    while a < within.end {
        assert_eq!(t.maps(a), owned(a), "page {a:#x}");
        a += PAGE;
    }
}

#[test]
fn maps_host_ram_only() {
    let t = DmaTable::new(&qemu_ram()).unwrap();
    for a in [0x4000_0000u64, 0x5fff_f000, 0x6100_0000, 0x7fff_f000] {
        assert!(t.maps(a), "{a:#x}");
    }
    // warden, MMIO (UART, PCIe window, the SMMU itself), beyond RAM.
    for a in [
        0x6000_0000u64,
        0x60ff_f000,
        0x0900_0000,
        0x0905_0000,
        0x1000_0000,
        0x8000_0000,
        0x40_1000_0000,
    ] {
        assert!(!t.maps(a), "{a:#x}");
    }
    assert!(!t.tables().is_empty());
    assert_eq!(t.root() as usize, t.tables()[0]);
}

#[test]
fn a_lend_breaks_the_block_invalidates_then_maps_the_rest() {
    let mut t = DmaTable::new(&qemu_ram()).unwrap();
    let mut smmu = Smmu::default();
    let page = Range::new(0x5000_1000, 0x5000_2000);
    t.lend(&[page], &mut smmu).unwrap();
    assert_eq!((smmu.invalidations, smmu.publishes), (1, 1));
    assert!(!t.maps(0x5000_1000));
    assert!(t.maps(0x5000_0000) && t.maps(0x5000_2000) && t.maps(0x501f_f000));
    assert!(matches!(t.block_state(0x5000_0000), BlockState::Pages(_)));
    // A second lend in the split block only unmaps pages (no break).
    t.lend(&[Range::new(0x5000_3000, 0x5000_5000)], &mut smmu)
        .unwrap();
    assert!(!t.maps(0x5000_3000) && !t.maps(0x5000_4000) && t.maps(0x5000_5000));
    t.restore(&[page], &mut smmu).unwrap();
    assert!(t.maps(0x5000_1000) && !t.maps(0x5000_3000));
    assert_eq!(t.map.translation().freed, 0);
}

#[test]
fn whole_blocks_and_ranges_across_blocks() {
    let mut t = DmaTable::new(&qemu_ram()).unwrap();
    let mut smmu = Smmu::default();
    // A whole 2 MiB block, then a range over three blocks, one of them already split.
    t.lend(&[Range::new(0x4400_0000, 0x4420_0000)], &mut smmu)
        .unwrap();
    assert_eq!(t.block_state(0x4400_0000), BlockState::Unmapped);
    t.lend(&[Range::new(0x4450_0000, 0x4450_1000)], &mut smmu)
        .unwrap();
    let across = Range::new(0x443f_f000, 0x4460_1000);
    // A lend of a page that is lent already is refused and changes nothing (the
    // stage-2 refuses it first; the table does not count lends of a page).
    let before = smmu.invalidations;
    assert_eq!(t.lend(&[across], &mut smmu), Err(SmmuError::AlreadyLent));
    assert_eq!(
        t.lend(
            &[
                Range::new(0x4470_0000, 0x4470_2000),
                Range::new(0x4470_1000, 0x4470_3000)
            ],
            &mut smmu
        ),
        Err(SmmuError::AlreadyLent)
    );
    assert_eq!(smmu.invalidations, before);
    assert!(t.maps(0x443f_f000) && t.maps(0x4470_0000) && !t.maps(0x4450_0000));
    // The same range around the lent page, in two pieces.
    let pieces = [
        Range::new(across.start, 0x4450_0000),
        Range::new(0x4450_1000, across.end),
    ];
    t.lend(&pieces, &mut smmu).unwrap();
    let lent = |a: u64| {
        (0x4400_0000..0x4420_0000).contains(&a)
            || (0x4450_0000..0x4450_1000).contains(&a)
            || across.contains(a)
    };
    let ram = qemu_ram();
    let owned = |a: u64| ram.iter().any(|r| r.contains(a)) && !lent(a);
    check_matches(&t, Range::new(0x43e0_0000, 0x4480_0000), &owned);
    // The split block in the middle (0x44400000) is entirely lent now: still a table.
    assert!(matches!(t.block_state(0x4440_0000), BlockState::Pages(_)));
    t.restore(&pieces, &mut smmu).unwrap();
    t.restore(&[Range::new(0x4400_0000, 0x4420_0000)], &mut smmu)
        .unwrap();
    assert_eq!(t.block_state(0x4400_0000), BlockState::Block);
    let owned =
        |a: u64| ram.iter().any(|r| r.contains(a)) && !(0x4450_0000..0x4450_1000).contains(&a);
    check_matches(&t, Range::new(0x43e0_0000, 0x4480_0000), &owned);
    assert_eq!(t.map.translation().freed, 0);
}

#[test]
fn a_failed_invalidation_undoes_the_lend() {
    let mut t = DmaTable::new(&qemu_ram()).unwrap();
    let mut smmu = Smmu {
        fail: true,
        ..Smmu::default()
    };
    let r = Range::new(0x4a00_3000, 0x4a20_5000);
    assert!(t.lend(&[r], &mut smmu).is_err());
    check_matches(&t, Range::new(0x49e0_0000, 0x4a60_0000), &|_| true);
    assert!(t.lent.is_empty());
    check_matches(&t, Range::new(0x49e0_0000, 0x4a60_0000), &|_| true);
}

#[test]
fn next_to_warden_memory() {
    // Lending the last host page below warden's memory and the first above it never
    // maps warden's memory, in the broken blocks or after.
    let mut t = DmaTable::new(&qemu_ram()).unwrap();
    let mut smmu = Smmu::default();
    let below = Range::new(0x5fff_f000, 0x6000_0000);
    let above = Range::new(0x6100_0000, 0x6100_1000);
    t.lend(&[below, above], &mut smmu).unwrap();
    assert_eq!(smmu.invalidations, 1);
    let ram = qemu_ram();
    let owned =
        |a: u64| ram.iter().any(|r| r.contains(a)) && !below.contains(a) && !above.contains(a);
    check_matches(&t, Range::new(0x5fc0_0000, 0x6140_0000), &owned);
    t.restore(&[below, above], &mut smmu).unwrap();
    check_matches(&t, Range::new(0x5fc0_0000, 0x6140_0000), &|a| {
        ram.iter().any(|r| r.contains(a))
    });
}

/// Random lends and reclaims of page ranges in 8 MiB: after every operation the table
/// maps exactly the host's pages, never breaks a live block without invalidating
/// (the library checks break-before-make here), and never frees a table.
#[test]
fn follows_ownership_under_random_lends_and_reclaims() {
    let base = 0x4800_0000u64;
    let pages = (8 * MIB / PAGE) as usize;
    let mut t = DmaTable::new(&qemu_ram()).unwrap();
    let mut smmu = Smmu::default();
    let mut owner = vec![None::<usize>; pages];
    let mut lends: Vec<Option<Range>> = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    for _ in 0..400 {
        let live: Vec<usize> = (0..lends.len()).filter(|&i| lends[i].is_some()).collect();
        if !live.is_empty() && rand(3) == 0 {
            let i = live[rand(live.len() as u64) as usize];
            let r = lends[i].take().unwrap();
            t.restore(&[r], &mut smmu).unwrap();
            for p in ((r.start - base) / PAGE)..((r.end - base) / PAGE) {
                owner[p as usize] = None;
            }
        } else {
            // Up to 600 pages, so whole blocks and ranges across blocks happen too.
            let first = rand(pages as u64) as usize;
            let len = 1 + rand(600.min((pages - first) as u64)) as usize;
            if owner[first..first + len].iter().any(Option::is_some) {
                continue;
            }
            let r = Range::new(
                base + first as u64 * PAGE,
                base + (first + len) as u64 * PAGE,
            );
            t.lend(&[r], &mut smmu).unwrap();
            owner[first..first + len].fill(Some(lends.len()));
            lends.push(Some(r));
        }
        for (i, o) in owner.iter().enumerate() {
            let a = base + i as u64 * PAGE;
            assert_eq!(t.maps(a), o.is_none(), "page {a:#x}");
        }
        assert!(t.maps(base - PAGE) && t.maps(base + 8 * MIB));
    }
    assert_eq!(t.map.translation().freed, 0);
}

/// A lend and a reclaim of N single-page ranges (every other page, so that each 2 MiB
/// block is broken and mapped back in 256 pieces) cost a bounded amount of work per
/// range: bitmap words plus table updates, however many ranges are lent. A list of lent
/// ranges subtracted from each block made it quadratic (4,000 ranges: 0.37 s natively).
#[test]
fn lend_and_reclaim_work_is_linear_in_the_ranges() {
    let mut per_range = Vec::new();
    for n in [250u64, 1000, 4000] {
        let mut t = DmaTable::new(&qemu_ram()).unwrap();
        let mut smmu = Smmu::default();
        let ranges: Vec<Range> = (0..n)
            .map(|i| Range::new(0x4800_0000 + 2 * i * PAGE, 0x4800_0000 + (2 * i + 1) * PAGE))
            .collect();
        let start = t.work();
        t.lend(&ranges, &mut smmu).unwrap();
        let lend = t.work() - start;
        // Exactly the lent pages are gone, in the blocks broken and around them.
        let around = Range::new(0x4800_0000 - BLOCK, 0x4800_0000 + 2 * n * PAGE + BLOCK);
        check_matches(&t, around, &|a| !ranges.iter().any(|r| r.contains(a)));
        t.restore(&ranges, &mut smmu).unwrap();
        let reclaim = t.work() - start - lend;
        check_matches(&t, around, &|_| true);
        assert!(t.lent.is_empty());
        // Again, now that every block is split: the pages go and come back in place.
        t.lend(&ranges, &mut smmu).unwrap();
        check_matches(&t, around, &|a| !ranges.iter().any(|r| r.contains(a)));
        t.restore(&ranges, &mut smmu).unwrap();
        check_matches(&t, around, &|_| true);
        assert_eq!(t.map.translation().freed, 0);
        // Per range: one bitmap word to check and one to mark, one table update to
        // unmap, and the page around it mapped back (one update, a bitmap word or two);
        // a reclaim: one word and one update.
        assert!(lend <= 8 * n, "lend of {n} ranges: {lend}");
        assert!(reclaim <= 4 * n, "reclaim of {n} ranges: {reclaim}");
        per_range.push((lend + reclaim) as f64 / n as f64);
    }
    // Flat per range from 250 to 4,000 ranges.
    assert!(per_range[2] <= per_range[0] * 1.1, "{per_range:?}");
}
