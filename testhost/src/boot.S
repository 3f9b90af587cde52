// The test host's entry (arm64 boot protocol: x0 = DT, EL1, MMU off) and its EL1 vectors.

.section .text.boot, "ax"
.global _start
_start:
    mov     x1, #0
    bl      .Lsetup
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
1:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       1b
2:  bl      testhost_main
    b       .

// PSCI CPU_ON entry: x0 = context ID = the stack slot (1-3) the primary chose.
.global testhost_secondary_entry
testhost_secondary_entry:
    and     x1, x0, #3
    bl      .Lsetup
    bl      testhost_secondary
    b       .

// sp = top of stack slot x1; VBAR_EL1 = vectors. Keeps x0.
.Lsetup:
    adrp    x9, __stacks_start
    add     x9, x9, :lo12:__stacks_start
    add     x10, x1, #1
    mov     x11, #0x10000
    madd    x9, x10, x11, x9
    mov     sp, x9
    adrp    x9, testhost_vectors
    add     x9, x9, :lo12:testhost_vectors
    msr     vbar_el1, x9
    isb
    ret

.macro unexpected kind
.balign 0x80
    mov     x0, #\kind
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       testhost_unexpected
.endm

.section .text.vectors, "ax"
.balign 0x800
testhost_vectors:
    unexpected 0
    unexpected 1
    unexpected 2
    unexpected 3
// Current EL with SP_EL1, synchronous: the probes that expect an abort. Record the
// syndrome and skip the faulting (4-byte) instruction.
.balign 0x80
    stp     x0, x1, [sp, #-16]!
    adrp    x1, testhost_last_fault
    add     x1, x1, :lo12:testhost_last_fault
    mrs     x0, esr_el1
    str     x0, [x1]
    mrs     x0, far_el1
    str     x0, [x1, #8]
    // An instruction abort (EC 0x21) returns to the caller of the branch, x30; anything
    // else resumes after the faulting instruction.
    mrs     x0, esr_el1
    lsr     x0, x0, #26
    cmp     x0, #0x21
    b.ne    1f
    msr     elr_el1, x30
    b       2f
1:  mrs     x0, elr_el1
    add     x0, x0, #4
    msr     elr_el1, x0
2:  ldp     x0, x1, [sp], #16
    eret
    unexpected 5
    unexpected 6
    unexpected 7
    unexpected 8
    unexpected 9
    unexpected 10
    unexpected 11
    unexpected 12
    unexpected 13
    unexpected 14
    unexpected 15
