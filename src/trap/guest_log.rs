//! The vendor call `LOG_LINE` (`trap::abi`): a guest hands el2visor up to 256 bytes of text at a
//! guest-physical address, and el2visor prints them as one line of its own log
//! (`el2visor: VM <name> vCPU <n> log: <text>`, rate limited by `trace`). The bytes are read
//! through the VM's Stage 2, page by page, and only from its RAM: an address that is not the
//! VM's RAM (a device, a hole, a range Stage 2 leaves unmapped) gets INVALID_PARAMETER and
//! nothing is read. Pages a lazy snapshot restore has not brought back yet are brought back
//! first (`vm::snapshot::host_access`), as the guest's own read of them would.

use alloc::vec::Vec;

use crate::arch::translate;
use crate::mm::addr::Ipa;
use crate::trap::abi::{smccc, vendor};
use crate::vm::instance::Vm;

const PAGE: u64 = 4096;

/// Serve `LOG_LINE(ipa, len)` for vCPU `vcpu`; the caller's x0.
pub fn log_line(vm: &Vm, vcpu: usize, ipa: u64, len: u64) -> u64 {
    match read(vm, ipa, len) {
        Some(bytes) => {
            let text: alloc::string::String =
                bytes.iter().map(|&b| if b == b'\t' || (0x20..0x7f).contains(&b) { b as char } else { '.' }).collect();
            crate::trace::guest_log(&vm.name, vcpu, text.trim_end_matches(['\n', '.']));
            smccc::SUCCESS as u64
        }
        None => smccc::INVALID_PARAMETER as u64,
    }
}

/// The `len` bytes at guest-physical `ipa`, if every page of them is the VM's RAM and mapped
/// at Stage 2.
fn read(vm: &Vm, ipa: u64, len: u64) -> Option<Vec<u8>> {
    if len == 0 || len > vendor::LOG_LINE_MAX {
        return None;
    }
    let end = ipa.checked_add(len)?;
    // Pages a lazy restore has not brought back yet hold stale bytes and are unmapped.
    crate::vm::snapshot::host_access(vm, ipa, len, false);
    let mut out = Vec::with_capacity(len as usize);
    let mut at = ipa;
    let s2 = vm.s2.lock();
    while at < end {
        let chunk = (PAGE - at % PAGE).min(end - at);
        if !vm.is_ram(at) || !vm.is_ram(at + chunk - 1) {
            return None;
        }
        let (pa, _, _) = s2.translate(Ipa(at))?;
        // Only the VM's RAM, as its RAM list says it is backed.
        let backed = |pa: u64, n: u64| vm.ram.iter().any(|r| r.ipa_of(pa).is_some() && r.ipa_of(pa + n - 1).is_some());
        if !translate::read_guest_ram(pa.raw(), chunk as usize, backed, &mut out) {
            return None;
        }
        at += chunk;
    }
    Some(out)
}
