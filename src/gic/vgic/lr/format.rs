//! List-register encodings: GICv2 GICH_LR<n> (32 bits) and GICv3 ICH_LR<n>_EL2 (64 bits).

use crate::gic::GicVersion;

/// The state field of a list register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LrState {
    Invalid,
    Pending,
    Active,
    PendingActive,
}

impl LrState {
    fn bits(self) -> u64 {
        match self {
            Self::Invalid => 0,
            Self::Pending => 1,
            Self::Active => 2,
            Self::PendingActive => 3,
        }
    }

    fn from_bits(b: u64) -> Self {
        match b & 3 {
            0 => Self::Invalid,
            1 => Self::Pending,
            2 => Self::Active,
            _ => Self::PendingActive,
        }
    }

    pub fn is_pending(self) -> bool {
        matches!(self, Self::Pending | Self::PendingActive)
    }

    pub fn is_active(self) -> bool {
        matches!(self, Self::Active | Self::PendingActive)
    }
}

/// The fields of one list register, independent of the GIC version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrValue {
    pub vintid: u32,
    /// Physical INTID (HW = 1): the guest's deactivation deactivates it.
    pub pintid: Option<u32>,
    /// 8-bit priority; GICv2 keeps bits 7:3.
    pub priority: u8,
    pub group1: bool,
    pub state: LrState,
    /// HW = 0 only: raise a maintenance interrupt on EOI.
    pub eoi_maintenance: bool,
    /// GICv2 HW = 0 SGIs only: the source CPU (CPUID, bits 12:10).
    pub source: u8,
}

/// Which list-register layout the hardware uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LrFormat {
    /// GICH_LR: VirtualID 9:0, PhysicalID 19:10 (HW) or EOI 19 + CPUID 12:10, Priority 27:23,
    /// State 29:28, Grp1 30, HW 31.
    V2,
    /// ICH_LR_EL2: vINTID 31:0, pINTID 41:32 (HW) or EOI 41, Priority 55:48, Group 60, HW 61,
    /// State 63:62.
    V3,
}

impl From<GicVersion> for LrFormat {
    fn from(v: GicVersion) -> Self {
        match v {
            GicVersion::V2 => Self::V2,
            GicVersion::V3 => Self::V3,
        }
    }
}

impl LrFormat {
    /// Number of list registers from GICH_VTR (ListRegs 5:0) or ICH_VTR_EL2 (ListRegs 4:0).
    pub fn count_from_vtr(self, vtr: u64) -> usize {
        match self {
            Self::V2 => (vtr & 0x3f) as usize + 1,
            Self::V3 => (vtr & 0x1f) as usize + 1,
        }
    }

    pub fn encode(self, lr: &LrValue) -> u64 {
        match self {
            Self::V2 => {
                let mut v = (lr.vintid & 0x3ff) as u64
                    | ((lr.priority >> 3) as u64) << 23
                    | lr.state.bits() << 28
                    | (lr.group1 as u64) << 30;
                match lr.pintid {
                    Some(p) => v |= ((p & 0x3ff) as u64) << 10 | 1 << 31,
                    None => {
                        v |= ((lr.source & 7) as u64) << 10 | (lr.eoi_maintenance as u64) << 19
                    }
                }
                v
            }
            Self::V3 => {
                let mut v = lr.vintid as u64
                    | (lr.priority as u64) << 48
                    | (lr.group1 as u64) << 60
                    | lr.state.bits() << 62;
                match lr.pintid {
                    Some(p) => v |= ((p & 0x3ff) as u64) << 32 | 1 << 61,
                    None => v |= (lr.eoi_maintenance as u64) << 41,
                }
                v
            }
        }
    }

    pub fn decode(self, v: u64) -> LrValue {
        match self {
            Self::V2 => {
                let hw = v & (1 << 31) != 0;
                LrValue {
                    vintid: (v & 0x3ff) as u32,
                    pintid: hw.then_some(((v >> 10) & 0x3ff) as u32),
                    priority: (((v >> 23) & 0x1f) << 3) as u8,
                    group1: v & (1 << 30) != 0,
                    state: LrState::from_bits(v >> 28),
                    eoi_maintenance: !hw && v & (1 << 19) != 0,
                    source: if hw { 0 } else { ((v >> 10) & 7) as u8 },
                }
            }
            Self::V3 => {
                let hw = v & (1 << 61) != 0;
                LrValue {
                    vintid: v as u32,
                    pintid: hw.then_some(((v >> 32) & 0x3ff) as u32),
                    priority: (v >> 48) as u8,
                    group1: v & (1 << 60) != 0,
                    state: LrState::from_bits(v >> 62),
                    eoi_maintenance: !hw && v & (1 << 41) != 0,
                    source: 0,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn state() -> impl Strategy<Value = LrState> {
        prop_oneof![
            Just(LrState::Invalid),
            Just(LrState::Pending),
            Just(LrState::Active),
            Just(LrState::PendingActive)
        ]
    }

    prop_compose! {
        fn lr_value(v2: bool)(
            vintid in 0u32..1020,
            hw in any::<bool>(),
            pintid in 16u32..1020,
            priority in any::<u8>(),
            group1 in any::<bool>(),
            state in state(),
            eoi in any::<bool>(),
            source in 0u8..8,
        ) -> LrValue {
            LrValue {
                vintid,
                pintid: hw.then_some(pintid),
                priority: if v2 { priority & 0xf8 } else { priority },
                group1,
                state,
                eoi_maintenance: !hw && eoi,
                source: if v2 && !hw { source } else { 0 },
            }
        }
    }

    proptest! {
        #[test]
        fn v2_round_trip(lr in lr_value(true)) {
            let enc = LrFormat::V2.encode(&lr);
            prop_assert!(enc <= u32::MAX as u64);
            prop_assert_eq!(LrFormat::V2.decode(enc), lr);
        }

        #[test]
        fn v3_round_trip(lr in lr_value(false)) {
            prop_assert_eq!(LrFormat::V3.decode(LrFormat::V3.encode(&lr)), lr);
        }
    }

    #[test]
    fn known_encodings() {
        // Virtual timer, HW, priority 0xa0, group 1, pending.
        let lr = LrValue {
            vintid: 27,
            pintid: Some(27),
            priority: 0xa0,
            group1: true,
            state: LrState::Pending,
            eoi_maintenance: false,
            source: 0,
        };
        assert_eq!(LrFormat::V2.encode(&lr), 0xda00_6c1b);
        assert_eq!(LrFormat::V3.encode(&lr), 0x70a0_001b_0000_001b);
        // A GICv2 SGI 3 from CPU 2, active, group 0, priority 0.
        let sgi = LrValue {
            vintid: 3,
            pintid: None,
            priority: 0,
            group1: false,
            state: LrState::Active,
            eoi_maintenance: false,
            source: 2,
        };
        assert_eq!(LrFormat::V2.encode(&sgi), 0x2000_0803);
    }

    #[test]
    fn list_register_count() {
        // ListRegs = 3 (with PRIbits/PREbits set above it) means four LRs.
        assert_eq!(LrFormat::V2.count_from_vtr(0x9000_0003), 4);
        assert_eq!(LrFormat::V3.count_from_vtr(0x9008_0003), 4);
        assert_eq!(LrFormat::V3.count_from_vtr(0x2f), 16);
    }
}
