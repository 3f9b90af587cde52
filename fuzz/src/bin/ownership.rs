//! The page-ownership map under random claims and releases, checked against a model that
//! tracks every page.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use warden::ffa::ownership::{Ownership, PageState};
use warden::platform::memmap::Range;

const PAGES: u64 = 64;
/// Operations per input: enough for long histories, few enough that the per-page model
/// check after every operation keeps the fuzzer fast.
const MAX_OPS: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut o = Ownership::default();
    let mut model: BTreeMap<u64, PageState> = BTreeMap::new();
    for op in data.chunks(4).take(MAX_OPS) {
        let [kind, a, b, c] = <[u8; 4]>::try_from(op).unwrap_or([0; 4]);
        let state = match c % 3 {
            0 => PageState::Mailbox,
            1 => PageState::Shared(u64::from(c)),
            _ => PageState::Lent(u64::from(c)),
        };
        if kind % 2 == 0 {
            // Claim one or two ranges (sorted, disjoint, as the proxy passes them).
            let (s1, l1) = (u64::from(a) % PAGES, u64::from(b % 8) + 1);
            let mut ranges = vec![Range::new(s1 * 4096, (s1 + l1).min(PAGES) * 4096)];
            if kind & 4 != 0 {
                let s2 = (s1 + l1 + u64::from(b >> 4)).min(PAGES);
                if s2 < PAGES {
                    ranges.push(Range::new(s2 * 4096, (s2 + 1) * 4096));
                }
            }
            let free = ranges
                .iter()
                .all(|r| (r.start / 4096..r.end / 4096).all(|p| !model.contains_key(&p)));
            let result = o.claim(&ranges, state);
            assert_eq!(result.is_ok(), free, "{ranges:?}");
            if free {
                for r in &ranges {
                    for p in r.start / 4096..r.end / 4096 {
                        model.insert(p, state);
                    }
                }
            }
        } else {
            o.release(state);
            model.retain(|_, s| *s != state);
        }
        // Every claimed page after every operation (free pages once, at the end).
        for (&p, &state) in &model {
            assert_eq!(o.state_of(p * 4096), Some(state), "page {p}");
        }
    }
    // And every page, once the whole history has run.
    for p in 0..PAGES {
        assert_eq!(o.state_of(p * 4096), model.get(&p).copied(), "page {p}");
    }
});
