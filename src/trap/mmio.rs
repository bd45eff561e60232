//! An emulated MMIO access: a Stage-2 data abort inside one of the VM's emulated regions,
//! decoded from the syndrome and handed to the region's device model.

use crate::arch::exception::TrapFrame;
use crate::arch::sysreg;
use crate::trap::endian;
use crate::trap::esr::Esr;
use crate::trap::ratelimit::{suppressed_note, RateLimit};
use crate::vm::instance::Vm;
use crate::vm::mmio::{MmioCtx, MmioRegion};

/// The access could not be emulated (no syndrome, or the device refused it; the log says which):
/// the caller injects an abort.
#[derive(Debug)]
pub struct NotEmulated;

/// Emulate the access described by `esr` at `ipa`, inside `region`, for vCPU `vcpu` of `vm`, and
/// step over the instruction. A big-endian access (`trap::endian`: the guest's SCTLR_EL1, live
/// here, and its PSTATE) has its value byte-swapped to and from the device, which sees
/// little-endian values only.
use crate::cmdline::TraceClass;

pub fn emulate(vm: &Vm, vcpu: usize, frame: &mut TrapFrame, esr: Esr, region: &MmioRegion, ipa: u64) -> Result<(), NotEmulated> {
    static LIMIT: RateLimit = RateLimit::new();
    let Some(da) = esr.data_abort() else { return Err(NotEmulated) };
    if !da.isv {
        if let Some(n) = LIMIT.allow(vm.slot) {
            log::warn!(
                "VM {} vCPU {vcpu}: {} access at {ipa:#x} by an instruction without syndrome (ISV=0){}",
                vm.name,
                region.name,
                suppressed_note(n)
            );
        }
        return Err(NotEmulated);
    }
    let size = 1u8 << da.sas;
    let offset = ipa - region.base;
    let ctx = MmioCtx { vcpu, vgic: vm.vgic.as_ref(), irqs: &vm.irqs };
    let pc = frame.elr;
    let big_endian = endian::is_big_endian(frame.spsr, sysreg::sctlr_el1());
    let result = if da.wnr {
        let mask = if size == 8 { u64::MAX } else { (1u64 << (8 * size as u32)) - 1 };
        let v = endian::convert(frame.reg(da.srt as usize) & mask, size, big_endian);
        if crate::trace::on(TraceClass::Mmio) {
            crate::trace::event(TraceClass::Mmio, &vm.name, vcpu, pc, format_args!("{} +{offset:#x} write{} {v:#x}", region.name, size * 8));
        }
        region.device.write(&ctx, offset, size, v)
    } else {
        region.device.read(&ctx, offset, size).map(|v| {
            if crate::trace::on(TraceClass::Mmio) {
                crate::trace::event(TraceClass::Mmio, &vm.name, vcpu, pc, format_args!("{} +{offset:#x} read{} -> {v:#x}", region.name, size * 8));
            }
            // In the guest's byte order, then SSE and SF as the instruction asks: `ldrsb w1`
            // leaves bits 63:32 zero.
            frame.set_reg(da.srt as usize, da.load_value(endian::convert(v, size, big_endian)));
        })
    };
    match result {
        Ok(()) => {
            frame.skip_instruction(esr.0);
            Ok(())
        }
        Err(e) => {
            if let Some(n) = LIMIT.allow(vm.slot) {
                log::warn!("VM {} vCPU {vcpu}: {} access at {ipa:#x}: {e}{}", vm.name, region.name, suppressed_note(n));
            }
            Err(NotEmulated)
        }
    }
}
