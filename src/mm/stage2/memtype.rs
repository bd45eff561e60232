//! The Stage-2 memory-type policy, in one place and as data.
//!
//! el2visor decides every VM mapping's memory type at Stage 2 (the stricter of Stage 1 and
//! Stage 2 wins without FWB; with HCR_EL2.FWB = 1 Stage 2 can also force write-back):
//!
//! | region                          | `MemType`       | MemAttr no FWB | MemAttr FWB | SH        | XN |
//! |---------------------------------|-----------------|----------------|-------------|-----------|----|
//! | guest RAM                       | `NormalWb`      | 0b1111         | 0b0110      | 0b11 (IS) | no |
//! | prefetchable / write-combining  | `NormalNc`      | 0b0101         | 0b0101      | 0b10 (OS) | yes|
//! | device registers                | `DeviceNGnRE`   | 0b0001         | 0b0001      | 0b10 (OS) | yes|
//! | strictly ordered device         | `DeviceNGnRnE`  | 0b0000         | 0b0000      | 0b10 (OS) | yes|
//!
//! Shareability: RAM is Inner Shareable (SH = 0b11) so that all CPUs of the inner domain stay
//! coherent. The Arm ARM treats every Device and every Normal Non-cacheable location as Outer
//! Shareable whatever the SH field says, so for those el2visor writes SH = 0b10 (Outer Shareable):
//! the descriptor then states what the hardware does anyway, and `check()` can insist on it.
//!
//! Execute-never (XN = 0b10 in bits 54:53, which also reads as plain XN on CPUs without
//! FEAT_XNX) is set on everything that is not RAM; asking for an executable non-RAM mapping is an
//! error, not something silently fixed up.

use core::fmt;

/// What a Stage-2 mapping is, as far as the memory system is concerned.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, PartialOrd, Ord)]
pub enum MemType {
    /// Normal, inner and outer write-back cacheable: guest RAM.
    NormalWb,
    /// Normal, non-cacheable: prefetchable BARs, frame buffers, write-combining regions.
    NormalNc,
    /// Device, non-gathering, non-reordering, early write acknowledgement: ordinary MMIO.
    DeviceNGnRE,
    /// Device, non-gathering, non-reordering, no early write acknowledgement.
    DeviceNGnRnE,
}

/// How Stage-2 MemAttr[3:0] is interpreted: depends on HCR_EL2.FWB (bit 46).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash, Default)]
pub enum AttrEncoding {
    /// HCR_EL2.FWB = 0: outer attribute in [3:2], inner in [1:0], combined with Stage 1.
    #[default]
    Classic,
    /// HCR_EL2.FWB = 1 (FEAT_S2FWB): 0b0110 forces Normal WB, 0b0101 Normal-NC unless Stage 1
    /// is Device, [2] = 0 Device.
    Fwb,
}

impl MemType {
    /// Every memory type, for tests and tables.
    pub const ALL: [MemType; 4] = [
        MemType::NormalWb,
        MemType::NormalNc,
        MemType::DeviceNGnRE,
        MemType::DeviceNGnRnE,
    ];

    /// The 4-bit Stage-2 MemAttr field (descriptor bits 5:2) for this type.
    pub const fn memattr(self, enc: AttrEncoding) -> u64 {
        match (self, enc) {
            (MemType::NormalWb, AttrEncoding::Classic) => 0b1111,
            (MemType::NormalWb, AttrEncoding::Fwb) => 0b0110,
            (MemType::NormalNc, _) => 0b0101,
            (MemType::DeviceNGnRE, _) => 0b0001,
            (MemType::DeviceNGnRnE, _) => 0b0000,
        }
    }

    /// The type a MemAttr field stands for, if it is one this policy writes.
    pub const fn from_memattr(bits: u64, enc: AttrEncoding) -> Option<MemType> {
        match (bits, enc) {
            (0b1111, AttrEncoding::Classic) => Some(MemType::NormalWb),
            (0b0110, AttrEncoding::Fwb) => Some(MemType::NormalWb),
            (0b0101, _) => Some(MemType::NormalNc),
            (0b0001, _) => Some(MemType::DeviceNGnRE),
            (0b0000, _) => Some(MemType::DeviceNGnRnE),
            _ => None,
        }
    }

    /// The SH field (descriptor bits 9:8): 0b11 Inner Shareable for RAM, 0b10 Outer Shareable
    /// for everything the architecture treats as Outer Shareable anyway.
    pub const fn shareability(self) -> u64 {
        match self {
            MemType::NormalWb => 0b11,
            _ => 0b10,
        }
    }

    /// Whether this is cacheable RAM (the only type that may be executable).
    pub const fn is_ram(self) -> bool {
        matches!(self, MemType::NormalWb)
    }

    /// Short name for logs and the Stage-2 dump.
    pub const fn name(self) -> &'static str {
        match self {
            MemType::NormalWb => "Normal-WB",
            MemType::NormalNc => "Normal-NC",
            MemType::DeviceNGnRE => "Device-nGnRE",
            MemType::DeviceNGnRnE => "Device-nGnRnE",
        }
    }
}

impl fmt::Display for MemType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The attributes of one Stage-2 mapping: memory type and access permissions.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct S2Attrs {
    pub mem: MemType,
    pub read: bool,
    pub write: bool,
    pub exec: bool,
}

impl S2Attrs {
    /// Guest RAM: Normal WB, read, write, execute.
    pub const fn ram() -> Self {
        Self {
            mem: MemType::NormalWb,
            read: true,
            write: true,
            exec: true,
        }
    }

    /// A passthrough device: Device-nGnRE, read and write, never executable.
    pub const fn device() -> Self {
        Self {
            mem: MemType::DeviceNGnRE,
            read: true,
            write: true,
            exec: false,
        }
    }

    /// A prefetchable or write-combining region: Normal-NC, read and write, never executable.
    pub const fn normal_nc() -> Self {
        Self {
            mem: MemType::NormalNc,
            read: true,
            write: true,
            exec: false,
        }
    }

    /// The same attributes with writes removed (for example a pristine image copy).
    pub const fn read_only(self) -> Self {
        Self {
            write: false,
            ..self
        }
    }

    /// Whether the policy allows these attributes: only RAM may be executable.
    pub const fn validate(&self) -> Result<(), &'static str> {
        if self.exec && !self.mem.is_ram() {
            return Err("only RAM (Normal-WB) may be mapped executable at Stage 2");
        }
        Ok(())
    }
}

impl fmt::Display for S2Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}{}{}",
            self.mem,
            if self.read { 'r' } else { '-' },
            if self.write { 'w' } else { '-' },
            if self.exec { 'x' } else { '-' }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_follow_hardware_md() {
        use AttrEncoding::*;
        assert_eq!(MemType::NormalWb.memattr(Classic), 0b1111);
        assert_eq!(MemType::NormalNc.memattr(Classic), 0b0101);
        assert_eq!(MemType::DeviceNGnRE.memattr(Classic), 0b0001);
        assert_eq!(MemType::DeviceNGnRnE.memattr(Classic), 0b0000);
        assert_eq!(MemType::NormalWb.memattr(Fwb), 0b0110);
        assert_eq!(MemType::NormalNc.memattr(Fwb), 0b0101);
        // With FWB, bit 2 clear means Device.
        assert_eq!(MemType::DeviceNGnRE.memattr(Fwb) & 0b100, 0);
        assert_eq!(MemType::DeviceNGnRnE.memattr(Fwb) & 0b100, 0);
    }

    #[test]
    fn memattr_round_trips_and_rejects_foreign_values() {
        for enc in [AttrEncoding::Classic, AttrEncoding::Fwb] {
            for m in MemType::ALL {
                assert_eq!(MemType::from_memattr(m.memattr(enc), enc), Some(m));
            }
        }
        assert_eq!(MemType::from_memattr(0b0110, AttrEncoding::Classic), None);
        assert_eq!(MemType::from_memattr(0b1111, AttrEncoding::Fwb), None);
        assert_eq!(MemType::from_memattr(0b0111, AttrEncoding::Fwb), None);
    }

    #[test]
    fn only_ram_is_executable() {
        assert!(S2Attrs::ram().validate().is_ok());
        assert!(!S2Attrs::device().exec && !S2Attrs::normal_nc().exec);
        let bad = S2Attrs {
            exec: true,
            ..S2Attrs::device()
        };
        assert!(bad.validate().is_err());
        assert_eq!(MemType::NormalWb.shareability(), 0b11);
        assert_eq!(MemType::DeviceNGnRE.shareability(), 0b10);
        assert_eq!(
            alloc::format!("{}", S2Attrs::ram().read_only()),
            "Normal-WB r-x"
        );
    }
}
