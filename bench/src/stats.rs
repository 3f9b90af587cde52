//! Per-operation statistics over the iterations' samples.

/// Median, minimum, maximum and mean of one counter over all iterations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Summary {
    pub median: u64,
    pub min: u64,
    pub max: u64,
    /// Rounded down.
    pub mean: u64,
}

impl Summary {
    /// Sorts `samples` in place. The median of an even count is the lower middle sample,
    /// so that it is always a count that was actually measured. `None` when empty.
    pub fn of(samples: &mut [u64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let sum: u128 = samples.iter().map(|&s| s as u128).sum();
        Some(Self {
            median: samples[(samples.len() - 1) / 2],
            min: samples[0],
            max: samples[samples.len() - 1],
            mean: (sum / samples.len() as u128) as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_even_and_empty() {
        let s = Summary::of(&mut [5, 1, 3]).unwrap();
        assert_eq!(
            s,
            Summary {
                median: 3,
                min: 1,
                max: 5,
                mean: 3
            }
        );
        let s = Summary::of(&mut [4, 1, 3, 10]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.mean), (3, 1, 10, 4));
        assert_eq!(Summary::of(&mut []), None);
        let s = Summary::of(&mut [u64::MAX, u64::MAX]).unwrap();
        assert_eq!(s.mean, u64::MAX);
    }
}
