//! The memory transaction descriptor of a MEM_SHARE (DEN0077A v1.2 §10.11; byte offsets
//! as in the team's FF-A crib §B.4), written straight into the TX buffer one fragment at a
//! time. The layout is the v1.1 one (48-byte header that names the size and offset of the
//! endpoint memory access descriptors) with the v1.2 32-byte EMAD, since the client
//! negotiates v1.2 in both modes. All constituents have the same page count: one page each
//! describes a scattered buffer, whose descriptor grows with the page count until it takes
//! several fragments (FFA_MEM_FRAG_TX); a single constituent describes a contiguous one.

const HEADER_SIZE: usize = 48;
/// v1.2 endpoint memory access descriptor: v1.1's 16 bytes plus 16 implementation-defined.
const EMAD_SIZE: usize = 32;
const COMPOSITE_OFFSET: usize = HEADER_SIZE + EMAD_SIZE;
const COMPOSITE_SIZE: usize = 16;
const CONSTITUENTS_OFFSET: usize = COMPOSITE_OFFSET + COMPOSITE_SIZE;
const CONSTITUENT_SIZE: usize = 16;

/// A share of `constituents` ranges of `pages_each` pages from one sender to one receiver.
#[derive(Clone, Copy, Debug)]
pub struct Share {
    pub sender: u16,
    pub receiver: u16,
    /// Memory region attributes (bits [5:4] type, [3:2] cacheability, [1:0] shareability).
    pub attributes: u16,
    /// Access permissions of the receiver (bits [1:0] data, [3:2] instruction).
    pub permissions: u8,
    pub constituents: usize,
    pub pages_each: u32,
}

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

impl Share {
    /// The whole descriptor's length: w1 (total length) of FFA_MEM_SHARE.
    pub fn total_len(&self) -> usize {
        CONSTITUENTS_OFFSET + CONSTITUENT_SIZE * self.constituents
    }

    /// Writes the fragment that starts at byte `offset` of the descriptor into `buf` and
    /// returns its length. Fragments end on constituent boundaries, where the SPMC expects
    /// the next one to start (OP-TEE consumes whole constituents and reports the bytes it
    /// took in FFA_MEM_FRAG_RX w3). `offset` must be 0 or such a boundary; `None` if it is
    /// not, if nothing is left from there, or if `buf` cannot hold the first fragment's
    /// header. `address(i)` is where constituent `i` starts.
    pub fn fragment(
        &self,
        offset: usize,
        buf: &mut [u8],
        address: impl Fn(usize) -> u64,
    ) -> Option<usize> {
        let (first, mut at) = if offset == 0 {
            if buf.len() < CONSTITUENTS_OFFSET {
                return None;
            }
            buf[..CONSTITUENTS_OFFSET].fill(0);
            self.header(buf);
            (0, CONSTITUENTS_OFFSET)
        } else {
            let rel = offset.checked_sub(CONSTITUENTS_OFFSET)?;
            if rel % CONSTITUENT_SIZE != 0 {
                return None;
            }
            (rel / CONSTITUENT_SIZE, 0)
        };
        let room = (buf.len() - at) / CONSTITUENT_SIZE;
        let count = self.constituents.checked_sub(first)?.min(room);
        if count == 0 {
            return None;
        }
        for i in first..first + count {
            put(buf, at, &address(i).to_le_bytes());
            put(buf, at + 8, &self.pages_each.to_le_bytes());
            put(buf, at + 12, &0u32.to_le_bytes());
            at += CONSTITUENT_SIZE;
        }
        Some(at)
    }

    /// The header, the one EMAD and the composite memory region header (all reserved and
    /// MBZ fields already zero).
    fn header(&self, buf: &mut [u8]) {
        put(buf, 0, &self.sender.to_le_bytes());
        put(buf, 2, &self.attributes.to_le_bytes());
        // 4: flags = 0 (a share may not ask for zeroing); 8: handle = 0, the SPMC's to
        // allocate; 16: tag = 0.
        put(buf, 24, &(EMAD_SIZE as u32).to_le_bytes());
        put(buf, 28, &1u32.to_le_bytes());
        put(buf, 32, &(HEADER_SIZE as u32).to_le_bytes());
        let emad = HEADER_SIZE;
        put(buf, emad, &self.receiver.to_le_bytes());
        buf[emad + 2] = self.permissions;
        put(buf, emad + 4, &(COMPOSITE_OFFSET as u32).to_le_bytes());
        let ranges = u32::try_from(self.constituents).unwrap_or(u32::MAX);
        let pages = ranges.saturating_mul(self.pages_each);
        put(buf, COMPOSITE_OFFSET, &pages.to_le_bytes());
        put(buf, COMPOSITE_OFFSET + 4, &ranges.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
    }
    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
    }

    fn share(constituents: usize, pages_each: u32) -> Share {
        Share {
            sender: 0,
            receiver: 0x8001,
            attributes: 0x2f,
            permissions: 2,
            constituents,
            pages_each,
        }
    }

    fn page(i: usize) -> u64 {
        0x4a00_0000 + 0x2000 * i as u64
    }

    #[test]
    fn one_page_layout() {
        let mut b = [0xaau8; 4096];
        let s = share(1, 1);
        assert_eq!(s.total_len(), 112);
        assert_eq!(s.fragment(0, &mut b, page), Some(112));
        assert_eq!(u16_at(&b, 0), 0, "sender");
        assert_eq!(u16_at(&b, 2), 0x2f, "attributes");
        assert_eq!(u32_at(&b, 4), 0, "flags");
        assert_eq!(u64_at(&b, 8), 0, "handle");
        assert_eq!(u64_at(&b, 16), 0, "tag");
        assert_eq!(u32_at(&b, 24), 32, "EMAD size");
        assert_eq!(u32_at(&b, 28), 1, "EMAD count");
        assert_eq!(u32_at(&b, 32), 48, "EMAD offset");
        assert!(b[36..48].iter().all(|&x| x == 0), "reserved");
        assert_eq!(u16_at(&b, 48), 0x8001, "receiver");
        assert_eq!(b[50], 2, "permissions");
        assert_eq!(b[51], 0, "EMAD flags");
        assert_eq!(u32_at(&b, 52), 80, "composite offset");
        assert!(b[56..80].iter().all(|&x| x == 0), "impdef, reserved");
        assert_eq!(u32_at(&b, 80), 1, "total pages");
        assert_eq!(u32_at(&b, 84), 1, "range count");
        assert_eq!(u64_at(&b, 88), 0, "reserved");
        assert_eq!(u64_at(&b, 96), page(0));
        assert_eq!(u32_at(&b, 104), 1, "page count");
        assert_eq!(u32_at(&b, 108), 0, "reserved");
        assert_eq!(b[112], 0xaa, "nothing written past the descriptor");
    }

    #[test]
    fn fragments_cover_the_descriptor_on_constituent_boundaries() {
        for pages in [1usize, 16, 250, 251, 256, 4096] {
            let s = share(pages, 1);
            let mut b = [0u8; 4096];
            let mut whole = Vec::new();
            let mut offset = 0;
            let mut fragments = 0;
            while let Some(len) = s.fragment(offset, &mut b, page) {
                whole.extend_from_slice(&b[..len]);
                offset += len;
                fragments += 1;
            }
            assert_eq!(offset, s.total_len(), "{pages} pages");
            // 250 constituents fit with the headers, 256 in each further fragment.
            let want = if pages <= 250 {
                1
            } else {
                1 + (pages - 250).div_ceil(256)
            };
            assert_eq!(fragments, want, "{pages} pages");
            for i in 0..pages {
                assert_eq!(u64_at(&whole, 96 + 16 * i), page(i));
                assert_eq!(u32_at(&whole, 104 + 16 * i), 1);
            }
            assert_eq!(u32_at(&whole, 80) as usize, pages);
        }
    }

    #[test]
    fn bad_offsets_and_small_buffers() {
        let s = share(300, 1);
        let mut b = [0u8; 4096];
        assert_eq!(s.fragment(50, &mut b, page), None);
        assert_eq!(s.fragment(97, &mut b, page), None);
        assert_eq!(s.fragment(96 + 300 * 16, &mut b, page), None);
        assert_eq!(s.fragment(0, &mut b[..95], page), None);
        assert_eq!(s.fragment(0, &mut b[..100], page), None);
        assert_eq!(s.fragment(96 + 16 * 299, &mut b, page), Some(16));
    }

    #[test]
    fn contiguous() {
        let mut b = [0u8; 4096];
        let s = share(1, 4096);
        assert_eq!(s.fragment(0, &mut b, page), Some(112));
        assert_eq!(u32_at(&b, 80), 4096, "total pages");
        assert_eq!(u32_at(&b, 84), 1, "range count");
        assert_eq!(u64_at(&b, 96), page(0));
        assert_eq!(u32_at(&b, 104), 4096);
        assert_eq!(s.fragment(112, &mut b, page), None);
    }
}
