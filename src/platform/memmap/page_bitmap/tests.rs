//! Unit tests of the lent-page bitmap.
use super::*;
use std::vec;

fn runs(l: &PageBitmap, cover: Range) -> Vec<Range> {
    let mut out = vec![];
    l.unlent_runs(cover, |r| out.push(r));
    out
}

/// Two RAM ranges of 1 MiB with a hole between them.
fn two_ranges() -> [Range; 2] {
    [
        Range::new(0x4000_0000, 0x4010_0000),
        Range::new(0x4020_0000, 0x4030_0000),
    ]
}

#[test]
fn runs_are_ram_minus_lent() {
    let ram = two_ranges();
    let mut l = PageBitmap::new(ram);
    let all = Range::new(0x3000_0000, 0x5000_0000);
    assert_eq!(runs(&l, all), ram);
    l.set(Range::new(0x4000_1000, 0x4000_3000), true);
    l.set(Range::new(0x400f_f000, 0x4020_1000), true);
    assert_eq!(
        runs(&l, all),
        [
            Range::new(0x4000_0000, 0x4000_1000),
            Range::new(0x4000_3000, 0x400f_f000),
            Range::new(0x4020_1000, 0x4030_0000),
        ]
    );
    // A cover clips the runs.
    assert_eq!(
        runs(&l, Range::new(0x4000_0800, 0x4000_5000)),
        [
            Range::new(0x4000_0800, 0x4000_1000),
            Range::new(0x4000_3000, 0x4000_5000)
        ]
    );
    assert!(l.any(Range::new(0x4000_2000, 0x4000_3000)).0);
    assert!(l.any(Range::new(0x4000_0000, 0x4000_8000)).0);
    assert!(!l.any(Range::new(0x4000_3000, 0x400f_f000)).0);
    assert!(l.any(Range::new(0x4010_0000, 0x4020_2000)).0);
    l.set(Range::new(0x4000_1000, 0x4000_2000), false);
    assert_eq!(
        runs(&l, Range::new(0x4000_0000, 0x4000_4000)),
        [
            Range::new(0x4000_0000, 0x4000_2000),
            Range::new(0x4000_3000, 0x4000_4000)
        ]
    );
    assert!(!l.is_empty());
    l.set(all, false);
    assert!(l.is_empty());
    assert_eq!(runs(&l, all), ram);
    // Outside RAM: nothing to mark, nothing to map.
    assert_eq!(l.set(Range::new(0x1000, 0x2000), true), 0);
    assert_eq!(runs(&l, Range::new(0x1000, 0x2000)), []);
}

#[test]
fn all_count_and_is_lent() {
    let ram = two_ranges();
    let mut l = PageBitmap::new(ram);
    let r = Range::new(0x4000_3000, 0x4000_8000);
    assert_eq!(l.all(r), (false, 1));
    assert_eq!(l.set(r, true), 1);
    assert_eq!(l.count(), 5);
    assert_eq!(l.all(r), (true, 1));
    assert!(!l.all(Range::new(0x4000_2000, 0x4000_8000)).0);
    // Not inside one RAM range, or empty: never "all lent".
    assert_eq!(l.all(Range::new(0x400f_f000, 0x4020_1000)), (false, 0));
    assert_eq!(l.all(Range::new(0x4000_3000, 0x4000_3000)), (false, 0));
    assert!(l.is_lent(0x4000_3000) && l.is_lent(0x4000_7fff));
    assert!(!l.is_lent(0x4000_8000) && !l.is_lent(0x1000) && !l.is_lent(u64::MAX));
}

#[test]
fn work_is_one_word_per_64_pages() {
    let mut l = PageBitmap::new([Range::new(0x4000_0000, 0x8000_0000)]);
    // 1 GiB: 262,144 pages, 4,096 words, each read or written once.
    let ram = Range::new(0x4000_0000, 0x8000_0000);
    assert_eq!(l.any(ram), (false, 4096));
    assert_eq!(runs(&l, ram), [ram]);
    // Every other page lent: the runs still cost one read per word.
    for i in 0..128 {
        let p = 0x4000_0000 + 2 * i * PAGE;
        l.set(Range::new(p, p + PAGE), true);
    }
    let cover = Range::new(0x4000_0000, 0x4010_0000);
    let mut n = 0;
    assert_eq!(l.unlent_runs(cover, |_| n += 1), 4);
    assert_eq!(n, 128);
    // `any` stops at the first word with a lent page.
    assert_eq!(l.any(ram), (true, 1));
    assert_eq!(l.set(ram, false), 4096);
    assert!(l.is_empty());
}

#[test]
fn lend_and_take_are_all_or_nothing() {
    let ram = two_ranges();
    let mut l = PageBitmap::new(ram);
    let r = Range::new(0x4000_3000, 0x4000_5000);
    assert_eq!(l.lend(r), Ok(2));
    assert_eq!(l.count(), 2);
    // A range overlapping it, or leaving RAM, or empty: refused, nothing marked.
    assert_eq!(
        l.lend(Range::new(0x4000_1000, 0x4000_4000)),
        Err(Unlendable::Lent)
    );
    assert_eq!(
        l.lend(Range::new(0x400f_f000, 0x4020_1000)),
        Err(Unlendable::NotRam)
    );
    assert_eq!(
        l.lend(Range::new(0x4000_1000, 0x4000_1000)),
        Err(Unlendable::NotRam)
    );
    assert_eq!(l.count(), 2);
    // `take` clears only when every page is lent.
    assert!(!l.take(Range::new(0x4000_2000, 0x4000_5000)).0);
    assert_eq!(l.count(), 2);
    assert!(l.take(r).0);
    assert!(l.is_empty());
    assert!(!l.take(r).0, "a second take finds nothing lent");
}

#[test]
fn page_masks_gather_one_window() {
    let mut m = PageMask::new(0x4020_1000);
    assert_eq!(m.base(), 0x4020_0000);
    assert!(m.is_empty());
    assert!(m.add(Range::new(0x4020_1000, 0x4020_2000)));
    assert!(m.add(Range::new(0x4020_4000, 0x4020_7000)));
    assert!(!m.add(Range::new(0x4020_6000, 0x4020_8000)), "overlap");
    assert!(!m.add(Range::new(0x4020_1000, 0x4020_2000)), "same page");
    assert!(!m.add(Range::new(0x401f_f000, 0x4020_1000)), "below");
    assert!(!m.add(Range::new(0x403f_f000, 0x4040_1000)), "beyond");
    assert!(!m.add(Range::new(0x4020_9000, 0x4020_9000)), "empty");
    assert_eq!(m.span(), Range::new(0x4020_1000, 0x4020_7000));
    let mut pages = vec![];
    m.for_each_index(|i| pages.push(i));
    assert_eq!(pages, [1, 4, 5, 6]);
    // The last page of the window, in the last word.
    assert!(m.add(Range::new(0x403f_f000, 0x4040_0000)));
    pages.clear();
    m.for_each_index(|i| pages.push(i));
    assert_eq!(pages, [1, 4, 5, 6, 511]);
}

#[test]
fn page_masks_lend_and_take_all_or_nothing() {
    let ram = [Range::new(0x4000_0000, 0x4100_0000)];
    let mut l = PageBitmap::new(ram);
    let mut m = PageMask::new(0x4020_0000);
    for i in 0..200 {
        assert!(m.add(Range::new(
            0x4020_0000 + 2 * i * PAGE,
            0x4020_1000 + 2 * i * PAGE
        )));
    }
    // 400 pages: words 0..7 of the window, each checked and then written.
    assert_eq!(l.lend_pages(&m), (true, 14));
    assert_eq!(l.count(), 200);
    assert!(l.is_lent(0x4020_0000) && !l.is_lent(0x4020_1000));
    // Any page of the set already lent: nothing changes.
    assert!(!l.lend_pages(&m).0);
    let mut other = PageMask::new(0x4020_0000);
    assert!(other.add(Range::new(0x4020_1000, 0x4020_3000)));
    assert!(!l.lend_pages(&other).0);
    assert_eq!(l.count(), 200);
    // Taking back needs every page of the set lent.
    let mut wider = m;
    assert!(wider.add(Range::new(0x4030_1000, 0x4030_2000)));
    assert!(!l.take_pages(&wider).0);
    assert_eq!(l.count(), 200);
    assert!(l.take_pages(&m).0);
    assert!(l.is_empty());
    // A set not inside one RAM range, or not lined up with its words: left to the
    // range-by-range path.
    let mut edge = PageMask::new(0x40ff_f000);
    assert!(edge.add(Range::new(0x40ff_f000, 0x4100_0000)));
    assert!(l.lend_pages(&edge).0, "the last page of RAM, inside it");
    let mut out = PageMask::new(0x4100_0000);
    assert!(out.add(Range::new(0x4100_0000, 0x4100_1000)));
    assert_eq!(l.lend_pages(&out), (false, 0));
    let mut odd = PageBitmap::new([Range::new(0x4000_1000, 0x4100_0000)]);
    let mut m = PageMask::new(0x4020_0000);
    assert!(m.add(Range::new(0x4020_0000, 0x4020_1000)));
    assert_eq!(odd.lend_pages(&m), (false, 0));
    assert!(odd.is_empty());
}

#[test]
fn page_entries_write_the_pages_of_their_window_only() {
    use core::sync::atomic::{AtomicUsize, Ordering};
    let table: std::boxed::Box<[AtomicUsize]> = (0..512).map(|_| AtomicUsize::new(7)).collect();
    let base = 0x4020_0000;
    let first = table.as_ptr().expose_provenance();
    // SAFETY: `table` is 512 atomics, alive and written by no one else during the test.
    let entries = unsafe { PageEntries::new(first, base) };
    let value = |pa: u64| pa | 3;
    assert_eq!(
        entries.set_range(Range::new(base + 2 * PAGE, base + 4 * PAGE), value),
        2
    );
    // Clipped to the window.
    assert_eq!(
        entries.set_range(
            Range::new(base + WINDOW - PAGE, base + WINDOW + PAGE),
            |_| 0
        ),
        1
    );
    let mut m = PageMask::new(base);
    assert!(m.add(Range::new(base + 9 * PAGE, base + 10 * PAGE)));
    assert!(m.add(Range::new(base + 300 * PAGE, base + 301 * PAGE)));
    assert_eq!(entries.set_pages(&m, value), 2);
    assert_eq!(
        entries.set_pages(&PageMask::new(base + WINDOW), value),
        0,
        "another window's"
    );
    let got: Vec<usize> = table.iter().map(|e| e.load(Ordering::Relaxed)).collect();
    for (i, v) in got.iter().enumerate() {
        let pa = (base + i as u64 * PAGE) as usize;
        let want = match i {
            2 | 3 | 9 | 300 => pa | 3,
            511 => 0,
            _ => 7,
        };
        assert_eq!(*v, want, "entry {i}");
    }
}

/// A reclaim's ranges grouped as the tables walk them: runs of partial ranges inside one
/// window batch together; a whole window, a range across windows, an empty range, a page
/// already in the batch and a change of window each end a batch.
#[test]
fn groups_batch_runs_inside_one_window_only() {
    const W: u64 = WINDOW;
    let page = |n: u64| Range::new(n * PAGE, (n + 1) * PAGE);
    let ranges = [
        page(512),
        page(514),
        page(520),
        // The same page again: a new batch.
        page(520),
        // The next window.
        page(1024),
        // A whole window.
        Range::new(2 * W, 3 * W),
        // Across two windows.
        Range::new(4 * W - PAGE, 4 * W + PAGE),
        Range::new(5 * W, 5 * W),
        page(513),
    ];
    let kinds: Vec<(Option<u64>, usize)> = PageMask::groups(&ranges)
        .map(|g| match g {
            RangeGroup::Batch(mask, rs) => {
                assert!(
                    rs.iter()
                        .all(|r| r.start >= mask.base() && r.end <= mask.base() + W)
                );
                (Some(mask.base()), rs.len())
            }
            RangeGroup::Alone(_) => (None, 1),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (Some(W), 3),
            (Some(W), 1),
            (Some(2 * W), 1),
            (None, 1),
            (None, 1),
            (None, 1),
            (Some(W), 1),
        ]
    );
    // Every range is in exactly one group, in order.
    let flat: Vec<Range> = PageMask::groups(&ranges)
        .flat_map(|g| match g {
            RangeGroup::Batch(_, rs) => rs.to_vec(),
            RangeGroup::Alone(r) => alloc::vec![r],
        })
        .collect();
    assert_eq!(flat, ranges);
}
