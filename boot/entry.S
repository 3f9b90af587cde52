// warden's first instructions. Only what cannot be Rust: the arm64 Image header, the EL
// check, self-relocation, BSS clearing and a stack, for the boot CPU and for secondaries
// started through PSCI CPU_ON.

.section .text.boot, "ax"
.global _start
// The arm64 Image header (Linux Documentation/arch/arm64/booting.rst, "Call the kernel
// image"): a loader such as U-Boot's `booti` checks the magic, reserves image_size bytes
// from the load address and, with flags bit 3, leaves the image at any 2 MiB-aligned
// address it chose. text_offset is 0: the entry point is the first byte.
_start:
    b       .Lentry             // code0
    .long   0                   // code1
    .quad   0                   // text_offset
    .quad   __image_size        // image_size: up to __image_end (linker.ld), BSS, stacks,
                                // heap and the host-DT area included
    .quad   0xa                 // flags: little-endian (bit 0 = 0), 4K pages (bits 1-2 = 1),
                                // placed anywhere in RAM (bit 3)
    .quad   0, 0, 0             // res2-res4
    .long   0x644d5241          // magic "ARM\x64", at offset 56
    .long   0                   // res5 (no PE/COFF header)

.Lentry:
    // x0 = DTB pointer (Linux arm64 boot protocol; TF-A with ARM_LINUX_KERNEL_AS_BL33).
    // The counter first, for the boot-cost figure (warden's HVC WARDEN_BOOT_TIMES).
    mrs     x20, cntpct_el0
    msr     daifset, #0xf
    mrs     x9, CurrentEL
    ubfx    x9, x9, #2, #2
    cmp     x9, #2
    b.ne    .Lrefuse
    // booting.rst: the image must sit at a 2 MiB-aligned base (text_offset 0). warden's
    // early map and the host's stage-2 hole are built around that.
    adr     x9, _start
    tst     x9, #0x1fffff
    b.ne    .Lrefuse
    // Self-relocation: warden is linked as a static PIE (build.rs). Code reaches its data
    // PC-relatively; the only absolute addresses are the pointers in data (vtables, the
    // GOT), each listed in .rela.dyn as R_AARCH64_RELATIVE. Add the distance between
    // where the image runs and where it was linked to each. The MMU and D-cache are off
    // (booting.rst), so the stores reach memory; each line is also invalidated, so that
    // no stale copy a loader left in the caches hides them once the MMU is on.
    ldr     x10, =WARDEN_LINK_ADDR      // absolute symbol: not itself relocated
    sub     x21, x9, x10                // x21 = load - link
    adrp    x11, __rela_start
    add     x11, x11, :lo12:__rela_start
    adrp    x12, __rela_end
    add     x12, x12, :lo12:__rela_end
    adrp    x16, __text_end             // nothing in code may need a relocation
    add     x16, x16, :lo12:__text_end
3:  cmp     x11, x12
    b.hs    4f
    ldp     x13, x14, [x11], #16        // Elf64_Rela: r_offset, r_info,
    ldr     x15, [x11], #8              //             r_addend
    cmp     x14, #1027                  // R_AARCH64_RELATIVE, no symbol
    b.ne    .Lrefuse
    add     x13, x13, x21
    cmp     x13, x16
    b.lo    .Lrefuse
    add     x15, x15, x21
    str     x15, [x13]
    dc      ivac, x13
    b       3b
4:  dsb     sy

    // BSS: 64 bytes per iteration, then 16 at a time for the rest (linker.ld aligns its
    // ends to 16). It holds warden's 128 KiB of buffers with the SPMC, and at 16 bytes per
    // iteration this loop was a fifteenth of warden's boot. DC ZVA cannot help: with the
    // MMU off every access is to Device memory, where DC ZVA takes an alignment fault.
    adrp    x9, __bss_start
    add     x9, x9, :lo12:__bss_start
    adrp    x10, __bss_end
    add     x10, x10, :lo12:__bss_end
    sub     x11, x10, #64
1:  cmp     x9, x11
    b.hi    5f
    stp     xzr, xzr, [x9]
    stp     xzr, xzr, [x9, #16]
    stp     xzr, xzr, [x9, #32]
    stp     xzr, xzr, [x9, #48]
    add     x9, x9, #64
    b       1b
5:  cmp     x9, x10
    b.hs    2f
    stp     xzr, xzr, [x9], #16
    b       5b
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

// Not at EL2, not 2 MiB-aligned, or a relocation warden cannot apply: there is no safe
// way to report it yet
// (no console before the DT is parsed), so stop here with a marker in x0.
.Lrefuse:
    mov     x0, #0xbad
.Lpark:
    wfe
    b       .Lpark
