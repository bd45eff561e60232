//! SMMUv3 register offsets and fields (IHI 0070, chapter 6), and the ID registers decoded.

#![forbid(unsafe_code)]

/// Page 0 registers (offsets from the SMMU base).
pub const IDR0: usize = 0x00;
pub const IDR1: usize = 0x04;
pub const IDR3: usize = 0x0c;
pub const IDR5: usize = 0x14;
pub const CR0: usize = 0x20;
pub const CR0ACK: usize = 0x24;
pub const CR1: usize = 0x28;
pub const CR2: usize = 0x2c;
pub const GBPA: usize = 0x44;
pub const IRQ_CTRL: usize = 0x50;
pub const IRQ_CTRLACK: usize = 0x54;
pub const GERROR: usize = 0x60;
pub const GERRORN: usize = 0x64;
pub const STRTAB_BASE: usize = 0x80;
pub const STRTAB_BASE_CFG: usize = 0x88;
pub const CMDQ_BASE: usize = 0x90;
pub const CMDQ_PROD: usize = 0x98;
pub const CMDQ_CONS: usize = 0x9c;
pub const EVENTQ_BASE: usize = 0xa0;
/// The event queue's indices live in page 1 (base + 64 KiB).
pub const EVENTQ_PROD: usize = 0x1_00a8;
pub const EVENTQ_CONS: usize = 0x1_00ac;

/// CR0 / CR0ACK bits.
pub const CR0_SMMUEN: u32 = 1 << 0;
pub const CR0_EVENTQEN: u32 = 1 << 2;
pub const CR0_CMDQEN: u32 = 1 << 3;

/// GBPA: `UPDATE` (write 1, wait for 0) and `ABORT` (transactions while SMMUEN = 0 abort).
pub const GBPA_UPDATE: u32 = 1 << 31;
pub const GBPA_ABORT: u32 = 1 << 20;

/// IRQ_CTRL bits.
pub const IRQ_CTRL_GERROR: u32 = 1 << 0;
pub const IRQ_CTRL_EVENTQ: u32 = 1 << 2;

/// GERROR bits worth naming.
pub const GERROR_CMDQ_ERR: u32 = 1 << 0;
pub const GERROR_EVENTQ_ABT: u32 = 1 << 2;

/// Queue base `RA`/`WA` hint (bit 62) and address field [51:5].
pub const Q_BASE_ALLOC_HINT: u64 = 1 << 62;
pub const Q_BASE_ADDR_MASK: u64 = ((1 << 52) - 1) & !0x1f;
/// STRTAB_BASE: `RA` (bit 62) and address [51:6].
pub const STRTAB_BASE_ADDR_MASK: u64 = ((1 << 52) - 1) & !0x3f;

/// CR1: queues and tables inner-shareable, write-back cacheable (IC/OC = 1, SH = 3), as the
/// CPU's own mappings of that memory.
pub const CR1_WB_ISH: u32 = 1 | (1 << 2) | (3 << 4) | (1 << 6) | (1 << 8) | (3 << 10);
/// CR2: `RECINVSID` (record C_BAD_STREAMID events) and `PTM` (private TLB maintenance: the CPU's
/// broadcast TLBIs need not reach the SMMU; el2visor sends its own commands).
pub const CR2_RECINVSID_PTM: u32 = (1 << 1) | (1 << 2);

/// What the ID registers say, as far as el2visor cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Features {
    /// IDR0.S2P: stage-2 translation.
    pub stage2: bool,
    /// IDR0.ST_LEVEL = 0b01: two-level stream tables.
    pub two_level: bool,
    /// IDR0.VMID16.
    pub vmid16: bool,
    /// IDR0.TTF includes AArch64 tables.
    pub aarch64: bool,
    /// IDR0.COHACC: table walks and queue accesses are coherent with the CPU's caches.
    pub coherent: bool,
    /// IDR1.SIDSIZE: stream ID bits.
    pub sid_bits: u8,
    /// log2 of the largest command / event queue (IDR1.CMDQS, EVENTQS).
    pub cmdq_log2: u8,
    pub eventq_log2: u8,
    /// IDR3.FWB: STE.S2FWB is available.
    pub fwb: bool,
    /// IDR5.OAS as address bits (the IPA and output size limit of stage 2).
    pub oas_bits: u8,
    /// IDR5.GRAN4K.
    pub gran4k: bool,
}

/// The address size an OAS/PS field encodes (the same encoding as ID_AA64MMFR0_EL1.PARange).
pub const fn size_bits(field: u32) -> Option<u8> {
    match field {
        0 => Some(32),
        1 => Some(36),
        2 => Some(40),
        3 => Some(42),
        4 => Some(44),
        5 => Some(48),
        6 => Some(52),
        _ => None,
    }
}

impl Features {
    pub fn decode(idr0: u32, idr1: u32, idr3: u32, idr5: u32) -> Self {
        let ttf = (idr0 >> 2) & 3;
        Self {
            stage2: idr0 & 1 != 0,
            two_level: (idr0 >> 27) & 3 == 1,
            vmid16: idr0 & (1 << 18) != 0,
            aarch64: ttf == 2 || ttf == 3,
            coherent: idr0 & (1 << 4) != 0,
            sid_bits: (idr1 & 0x3f) as u8,
            cmdq_log2: ((idr1 >> 21) & 0x1f) as u8,
            eventq_log2: ((idr1 >> 16) & 0x1f) as u8,
            fwb: idr3 & (1 << 8) != 0,
            oas_bits: size_bits(idr5 & 7).unwrap_or(32),
            gran4k: idr5 & (1 << 4) != 0,
        }
    }

    /// Why el2visor cannot use this SMMU for stage-2 isolation, if it cannot.
    pub fn unusable(&self) -> Option<&'static str> {
        if !self.stage2 {
            Some("it has no stage-2 translation (IDR0.S2P = 0; QEMU: -global arm-smmuv3.stage=2)")
        } else if !self.aarch64 {
            Some("it cannot walk AArch64 tables (IDR0.TTF)")
        } else if !self.gran4k {
            Some("it has no 4 KiB granule (IDR5.GRAN4K = 0)")
        } else if !self.coherent {
            Some("its table walks are not coherent with the CPU's caches (IDR0.COHACC = 0), and el2visor's Stage-2 tables are write-back cached")
        } else {
            None
        }
    }

    /// The PS field for a VM whose VTCR_EL2.PS is `ps`: never more than the SMMU outputs.
    pub fn s2ps(&self, ps: u32) -> u32 {
        let oas = (0..=6).rev().find(|&f| size_bits(f) == Some(self.oas_bits)).unwrap_or(0);
        ps.min(oas)
    }
}
