//! PSCI relay (Arm DEN0022). Every PSCI call from the host goes to EL3, but the calls that
//! name an entry point (CPU_ON, CPU_SUSPEND, CPU_DEFAULT_SUSPEND, SYSTEM_SUSPEND) would
//! otherwise start or resume a CPU at EL2 in host code, outside stage-2. warden replaces
//! the entry point with its own and remembers the host's, so that every CPU passes
//! through warden's EL2 setup before it enters the host at EL1.

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
pub const SUCCESS: u64 = 0;
pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
pub const INVALID_ADDRESS: u64 = -9i64 as u64;

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

/// The two layouts of CPU_SUSPEND's power_state (DEN0022 §5.4.2), as EL3 reports with
/// PSCI_FEATURES(CPU_SUSPEND) bit 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PowerStateFormat {
    /// StateType (1 = power down) in bit 16.
    #[default]
    Original,
    /// StateType in bit 30.
    Extended,
}

impl PowerStateFormat {
    /// From PSCI_FEATURES(CPU_SUSPEND)'s answer (negative: not supported, original).
    pub fn from_features(w0: u64) -> Self {
        if (w0 as u32 as i32) >= 0 && w0 & 2 != 0 {
            Self::Extended
        } else {
            Self::Original
        }
    }
    /// Whether `power_state` asks for a power-down state, the only kind that resumes at the
    /// entry point (a standby state returns from the call; Linux passes entry 0 for those).
    pub fn is_power_down(self, power_state: u64) -> bool {
        let bit = match self {
            Self::Original => 16,
            Self::Extended => 30,
        };
        power_state >> bit & 1 != 0
    }
}

/// Why warden's secondary entry runs: a CPU_ON, or the resume from a suspend. Each has its
/// own recorded host entry, so that a CPU_ON (even a refused one) never changes where a
/// suspended CPU resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryReason {
    On = 0,
    Resume = 1,
}

/// The context ID warden gives EL3 for its own entry: the CPU index in bits [15:0] (what
/// `boot/entry.S` picks the stack with), the reason in bit 16.
pub fn warden_context(cpu: usize, reason: EntryReason) -> u64 {
    cpu as u64 & 0xffff | (reason as u64) << 16
}

/// The inverse of `warden_context`.
pub fn decode_warden_context(context: u64) -> (usize, EntryReason) {
    let reason = if context >> 16 & 1 != 0 {
        EntryReason::Resume
    } else {
        EntryReason::On
    };
    ((context & 0xffff) as usize, reason)
}

/// The host's entry point for a CPU that warden will bring up or resume.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostEntry {
    pub entry: u64,
    pub context_id: u64,
}

/// Which recorded entry a relayed call sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntrySlot {
    pub cpu: usize,
    pub reason: EntryReason,
}

/// The host entries warden keeps: one for CPU_ON and one for resume, per CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostEntryTable<const N: usize> {
    on: [Option<HostEntry>; N],
    resume: [Option<HostEntry>; N],
}

impl<const N: usize> Default for HostEntryTable<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> HostEntryTable<N> {
    pub const fn new() -> Self {
        Self {
            on: [None; N],
            resume: [None; N],
        }
    }
    fn slot(&mut self, s: EntrySlot) -> Option<&mut Option<HostEntry>> {
        match s.reason {
            EntryReason::On => self.on.get_mut(s.cpu),
            EntryReason::Resume => self.resume.get_mut(s.cpu),
        }
    }
    /// Records `entry` and returns what was there, to put back if EL3 refuses the call.
    pub fn set(&mut self, s: EntrySlot, entry: HostEntry) -> Option<HostEntry> {
        self.slot(s).and_then(|slot| slot.replace(entry))
    }
    pub fn restore(&mut self, s: EntrySlot, previous: Option<HostEntry>) {
        if let Some(slot) = self.slot(s) {
            *slot = previous;
        }
    }
    /// Takes the entry for a CPU that warden's entry is bringing up.
    pub fn take(&mut self, s: EntrySlot) -> Option<HostEntry> {
        self.slot(s).and_then(Option::take)
    }
}

/// A PSCI call rewritten for EL3: the host entry to record (none for a standby suspend,
/// which returns from the call) and the registers to send instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relayed {
    pub record: Option<(EntrySlot, HostEntry)>,
    pub regs: [u64; 18],
}

/// What the relay needs to know about the machine.
pub struct RelayContext<'a> {
    /// The calling CPU's index.
    pub current_cpu: usize,
    /// Where EL3 starts CPUs for warden.
    pub warden_entry: u64,
    pub power_state_format: PowerStateFormat,
    /// warden's index for an MPIDR.
    pub cpu_index: &'a dyn Fn(u64) -> Option<usize>,
    /// Whether the host may run code at this address (its RAM, not warden's).
    pub is_host_entry: &'a dyn Fn(u64) -> bool,
}

/// Rewrites an entry-point PSCI call so that the CPU starts at warden's entry with
/// warden's context ID. Errors (PSCI codes, nothing sent to EL3): INVALID_PARAMETERS for
/// a CPU_ON target that is not a CPU of this system, INVALID_ADDRESS for an entry point
/// outside the host's RAM (DEN0022 §5.1.4, §5.4.2, §5.20.2). An SMC32 call's arguments are
/// 32-bit: the upper halves of the host's registers are ignored (SMCCC DEN0028 §2.6).
pub fn relay_entry_point(
    kind: EntryPoint,
    is_64: bool,
    regs: &[u64; 18],
    cx: &RelayContext,
) -> Result<Relayed, u64> {
    let arg = |r: u64| if is_64 { r } else { r as u32 as u64 };
    let mut out = *regs;
    // Fixed register numbers per call (no computed indexes on host registers).
    let (cpu, reason, entry_reg, host) = match kind {
        EntryPoint::CpuOn => {
            let cpu = (cx.cpu_index)(arg(regs[1])).ok_or(INVALID_PARAMETERS)?;
            let host = HostEntry {
                entry: arg(regs[2]),
                context_id: arg(regs[3]),
            };
            (cpu, EntryReason::On, 2, host)
        }
        EntryPoint::CpuSuspend => {
            let host = HostEntry {
                entry: arg(regs[2]),
                context_id: arg(regs[3]),
            };
            if !cx.power_state_format.is_power_down(arg(regs[1])) {
                // A standby state returns from the call: nothing to record. warden's
                // entry still replaces the host's, in case EL3 powers down after all.
                out[2] = cx.warden_entry;
                out[3] = warden_context(cx.current_cpu, EntryReason::Resume);
                return Ok(Relayed {
                    record: None,
                    regs: out,
                });
            }
            (cx.current_cpu, EntryReason::Resume, 2, host)
        }
        EntryPoint::SelfSuspend => {
            let host = HostEntry {
                entry: arg(regs[1]),
                context_id: arg(regs[2]),
            };
            (cx.current_cpu, EntryReason::Resume, 1, host)
        }
    };
    if !(cx.is_host_entry)(host.entry) {
        return Err(INVALID_ADDRESS);
    }
    let context = warden_context(cpu, reason);
    if entry_reg == 2 {
        out[2] = cx.warden_entry;
        out[3] = context;
    } else {
        out[1] = cx.warden_entry;
        out[2] = context;
    }
    Ok(Relayed {
        record: Some((EntrySlot { cpu, reason }, host)),
        regs: out,
    })
}

/// warden's index for the CPU with `mpidr`: its position among the DT's CPUs (`dt_cpus`,
/// affinity values), for the boot CPU as for any other, if below `max`. MPIDR_EL1's
/// non-affinity bits (U, MT, RES1 bit 31) are ignored.
pub fn cpu_index(dt_cpus: &[u64], mpidr: u64, max: usize) -> Option<usize> {
    let aff = mpidr & 0xff_00ff_ffff;
    dt_cpus.iter().position(|&c| c == aff).filter(|&i| i < max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(mpidr: u64) -> Option<usize> {
        [0x0, 0x1, 0x100].iter().position(|&m| m == mpidr)
    }

    fn host_ram(a: u64) -> bool {
        (0x4000_0000..0x6000_0000).contains(&a)
    }

    fn cx(current_cpu: usize) -> RelayContext<'static> {
        RelayContext {
            current_cpu,
            warden_entry: 0x6000_0040,
            power_state_format: PowerStateFormat::Original,
            cpu_index: &index,
            is_host_entry: &host_ram,
        }
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
        let r = relay_entry_point(EntryPoint::CpuOn, true, &regs, &cx(0)).unwrap();
        let (slot, host) = r.record.unwrap();
        assert_eq!(
            slot,
            EntrySlot {
                cpu: 2,
                reason: EntryReason::On
            }
        );
        assert_eq!(
            host,
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
        regs[2] = 0x4020_0000;
        assert_eq!(
            relay_entry_point(EntryPoint::CpuOn, true, &regs, &cx(0)),
            Err(INVALID_PARAMETERS)
        );
    }

    #[test]
    fn entry_points_outside_host_ram_are_invalid_addresses() {
        // Inside warden, in flash, and zero: for CPU_ON, a power-down CPU_SUSPEND,
        // CPU_DEFAULT_SUSPEND and SYSTEM_SUSPEND.
        for bad in [0x6000_0000, 0x200, 0] {
            let mut on = [0u64; 18];
            on[1] = 0x1;
            on[2] = bad;
            assert_eq!(
                relay_entry_point(EntryPoint::CpuOn, true, &on, &cx(0)),
                Err(INVALID_ADDRESS)
            );
            let mut suspend = [0u64; 18];
            suspend[1] = 1 << 16;
            suspend[2] = bad;
            assert_eq!(
                relay_entry_point(EntryPoint::CpuSuspend, true, &suspend, &cx(0)),
                Err(INVALID_ADDRESS)
            );
            let mut system = [0u64; 18];
            system[1] = bad;
            assert_eq!(
                relay_entry_point(EntryPoint::SelfSuspend, true, &system, &cx(0)),
                Err(INVALID_ADDRESS)
            );
        }
    }

    #[test]
    fn standby_suspend_records_nothing_and_needs_no_entry() {
        // Linux passes entry 0 for a standby state (psci_cpu_suspend_enter).
        let mut regs = [0u64; 18];
        regs[1] = 0x1; // StateType 0 (standby) in the original format.
        let r = relay_entry_point(EntryPoint::CpuSuspend, true, &regs, &cx(1)).unwrap();
        assert_eq!(r.record, None);
        // In the extended format bit 16 is part of the state ID, bit 30 the type.
        let extended = RelayContext {
            power_state_format: PowerStateFormat::Extended,
            ..cx(1)
        };
        regs[1] = 1 << 16;
        let r = relay_entry_point(EntryPoint::CpuSuspend, true, &regs, &extended).unwrap();
        assert_eq!(r.record, None);
        regs[1] = 1 << 30;
        regs[2] = 0x4030_0000;
        let r = relay_entry_point(EntryPoint::CpuSuspend, true, &regs, &extended).unwrap();
        assert_eq!(r.record.unwrap().0.reason, EntryReason::Resume);
        assert_eq!(
            PowerStateFormat::from_features(2),
            PowerStateFormat::Extended
        );
        assert_eq!(
            PowerStateFormat::from_features(-1i64 as u64),
            PowerStateFormat::Original
        );
    }

    #[test]
    fn smc32_arguments_ignore_the_upper_halves() {
        let mut regs = [0u64; 18];
        regs[0] = CPU_ON as u64;
        regs[1] = 0xffff_ffff_0000_0100;
        regs[2] = 0xdead_0000_4020_0000;
        regs[3] = 0xbeef_0000_0000_0007;
        let r = relay_entry_point(EntryPoint::CpuOn, false, &regs, &cx(0)).unwrap();
        let (slot, host) = r.record.unwrap();
        assert_eq!(slot.cpu, 2);
        assert_eq!(
            host,
            HostEntry {
                entry: 0x4020_0000,
                context_id: 7
            }
        );
        // The same registers as SMC64 name no CPU.
        assert_eq!(
            relay_entry_point(EntryPoint::CpuOn, true, &regs, &cx(0)),
            Err(INVALID_PARAMETERS)
        );
    }

    #[test]
    fn suspend_uses_calling_cpu() {
        let mut regs = [0u64; 18];
        regs[1] = 0x4030_0000;
        regs[2] = 7;
        let r = relay_entry_point(EntryPoint::SelfSuspend, true, &regs, &cx(1)).unwrap();
        let (slot, host) = r.record.unwrap();
        assert_eq!(
            slot,
            EntrySlot {
                cpu: 1,
                reason: EntryReason::Resume
            }
        );
        assert_eq!(host.entry, 0x4030_0000);
        assert_eq!(
            &r.regs[1..3],
            &[0x6000_0040, warden_context(1, EntryReason::Resume)]
        );
        assert_eq!(decode_warden_context(r.regs[2]), (1, EntryReason::Resume));
    }

    #[test]
    fn on_and_resume_entries_are_separate_and_restorable() {
        let mut t = HostEntryTable::<4>::new();
        let on = EntrySlot {
            cpu: 1,
            reason: EntryReason::On,
        };
        let resume = EntrySlot {
            cpu: 1,
            reason: EntryReason::Resume,
        };
        let e = |entry| HostEntry {
            entry,
            context_id: 0,
        };
        assert_eq!(t.set(resume, e(0x4100_0000)), None);
        let before = t.clone();
        let previous = t.set(on, e(0x4200_0000));
        t.restore(on, previous);
        assert_eq!(t, before, "a refused CPU_ON leaves nothing behind");
        assert_eq!(t.take(resume), Some(e(0x4100_0000)));
        assert_eq!(t.take(resume), None);
        // Out of range: nothing recorded, nothing panics.
        let far = EntrySlot {
            cpu: 9,
            reason: EntryReason::On,
        };
        assert_eq!(t.set(far, e(1)), None);
        assert_eq!(t.take(far), None);
    }

    #[test]
    fn the_boot_cpu_is_indexed_by_its_dt_position() {
        // A platform whose boot CPU is the third in /cpus (MPIDR_EL1 with RES1 bit 31).
        let dt = [0x0, 0x1, 0x100, 0x101];
        let boot = cpu_index(&dt, 0x8000_0100, 8);
        assert_eq!(boot, Some(2));
        // The first DT CPU, started later by CPU_ON, gets another index (and so another
        // stack) than the boot CPU.
        assert_eq!(cpu_index(&dt, 0x0, 8), Some(0));
        let all: std::vec::Vec<_> = dt.iter().map(|&m| cpu_index(&dt, m, 8)).collect();
        assert_eq!(all, [Some(0), Some(1), Some(2), Some(3)]);
        assert_eq!(cpu_index(&dt, 0x101, 3), None, "past MAX_CPUS");
        assert_eq!(cpu_index(&dt, 0x200, 8), None);
    }
}
