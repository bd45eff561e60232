//! PAR_EL1 after an address translation instruction, said in words for the crash report's
//! stage-1 walk of a guest address.

#![forbid(unsafe_code)]

use alloc::format;
use alloc::string::String;

use super::iss::FaultStatus;
use crate::vm::config::RamRegion;

/// PAR_EL1's output address field (bits 51:12).
const PAR_PA: u64 = 0x000f_ffff_ffff_f000;

/// The address `va` translates to by PAR_EL1 `par` (the page from PAR, the offset from `va`), or
/// `None` when the translation faulted (PAR.F).
pub fn output_address(par: u64, va: u64) -> Option<u64> {
    (par & 1 == 0).then_some((par & PAR_PA) | (va & 0xfff))
}

/// `va` translated as PAR_EL1 `par` says: `-> <output address> (attr <byte>, <shareability>)`
/// or `fault: <status>, level <n>[, on the stage-2 walk of a stage-1 table]`.
pub fn describe(va: u64, par: u64) -> String {
    if par & 1 != 0 {
        let fst = FaultStatus::from_code(((par >> 1) & 0x3f) as u8);
        let ptw = par & (1 << 8) != 0;
        let s2 = par & (1 << 9) != 0;
        return format!(
            "fault: {fst}{}{}",
            if s2 { ", at stage 2" } else { ", at stage 1" },
            if ptw { " (walking the guest's own tables)" } else { "" }
        );
    }
    let out = (par & PAR_PA) | (va & 0xfff);
    let attr = par >> 56;
    let sh = match (par >> 7) & 3 {
        0 => "non-shareable",
        2 => "outer shareable",
        3 => "inner shareable",
        _ => "reserved shareability",
    };
    format!("-> {out:#x} (attr {attr:#04x}, {sh})")
}

/// PAR_EL1 as the guest may see it: the output address of a successful translation is the host
/// physical address, which a VM whose RAM is not identity mapped must not learn (another VM's or
/// el2visor's layout): it becomes the guest-physical one, or a fault where there is none.
pub fn guest_par(ram: &[RamRegion], par: u64) -> u64 {
    if par & 1 != 0 || ram.iter().all(|r| r.ipa.raw() == r.pa.raw()) {
        return par;
    }
    match ram.iter().find_map(|r| r.ipa_of(par & PAR_PA)) {
        Some(ipa) => (par & !PAR_PA) | (ipa & PAR_PA),
        // F = 1 with no fault status: the translation is not one the guest can be told.
        None => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_address_is_par_s_page_and_va_s_offset_unless_it_faulted() {
        assert_eq!(output_address(0xff00_0000_8000_1f80, 0xffff_8000_0123_4abc), Some(0x8000_1abc));
        assert_eq!(output_address(0x0000_0000_8000_1000 | 1, 0x1234), None, "PAR.F");
    }

    #[test]
    fn a_vm_not_identity_mapped_sees_its_own_addresses() {
        use crate::mm::addr::{Ipa, Pa};
        let ram = [RamRegion { ipa: Ipa(0x4000_0000), pa: Pa(0x8000_0000), size: 0x100_0000 }];
        assert_eq!(guest_par(&ram, 0xff00_0000_8000_1f80), 0xff00_0000_4000_1f80);
        assert_eq!(guest_par(&ram, 0xff00_0000_9000_0000), 1, "outside its RAM: a fault with no status");
        assert_eq!(guest_par(&ram, 0x0f), 0x0f, "a fault stays");
        let id = [RamRegion { ipa: Ipa(0x4000_0000), pa: Pa(0x4000_0000), size: 0x100_0000 }];
        assert_eq!(guest_par(&id, 0xff00_0000_9000_0000), 0xff00_0000_9000_0000, "identity mapped: as it is");
    }

    #[test]
    fn success_and_faults() {
        let par = 0xff00_0000_4123_4000 | (3 << 7);
        assert_eq!(describe(0xffff_8000_0000_0abc, par), "-> 0x41234abc (attr 0xff, inner shareable)");
        // Translation fault at level 3 (FST 0b000111), stage 1.
        let d = describe(0x1000, 1 | (0x07 << 1));
        assert!(d.starts_with("fault: ") && d.contains("stage 1"), "{d}");
        assert!(describe(0, 1 | (0x07 << 1) | (1 << 9) | (1 << 8)).contains("stage 2"));
    }
}
