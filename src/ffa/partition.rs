//! Partition information descriptors (DEN0077A v1.2 §6.1, Table 6.1 and Table 13.37):
//! 8 bytes in v1.0 (ID, execution contexts, properties), 24 bytes from v1.1 (plus the UUID).
//! They are parsed once from the SPMC's buffer into `PartitionInfo` and re-emitted in the
//! host's format; nothing is copied through raw.
//!
//! Written by hand rather than with arm-ffa 0.5, whose partition-info packing only knows
//! the v1.1/v1.2 layout: warden must also produce v1.0's.

use super::version::FfaVersion;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub id: u16,
    pub exec_ctx_count: u16,
    pub properties: u32,
    /// All zero when the source format (v1.0) carries none.
    pub uuid: [u8; 16],
}

pub const SIZE_V1_0: usize = 8;
pub const SIZE_V1_1: usize = 24;

/// Descriptor size for a consumer at `version`.
pub fn descriptor_size(version: FfaVersion) -> usize {
    if version >= FfaVersion::V1_1 {
        SIZE_V1_1
    } else {
        SIZE_V1_0
    }
}

/// A secure partition's ID has bit 15 set (§6.2, partition ID bit 15: 1 = SP).
pub fn is_secure(id: u16) -> bool {
    id & 0x8000 != 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionInfoError {
    /// The descriptor size is smaller than the v1.0 layout.
    BadSize,
    /// `count` descriptors of `size` bytes do not fit in the buffer.
    Overflow,
}

impl PartitionInfo {
    /// Parses the `index`th descriptor of `size` bytes from `buf`. Descriptors of at least
    /// 24 bytes carry the UUID; larger future layouts (v1.3) are read as their prefix.
    pub fn parse(buf: &[u8], index: usize, size: usize) -> Result<Self, PartitionInfoError> {
        if size < SIZE_V1_0 {
            return Err(PartitionInfoError::BadSize);
        }
        let start = index
            .checked_mul(size)
            .ok_or(PartitionInfoError::Overflow)?;
        let end = start
            .checked_add(size)
            .ok_or(PartitionInfoError::Overflow)?;
        let d = buf.get(start..end).ok_or(PartitionInfoError::Overflow)?;
        let head: &[u8; 8] = d.first_chunk().ok_or(PartitionInfoError::BadSize)?;
        let mut uuid = [0u8; 16];
        if let Some(u) = d.get(8..24) {
            uuid.copy_from_slice(u);
        }
        Ok(Self {
            id: u16::from_le_bytes([head[0], head[1]]),
            exec_ctx_count: u16::from_le_bytes([head[2], head[3]]),
            properties: u32::from_le_bytes([head[4], head[5], head[6], head[7]]),
            uuid,
        })
    }

    /// Writes the descriptor in the layout of `version` at the start of `out`, which must
    /// hold `descriptor_size(version)` bytes.
    pub fn emit(&self, version: FfaVersion, out: &mut [u8]) -> Result<(), PartitionInfoError> {
        let size = descriptor_size(version);
        let d = out.get_mut(..size).ok_or(PartitionInfoError::Overflow)?;
        let mut head = [0u8; 8];
        head[0..2].copy_from_slice(&self.id.to_le_bytes());
        head[2..4].copy_from_slice(&self.exec_ctx_count.to_le_bytes());
        // v1.0 defines only bits [2:0] (§6.1 in v1.0, Table 8.25); later bits mean
        // nothing to a v1.0 consumer.
        let props = if size == SIZE_V1_0 {
            self.properties & 0x7
        } else {
            self.properties
        };
        head[4..8].copy_from_slice(&props.to_le_bytes());
        let (first, rest) = d
            .split_at_mut_checked(8)
            .ok_or(PartitionInfoError::Overflow)?;
        first.copy_from_slice(&head);
        if let Some(u) = rest.get_mut(..16) {
            u.copy_from_slice(&self.uuid);
        }
        Ok(())
    }
}

/// Parses `count` descriptors of `size` bytes.
pub fn parse_all(
    buf: &[u8],
    count: usize,
    size: usize,
) -> Result<alloc::vec::Vec<PartitionInfo>, PartitionInfoError> {
    let total = count
        .checked_mul(size)
        .ok_or(PartitionInfoError::Overflow)?;
    if total > buf.len() {
        return Err(PartitionInfoError::Overflow);
    }
    (0..count)
        .map(|i| PartitionInfo::parse(buf, i, size))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn optee() -> PartitionInfo {
        PartitionInfo {
            id: 0x8001,
            exec_ctx_count: 2,
            properties: 0x1_0b,
            uuid: *b"\x48\x6b\x8b\xe9\x4b\x8a\x41\x48\x9c\x1c\x3f\x0a\xb7\x1b\x75\x52",
        }
    }

    #[test]
    fn v1_1_round_trip() {
        let mut buf = [0u8; 48];
        optee().emit(FfaVersion::V1_1, &mut buf[24..]).unwrap();
        assert_eq!(PartitionInfo::parse(&buf, 1, 24).unwrap(), optee());
    }

    #[test]
    fn v1_0_drops_uuid_and_new_properties() {
        let mut buf = [0xffu8; 8];
        optee().emit(FfaVersion::V1_0, &mut buf).unwrap();
        assert_eq!(buf, [0x01, 0x80, 2, 0, 0x03, 0, 0, 0]);
        let back = PartitionInfo::parse(&buf, 0, 8).unwrap();
        assert_eq!(back.uuid, [0; 16]);
        assert_eq!(back.id, 0x8001);
    }

    #[test]
    fn rejects_short_sizes_and_overflowing_counts() {
        let buf = [0u8; 64];
        assert_eq!(
            PartitionInfo::parse(&buf, 0, 4),
            Err(PartitionInfoError::BadSize)
        );
        assert_eq!(
            parse_all(&buf, 3, 24).map(|v| v.len()),
            Err(PartitionInfoError::Overflow)
        );
        assert_eq!(
            parse_all(&buf, usize::MAX, 24),
            Err(PartitionInfoError::Overflow)
        );
        assert_eq!(parse_all(&buf, 2, 24).unwrap().len(), 2);
        let mut small = [0u8; 10];
        assert_eq!(
            optee().emit(FfaVersion::V1_2, &mut small),
            Err(PartitionInfoError::Overflow)
        );
    }

    #[test]
    fn secure_ids() {
        assert!(is_secure(0x8001));
        assert!(!is_secure(0));
    }
}
