//! What happens when warden itself fails: a panic, or an exception taken from EL2.

use core::fmt::Write as _;
use core::panic::PanicInfo;

use aarch64_cpu::registers::*;

use super::park;
use super::percpu::current_cpu_index;
use super::trap::Vector;
use crate::arch::frame::TrapFrame;
use crate::platform::emergency;

/// An exception taken from EL2 itself: a bug in warden. Report and stop this CPU.
#[unsafe(no_mangle)]
extern "C" fn warden_el2_fault(frame: &mut TrapFrame, slot: u64) -> ! {
    let vector = Vector::from_slot(slot);
    emergency::write(format_args!(
        "\nwarden: EL2 exception kind {slot} ({:?} {:?}) on CPU {} ESR {:#x} FAR {:#x} ELR {:#x}\n",
        vector.origin,
        vector.kind,
        current_cpu_index(),
        ESR_EL2.get(),
        FAR_EL2.get(),
        frame.elr
    ));
    park()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let _ = write!(
        emergency::Emergency,
        "\nwarden PANIC on CPU {}: {info}\n",
        current_cpu_index()
    );
    park()
}
