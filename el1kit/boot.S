// The entry, secondary entry and exception vectors of an el1kit client. Entered as the
// arm64 boot protocol says (Documentation/arch/arm64/booting.rst: x0 = DT, MMU off) either
// at EL1, as warden's host, or at EL2, as the firmware's BL33 with no hypervisor (the bench
// client's run without warden): everything here works at both and uses the system
// registers of the EL it runs at. image.ld lays out .bss and the stacks.
//
// The client defines el1kit_main(dtb, entry_counter) and el1kit_unexpected(kind, esr,
// elr, far); a secondary CPU enters el1kit_secondary (src/cpu.rs).

.section .text.boot, "ax"
.global _start
_start:
    // First instruction: the counter, for the bench client's boot-cost figure. Under
    // -icount shift=0 with a 1 GHz counter it counts every instruction since reset, at
    // every EL.
    mrs     x1, cntpct_el0
    mov     x2, #0
    bl      .Lsetup
    // Zero .bss, 16 bytes a store; image.ld aligns both ends to 16.
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
    sub     x10, x10, x9
    cbz     x10, 2f
1:  stp     xzr, xzr, [x9], #16
    subs    x10, x10, #16
    b.ne    1b
2:  bl      el1kit_main
    b       .

// PSCI CPU_ON entry (DEN0022 §5): x0 = the context ID, whose low two bits are the stack
// slot (1-3) the primary chose.
.global el1kit_secondary_entry
el1kit_secondary_entry:
    and     x2, x0, #3
    bl      .Lsetup
    bl      el1kit_secondary
    b       .

// Masks interrupts, sets sp to the top of stack slot x2 and the vector base of the current
// EL. Keeps x0 and x1.
.Lsetup:
    msr     daifset, #0xf
    adrp    x9, __stacks_start
    add     x9, x9, :lo12:__stacks_start
    add     x10, x2, #1
    mov     x11, #0x10000
    madd    x9, x10, x11, x9
    mov     sp, x9
    adrp    x9, el1kit_vectors
    add     x9, x9, :lo12:el1kit_vectors
    mrs     x10, CurrentEL
    cmp     x10, #(2 << 2)
    b.eq    1f
    msr     vbar_el1, x9
    b       2f
1:  msr     vbar_el2, x9
2:  isb
    ret

.macro unexpected kind
.balign 0x80
    mov     x0, #\kind
    b       el1kit_exception
.endm

.section .text.vectors, "ax"
.balign 0x800
el1kit_vectors:
    .irp kind, 0, 1, 2, 3
    unexpected \kind
    .endr
// Current EL with SP_ELx, synchronous. With a probe armed (src/fault.rs, EL1 only), the
// abort it expects: record ESR and FAR, disarm, and resume after the faulting (4-byte)
// instruction, or, for an instruction abort (ESR_EL1.EC 0x21, DDI 0487 D24.2), at the caller
// of the branch, x30. Anything else, or nothing armed, is unexpected.
.balign 0x80
    stp     x0, x1, [sp, #-16]!
    adrp    x1, el1kit_fault_record
    add     x1, x1, :lo12:el1kit_fault_record
    ldr     x0, [x1, #16]
    cbz     x0, 3f
    mrs     x0, esr_el1
    str     x0, [x1]
    mrs     x0, far_el1
    stp     x0, xzr, [x1, #8]
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
3:  ldp     x0, x1, [sp], #16
    mov     x0, #4
    b       el1kit_exception
    .irp kind, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    unexpected \kind
    .endr

// x0 = the vector's kind (0-15, in the order of DDI 0487 D1.10.2's table); reports the
// syndrome of whichever EL this runs at.
el1kit_exception:
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.eq    1f
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       el1kit_unexpected
1:  mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    b       el1kit_unexpected
