//! ITS commands: the 32-byte records of a command queue, decoded from a guest's queue and encoded
//! for el2visor's own queue on the physical ITS (GICv3 architecture, IHI 0069, chapter 5.13).
//!
//! A command is four little-endian doublewords. DW0[7:0] is the opcode; the commands that name a
//! device carry its DeviceID in DW0[63:32]. Only the physical-LPI commands are decoded: the GICv4
//! virtual commands (VMAPP, VMOVI, ...) are for a hypervisor, and a guest that sends them gets a
//! command error like any other unknown opcode.

use core::fmt;

/// Size of one command in bytes.
pub const CMD_SIZE: u64 = 32;

/// Opcodes (DW0[7:0]).
pub mod op {
    pub const MOVI: u8 = 0x01;
    pub const INT: u8 = 0x03;
    pub const CLEAR: u8 = 0x04;
    pub const SYNC: u8 = 0x05;
    pub const MAPD: u8 = 0x08;
    pub const MAPC: u8 = 0x09;
    pub const MAPTI: u8 = 0x0a;
    pub const MAPI: u8 = 0x0b;
    pub const INV: u8 = 0x0c;
    pub const INVALL: u8 = 0x0d;
    pub const MOVALL: u8 = 0x0e;
    pub const DISCARD: u8 = 0x0f;
}

/// One decoded command. `dev` is a DeviceID, `event` an EventID, `icid` a collection ID,
/// `rdbase` the target redistributor as the ITS's GITS_TYPER.PTA says (a processor number when
/// PTA = 0, the physical address bits [51:16] when PTA = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Map (`valid`) or unmap a device: `size` is the number of EventID bits minus one, `itt` the
    /// ITT's physical address (256-byte aligned).
    Mapd { dev: u32, size: u8, itt: u64, valid: bool },
    /// Map (`valid`) or unmap a collection onto a redistributor.
    Mapc { icid: u16, rdbase: u64, valid: bool },
    /// Map an event to physical LPI `intid` in collection `icid`.
    Mapti { dev: u32, event: u32, intid: u32, icid: u16 },
    /// MAPTI with `intid` = `event`.
    Mapi { dev: u32, event: u32, icid: u16 },
    /// Move an event to another collection.
    Movi { dev: u32, event: u32, icid: u16 },
    /// Make an event's LPI pending, as the device's write would.
    Int { dev: u32, event: u32 },
    /// Clear an event's LPI pending state.
    Clear { dev: u32, event: u32 },
    /// Unmap an event and clear its pending state.
    Discard { dev: u32, event: u32 },
    /// Reload an event's LPI configuration.
    Inv { dev: u32, event: u32 },
    /// Reload the configuration of every LPI of a collection.
    Invall { icid: u16 },
    /// Wait for the effects of earlier commands on a redistributor.
    Sync { rdbase: u64 },
    /// Move every LPI of one redistributor to another.
    Movall { from: u64, to: u64 },
}

/// Why a command failed. The numbers follow the architecture's command error encoding, as KVM
/// reports them: 0x01 (command error), the opcode, a reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdError {
    /// An opcode el2visor does not implement (GICv4 commands, reserved encodings).
    UnknownOpcode(u8),
    /// The DeviceID is not one the VM owns (or past GITS_TYPER.Devbits).
    DeviceOutOfRange { opcode: u8, dev: u32 },
    /// MAPD's Size asks for more EventID bits than GITS_TYPER.IDbits.
    IttSizeOutOfRange { dev: u32, size: u8 },
    /// The target redistributor (processor number) is not one of the VM's vCPUs.
    ProcessorOutOfRange { opcode: u8, rdbase: u64 },
    /// The ICID is past the collections the ITS implements.
    CollectionOutOfRange { opcode: u8, icid: u16 },
    /// The device is not mapped.
    UnmappedDevice { opcode: u8, dev: u32 },
    /// The EventID is past the device's Size.
    EventOutOfRange { opcode: u8, dev: u32, event: u32 },
    /// The LPI INTID is not an LPI the VM's redistributors implement.
    IntidOutOfRange { opcode: u8, intid: u32 },
    /// The event is not mapped.
    UnmappedInterrupt { opcode: u8, dev: u32, event: u32 },
    /// The collection is not mapped.
    UnmappedCollection { opcode: u8, icid: u16 },
    /// The host ran out of physical LPIs or memory for the mapping.
    NoResources { opcode: u8 },
}

impl CmdError {
    /// The error number (0x01 in bits 23:16, the opcode in 15:8, the reason in 7:0).
    pub fn code(&self) -> u32 {
        let (opcode, reason) = match *self {
            Self::UnknownOpcode(o) => (o, 0x00),
            Self::DeviceOutOfRange { opcode, .. } => (opcode, 0x01),
            Self::IttSizeOutOfRange { .. } => (op::MAPD, 0x02),
            Self::ProcessorOutOfRange { opcode, .. } => (opcode, 0x02),
            Self::CollectionOutOfRange { opcode, .. } => (opcode, 0x03),
            Self::UnmappedDevice { opcode, .. } => (opcode, 0x04),
            Self::EventOutOfRange { opcode, .. } => (opcode, 0x05),
            Self::IntidOutOfRange { opcode, .. } => (opcode, 0x06),
            Self::UnmappedInterrupt { opcode, .. } => (opcode, 0x07),
            Self::UnmappedCollection { opcode, .. } => (opcode, 0x09),
            Self::NoResources { opcode } => (opcode, 0x0a),
        };
        0x01_0000 | (opcode as u32) << 8 | reason
    }
}

impl fmt::Display for CmdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ITS command error {:#08x}: ", self.code())?;
        match *self {
            Self::UnknownOpcode(o) => write!(f, "unknown or unsupported opcode {o:#04x}"),
            Self::DeviceOutOfRange { dev, .. } => write!(f, "DeviceID {dev:#x} is not the VM's"),
            Self::IttSizeOutOfRange { dev, size } => {
                write!(f, "MAPD of DeviceID {dev:#x}: {} EventID bits is too many", size as u32 + 1)
            }
            Self::ProcessorOutOfRange { rdbase, .. } => write!(f, "no vCPU {rdbase}"),
            Self::CollectionOutOfRange { icid, .. } => write!(f, "ICID {icid} out of range"),
            Self::UnmappedDevice { dev, .. } => write!(f, "DeviceID {dev:#x} is not mapped"),
            Self::EventOutOfRange { dev, event, .. } => {
                write!(f, "EventID {event} is past DeviceID {dev:#x}'s size")
            }
            Self::IntidOutOfRange { intid, .. } => write!(f, "INTID {intid} is not an LPI of the VM"),
            Self::UnmappedInterrupt { dev, event, .. } => {
                write!(f, "DeviceID {dev:#x} EventID {event} is not mapped")
            }
            Self::UnmappedCollection { icid, .. } => write!(f, "collection {icid} is not mapped"),
            Self::NoResources { .. } => f.write_str("el2visor is out of LPIs or memory for the mapping"),
        }
    }
}

/// Bits `hi..=lo` of `v`.
fn bits(v: u64, hi: u32, lo: u32) -> u64 {
    (v >> lo) & (u64::MAX >> (63 - (hi - lo)))
}

/// The 35-bit RDbase field of MAPC, SYNC and MOVALL (bits 50:16 of its doubleword).
fn rdbase(dw: u64) -> u64 {
    bits(dw, 50, 16)
}

/// Decode one command.
pub fn decode(c: [u64; 4]) -> Result<Command, CmdError> {
    let opcode = c[0] as u8;
    let dev = (c[0] >> 32) as u32;
    let event = c[1] as u32;
    let icid = c[2] as u16;
    Ok(match opcode {
        op::MAPD => Command::Mapd {
            dev,
            size: bits(c[1], 4, 0) as u8,
            itt: bits(c[2], 51, 8) << 8,
            valid: c[2] >> 63 != 0,
        },
        op::MAPC => Command::Mapc { icid, rdbase: rdbase(c[2]), valid: c[2] >> 63 != 0 },
        op::MAPTI => Command::Mapti { dev, event, intid: (c[1] >> 32) as u32, icid },
        op::MAPI => Command::Mapi { dev, event, icid },
        op::MOVI => Command::Movi { dev, event, icid },
        op::INT => Command::Int { dev, event },
        op::CLEAR => Command::Clear { dev, event },
        op::DISCARD => Command::Discard { dev, event },
        op::INV => Command::Inv { dev, event },
        op::INVALL => Command::Invall { icid },
        op::SYNC => Command::Sync { rdbase: rdbase(c[2]) },
        op::MOVALL => Command::Movall { from: rdbase(c[2]), to: rdbase(c[3]) },
        o => return Err(CmdError::UnknownOpcode(o)),
    })
}

/// Encode one command, the inverse of [`decode`] (fields wider than their encoding are cut).
pub fn encode(c: Command) -> [u64; 4] {
    let devw = |o: u8, dev: u32| (dev as u64) << 32 | o as u64;
    let rd = |r: u64| (r & ((1 << 35) - 1)) << 16;
    match c {
        Command::Mapd { dev, size, itt, valid } => [
            devw(op::MAPD, dev),
            (size & 0x1f) as u64,
            (itt & 0x000f_ffff_ffff_ff00) | (valid as u64) << 63,
            0,
        ],
        Command::Mapc { icid, rdbase, valid } => {
            [op::MAPC as u64, 0, icid as u64 | rd(rdbase) | (valid as u64) << 63, 0]
        }
        Command::Mapti { dev, event, intid, icid } => {
            [devw(op::MAPTI, dev), (intid as u64) << 32 | event as u64, icid as u64, 0]
        }
        Command::Mapi { dev, event, icid } => [devw(op::MAPI, dev), event as u64, icid as u64, 0],
        Command::Movi { dev, event, icid } => [devw(op::MOVI, dev), event as u64, icid as u64, 0],
        Command::Int { dev, event } => [devw(op::INT, dev), event as u64, 0, 0],
        Command::Clear { dev, event } => [devw(op::CLEAR, dev), event as u64, 0, 0],
        Command::Discard { dev, event } => [devw(op::DISCARD, dev), event as u64, 0, 0],
        Command::Inv { dev, event } => [devw(op::INV, dev), event as u64, 0, 0],
        Command::Invall { icid } => [op::INVALL as u64, 0, icid as u64, 0],
        Command::Sync { rdbase } => [op::SYNC as u64, 0, rd(rdbase), 0],
        Command::Movall { from, to } => [op::MOVALL as u64, 0, rd(from), rd(to)],
    }
}

/// A command's 32 bytes as its four doublewords (little-endian, as the ITS reads memory).
pub fn from_bytes(b: &[u8; 32]) -> [u64; 4] {
    let mut dw = [0u64; 4];
    for (i, d) in dw.iter_mut().enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        *d = u64::from_le_bytes(w);
    }
    dw
}
