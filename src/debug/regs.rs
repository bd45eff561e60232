//! A vCPU's registers as GDB numbers them, and the AArch64 target description that says so
//! (`org.gnu.gdb.aarch64.core` and `org.gnu.gdb.aarch64.fpu`, the features GDB's AArch64 port
//! requires, with the register numbers given explicitly). Pure.

#![forbid(unsafe_code)]

use alloc::vec::Vec;

/// x0..x30, sp, pc, cpsr, v0..v31, fpsr, fpcr.
pub const COUNT: usize = 68;
pub const SP: usize = 31;
pub const PC: usize = 32;
pub const CPSR: usize = 33;
pub const V0: usize = 34;
pub const FPSR: usize = 66;
pub const FPCR: usize = 67;

/// Everything GDB sees of a stopped vCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Regs {
    pub x: [u64; 31],
    pub sp: u64,
    pub pc: u64,
    pub cpsr: u32,
    /// v0..v31 as (low, high) doublewords.
    pub v: [[u64; 2]; 32],
    pub fpsr: u32,
    pub fpcr: u32,
}

/// Size in bytes of register `n` in `g`/`p` packets.
pub fn size(n: usize) -> Option<usize> {
    match n {
        0..=32 => Some(8),
        CPSR | FPSR | FPCR => Some(4),
        V0..=65 => Some(16),
        _ => None,
    }
}

impl Regs {
    /// Register `n`'s bytes, little-endian, as GDB expects for this target.
    pub fn get(&self, n: usize) -> Option<Vec<u8>> {
        Some(match n {
            0..=30 => self.x[n].to_le_bytes().to_vec(),
            SP => self.sp.to_le_bytes().to_vec(),
            PC => self.pc.to_le_bytes().to_vec(),
            CPSR => self.cpsr.to_le_bytes().to_vec(),
            V0..=65 => {
                let mut b = self.v[n - V0][0].to_le_bytes().to_vec();
                b.extend_from_slice(&self.v[n - V0][1].to_le_bytes());
                b
            }
            FPSR => self.fpsr.to_le_bytes().to_vec(),
            FPCR => self.fpcr.to_le_bytes().to_vec(),
            _ => return None,
        })
    }

    /// Set register `n` from its little-endian bytes (exactly [`size`] of them).
    pub fn set(&mut self, n: usize, b: &[u8]) -> bool {
        if size(n) != Some(b.len()) {
            return false;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = || u32::from_le_bytes(b[..4].try_into().unwrap_or([0; 4]));
        match n {
            0..=30 => self.x[n] = u64_at(0),
            SP => self.sp = u64_at(0),
            PC => self.pc = u64_at(0),
            CPSR => self.cpsr = u32_at(),
            V0..=65 => self.v[n - V0] = [u64_at(0), u64_at(8)],
            FPSR => self.fpsr = u32_at(),
            _ => self.fpcr = u32_at(),
        }
        true
    }

    /// All registers in order (the `g` reply).
    pub fn to_bytes(&self) -> Vec<u8> {
        (0..COUNT).flat_map(|n| self.get(n).unwrap_or_default()).collect()
    }

    /// All registers from a `G` packet; `false` (nothing changed) if its length is wrong.
    pub fn set_all(&mut self, b: &[u8]) -> bool {
        let total: usize = (0..COUNT).filter_map(size).sum();
        if b.len() != total {
            return false;
        }
        let mut at = 0;
        for n in 0..COUNT {
            let s = size(n).unwrap_or(0);
            self.set(n, &b[at..at + s]);
            at += s;
        }
        true
    }
}

/// Whether GDB may set the saved PSTATE from `old` to `new`: its mode field (M[4:0]) stays, or
/// names what a guest can be in (AArch64 EL0t, EL1t, EL1h). Anything else would make the return
/// to the guest enter EL2 or an illegal state.
pub fn cpsr_allowed(old: u64, new: u64) -> bool {
    let mode = new & 0x1f;
    mode == old & 0x1f || matches!(mode, 0b00000 | 0b00100 | 0b00101)
}

/// The target description (`target.xml`).
pub fn target_xml() -> Vec<u8> {
    use core::fmt::Write;
    let mut s = alloc::string::String::new();
    s.push_str(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE target SYSTEM \"gdb-target.dtd\">\n<target version=\"1.0\">\n\
         <architecture>aarch64</architecture>\n<feature name=\"org.gnu.gdb.aarch64.core\">\n",
    );
    for i in 0..31 {
        let _ = writeln!(s, "<reg name=\"x{i}\" bitsize=\"64\" type=\"int\" regnum=\"{i}\"/>");
    }
    s.push_str(
        "<reg name=\"sp\" bitsize=\"64\" type=\"data_ptr\" regnum=\"31\"/>\n\
         <reg name=\"pc\" bitsize=\"64\" type=\"code_ptr\" regnum=\"32\"/>\n\
         <reg name=\"cpsr\" bitsize=\"32\" type=\"int\" regnum=\"33\"/>\n</feature>\n\
         <feature name=\"org.gnu.gdb.aarch64.fpu\">\n\
         <vector id=\"v2d\" type=\"ieee_double\" count=\"2\"/>\n<vector id=\"v2u\" type=\"uint64\" count=\"2\"/>\n\
         <vector id=\"v2i\" type=\"int64\" count=\"2\"/>\n<vector id=\"v4f\" type=\"ieee_single\" count=\"4\"/>\n\
         <vector id=\"v4u\" type=\"uint32\" count=\"4\"/>\n<vector id=\"v4i\" type=\"int32\" count=\"4\"/>\n\
         <vector id=\"v8u\" type=\"uint16\" count=\"8\"/>\n<vector id=\"v8i\" type=\"int16\" count=\"8\"/>\n\
         <vector id=\"v16u\" type=\"uint8\" count=\"16\"/>\n<vector id=\"v16i\" type=\"int8\" count=\"16\"/>\n\
         <vector id=\"v1u\" type=\"uint128\" count=\"1\"/>\n<vector id=\"v1i\" type=\"int128\" count=\"1\"/>\n\
         <union id=\"vnd\"><field name=\"f\" type=\"v2d\"/><field name=\"u\" type=\"v2u\"/><field name=\"s\" type=\"v2i\"/></union>\n\
         <union id=\"vns\"><field name=\"f\" type=\"v4f\"/><field name=\"u\" type=\"v4u\"/><field name=\"s\" type=\"v4i\"/></union>\n\
         <union id=\"vnh\"><field name=\"u\" type=\"v8u\"/><field name=\"s\" type=\"v8i\"/></union>\n\
         <union id=\"vnb\"><field name=\"u\" type=\"v16u\"/><field name=\"s\" type=\"v16i\"/></union>\n\
         <union id=\"vnq\"><field name=\"u\" type=\"v1u\"/><field name=\"s\" type=\"v1i\"/></union>\n\
         <union id=\"aarch64v\"><field name=\"d\" type=\"vnd\"/><field name=\"s\" type=\"vns\"/>\
         <field name=\"h\" type=\"vnh\"/><field name=\"b\" type=\"vnb\"/><field name=\"q\" type=\"vnq\"/></union>\n",
    );
    for i in 0..32 {
        let _ = writeln!(s, "<reg name=\"v{i}\" bitsize=\"128\" type=\"aarch64v\" regnum=\"{}\"/>", V0 + i);
    }
    let _ = write!(
        s,
        "<reg name=\"fpsr\" bitsize=\"32\" type=\"int\" regnum=\"{FPSR}\"/>\n\
         <reg name=\"fpcr\" bitsize=\"32\" type=\"int\" regnum=\"{FPCR}\"/>\n</feature>\n</target>\n"
    );
    s.into_bytes()
}

/// The `qXfer:features:read` reply for `[offset, offset + len)` of `doc`: `m` and a part, or
/// `l` and the last part.
pub fn xfer_chunk(doc: &[u8], offset: usize, len: usize) -> Vec<u8> {
    let start = offset.min(doc.len());
    let end = start.saturating_add(len).min(doc.len());
    let mut out = alloc::vec![if end == doc.len() { b'l' } else { b'm' }];
    out.extend_from_slice(&doc[start..end]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g_packet_layout() {
        let mut r = Regs::default();
        r.x[0] = 0x1122_3344_5566_7788;
        r.pc = 0xffff_8000_1000_0000;
        r.cpsr = 0x3c5;
        r.v[31] = [1, 2];
        r.fpcr = 7;
        let b = r.to_bytes();
        assert_eq!(b.len(), 33 * 8 + 4 + 32 * 16 + 8);
        assert_eq!(&b[..8], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&b[32 * 8..33 * 8], &r.pc.to_le_bytes());
        assert_eq!(&b[33 * 8..33 * 8 + 4], &[0xc5, 3, 0, 0]);
        let mut r2 = Regs::default();
        assert!(r2.set_all(&b));
        assert_eq!(r2, r);
        assert!(!r2.set_all(&b[1..]));
        assert_eq!(r.get(65).unwrap(), [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        assert!(r2.set(FPSR, &[1, 0, 0, 0]) && r2.fpsr == 1);
        assert!(!r2.set(FPSR, &[1, 0, 0, 0, 0]));
        assert_eq!(r.get(COUNT), None);
    }

    #[test]
    fn description_names_every_register_once() {
        let xml = alloc::string::String::from_utf8(target_xml()).unwrap();
        for name in ["x0", "x30", "sp", "pc", "cpsr", "v0", "v31", "fpsr", "fpcr"] {
            assert_eq!(xml.matches(&alloc::format!("<reg name=\"{name}\"")).count(), 1, "{name}");
        }
        assert!(xml.contains("org.gnu.gdb.aarch64.core") && xml.contains("org.gnu.gdb.aarch64.fpu"));
        assert_eq!(xml.matches("<reg ").count(), COUNT);
        assert!(xml.contains("regnum=\"67\""));
    }

    #[test]
    fn cpsr_modes_a_guest_may_have() {
        // EL1h to EL1t, EL0t, EL1h: fine; to EL2h or EL2t, EL3h, AArch32 SVC: refused.
        for ok in [0x3c4, 0x3c0, 0x3c5, 0x8000_03c5] {
            assert!(cpsr_allowed(0x3c5, ok), "{ok:#x}");
        }
        for bad in [0x3c9, 0x3c8, 0x3cd, 0x3d3] {
            assert!(!cpsr_allowed(0x3c5, bad), "{bad:#x}");
        }
        // An AArch32 EL0 task stays what it is.
        assert!(cpsr_allowed(0x10, 0x8000_0010));
    }

    #[test]
    fn xfer_chunks() {
        assert_eq!(xfer_chunk(b"abcdef", 0, 4), b"mabcd".to_vec());
        assert_eq!(xfer_chunk(b"abcdef", 4, 4), b"lef".to_vec());
        assert_eq!(xfer_chunk(b"abcdef", 9, 4), b"l".to_vec());
    }
}
