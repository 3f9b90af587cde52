//! What happens when warden itself fails: a panic, or an exception taken from EL2. The
//! policy (`crate::failure`): the first CPU to fail reports and ends the system with PSCI
//! SYSTEM_OFF; every other CPU stops where it next enters warden.

use core::fmt::Write as _;
use core::panic::PanicInfo;

use aarch64_cpu::registers::*;

use super::park;
use super::percpu::current_cpu_index;
use super::trap::Vector;
use crate::arch::frame::TrapFrame;
use crate::failure::{Claim, FailureLatch};
use crate::platform::emergency;
use crate::psci;

static LATCH: FailureLatch = FailureLatch::new();

/// Whether another CPU has failed: a CPU entering warden then stops at once.
pub fn stop_if_failing() {
    if LATCH.failing() {
        park()
    }
}

/// Reports with `report` if this is the first failure, then ends the system.
fn fail(report: impl FnOnce()) -> ! {
    match LATCH.claim(current_cpu_index()) {
        Claim::Stop => park(),
        Claim::Report => report(),
        Claim::EndNow => {}
    }
    emergency::write(format_args!(
        "warden: stopping the system (PSCI SYSTEM_OFF)\n"
    ));
    for fid in [psci::SYSTEM_OFF, psci::SYSTEM_RESET] {
        // Neither returns when EL3 honours it (DEN0022 §5.10, §5.11).
        let _ = smccc::smc64(fid, [0; 17]);
    }
    park()
}

/// For the failure-policy scenario only: a warden built with `WARDEN_TEST_FAIL=panic` or
/// `WARDEN_TEST_FAIL=stack-overflow` fails that way when the host first asks for its
/// counters (scripts/qemu-tests, scenario failure-policy). Any other build compiles this
/// to nothing.
pub fn deliberate_failure() {
    /// Recurses with 512-byte frames until the stack runs into its guard page.
    #[inline(never)]
    fn deeper(depth: u64) -> u64 {
        let frame = core::hint::black_box([depth; 64]);
        if core::hint::black_box(depth) == u64::MAX {
            return 0;
        }
        deeper(depth + 1).wrapping_add(frame[7])
    }
    match option_env!("WARDEN_TEST_FAIL") {
        #[allow(clippy::panic, reason = "the failure-policy test's deliberate panic")]
        Some("panic") => panic!("deliberate failure (WARDEN_TEST_FAIL=panic)"),
        Some("stack-overflow") => {
            core::hint::black_box(deeper(0));
        }
        _ => {}
    }
}

/// An exception taken from EL2 itself: a bug in warden (`boot/vectors.S` has already moved
/// to the top of this CPU's stack).
#[unsafe(no_mangle)]
extern "C" fn warden_el2_fault(frame: &mut TrapFrame, slot: u64) -> ! {
    let elr = frame.elr;
    fail(|| {
        let vector = Vector::from_slot(slot);
        emergency::write(format_args!(
            "\nwarden: EL2 exception kind {slot} ({:?} {:?}) on CPU {} ESR {:#x} FAR {:#x} ELR {elr:#x}\n",
            vector.origin,
            vector.kind,
            current_cpu_index(),
            ESR_EL2.get(),
            FAR_EL2.get(),
        ))
    })
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    fail(|| {
        let _ = write!(
            emergency::Emergency,
            "\nwarden PANIC on CPU {}: {info}\n",
            current_cpu_index()
        );
    })
}
