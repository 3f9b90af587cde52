//! Memory transaction descriptors from a hostile host: parsing never panics, and whatever
//! parses re-emits in every layout and parses back to the same transaction. The in-place
//! view the proxy uses (`DescriptorView`) accepts exactly what `parse` accepts, at any
//! alignment, and emits the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warden::ffa::memory::{self, DescriptorView, MemOp};
use warden::ffa::version::FfaVersion;
use warden::platform::memmap::Range;

const VERSIONS: [FfaVersion; 3] = [FfaVersion::V1_0, FfaVersion::V1_1, FfaVersion::V1_2];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, desc)) = data.split_first() else {
        return;
    };
    let version = VERSIONS[(sel % 3) as usize];
    let op = if sel & 0x80 != 0 {
        MemOp::Lend
    } else {
        MemOp::Share
    };
    // The same bytes 8-byte aligned (the view reads words) and not (it reads bytes).
    let aligned: Vec<u8> = desc.to_vec();
    let mut odd = vec![0u8; desc.len() + 1];
    odd[1..].copy_from_slice(desc);
    let parsed = memory::parse(desc, version, op);
    for bytes in [&aligned[..], &odd[1..]] {
        let view = DescriptorView::parse(bytes, version, op);
        assert_eq!(view.as_ref().err(), parsed.as_ref().err());
        if let (Ok(v), Ok(t)) = (&view, &parsed) {
            for to in VERSIONS {
                let mut out = vec![0u8; v.emitted_len(to)];
                assert_eq!(v.emit_into(to, &mut out), Some(out.len()));
                assert_eq!(out, t.emit(to));
            }
        }
    }
    let Ok(t) = parsed else {
        return;
    };
    let ram = |r: Range| r.start >= 0x4000_0000 && r.end <= 0x8000_0000;
    let validated = t.validate_for_host(0, |id| id & 0x8000 != 0, ram);
    if let Ok(view) = DescriptorView::parse(&aligned, version, op) {
        let mut ranges = Vec::new();
        let in_place = view.host_ranges(0, |id| id & 0x8000 != 0, ram, &mut ranges);
        assert_eq!(in_place.map(|()| ranges), validated);
    }
    for to in VERSIONS {
        let out = t.emit(to);
        let back = memory::parse(&out, to, op).expect("warden's own output parses");
        // Layouts before v1.2 have no room for the EMADs' implementation-defined bytes.
        let mut want = t.clone();
        if to < FfaVersion::V1_2 {
            for r in &mut want.receivers {
                r.impdef = [0; 16];
            }
        }
        assert_eq!(back, want);
        let off = t.constituents_offset(to);
        let frags = memory::fragments(out.len(), off, 4096);
        assert_eq!(frags.first().map(|f| f.0), Some(0));
        assert_eq!(frags.last().map(|f| f.1), Some(out.len()));
        assert!(frags.windows(2).all(|w| w[0].1 == w[1].0));
    }
});
