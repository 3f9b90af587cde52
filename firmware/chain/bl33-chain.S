// A stand-in for a board's boot loader, packed into the FIP as BL33 instead of warden (only
// for tests; scripts/chain builds it). TF-A enters it at 0x60000000 at EL2 with x0 = the DT.
// It jumps to warden where QEMU's generic loader put it (`target`, patched in by
// scripts/chain), with x0 unchanged, so that the same warden image is tested at any address.
//
// With `ffa_first` set it first uses FF-A the way U-Boot's FF-A support does before
// ExitBootServices: FFA_VERSION(1.0) and FFA_RXTX_MAP of a buffer pair that it never
// unmaps, and leaves both for warden to find (issue 13, item 4).

.section .text, "ax"
.global _start
_start:
    mov     x19, x0                     // the DT, for warden
    ldr     w9, ffa_first
    cbz     w9, 1f
    ldr     w0, =0x84000063             // FFA_VERSION (DEN0077A 1.2 §13.2)
    mov     w1, #0x10000                // v1.0
    smc     #0
    ldr     x0, =0xc4000066             // FFA_RXTX_MAP_64 (§13.6)
    ldr     x1, tx_buffer
    ldr     x2, rx_buffer
    mov     x3, #1                      // one 4 KiB page each
    smc     #0
1:  mov     x0, x19
    mov     x1, xzr
    mov     x2, xzr
    mov     x3, xzr
    ldr     x9, target
    br      x9

.balign 8
.ltorg
// Fixed offsets from the end, patched by scripts/chain.
.balign 8
tx_buffer:  .quad 0x7f000000
rx_buffer:  .quad 0x7f001000
ffa_first:  .long 0, 0
target:     .quad 0x60000000
