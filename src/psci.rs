//! PSCI relay (Arm DEN0022). Every PSCI call from the host goes to EL3, but the calls that
//! name an entry point (CPU_ON, CPU_SUSPEND, CPU_DEFAULT_SUSPEND, SYSTEM_SUSPEND) would
//! otherwise start or resume a CPU at EL2 in host code, outside stage-2. warden replaces
//! the entry point with its own and remembers the host's, so that every CPU passes
//! through warden's EL2 setup before it enters the host at EL1.
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

use crate::smccc::FunctionId;

pub const PSCI_VERSION: u32 = 0x8400_0000;
pub const CPU_SUSPEND: u32 = 0x8400_0001;
pub const CPU_OFF: u32 = 0x8400_0002;
pub const CPU_ON: u32 = 0x8400_0003;
pub const AFFINITY_INFO: u32 = 0x8400_0004;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;
pub const PSCI_FEATURES: u32 = 0x8400_000a;
pub const CPU_DEFAULT_SUSPEND: u32 = 0x8400_000c;
pub const SYSTEM_SUSPEND: u32 = 0x8400_000e;

/// PSCI return codes (DEN0022 §5.2.2).
pub const INVALID_PARAMETERS: u64 = -2i64 as u64;

/// Whether `fid` is in the PSCI range (function numbers 0x00-0x1f of the standard
/// secure service, SMC32 or SMC64).
pub fn is_psci(fid: FunctionId) -> bool {
    let base = fid.0 & !(1 << 30);
    (0x8400_0000..=0x8400_001f).contains(&base)
}

/// SYSTEM_OFF, SYSTEM_RESET and SYSTEM_RESET2: the last call the host makes.
pub fn ends_the_system(fid: FunctionId) -> bool {
    matches!(fid.0 & !(1 << 30), SYSTEM_OFF | SYSTEM_RESET | 0x8400_0012)
}

/// Where a PSCI call keeps its entry point and context ID, if it has them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryPoint {
    /// CPU_ON: x1 = target MPIDR, x2 = entry, x3 = context ID.
    CpuOn,
    /// CPU_SUSPEND: x1 = power state, x2 = entry, x3 = context ID (the calling CPU).
    CpuSuspend,
    /// CPU_DEFAULT_SUSPEND and SYSTEM_SUSPEND: x1 = entry, x2 = context ID.
    SelfSuspend,
}

pub fn entry_point_kind(fid: FunctionId) -> Option<EntryPoint> {
    match fid.0 & !(1 << 30) {
        CPU_ON => Some(EntryPoint::CpuOn),
        CPU_SUSPEND => Some(EntryPoint::CpuSuspend),
        CPU_DEFAULT_SUSPEND | SYSTEM_SUSPEND => Some(EntryPoint::SelfSuspend),
        _ => None,
    }
}

/// The host's entry point for a CPU that warden will bring up or resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostEntry {
    pub entry: u64,
    pub context_id: u64,
}

/// A PSCI call rewritten for EL3: which CPU's host entry to record and the registers
/// to send instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relayed {
    pub cpu: usize,
    pub host: HostEntry,
    pub regs: [u64; 18],
}

/// Rewrites an entry-point PSCI call so that the CPU starts at `warden_entry` with
/// warden's CPU index as its context ID. `cpu_index` maps an MPIDR to warden's index;
/// `current_cpu` is the calling CPU's index. Returns `Err(INVALID_PARAMETERS)` for a
/// CPU_ON target that is not a CPU of this system.
pub fn relay_entry_point(
    kind: EntryPoint,
    regs: &[u64; 18],
    current_cpu: usize,
    warden_entry: u64,
    cpu_index: impl Fn(u64) -> Option<usize>,
) -> Result<Relayed, u64> {
    let mut out = *regs;
    // Fixed register numbers per call (no computed indexes on host registers).
    let (cpu, host) = match kind {
        EntryPoint::CpuOn | EntryPoint::CpuSuspend => {
            let cpu = match kind {
                EntryPoint::CpuOn => cpu_index(regs[1]).ok_or(INVALID_PARAMETERS)?,
                _ => current_cpu,
            };
            out[2] = warden_entry;
            out[3] = cpu as u64;
            (
                cpu,
                HostEntry {
                    entry: regs[2],
                    context_id: regs[3],
                },
            )
        }
        EntryPoint::SelfSuspend => {
            out[1] = warden_entry;
            out[2] = current_cpu as u64;
            (
                current_cpu,
                HostEntry {
                    entry: regs[1],
                    context_id: regs[2],
                },
            )
        }
    };
    Ok(Relayed {
        cpu,
        host,
        regs: out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(mpidr: u64) -> Option<usize> {
        [0x0, 0x1, 0x100].iter().position(|&m| m == mpidr)
    }

    #[test]
    fn classifies() {
        assert!(is_psci(FunctionId(PSCI_VERSION)));
        assert!(is_psci(FunctionId(0xc400_0003)));
        assert!(!is_psci(FunctionId(0x8400_0063)));
        assert_eq!(
            entry_point_kind(FunctionId(0xc400_0003)),
            Some(EntryPoint::CpuOn)
        );
        assert_eq!(
            entry_point_kind(FunctionId(0xc400_000e)),
            Some(EntryPoint::SelfSuspend)
        );
        assert_eq!(entry_point_kind(FunctionId(CPU_OFF)), None);
    }

    #[test]
    fn cpu_on_swaps_entry_and_context() {
        let mut regs = [0u64; 18];
        regs[0] = 0xc400_0003;
        regs[1] = 0x100;
        regs[2] = 0x4020_0000;
        regs[3] = 0xdead;
        let r = relay_entry_point(EntryPoint::CpuOn, &regs, 0, 0x6000_0040, index).unwrap();
        assert_eq!(r.cpu, 2);
        assert_eq!(
            r.host,
            HostEntry {
                entry: 0x4020_0000,
                context_id: 0xdead
            }
        );
        assert_eq!(&r.regs[..4], &[0xc400_0003, 0x100, 0x6000_0040, 2]);
    }

    #[test]
    fn cpu_on_unknown_target_is_invalid() {
        let mut regs = [0u64; 18];
        regs[1] = 0x3;
        assert_eq!(
            relay_entry_point(EntryPoint::CpuOn, &regs, 0, 0x6000_0040, index),
            Err(INVALID_PARAMETERS)
        );
    }

    #[test]
    fn suspend_uses_calling_cpu() {
        let mut regs = [0u64; 18];
        regs[1] = 0x4030_0000;
        regs[2] = 7;
        let r = relay_entry_point(EntryPoint::SelfSuspend, &regs, 1, 0x6000_0040, index).unwrap();
        assert_eq!(r.cpu, 1);
        assert_eq!(r.host.entry, 0x4030_0000);
        assert_eq!(&r.regs[1..3], &[0x6000_0040, 1]);
    }
}
