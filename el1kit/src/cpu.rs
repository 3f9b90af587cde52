//! Secondary CPUs, started with PSCI CPU_ON (DEN0022 §5) at boot.S's
//! `el1kit_secondary_entry` with a context ID whose low two bits pick its stack (1-3).

use core::sync::atomic::{AtomicUsize, Ordering};

static SECONDARY_MAIN: AtomicUsize = AtomicUsize::new(0);

/// The entry point to pass to CPU_ON, whose CPU will run `main(context_id)`.
pub fn secondary_entry(main: extern "C" fn(u64) -> !) -> u64 {
    SECONDARY_MAIN.store(main as usize, Ordering::Release);
    unsafe extern "C" {
        fn el1kit_secondary_entry();
    }
    el1kit_secondary_entry as *const () as u64
}

#[unsafe(no_mangle)]
extern "C" fn el1kit_secondary(ctx: u64) -> ! {
    let main = SECONDARY_MAIN.load(Ordering::Acquire);
    if main != 0 {
        // SAFETY: only `secondary_entry` stores here, a `extern "C" fn(u64) -> !`.
        let main: extern "C" fn(u64) -> ! = unsafe { core::mem::transmute(main) };
        main(ctx)
    }
    // Started without a main: nothing to do but wait.
    loop {
        // SAFETY: wfe only waits for an event.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}
