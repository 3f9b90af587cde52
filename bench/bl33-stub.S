// BL33 for the run without warden. TF-A enters BL33 at 0x60000000 at EL2 with x0 = DT; the
// benchmark client is loaded at 0x48000000 (QEMU's generic loader, as in the run under
// warden), so this only branches there, keeping x0. Position-independent: assembled and
// copied out with objcopy, no link step.
    ldr     x9, 1f
    br      x9
    .balign 8
1:  .quad   0x48000000
