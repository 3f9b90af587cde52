//! What warden does when it fails itself (a panic, an exception taken from EL2), as pure
//! logic the runtime (`runtime::failure`) applies and the host tests check.
//!
//! The policy: a CPU that fails may hold any of warden's locks, so nothing may wait for it.
//! 1. The first CPU to fail claims the latch; every other CPU that enters warden from then
//!    on (a host trap, or a failure of its own) stops there, and takes no lock.
//! 2. The failing CPU prints its report with the lock-free emergency writer (whose wait on
//!    the UART is bounded, so a stalled console cannot stop step 3).
//! 3. It asks EL3 for PSCI SYSTEM_OFF (DEN0022 §5.10), which ends every CPU whatever it is
//!    doing, spinning on a lock included; should EL3 return, SYSTEM_RESET, then it parks.
//!    Off rather than reset: a failure that recurs at boot would otherwise loop for ever.
//!    A CPU that fails again while failing (say, the report itself faults) skips to 3.
//!
//! Each CPU's EL2 stack has an unmapped guard page below it (`StackLayout`), so an
//! overflow faults instead of silently writing the neighbour's stack; the fault vectors
//! move to the top of the CPU's own stack before saving anything (`boot/vectors.S`).

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::platform::memmap::Range;

/// Who has failed: 0 while all is well, else the failing CPU's index + 1.
pub struct FailureLatch(AtomicUsize);

/// What a CPU that fails should do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    /// The first failure: report, then end the system.
    Report,
    /// This CPU failed again while failing: end the system without another report.
    EndNow,
    /// Another CPU is already ending the system: stop here.
    Stop,
}

impl FailureLatch {
    pub const fn new() -> Self {
        Self(AtomicUsize::new(0))
    }

    pub fn claim(&self, cpu: usize) -> Claim {
        match self
            .0
            .compare_exchange(0, cpu + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Claim::Report,
            Err(owner) if owner == cpu + 1 => Claim::EndNow,
            Err(_) => Claim::Stop,
        }
    }

    /// Whether some CPU has failed (checked on every entry from the host).
    pub fn failing(&self) -> bool {
        self.0.load(Ordering::Relaxed) != 0
    }
}

impl Default for FailureLatch {
    fn default() -> Self {
        Self::new()
    }
}

/// The per-CPU EL2 stacks as linker.ld lays them out: CPU `i`'s slot is a guard page then
/// its stack, so a guard sits below every stack, stack 0 included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackLayout {
    pub start: u64,
    pub stack_size: u64,
    pub guard_size: u64,
    pub cpus: usize,
}

impl StackLayout {
    fn stride(&self) -> u64 {
        self.stack_size + self.guard_size
    }
    /// The initial SP of `cpu`: the end of its slot.
    pub fn top(&self, cpu: usize) -> u64 {
        self.start + (cpu as u64 + 1) * self.stride()
    }
    /// The unmapped page(s) below `cpu`'s stack.
    pub fn guard(&self, cpu: usize) -> Range {
        let base = self.start + cpu as u64 * self.stride();
        Range::new(base, base + self.guard_size)
    }
    pub fn guards(&self) -> impl Iterator<Item = Range> + '_ {
        (0..self.cpus).map(|cpu| self.guard(cpu))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_failure_reports_others_stop_and_a_second_fault_ends_at_once() {
        let latch = FailureLatch::new();
        assert!(!latch.failing());
        assert_eq!(latch.claim(2), Claim::Report);
        assert!(latch.failing());
        assert_eq!(latch.claim(0), Claim::Stop);
        assert_eq!(latch.claim(3), Claim::Stop);
        assert_eq!(latch.claim(2), Claim::EndNow);
    }

    #[test]
    fn only_one_of_many_racing_cpus_reports() {
        let latch = std::sync::Arc::new(FailureLatch::new());
        let reports: usize = (0..8)
            .map(|cpu| {
                let l = latch.clone();
                std::thread::spawn(move || l.claim(cpu))
            })
            .collect::<std::vec::Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|c| *c == Claim::Report)
            .count();
        assert_eq!(reports, 1);
    }

    #[test]
    fn every_stack_has_a_guard_below_it_and_none_overlap() {
        let l = StackLayout {
            start: 0x6010_0000,
            stack_size: 0x10000,
            guard_size: 0x1000,
            cpus: 8,
        };
        for cpu in 0..l.cpus {
            let g = l.guard(cpu);
            let stack = Range::new(g.end, l.top(cpu));
            assert_eq!(stack.len(), l.stack_size, "CPU {cpu}");
            assert_eq!(g.len(), 0x1000);
            // The stack grows down into its own guard, never into the CPU below.
            if cpu > 0 {
                assert_eq!(g.start, l.top(cpu - 1));
            }
        }
        assert_eq!(l.guard(0).start, l.start, "a guard below stack 0");
        assert_eq!(l.guards().count(), 8);
    }
}
