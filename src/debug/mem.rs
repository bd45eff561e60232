//! Guest memory for the GDB stub (`debug::machine`, `debug::target`): guest-physical addresses
//! of the VM's RAM (never firmware's ranges Stage 2 leaves out), guest virtual addresses through
//! a vCPU's stage 1, and writes made visible to the guest's instruction fetch. Every access goes
//! through [`access_pa`]: a page a lazy snapshot restore has not brought back yet comes back
//! first, and a write counts as dirty for a dirty-only restore (`vm::snapshot::host_access`).

use crate::arch::cache;
use crate::debug::stub::Tid;
use crate::debug::walk::{ram_at, Stage1};
use crate::vm::instance::Vm;
use crate::vm::table;

/// The host address of guest IPA `ipa` of `vm` when `len` bytes from it are all its RAM, and
/// RAM Stage 2 maps: firmware's ranges it leaves out are not the VM's (`walk::ram_at`).
pub(super) fn ram_pa(vm: &Vm, ipa: u64, len: u64) -> Option<u64> {
    ram_at(vm.ram.iter().map(|r| (r.ipa.raw(), r.pa.raw(), r.size)), &vm.hidden, ipa, len)
}

/// [`ram_pa`] for an access el2visor is about to make (a `write` or a read) of those bytes:
/// pages a lazy snapshot restore left missing are restored first, and a write is logged dirty.
pub(super) fn access_pa(vm: &Vm, ipa: u64, len: u64, write: bool) -> Option<u64> {
    let pa = ram_pa(vm, ipa, len)?;
    crate::vm::snapshot::host_access(vm, ipa, len, write);
    Some(pa)
}

/// Translate guest VA `va` of VM `vm` through stage 1 `s1` to guest-physical, when the `len`
/// bytes from it (one page) are RAM.
pub(super) fn va_to_ipa(vm: &Vm, s1: &Stage1, va: u64, len: u64) -> Option<u64> {
    let ipa = s1.translate(va, |ipa| {
        let pa = access_pa(vm, ipa, 8, false)?;
        // SAFETY: `pa` is 8 bytes of the VM's RAM (checked above), which el2visor's identity
        // map covers read-write; a table descriptor is one aligned doubleword.
        (pa & 7 == 0).then(|| unsafe { core::ptr::read_volatile(pa as *const u64) })
    })?;
    ram_pa(vm, ipa, len).map(|_| ipa)
}

/// Translate guest VA `va` of thread `t` to a host address of RAM (`len` bytes, one page) that
/// el2visor is about to read or, with `write`, write ([`access_pa`]).
pub(super) fn va_to_pa(t: Tid, s1: &Stage1, va: u64, len: u64, write: bool) -> Option<u64> {
    let vm = table::get(t.0)?;
    access_pa(vm, va_to_ipa(vm, s1, va, len)?, len, write)
}

/// Write `data` to host address `pa` of guest RAM and make it visible to the guest's
/// instruction fetch (the caller invalidates the instruction caches).
pub(super) fn write_ram(pa: u64, data: &[u8]) {
    for (i, &b) in data.iter().enumerate() {
        // SAFETY: the callers checked that `[pa, pa + data.len())` is the VM's RAM, identity
        // mapped read-write at EL2; the vCPUs are stopped, and the write is what the debugger
        // asked for.
        unsafe { core::ptr::write_volatile((pa + i as u64) as *mut u8, b) };
    }
    // To the point of coherency (a guest running with its caches off reads memory), and out of
    // every instruction cache (a breakpoint).
    cache::clean_inval_range(pa, data.len());
}
