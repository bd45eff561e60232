//! The VM table: every VM el2visor runs, by slot. VMs are built whole, then put here and live for
//! el2visor's lifetime (a reset reuses the VM, it does not replace it); a pCPU finds its VM by
//! the slot number in its per-CPU record.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::vm::instance::Vm;

pub use super::MAX_VMS;

static VMS: [AtomicPtr<Vm>; MAX_VMS] = [const { AtomicPtr::new(core::ptr::null_mut()) }; MAX_VMS];

/// The first free slot, which the next VM built will take (VMs are built one at a time, at boot).
pub fn free_slot() -> Option<usize> {
    VMS.iter().position(|s| s.load(Ordering::Acquire).is_null())
}

/// Put `vm` in its slot (`vm.slot`, from [`free_slot`] when it was built); it lives for ever.
/// `Err` gives it back when the slot is taken.
pub fn insert(vm: Vm) -> Result<&'static Vm, Box<Vm>> {
    let vm = Box::new(vm);
    let Some(entry) = VMS.get(vm.slot) else { return Err(vm) };
    let ptr = Box::into_raw(vm);
    if entry.compare_exchange(core::ptr::null_mut(), ptr, Ordering::AcqRel, Ordering::Acquire).is_err() {
        // SAFETY: `ptr` came from Box::into_raw just above and was not published.
        return Err(unsafe { Box::from_raw(ptr) });
    }
    // SAFETY: the VM is leaked into the table and never freed, so the reference is 'static.
    Ok(unsafe { &*ptr })
}

/// The VM in `slot`.
pub fn get(slot: usize) -> Option<&'static Vm> {
    let ptr = VMS.get(slot)?.load(Ordering::Acquire);
    // SAFETY: non-null entries point at leaked VMs that are never freed (see `insert`).
    (!ptr.is_null()).then(|| unsafe { &*ptr })
}

/// Every VM in the table.
pub fn all() -> impl Iterator<Item = &'static Vm> {
    (0..MAX_VMS).filter_map(get)
}
