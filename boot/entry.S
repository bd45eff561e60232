/*
 * el2visor entry: the arm64 Image header, the EL check, self-relocation, BSS, stacks, and the
 * jump into Rust. Everything here runs with the MMU and caches off, so it touches only memory the
 * loader gave us, and it is written to be correct at whatever address that is (PC-relative only).
 *
 * Primary CPU:   x0 = physical address of the host device tree (arm64 boot protocol). Rust
 *                copies the image to the top of RAM and re-enters it at `relocated_entry`
 *                (src/boot/relocate.rs): the relocations are applied again for the new base
 *                (their addends are link-time values) and BSS is zeroed again.
 * Secondaries:   enter at `secondary_entry` (PSCI CPU_ON, or a spin-table release). They find
 *                their logical index by looking up MPIDR in the `mpidr` words of `PERCPU`, which
 *                the primary filled and cleaned to the point of coherency before starting them.
 * Every CPU:     TPIDR_EL2 = the address of its own `PERCPU` record (src/percpu/mod.rs).
 *
 * The constants in braces come from src/arch/boot.rs: the record's size and field offsets are taken
 * from the Rust struct, so they cannot drift from it.
 */

.equ STACK_SIZE, {STACK_SIZE}
.equ MAX_CPUS, {MAX_CPUS}
.equ PERCPU_SIZE, {PERCPU_SIZE}
.equ PC_MPIDR, {PC_MPIDR}
.equ R_AARCH64_RELATIVE, 1027

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry               // code0
    .long   0                           // code1
    .quad   0                           // text_offset: any 2 MiB-aligned base + 0
    .quad   __image_end - _start        // image_size: everything, BSS and stacks included
    .quad   0xa                         // flags: LE, 4K pages, anywhere in physical memory
    .quad   0                           // res2
    .quad   0                           // res3
    .quad   0                           // res4
    .ascii  "ARM\x64"                   // magic
    .long   0                           // res5 (no PE header)

.section .text.boot, "ax"
primary_entry:
    mov     x21, #0                     // the loader's entry
    b       0f
.global relocated_entry
relocated_entry:
    mov     x21, #1                     // el2visor's own, after moving itself
0:  mov     x19, x0                     // keep the DTB address

    /* Apply R_AARCH64_RELATIVE relocations: *(base + off) = base + addend. */
    adr     x20, _start                 // x20 = runtime base
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16           // r_offset, r_info
    ldr     x5, [x1], #8                // r_addend
    cmp     x4, #R_AARCH64_RELATIVE
    b.ne    1b                          // nothing else is expected in a static PIE
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
2:
    /* Zero BSS. */
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
3:  cmp     x1, x2
    b.hs    4f
    stp     xzr, xzr, [x1], #16
    b       3b
4:
    /* Stack of CPU 0. */
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    mov     x2, #STACK_SIZE
    add     sp, x1, x2

    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    cmp     x1, #2
    b.ne    5f
    adrp    x2, el2_vectors
    add     x2, x2, :lo12:el2_vectors
    msr     vbar_el2, x2
    adrp    x2, PERCPU                  // logical CPU 0: PERCPU[0]
    add     x2, x2, :lo12:PERCPU
    msr     tpidr_el2, x2
    isb
5:
    mov     x0, x19                     // DTB
    // x1 = current EL
    mov     x2, x20                     // runtime base of the image
    mov     x3, x21                     // entered at relocated_entry
    bl      primary_main
    b       park

.global secondary_entry
secondary_entry:
    mrs     x1, mpidr_el1
    and     x1, x1, #0xffffff
    mrs     x2, mpidr_el1
    and     x2, x2, #0xff00000000
    orr     x1, x1, x2                  // affinity fields only
    adrp    x6, PERCPU                  // x6 = &PERCPU[x3]
    add     x6, x6, :lo12:PERCPU
    mov     x3, #0
1:  ldr     x4, [x6, #PC_MPIDR]
    cmp     x4, x1
    b.eq    2f
    add     x6, x6, #PERCPU_SIZE
    add     x3, x3, #1
    cmp     x3, #MAX_CPUS
    b.lo    1b
    b       park                        // not a CPU we started: stay out of the way
2:
    adrp    x1, __stacks_start
    add     x1, x1, :lo12:__stacks_start
    add     x4, x3, #1
    mov     x5, #STACK_SIZE
    madd    x1, x4, x5, x1
    mov     sp, x1
    msr     tpidr_el2, x6
    adrp    x2, el2_vectors
    add     x2, x2, :lo12:el2_vectors
    msr     vbar_el2, x2

    /* Turn the MMU on with the primary's tables, if it has built them. */
    adrp    x2, EL2_MMU_BOOT
    add     x2, x2, :lo12:EL2_MMU_BOOT
    ldr     x4, [x2, #24]               // sctlr (0 = MMU stays off)
    cbz     x4, 3f
    ldr     x5, [x2, #0]                // mair
    msr     mair_el2, x5
    ldr     x5, [x2, #8]                // tcr
    msr     tcr_el2, x5
    ldr     x5, [x2, #16]               // ttbr0
    msr     ttbr0_el2, x5
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x4
    isb
3:
    mov     x0, x3
    bl      secondary_main

.global park
park:
    msr     daifset, #0xf
1:  wfe
    b       1b
