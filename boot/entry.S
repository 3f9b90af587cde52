// warden's first instructions. Only what cannot be Rust: the EL check, BSS clearing and
// a stack, for the boot CPU and for secondaries started through PSCI CPU_ON.

.section .text.boot, "ax"
.global _start
_start:
    // x0 = DTB pointer (Linux arm64 boot protocol; TF-A with ARM_LINUX_KERNEL_AS_BL33).
    // The counter first, for the boot-cost figure (warden's HVC WARDEN_BOOT_TIMES).
    mrs     x20, cntpct_el0
    msr     daifset, #0xf
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.ne    .Lrefuse
    // Absolute addresses in the image are link-time ones: refuse to run elsewhere.
    adr     x9, _start
    ldr     x10, =_start
    cmp     x9, x10
    b.ne    .Lrefuse

    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:
    mov     x1, #0
    bl      .Lset_stack
    // x0 still holds the DTB; x1 = the counter at entry.
    mov     x1, x20
    bl      warden_primary_main
    b       .Lpark

// PSCI CPU_ON / resume entry for secondaries: x0 = context ID = warden's CPU index in
// bits [15:0] and the reason above (psci::warden_context), passed on whole to Rust.
.global _secondary_start
_secondary_start:
    msr     daifset, #0xf
    ubfx    x1, x0, #0, #16
    ldr     x9, =MAX_CPUS
    cmp     x1, x9
    b.hs    .Lpark
    bl      .Lset_stack
    bl      warden_secondary_main
    b       .Lpark

// sp = __stacks_start + (x1 + 1) * STACK_STRIDE (linker.ld: a guard page, then the stack,
// per CPU). Clobbers x9-x11.
.Lset_stack:
    adrp    x9, __stacks_start
    add     x9, x9, :lo12:__stacks_start
    add     x10, x1, #1
    ldr     x11, =STACK_STRIDE
    madd    x9, x10, x11, x9
    mov     sp, x9
    ret

// Not at EL2, or not at the link address: there is no safe way to report it yet
// (no console before the DT is parsed), so stop here with a marker in x0.
.Lrefuse:
    mov     x0, #0xbad
.Lpark:
    wfe
    b       .Lpark
