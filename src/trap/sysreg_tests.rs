//! Host tests of the system-register names, the TVM register set and the TVM write rule.

use super::*;
use alloc::{format, string::ToString, vec::Vec};

#[test]
fn decodes_the_hardware_md_example() {
    // `msr mair_el1, x0` gives ESR 0x6230_2804.
    let reg = SysReg::from_iss(0x6230_2804 & 0x1ff_ffff);
    assert_eq!(reg, TvmReg::Mair.encoding());
    assert_eq!(reg.to_string(), "S3_0_C10_C2_0 (MAIR_EL1)");
    assert_eq!(reg.tvm_register(), Some(TvmReg::Mair));
}

#[test]
fn iss_bits_round_trip_every_encoding() {
    for op0 in 0..4u8 {
        for op1 in 0..8u8 {
            for crn in 0..16u8 {
                for crm in 0..16u8 {
                    for op2 in 0..8u8 {
                        let reg = SysReg::new(op0, op1, crn, crm, op2);
                        let iss = reg.iss_bits();
                        assert_eq!(iss & !SysReg::ISS_MASK, 0);
                        // Rt and the direction bit do not disturb the encoding.
                        assert_eq!(SysReg::from_iss(iss | (0x1f << 5) | 1), reg);
                    }
                }
            }
        }
    }
}

#[test]
fn tvm_registers_are_named_and_distinct() {
    let names: Vec<_> = TvmReg::ALL
        .iter()
        .map(|t| t.encoding().name().unwrap().to_string())
        .collect();
    let own: Vec<_> = TvmReg::ALL.iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, own);
    for (i, a) in TvmReg::ALL.iter().enumerate() {
        assert_eq!(a.encoding().tvm_register(), Some(*a));
        for b in &TvmReg::ALL[i + 1..] {
            assert_ne!(a.encoding(), b.encoding());
        }
    }
    assert_eq!(
        SysReg::new(3, 0, 1, 0, 1).tvm_register(),
        None,
        "ACTLR_EL1 is not TVM"
    );
}

#[test]
fn table_has_no_duplicates_and_no_clash_with_families() {
    for (i, (reg, name)) in FIXED.iter().enumerate() {
        assert!(
            indexed_name(*reg).is_none(),
            "{name} clashes with an indexed family"
        );
        for (other, other_name) in &FIXED[i + 1..] {
            assert_ne!(reg, other, "{name} and {other_name} share an encoding");
            assert_ne!(name, other_name);
        }
    }
}

#[test]
fn names_indexed_families() {
    assert_eq!(
        SysReg::new(2, 0, 0, 3, 4).to_string(),
        "S2_0_C0_C3_4 (DBGBVR3_EL1)"
    );
    assert_eq!(
        SysReg::new(2, 0, 0, 15, 7).name().unwrap().to_string(),
        "DBGWCR15_EL1"
    );
    assert_eq!(
        SysReg::new(3, 3, 14, 9, 4).name().unwrap().to_string(),
        "PMEVCNTR12_EL0"
    );
    assert_eq!(
        SysReg::new(3, 3, 14, 15, 6).name().unwrap().to_string(),
        "PMEVTYPER30_EL0"
    );
    assert_eq!(
        SysReg::new(3, 3, 14, 15, 7).name().unwrap().to_string(),
        "PMCCFILTR_EL0"
    );
    assert_eq!(SysReg::new(3, 3, 14, 11, 7).name(), None);
    assert_eq!(
        SysReg::new(3, 0, 12, 9, 2).name().unwrap().to_string(),
        "ICC_AP1R2_EL1"
    );
}

#[test]
fn names_common_traps_and_leaves_unknown_ones_generic() {
    assert_eq!(
        SysReg::new(3, 0, 12, 11, 5).name().unwrap().to_string(),
        "ICC_SGI1R_EL1"
    );
    assert_eq!(
        SysReg::new(2, 0, 1, 0, 4).name().unwrap().to_string(),
        "OSLAR_EL1"
    );
    assert_eq!(
        SysReg::new(3, 3, 14, 2, 1).name().unwrap().to_string(),
        "CNTP_CTL_EL0"
    );
    assert_eq!(
        SysReg::new(3, 0, 0, 7, 2).name().unwrap().to_string(),
        "ID_AA64MMFR2_EL1"
    );
    assert_eq!(format!("{}", SysReg::new(3, 7, 15, 2, 0)), "S3_7_C15_C2_0");
}

#[test]
fn tvm_write_rule() {
    use crate::coherency::Mode;
    assert_eq!(tvm_write_value(Mode::MairTrap, TvmReg::Mair, 0x44), 0xff);
    assert_eq!(tvm_write_value(Mode::MairTrap, TvmReg::Mair2, 0xbb44_0400), 0xffff_0400);
    assert_eq!(tvm_write_value(Mode::MairTrap, TvmReg::Amair, 0x44), 0x44);
    assert_eq!(tvm_write_value(Mode::MairTrap, TvmReg::Amair2, 0x44), 0x44);
    // SCTLR with the MMU on and C = I = 0; with the MMU off (DC's job) unchanged.
    assert_eq!(tvm_write_value(Mode::MairTrap, TvmReg::Sctlr, 0x30d0_0801), 0x30d0_1805);
    assert_eq!(tvm_write_value(Mode::MairTrap, TvmReg::Sctlr, 0x30d0_0800), 0x30d0_0800);
    assert_eq!(tvm_write_value(Mode::MairTrap, TvmReg::Tcr, 0x0080_3010), 0x0580_3510);
    for mode in [Mode::Off, Mode::Fwb] {
        for reg in TvmReg::ALL {
            for v in [0x44, 0x30d0_0801, 0x0080_3010, u64::MAX] {
                assert_eq!(tvm_write_value(mode, reg, v), v, "{reg:?} in {mode:?}");
            }
        }
    }
    // In mair-trap mode only the four with a rule change anything.
    let rewritten = [TvmReg::Mair, TvmReg::Mair2, TvmReg::Sctlr, TvmReg::Tcr];
    for reg in TvmReg::ALL.iter().filter(|r| !rewritten.contains(r)) {
        for v in [0x44, 0x30d0_0801, 0x0080_3010, u64::MAX, 0] {
            assert_eq!(tvm_write_value(Mode::MairTrap, *reg, v), v, "{reg:?}");
        }
    }
}

/// The `TVM_SLOT` register names of one hash table of boot/tvm_fastpath.S.
fn fast_path_table(label: &str) -> Vec<TvmReg> {
    let asm = include_str!("../../boot/tvm_fastpath.S");
    let start = asm.find(&format!("{label}:\n")).expect("table label") + label.len() + 2;
    asm[start..]
        .lines()
        .take_while(|l| l.trim_start().starts_with("TVM_"))
        .filter_map(|l| l.trim().strip_prefix("TVM_SLOT "))
        .map(|slot| {
            let name = slot.split(',').nth(1).unwrap().trim().to_uppercase();
            *TvmReg::ALL.iter().find(|r| r.name() == name).unwrap_or_else(|| panic!("{name}"))
        })
        .collect()
}

/// The fast path writes the guest's value unchanged for every register in its mode-2 table
/// (MAIR_EL1 has its own entries with the rewrite): so no register with a mair-trap rewrite
/// may be in it. Mode 1 (nothing rewritten) has all eleven.
#[test]
fn fast_path_tables_agree_with_the_write_rule() {
    use crate::coherency::Mode;
    let rewrite = fast_path_table(".Ltvm_keys_rewrite");
    assert_eq!(rewrite.len(), 8, "{rewrite:?}");
    for reg in &rewrite {
        for v in [0u64, 0x44, 0x30d0_0801, 0x0080_3010, 0xbb44, u64::MAX] {
            assert_eq!(tvm_write_value(Mode::MairTrap, *reg, v), v, "{reg:?} {v:#x}");
        }
    }
    for reg in [TvmReg::Sctlr, TvmReg::Tcr, TvmReg::Mair] {
        assert!(!rewrite.contains(&reg), "{reg:?}");
    }
    let plain = fast_path_table(".Ltvm_keys_plain");
    assert_eq!(plain.len(), 11);
    for reg in &TvmReg::ALL[..11] {
        assert!(plain.contains(reg), "{reg:?}");
    }
}

#[test]
fn feature_registers_decode() {
    // ESR ISS of `msr s3_0_c10_c2_1, x3` (MAIR2_EL1): op0 3, op2 1, op1 0, CRn 10, CRm 2.
    let iss = (3 << 20) | (1 << 17) | (10 << 10) | (3 << 5) | (2 << 1);
    assert_eq!(SysReg::from_iss(iss).tvm_register(), Some(TvmReg::Mair2));
    assert_eq!(SysReg::new(3, 3, 10, 2, 4).tvm_register(), Some(TvmReg::Por0));
    assert_eq!(SysReg::new(3, 0, 10, 2, 4).tvm_register(), Some(TvmReg::Por1));
    assert_eq!(SysReg::new(3, 4, 10, 2, 3).tvm_register(), None, "PIR_EL2 is not trapped");
    assert_eq!(SysReg::new(3, 0, 2, 0, 3).to_string(), "S3_0_C2_C0_3 (TCR2_EL1)");
}
