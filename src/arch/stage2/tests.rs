//! Stage-2 unit tests: the map, lends and reclaims, and the per-range work bound.

use super::*;

const RAM: Range = Range::new(0x4000_0000, 0x8000_0000);
const WARDEN: Range = Range::new(0x6000_0000, 0x6100_0000);

fn stage2() -> HostStage2 {
    let layout = crate::platform::memmap::host_layout(
        &[RAM],
        &[WARDEN],
        &[Range::new(0x0900_0000, 0x0900_1000)],
        1 << 39,
    );
    HostStage2::new(&layout, 39).unwrap()
}

/// The table is live from `new` on; on the host, where no walker uses it, it may go.
impl Drop for HostStage2 {
    fn drop(&mut self) {
        self.map.mark_inactive();
    }
}

/// What the table says about `ipa`: Some(level) of a valid leaf, None if unmapped.
fn leaf(s: &HostStage2, ipa: u64) -> Option<usize> {
    let mut found = None;
    s.map
        .walk_range(&region(Range::new(ipa, ipa + PAGE)), &mut |_, d, level| {
            if d.is_valid() {
                found = Some(level);
            }
            Ok(())
        })
        .unwrap();
    found
}

/// `n` single-page ranges, every other page from `base`.
fn scattered(base: u64, n: u64) -> Vec<Range> {
    (0..n)
        .map(|i| Range::new(base + 2 * PAGE * i, base + 2 * PAGE * i + PAGE))
        .collect()
}

#[test]
fn lend_unmaps_exactly_the_ranges_and_restore_maps_them_back() {
    let mut s = stage2();
    let base = 0x4820_0000;
    assert_eq!(leaf(&s, base), Some(2), "RAM starts as 2 MiB blocks");
    let ranges = scattered(base, 3);
    s.lend(&ranges).unwrap();
    for r in &ranges {
        assert_eq!(leaf(&s, r.start), None);
        assert!(!s.host_may_access(r.start));
        assert_eq!(
            leaf(&s, r.end),
            Some(3),
            "the page between stays the host's"
        );
        assert!(s.host_may_access(r.end));
    }
    assert_eq!(leaf(&s, base + BLOCK - PAGE), Some(3));
    assert_eq!(
        leaf(&s, base + BLOCK),
        Some(2),
        "the next block is untouched"
    );
    s.restore(&ranges).unwrap();
    for r in &ranges {
        assert_eq!(leaf(&s, r.start), Some(3));
        assert!(s.host_may_access(r.start));
    }
    assert_eq!(s.lent_pages(), 0);
    assert!(
        !s.host_may_access(WARDEN.start),
        "warden is never the host's"
    );
}

#[test]
fn ranges_across_blocks_and_whole_blocks() {
    let mut s = stage2();
    // From the last page of one block, through two whole blocks, into a third.
    let r = Range::new(0x4840_0000 - PAGE, 0x4880_0000 + 2 * PAGE);
    s.lend(&[r]).unwrap();
    for ipa in [r.start, 0x4840_0000, 0x4860_0000, 0x4880_0000, r.end - PAGE] {
        assert_eq!(leaf(&s, ipa), None, "{ipa:#x}");
    }
    assert_eq!(leaf(&s, r.start - PAGE), Some(3));
    assert_eq!(leaf(&s, r.end), Some(3));
    // A second lend in the same split block, under another handle.
    let other = Range::new(r.start - 4 * PAGE, r.start - 3 * PAGE);
    s.lend(&[other]).unwrap();
    assert_eq!(leaf(&s, other.start), None);
    s.restore(&[r]).unwrap();
    assert_eq!(
        leaf(&s, other.start),
        None,
        "another handle's page stays lent"
    );
    assert_eq!(
        leaf(&s, 0x4860_0000),
        Some(2),
        "whole blocks come back as blocks"
    );
    assert_eq!(leaf(&s, r.start), Some(3));
    s.restore(&[other]).unwrap();
    assert_eq!(leaf(&s, other.start), Some(3));
}

/// Many pages of one block in one lend take the one-pass path: exactly they go, and
/// exactly they come back, around another handle's page in the same block.
#[test]
fn dense_lends_and_reclaims_in_one_pass_per_block() {
    let mut s = stage2();
    let base = 0x4a00_0000;
    let other = Range::new(base + 5 * PAGE, base + 6 * PAGE);
    s.lend(&[other]).unwrap();
    let dense = scattered(base, 256);
    let before = s.work().table_updates;
    s.lend(&dense).unwrap();
    assert!(
        s.work().table_updates - before < 8,
        "one pass, not 256 updates"
    );
    for page in 0..512 {
        let ipa = base + page * PAGE;
        let lent = page % 2 == 0 || ipa == other.start;
        assert_eq!(leaf(&s, ipa).is_none(), lent, "page {page} after the lend");
        assert_eq!(s.host_may_access(ipa), !lent);
    }
    // A reclaim list with, among the batched pages, a range that is not wholly lent
    // (pages 5-7: another handle's, one of this lend's, and a host page): that range
    // brings back only what no one holds, and the batch around it does not touch it.
    let odd = Range::new(base + 5 * PAGE, base + 8 * PAGE);
    let mut list: Vec<Range> = dense[..3].to_vec();
    list.push(odd);
    list.extend_from_slice(&dense[4..]);
    s.restore(&list).unwrap();
    for page in 0..512 {
        let ipa = base + page * PAGE;
        let held = ipa == other.start || page == 6;
        assert_eq!(leaf(&s, ipa).is_none(), held, "page {page} after");
    }
    s.restore(&[dense[3]]).unwrap();
    assert_eq!(s.lent_pages(), 1);
    assert_eq!(leaf(&s, other.start), None);
}

#[test]
fn refused_lends_change_nothing() {
    let mut s = stage2();
    let a = Range::new(0x4400_0000, 0x4400_2000);
    s.lend(&[a]).unwrap();
    let before = s.lent_pages();
    let overlapping = [
        Range::new(0x4500_0000, 0x4500_1000),
        Range::new(0x4400_1000, 0x4400_3000),
    ];
    assert_eq!(
        s.lend(&overlapping),
        Err(Stage2Error::AlreadyLent(overlapping[1]))
    );
    let twice = [
        Range::new(0x4500_0000, 0x4500_2000),
        Range::new(0x4500_1000, 0x4500_3000),
    ];
    assert!(matches!(s.lend(&twice), Err(Stage2Error::AlreadyLent(_))));
    assert!(matches!(
        s.lend(&[Range::new(0x4500_0800, 0x4500_1000)]),
        Err(Stage2Error::Unaligned(_))
    ));
    assert_eq!(s.lent_pages(), before);
    assert_eq!(leaf(&s, 0x4500_0000), Some(2), "nothing was unmapped");
    assert!(s.host_may_access(0x4500_0000));
}

/// The work of a lend and its reclaim grows linearly with the number of ranges: the
/// operations per range stay under a constant, whether the host already holds many
/// lent ranges or none, and with ranges scattered over few or many blocks.
#[test]
fn work_per_range_is_bounded() {
    /// (walks, table updates and bitmap words; level-3 entries written directly, less the
    /// host's pages written back in the blocks broken: at most 512 each) of a lend of
    /// `ranges` and its reclaim.
    fn cost(s: &mut HostStage2, ranges: &[Range]) -> (u64, u64) {
        let before = s.work();
        s.lend(ranges).unwrap();
        s.restore(ranges).unwrap();
        let after = s.work();
        (
            (after.table_updates - before.table_updates)
                + (after.walks - before.walks)
                + (after.bitmap_words - before.bitmap_words),
            (after.entries - before.entries)
                .saturating_sub(512 * (after.blocks_split - before.blocks_split)),
        )
    }
    let mut s = stage2();
    // Many lent ranges held under other handles, in the same blocks as the lends below
    // and elsewhere: a lend must not scan them.
    let held: Vec<Range> = scattered(0x4800_0000 + PAGE, 2000);
    s.lend(&held).unwrap();
    for n in [16u64, 256, 4000] {
        // Dense: every other page of a region, a few ranges per 2 MiB block.
        let dense = scattered(0x4800_0000, n);
        let (c, entries) = cost(&mut s, &dense);
        assert!(c <= 5 * n + 16, "{n} dense ranges cost {c}");
        assert!(entries <= 2 * n, "{n} dense ranges wrote {entries} entries");
        // Sparse: one page in each of n blocks (the worst case for splitting).
        let sparse: Vec<Range> = (0..n.min(200))
            .map(|i| Range::new(0x6100_0000 + i * BLOCK, 0x6100_0000 + i * BLOCK + PAGE))
            .collect();
        let (c, entries) = cost(&mut s, &sparse);
        assert!(
            c <= 16 * sparse.len() as u64 + 16,
            "{} sparse ranges cost {c}",
            sparse.len()
        );
        assert!(entries <= 2 * sparse.len() as u64);
    }
    assert_eq!(s.lent_pages(), held.len() as u64);
    for r in &held {
        assert!(!s.host_may_access(r.start));
    }
}

/// A lend refused after some of its ranges were marked and unmapped (batches of pages in
/// split blocks, a batch in a block still mapped whole, a range across blocks) gives all of
/// them back and changes nothing else; so does one whose overlap shows only in a later batch
/// of the same block.
#[test]
fn lends_refused_half_way_change_nothing() {
    let mut s = stage2();
    let split = 0x4a00_0000;
    let whole = 0x4a40_0000;
    // Split `split` with another handle's page, which stays lent throughout.
    let other = Range::new(split + 3 * PAGE, split + 4 * PAGE);
    s.lend(&[other]).unwrap();
    let held = Range::new(0x4b00_0000, 0x4b00_1000);
    s.lend(&[held]).unwrap();
    let snapshot = |s: &HostStage2| -> Vec<Option<usize>> {
        (0..1024)
            .map(|p| leaf(s, split + p * PAGE))
            .chain([leaf(s, 0x4a7f_f000), leaf(s, 0x4a80_0000)])
            .collect()
    };
    let before = snapshot(&s);
    let pages = s.lent_pages();
    let mut list = scattered(split + 4 * PAGE, 100);
    list.extend(scattered(whole, 100));
    list.push(Range::new(0x4a7f_f000, 0x4a80_2000));
    list.push(held);
    assert_eq!(s.lend(&list), Err(Stage2Error::AlreadyLent(held)));
    assert_eq!(s.lent_pages(), pages);
    assert_eq!(snapshot(&s), before);
    assert_eq!(leaf(&s, whole), Some(2), "the whole block was not broken");
    // Unsorted: the second batch in `split` overlaps the first.
    let mut list = scattered(split + 4 * PAGE, 10);
    list.extend(scattered(whole, 10));
    list.push(Range::new(split + 8 * PAGE, split + 9 * PAGE));
    assert_eq!(
        s.lend(&list),
        Err(Stage2Error::AlreadyLent(Range::new(
            split + 8 * PAGE,
            split + 9 * PAGE
        )))
    );
    assert_eq!(s.lent_pages(), pages);
    assert_eq!(snapshot(&s), before);
    // Another handle's page inside a batch: refused by the batch, named range by range.
    let mut list = scattered(split, 10);
    list.push(other);
    list.sort_unstable();
    assert_eq!(s.lend(&list), Err(Stage2Error::AlreadyLent(other)));
    assert_eq!(s.lent_pages(), pages);
    assert_eq!(snapshot(&s), before);
    // The same lend without the refused range goes through, and comes back.
    let list = scattered(split + 4 * PAGE, 100);
    s.lend(&list).unwrap();
    for r in &list {
        assert_eq!(leaf(&s, r.start), None);
        assert_eq!(leaf(&s, r.end), Some(3));
    }
    s.restore(&list).unwrap();
    assert_eq!(snapshot(&s), before);
    assert_eq!(s.lent_pages(), pages);
}
