//! el2visor moves itself to the top of RAM, as Xen does, before anything else runs: the boot
//! CPU, MMU off, no heap, nothing yet holding a pointer into the image. What it keeps for itself
//! then sits in one block at the top, and the VM's RAM below it has no holes (kvm-unit-tests, for
//! one, refuses a machine whose RAM has holes).
//!
//! The image is a position-independent executable that `boot/entry.S` relocates wherever it
//! runs: its file part (text, rodata, relocations, data) is copied to the new place and entered
//! at `relocated_entry`, which applies the `R_AARCH64_RELATIVE` relocations again for the new
//! base (their addends are link-time values, so applying them twice is right) and zeroes BSS
//! again. The device tree's used part is copied into the image's own slot for it (64 KiB after
//! the stacks, `linker.ld`) when it fits, else right below the image. The block is sized
//! for everything el2visor will keep ([`super::memory`]): image, device tree, frame pool and the
//! pristine copies of the boot modules, which are copied there once the heap exists; only the
//! image and the device tree must not land on anything in use now, the rest may cover boot
//! modules (they are moved out of the way first) but never firmware memory.

use crate::arch::{boot as arch_boot, cache};
use crate::mm::addr::{PaRange, PAGE_SIZE, SIZE_2M};
use crate::mm::layout::place_top;
use crate::platform::{early, nops};

/// Blockers the early probe can report, plus the image and the device tree.
const MAX_SOFT: usize = early::EARLY_RANGES + 2;

/// Move el2visor to the top of RAM and continue there. Returns only when it stays where the
/// loader put it, saying why.
pub fn to_top(dtb_pa: usize) -> &'static str {
    let Ok(dtb) = super::dtb_slice_mut(dtb_pa) else {
        return "no usable device tree";
    };
    // `fdt` misreads NOPs: take them out first (in place: there is no heap yet).
    if nops::strip_in_place(dtb).is_err() {
        return "the device tree is malformed";
    }
    let (Ok(info), Ok(occ)) = (early::EarlyInfo::from_dtb(dtb), early::occupancy(dtb)) else {
        return "the device tree is malformed";
    };
    if info.memory_truncated || !occ.complete() {
        return "the device tree lists more RAM ranges, reservations or modules than the early probe reads";
    }
    let image = arch_boot::image_layout();
    let image_size = image.end - image.start;
    let dtb_len = dtb.len() as u64;
    // Only the blocks are moved: the free space after them (QEMU's blob is 1 MiB, of which a few
    // KiB are used) means nothing, and every word moved with the MMU off counts.
    let dtb_used = crate::platform::dtb_used_len(dtb).map_or(dtb_len, |n| n as u64).min(dtb_len);
    // The tree goes in the image's own slot for it, after the stacks, when it fits there
    // (QEMU's does, and the Pi's): no RAM of its own to touch (under QEMU, a 2 MiB huge page of
    // host memory less; and it is in the image's first 2 MiB with everything else touched at
    // every boot), cut to its used length. Else right below the image.
    let (slot_at, slot_size) = arch_boot::dtb_slot();
    let in_slot = dtb_used.next_multiple_of(PAGE_SIZE) <= slot_size;
    let slot_off = slot_at - image.start;
    let dtb_below = if in_slot { 0 } else { dtb_len.next_multiple_of(PAGE_SIZE) };
    let head = image_size + dtb_below;
    let modules: u64 = occ.loaded.as_slice().iter().map(|r| r.size.next_multiple_of(PAGE_SIZE)).sum();
    let total = (head + super::memory::HYP_POOL + modules).next_multiple_of(SIZE_2M);

    let mut soft = [PaRange::default(); MAX_SOFT];
    let loaded = occ.loaded.as_slice();
    soft[..loaded.len()].copy_from_slice(loaded);
    soft[loaded.len()] = PaRange::new(image.start, image_size);
    soft[loaded.len() + 1] = PaRange::new(dtb_pa as u64, dtb_len);
    let soft = &soft[..loaded.len() + 2];
    let Some(top) = place_top(info.memory(), occ.firmware.as_slice(), soft, head, total, SIZE_2M) else {
        return "no free block of RAM is large enough for el2visor's memory";
    };
    let base = top - image_size;
    let new_dtb = if in_slot { base + slot_off } else { base - dtb_below };
    // Nothing in use may be under the copies (place_top promises it); drop whatever the caches
    // hold for them, so that no stale dirty line is written back over them later.
    cache::invalidate_range(base - dtb_below, head as usize);
    let file_len = (image.file_end - image.start).next_multiple_of(8);
    if in_slot && dtb_used < dtb_len {
        // The copy's header says how long it is: no free space after the blocks, so nothing
        // takes the tree for longer than the image's slot.
        set_totalsize(dtb, dtb_used as u32);
    }
    // SAFETY: [base - dtb_below, top) is free RAM (place_top kept it clear of everything in use:
    // the running image, the device tree, modules, firmware memory), 2 MiB and 4 KiB aligned,
    // and new_dtb + dtb_used lies in it; the sources are the running image's file part and the
    // device tree, both 8-byte aligned.
    unsafe {
        arch_boot::copy_words_mmu_off(base, image.start, file_len);
        arch_boot::copy_words_mmu_off(new_dtb, dtb_pa as u64, dtb_used.next_multiple_of(8));
        arch_boot::enter_copy(base + arch_boot::relocated_entry_offset(), new_dtb)
    }
}

/// Write `totalsize` into the header of the device tree `dtb` (its second big-endian word).
fn set_totalsize(dtb: &mut [u8], totalsize: u32) {
    dtb[4..8].copy_from_slice(&totalsize.to_be_bytes());
}
