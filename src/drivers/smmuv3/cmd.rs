//! Command-queue entries (IHI 0070, 4.1-4.7): two 64-bit words, opcode in word 0 bits 7:0.

#![forbid(unsafe_code)]

pub type Cmd = [u64; 2];

pub const OP_CFGI_STE: u8 = 0x03;
pub const OP_CFGI_ALL: u8 = 0x04;
pub const OP_TLBI_NSNH_ALL: u8 = 0x30;
pub const OP_TLBI_S12_VMALL: u8 = 0x28;
pub const OP_TLBI_S2_IPA: u8 = 0x2a;
pub const OP_SYNC: u8 = 0x46;

/// Drop the SMMU's cached copy of stream `sid`'s STE (Leaf = 1: only the STE, not a level-1
/// descriptor).
pub const fn cfgi_ste(sid: u32) -> Cmd {
    [OP_CFGI_STE as u64 | (sid as u64) << 32, 1]
}

/// Drop every cached STE and level-1 descriptor (Range = 31).
pub const fn cfgi_all() -> Cmd {
    [OP_CFGI_ALL as u64, 31]
}

/// Drop every non-secure, non-hypervisor TLB entry (at initialisation).
pub const fn tlbi_nsnh_all() -> Cmd {
    [OP_TLBI_NSNH_ALL as u64, 0]
}

/// Drop every stage-1 and stage-2 TLB entry of `vmid`.
pub const fn tlbi_s12_vmall(vmid: u16) -> Cmd {
    [OP_TLBI_S12_VMALL as u64 | (vmid as u64) << 32, 0]
}

/// Drop the stage-2 entries of `vmid` translating `ipa` (every level unless `leaf`).
pub const fn tlbi_s2_ipa(vmid: u16, ipa: u64, leaf: bool) -> Cmd {
    [OP_TLBI_S2_IPA as u64 | (vmid as u64) << 32, (ipa & ((1 << 52) - 1) & !0xfff) | leaf as u64]
}

/// CMD_SYNC: completes (CMDQ_CONS moves past it) once every earlier command has taken effect.
/// CS = SIG_NONE: el2visor polls CMDQ_CONS; MSH = inner shareable.
pub const fn sync() -> Cmd {
    [OP_SYNC as u64 | (3 << 22), 0]
}

/// The name of an opcode, for an error line.
pub fn name(op: u8) -> &'static str {
    match op {
        OP_CFGI_STE => "CFGI_STE",
        OP_CFGI_ALL => "CFGI_ALL",
        OP_TLBI_NSNH_ALL => "TLBI_NSNH_ALL",
        OP_TLBI_S12_VMALL => "TLBI_S12_VMALL",
        OP_TLBI_S2_IPA => "TLBI_S2_IPA",
        OP_SYNC => "SYNC",
        _ => "unknown command",
    }
}

/// CMDQ_CONS.ERR (bits 30:24), named.
pub fn error_name(cons: u32) -> &'static str {
    match (cons >> 24) & 0x7f {
        0 => "none",
        1 => "CERROR_ILL (illegal command)",
        2 => "CERROR_ABT (abort fetching the command)",
        3 => "CERROR_ATC_INV_SYNC",
        _ => "unknown",
    }
}
