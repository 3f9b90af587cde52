// EL2 exception vectors (VBAR_EL2). Every entry saves the full interrupted context as a
// `TrapFrame` on the EL2 stack and calls Rust; Rust may change any saved register, so
// the return path restores all of them. x1 = the vector's slot (offset from VBAR_EL2 / 0x80),
// which Rust decodes as `runtime::trap::Vector`.

.macro save_frame
    sub     sp, sp, #{FRAME_SIZE}
    stp     x0, x1, [sp, #16 * 0]
    stp     x2, x3, [sp, #16 * 1]
    stp     x4, x5, [sp, #16 * 2]
    stp     x6, x7, [sp, #16 * 3]
    stp     x8, x9, [sp, #16 * 4]
    stp     x10, x11, [sp, #16 * 5]
    stp     x12, x13, [sp, #16 * 6]
    stp     x14, x15, [sp, #16 * 7]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #16 * 9]
    stp     x20, x21, [sp, #16 * 10]
    stp     x22, x23, [sp, #16 * 11]
    stp     x24, x25, [sp, #16 * 12]
    stp     x26, x27, [sp, #16 * 13]
    stp     x28, x29, [sp, #16 * 14]
    mrs     x9, elr_el2
    mrs     x10, spsr_el2
    str     x30, [sp, #{FRAME_X30}]
    stp     x9, x10, [sp, #{FRAME_ELR}]
.endm

.macro vector_entry handler, slot
.balign 0x80
    save_frame
    mov     x0, sp
    mov     x1, #\slot
    bl      \handler
    b       warden_restore_frame_and_eret
.endm

// A fault inside warden may be a stack overflow into the guard page below the stack, where
// saving a frame would fault again: first move SP to the top of this CPU's own stack
// (TPIDR_EL2 = warden's CPU index). Nothing returns from a fault, so whatever the stack
// held is no longer needed. x0 and x1 are used for that and not reported.
.macro fault_entry slot
.balign 0x80
    mrs     x0, tpidr_el2
    add     x0, x0, #1
    ldr     x1, =STACK_STRIDE
    mul     x0, x0, x1
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    add     x0, x0, x1
    mov     sp, x0
    save_frame
    mov     x0, sp
    mov     x1, #\slot
    bl      warden_el2_fault
.endm

.section .text.vectors, "ax"
.balign 0x800
.global warden_el2_vectors
warden_el2_vectors:
    // Current EL with SP_EL0: warden never runs on SP_EL0.
    vector_entry warden_el2_fault, 0
    vector_entry warden_el2_fault, 1
    vector_entry warden_el2_fault, 2
    vector_entry warden_el2_fault, 3
    // Current EL with SP_EL2: a fault inside warden.
    fault_entry 4
    fault_entry 5
    fault_entry 6
    fault_entry 7
    // Lower EL, AArch64: the host.
    vector_entry warden_host_trap, 8
    vector_entry warden_host_trap, 9
    vector_entry warden_host_trap, 10
    vector_entry warden_host_trap, 11
    // Lower EL, AArch32: the host is AArch64 only (HCR_EL2.RW = 1).
    vector_entry warden_host_trap, 12
    vector_entry warden_host_trap, 13
    vector_entry warden_host_trap, 14
    vector_entry warden_host_trap, 15

// Restores the TrapFrame at sp and returns to where ELR_EL2/SPSR_EL2 say.
.global warden_restore_frame_and_eret
warden_restore_frame_and_eret:
    ldp     x9, x10, [sp, #{FRAME_ELR}]
    msr     elr_el2, x9
    msr     spsr_el2, x10
    ldr     x30, [sp, #{FRAME_X30}]
    ldp     x0, x1, [sp, #16 * 0]
    ldp     x2, x3, [sp, #16 * 1]
    ldp     x4, x5, [sp, #16 * 2]
    ldp     x6, x7, [sp, #16 * 3]
    ldp     x8, x9, [sp, #16 * 4]
    ldp     x10, x11, [sp, #16 * 5]
    ldp     x12, x13, [sp, #16 * 6]
    ldp     x14, x15, [sp, #16 * 7]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x18, x19, [sp, #16 * 9]
    ldp     x20, x21, [sp, #16 * 10]
    ldp     x22, x23, [sp, #16 * 11]
    ldp     x24, x25, [sp, #16 * 12]
    ldp     x26, x27, [sp, #16 * 13]
    ldp     x28, x29, [sp, #16 * 14]
    add     sp, sp, #{FRAME_SIZE}
    eret
    // Straight-line speculation barrier after eret.
    dsb     nsh
    isb

// Enters the host for the first time: x0 = entry, x1 = the host's x0, x2 = SPSR,
// x3 = this CPU's stack top, which becomes SP_EL2 so that later traps start from a clean
// stack. Every other host register starts at zero: nothing of EL2 leaks to the host.
.global warden_enter_host
warden_enter_host:
    mov     sp, x3
    msr     elr_el2, x0
    msr     spsr_el2, x2
    mov     x0, x1
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    mov     x4, xzr
    mov     x5, xzr
    mov     x6, xzr
    mov     x7, xzr
    mov     x8, xzr
    mov     x9, xzr
    mov     x10, xzr
    mov     x11, xzr
    mov     x12, xzr
    mov     x13, xzr
    mov     x14, xzr
    mov     x15, xzr
    mov     x16, xzr
    mov     x17, xzr
    mov     x18, xzr
    mov     x19, xzr
    mov     x20, xzr
    mov     x21, xzr
    mov     x22, xzr
    mov     x23, xzr
    mov     x24, xzr
    mov     x25, xzr
    mov     x26, xzr
    mov     x27, xzr
    mov     x28, xzr
    mov     x29, xzr
    mov     x30, xzr
    eret
    dsb     nsh
    isb
