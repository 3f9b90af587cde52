//! Physical address ranges and the host's stage-2 layout: what the host may touch, and as
//! what kind of memory.
// Host input must never be able to panic warden: no unwrap/expect/panic and no
// indexing that can go out of bounds in code that sees host-derived values (tests aside).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

use alloc::vec::Vec;

/// A half-open physical address range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }
    /// `None` when the range is empty or wraps.
    pub fn from_base_size(base: u64, size: u64) -> Option<Self> {
        let end = base.checked_add(size)?;
        (size > 0).then_some(Self { start: base, end })
    }
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
    pub fn contains(&self, addr: u64) -> bool {
        self.start <= addr && addr < self.end
    }
    pub fn overlaps(&self, other: &Range) -> bool {
        self.start < other.end && other.start < self.end
    }
    /// Widens the range outwards to multiples of `align` (a power of two).
    pub fn align_out(&self, align: u64) -> Self {
        Self {
            start: self.start & !(align - 1),
            end: self.end.next_multiple_of(align),
        }
    }
}

/// Whether `r` lies inside one RAM range and touches none of `reserved`: memory the host
/// owns and may name in FF-A calls.
pub fn is_host_ram(ram: &[Range], reserved: &[Range], r: Range) -> bool {
    !r.is_empty()
        && ram.iter().any(|m| m.start <= r.start && r.end <= m.end)
        && !reserved.iter().any(|h| h.overlaps(&r))
}

/// How a region appears in the host's stage-2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostMemKind {
    /// RAM the host owns: normal cacheable, read-write-execute.
    Ram,
    /// Anything that is not RAM: device memory, read-write, never executable. Accesses to
    /// secure-only regions are still refused by the system; stage-2 does not widen them.
    Device,
}

/// The host's stage-2 layout: the whole IPA space `[0, ipa_limit)` mapped identically,
/// RAM as normal memory and everything else as device memory, except `reserved` (warden's
/// own memory), which is not mapped at all. The result is sorted and gap-free apart from
/// the holes left by `reserved`.
pub fn host_layout(ram: &[Range], reserved: &[Range], ipa_limit: u64) -> Vec<(Range, HostMemKind)> {
    let mut out = Vec::new();
    let mut cursor = 0;
    let mut ram: Vec<Range> = ram
        .iter()
        .filter(|r| r.start < ipa_limit)
        .map(|r| Range::new(r.start, r.end.min(ipa_limit)))
        .collect();
    ram.sort();
    for r in ram {
        let start = r.start.max(cursor);
        if start > cursor {
            out.push((Range::new(cursor, start), HostMemKind::Device));
        }
        if r.end > start {
            out.push((Range::new(start, r.end), HostMemKind::Ram));
        }
        cursor = cursor.max(r.end);
    }
    if cursor < ipa_limit {
        out.push((Range::new(cursor, ipa_limit), HostMemKind::Device));
    }
    for hole in reserved {
        out = out
            .into_iter()
            .flat_map(|(r, kind)| {
                subtract(r, hole)
                    .into_iter()
                    .flatten()
                    .map(move |p| (p, kind))
            })
            .collect();
    }
    out
}

/// `r` minus `hole`: up to two pieces.
fn subtract(r: Range, hole: &Range) -> [Option<Range>; 2] {
    if !r.overlaps(hole) {
        return [Some(r), None];
    }
    let below = (hole.start > r.start).then(|| Range::new(r.start, hole.start));
    let above = (hole.end < r.end).then(|| Range::new(hole.end, r.end));
    [below, above]
}

#[cfg(test)]
mod tests {
    use super::*;
    use HostMemKind::*;

    #[test]
    fn qemu_virt_layout() {
        let ram = [Range::new(0x4000_0000, 0x8000_0000)];
        let warden = [Range::new(0x6000_0000, 0x6100_0000)];
        let l = host_layout(&ram, &warden, 1 << 39);
        assert_eq!(
            l,
            [
                (Range::new(0, 0x4000_0000), Device),
                (Range::new(0x4000_0000, 0x6000_0000), Ram),
                (Range::new(0x6100_0000, 0x8000_0000), Ram),
                (Range::new(0x8000_0000, 1 << 39), Device),
            ]
        );
    }

    #[test]
    fn layout_never_maps_reserved_and_covers_everything_else() {
        let ram = [
            Range::new(0x8000_0000, 0x9000_0000),
            Range::new(0x1000, 0x3000),
        ];
        let reserved = [
            Range::new(0x2000, 0x8000_1000),
            Range::new(0x8fff_f000, 0x9000_1000),
        ];
        let limit = 0x1_0000_0000;
        let l = host_layout(&ram, &reserved, limit);
        let mut covered = 0;
        for w in l.windows(2) {
            assert!(w[0].0.end <= w[1].0.start, "sorted, disjoint");
        }
        for (r, _) in &l {
            assert!(!reserved.iter().any(|h| h.overlaps(r)));
            covered += r.len();
        }
        let holes: u64 = reserved.iter().map(|h| h.len()).sum();
        assert_eq!(covered, limit - holes);
        assert!(l.contains(&(Range::new(0x1000, 0x2000), Ram)));
        assert!(l.contains(&(Range::new(0x8000_1000, 0x8fff_f000), Ram)));
    }

    #[test]
    fn host_ram() {
        let ram = [Range::new(0x4000_0000, 0x8000_0000)];
        let warden = [Range::new(0x6000_0000, 0x6100_0000)];
        assert!(is_host_ram(
            &ram,
            &warden,
            Range::new(0x4000_0000, 0x4000_1000)
        ));
        assert!(!is_host_ram(
            &ram,
            &warden,
            Range::new(0x5fff_f000, 0x6000_1000)
        ));
        assert!(!is_host_ram(
            &ram,
            &warden,
            Range::new(0x0900_0000, 0x0900_1000)
        ));
        assert!(!is_host_ram(
            &ram,
            &warden,
            Range::new(0x7fff_f000, 0x8000_1000)
        ));
        assert!(!is_host_ram(
            &ram,
            &warden,
            Range::new(0x4000_0000, 0x4000_0000)
        ));
    }

    #[test]
    fn ranges() {
        assert_eq!(Range::from_base_size(u64::MAX, 2), None);
        assert_eq!(Range::from_base_size(5, 0), None);
        assert_eq!(
            Range::new(0x1001, 0x2001).align_out(0x1000),
            Range::new(0x1000, 0x3000)
        );
    }
}
