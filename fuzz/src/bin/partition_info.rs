//! Partition descriptors as an SPMC (or a broken one) writes them: any count and size.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::ffa::partition::{self, PartitionInfo};
use warden::ffa::version::FfaVersion;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let count = u16::from_le_bytes([data[0], data[1]]) as usize;
    let size = data[2] as usize;
    let buf = &data[3..];
    let Ok(list) = partition::parse_all(buf, count, size) else {
        return;
    };
    assert_eq!(list.len(), count);
    for v in [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2] {
        let n = partition::descriptor_size(v);
        let mut out = vec![0u8; n];
        for p in &list {
            p.emit(v, &mut out).unwrap();
            let back = PartitionInfo::parse(&out, 0, n).unwrap();
            assert_eq!(back.id, p.id);
        }
    }
});
