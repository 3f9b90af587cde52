//! Calls to the firmware and to warden: SMC and HVC with x0-x17 as SMCCC 1.2 allows
//! (DEN0028 §2), and PSCI's SYSTEM_OFF and SYSTEM_RESET (DEN0022 §5).

use warden::psci::{SYSTEM_OFF, SYSTEM_RESET};

/// An SMC of `fid` with `args` in x1 upwards (the rest 0); returns x0-x17.
pub fn smc(fid: u32, args: &[u64]) -> [u64; 18] {
    smccc::smc64(fid, regs(args))
}

/// An HVC to warden of `fid` with `args` in x1 upwards (the rest 0); returns x0-x17.
pub fn hvc(fid: u32, args: &[u64]) -> [u64; 18] {
    smccc::hvc64(fid, regs(args))
}

fn regs(args: &[u64]) -> [u64; 17] {
    let mut a = [0u64; 17];
    let n = args.len().min(17);
    a[..n].copy_from_slice(&args[..n]);
    a
}

/// Powers the machine off (PSCI SYSTEM_OFF, which does not return).
pub fn power_off() -> ! {
    smc(SYSTEM_OFF, &[]);
    park()
}

/// Resets the machine (PSCI SYSTEM_RESET); the harness reads a reset as a failure.
pub fn reset() -> ! {
    smc(SYSTEM_RESET, &[]);
    park()
}

fn park() -> ! {
    loop {
        core::hint::spin_loop();
    }
}
