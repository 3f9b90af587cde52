// The benchmark client's entry and vectors. Entered with x0 = DT and the MMU off, either at
// EL1 (warden's host) or at EL2 (BL33 without warden): everything here works at both, and
// the Rust side picks the system registers of the current EL.

.section .text.boot, "ax"
.global _start
_start:
    // First instruction: the counter, for the boot-cost figure. Under -icount shift=0 with
    // a 1 GHz counter it counts every instruction since reset, at every EL.
    mrs     x1, cntpct_el0
    msr     daifset, #0xf
    adrp    x9, __stack_top
    add     x9, x9, :lo12:__stack_top
    mov     sp, x9
    adrp    x9, bench_vectors
    add     x9, x9, :lo12:bench_vectors
    mrs     x10, CurrentEL
    cmp     x10, #(2 << 2)
    b.eq    1f
    msr     vbar_el1, x9
    b       2f
1:  msr     vbar_el2, x9
2:  isb
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
3:  cmp     x9, x10
    b.hs    4f
    stp     xzr, xzr, [x9], #16
    b       3b
4:  bl      bench_main
    b       .

// Every exception is unexpected: the client masks interrupts and makes no access that may
// fault. Report the syndrome of whichever EL we run at.
.macro unexpected kind
.balign 0x80
    mov     x0, #\kind
    b       bench_exception
.endm

.section .text.vectors, "ax"
.balign 0x800
bench_vectors:
    .irp kind, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
    unexpected \kind
    .endr

bench_exception:
    mrs     x9, CurrentEL
    cmp     x9, #(2 << 2)
    b.eq    1f
    mrs     x1, esr_el1
    mrs     x2, elr_el1
    mrs     x3, far_el1
    b       bench_unexpected
1:  mrs     x1, esr_el2
    mrs     x2, elr_el2
    mrs     x3, far_el2
    b       bench_unexpected
