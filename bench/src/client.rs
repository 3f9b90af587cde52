//! The client's platform, from el1kit (entry, vectors, MMU, console, heap, calls): the
//! Rust entry from the kit's boot.S, and how a run ends.

use core::panic::PanicInfo;

use el1kit::call::power_off;
pub use el1kit::mmu::El;

#[unsafe(no_mangle)]
extern "C" fn el1kit_main(dtb: u64, entry_counter: u64) -> ! {
    let el = El::current();
    el1kit::mmu::init(el, dtb);
    el1kit::heap::init();
    if let Some(uart) = el1kit::dt::read(dtb).and_then(|(_, p)| p.console) {
        el1kit::console::set_base(uart.start);
    }
    let ok = crate::ops::run(el, dtb, entry_counter);
    say!("bench: {}", if ok { "done" } else { "FAILED" });
    power_off()
}

#[unsafe(no_mangle)]
extern "C" fn el1kit_unexpected(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    say!("bench: unexpected exception {kind}: ESR {esr:#x} ELR {elr:#x} FAR {far:#x}");
    say!("bench: FAILED");
    power_off()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    say!("bench: panic: {info}");
    say!("bench: FAILED");
    power_off()
}
