// Probe guest entry: arm64 Linux Image header, relocation of the static PIE, .bss, stack, then Rust.
// Entered at EL1h, MMU and caches off, x0 = DTB (arm64 boot protocol). Nothing here may touch a
// static that holds a pointer before the relocation loop has run; the code below only uses
// PC-relative addressing (adrp/add).

.section .text.head, "ax"
.global _start
_start:
    b       probe_entry             // code0
    .long   0                       // code1
    .quad   0                       // text_offset
    .quad   __image_size            // image_size: file plus .bss, page tables and stacks
    .quad   0xa                     // flags: little endian, 4 KiB pages, 2 MiB base anywhere
    .quad   0                       // res2
    .quad   0                       // res3
    .quad   0                       // res4
    .ascii  "ARM\x64"               // magic
    .long   0                       // res5

.section .text.entry, "ax"
probe_entry:
    msr     daifset, #0xf
    mov     x19, x0                         // DTB address, kept for probe_main

    // Exceptions from here on are reported, never a silent hang.
    adrp    x1, probe_vectors
    add     x1, x1, :lo12:probe_vectors
    msr     vbar_el1, x1

    // FP/SIMD on at EL1: compiled Rust may use vector registers (memcpy, formatting).
    mov     x1, #(3 << 20)
    msr     cpacr_el1, x1
    isb

    // Invalidate the image's cache lines (to PoC) before writing it with the MMU off: a stale
    // line left by the loader (or a hypervisor scrubbing memory) must not later shadow what is
    // written below. Under stage 2 this is a clean+invalidate, harmless for a clean image.
    adrp    x20, _start
    add     x20, x20, :lo12:_start
    adrp    x21, __image_end
    add     x21, x21, :lo12:__image_end
    mrs     x3, ctr_el0
    ubfx    x3, x3, #16, #4                 // DminLine: log2(words per line)
    mov     x4, #4
    lsl     x4, x4, x3                      // line size in bytes
    sub     x5, x4, #1
    bic     x1, x20, x5
0:  dc      ivac, x1
    add     x1, x1, x4
    cmp     x1, x21
    b.lo    0b
    dsb     sy

    // Apply R_AARCH64_RELATIVE relocations: *(base + offset) = base + addend. The image is
    // linked at 0, so base (x20) is where _start runs now. build.sh rejects any other type.
    adrp    x1, __rela_start
    add     x1, x1, :lo12:__rela_start
    adrp    x2, __rela_end
    add     x2, x2, :lo12:__rela_end
1:  cmp     x1, x2
    b.hs    3f
    ldp     x3, x4, [x1], #16               // r_offset, r_info
    ldr     x5, [x1], #8                    // r_addend
    cmp     x4, #0x403                      // R_AARCH64_RELATIVE
    b.ne    1b
    add     x5, x5, x20
    str     x5, [x20, x3]
    b       1b
3:
    // Zero .bss (page tables, counters, stacks): 16-byte aligned both ends by link.ld.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
4:  cmp     x1, x2
    b.hs    5f
    stp     xzr, xzr, [x1], #16
    b       4b
5:
    adrp    x1, __stack_top
    add     x1, x1, :lo12:__stack_top
    mov     sp, x1
    mov     x0, x19
    bl      probe_main
6:  wfi
    b       6b

// SMCCC calls. probe_hvc_insn is the one HVC whose UNDEF (no EL2, no PSCI match: bare QEMU) the
// vector table turns into NOT_SUPPORTED (-1) in x0; see vectors.S.
.section .text, "ax"
.global probe_hvc
.global probe_hvc_insn
probe_hvc:
probe_hvc_insn:
    hvc     #0
    ret

.global probe_smc
probe_smc:
    smc     #0
    ret

// The abort_injected probe's two accesses to an address the VM does not own. The vector table
// resumes past probe_abort_load_insn / probe_abort_store_insn when either takes a data abort at
// EL1 (counting it in probe_aborts_caught); see vectors.S. C ABI: x0 = address, x1 = value.
.global probe_abort_load
.global probe_abort_load_insn
probe_abort_load:
    mov     x2, x0
    mov     x0, xzr                 // the result when the load aborts
probe_abort_load_insn:
    ldr     x0, [x2]
    ret

.global probe_abort_store
.global probe_abort_store_insn
probe_abort_store:
probe_abort_store_insn:
    str     x1, [x0]
    ret
