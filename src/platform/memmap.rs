//! Physical address ranges and the host's stage-2 layout: what the host may touch, and as
//! what kind of memory.

use alloc::vec::Vec;

mod page_bitmap;
pub use page_bitmap::{PageBitmap, PageEntries, PageMask, RangeGroup, Unlendable};

/// The translation granule warden uses everywhere (stage-1, stage-2, the SMMU's tables):
/// 4 KiB, so a page of host RAM is the unit of ownership, lending and DMA isolation.
pub const PAGE: u64 = 0x1000;

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
    /// A device frame the host may program (see `platform::devices`): device memory,
    /// read-write, never executable.
    Device,
}

/// The host's stage-2 layout: RAM as normal memory and the `devices` frames as device
/// memory, both identity-mapped below `ipa_limit`, except `reserved` (warden's own memory),
/// which is not mapped at all. Every other address is unmapped: MMIO is default-deny.
/// The result is sorted and disjoint.
pub fn host_layout(
    ram: &[Range],
    reserved: &[Range],
    devices: &[Range],
    ipa_limit: u64,
) -> Vec<(Range, HostMemKind)> {
    let clip = |r: &Range| (r.start < ipa_limit).then(|| Range::new(r.start, r.end.min(ipa_limit)));
    let mut out: Vec<(Range, HostMemKind)> = ram
        .iter()
        .filter_map(clip)
        .map(|r| (r, HostMemKind::Ram))
        .collect();
    // A device frame never widens RAM's attributes: RAM wins where they overlap.
    for d in devices.iter().filter_map(clip) {
        let pieces = subtract_all(alloc::vec![d], ram);
        out.extend(pieces.into_iter().map(|p| (p, HostMemKind::Device)));
    }
    out.sort_by_key(|(r, _)| r.start);
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

/// `pieces` minus every range of `holes`, in order.
pub fn subtract_all<'a>(
    mut pieces: Vec<Range>,
    holes: impl IntoIterator<Item = &'a Range>,
) -> Vec<Range> {
    for hole in holes {
        pieces = pieces
            .into_iter()
            .flat_map(|p| subtract(p, hole).into_iter().flatten())
            .collect();
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;
    use HostMemKind::*;

    #[test]
    fn qemu_virt_layout() {
        let ram = [Range::new(0x4000_0000, 0x8000_0000)];
        let warden = [Range::new(0x6000_0000, 0x6100_0000)];
        let uart = [Range::new(0x0900_0000, 0x0900_1000)];
        let l = host_layout(&ram, &warden, &uart, 1 << 39);
        assert_eq!(
            l,
            [
                (Range::new(0x0900_0000, 0x0900_1000), Device),
                (Range::new(0x4000_0000, 0x6000_0000), Ram),
                (Range::new(0x6100_0000, 0x8000_0000), Ram),
            ]
        );
    }

    #[test]
    fn layout_maps_ram_and_devices_only_and_never_reserved() {
        let ram = [
            Range::new(0x8000_0000, 0x9000_0000),
            Range::new(0x1000, 0x3000),
        ];
        let reserved = [
            Range::new(0x2000, 0x8000_1000),
            Range::new(0x8fff_f000, 0x9000_1000),
        ];
        // One device overlaps RAM (RAM wins), one crosses the IPA limit (clipped), one
        // lies in a reserved hole (unmapped).
        let devices = [
            Range::new(0x0, 0x2000),
            Range::new(0xffff_f000, 0x1_0000_2000),
            Range::new(0x4000, 0x5000),
        ];
        let limit = 0x1_0000_0000;
        let l = host_layout(&ram, &reserved, &devices, limit);
        for w in l.windows(2) {
            assert!(w[0].0.end <= w[1].0.start, "sorted, disjoint");
        }
        for (r, _) in &l {
            assert!(!reserved.iter().any(|h| h.overlaps(r)));
            assert!(r.end <= limit);
        }
        assert_eq!(
            l,
            [
                (Range::new(0x0, 0x1000), Device),
                (Range::new(0x1000, 0x2000), Ram),
                (Range::new(0x8000_1000, 0x8fff_f000), Ram),
                (Range::new(0xffff_f000, 0x1_0000_0000), Device),
            ]
        );
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
