use super::cmd::*;

#[test]
fn decode_encode_round_trip() {
    let cmds = [
        Command::Mapd { dev: 0x0108, size: 4, itt: 0x4123_4500, valid: true },
        Command::Mapd { dev: 7, size: 0, itt: 0, valid: false },
        Command::Mapc { icid: 3, rdbase: 1, valid: true },
        Command::Mapti { dev: 0x10, event: 2, intid: 8195, icid: 1 },
        Command::Mapi { dev: 0x10, event: 8200, icid: 0 },
        Command::Movi { dev: 1, event: 2, icid: 3 },
        Command::Int { dev: 1, event: 2 },
        Command::Clear { dev: 1, event: 2 },
        Command::Discard { dev: 1, event: 2 },
        Command::Inv { dev: 1, event: 2 },
        Command::Invall { icid: 9 },
        Command::Sync { rdbase: 2 },
        Command::Movall { from: 0, to: 1 },
    ];
    for c in cmds {
        assert_eq!(decode(encode(c)), Ok(c), "{c:?}");
    }
}

#[test]
fn decodes_linux_style_words() {
    // MAPD DeviceID 0x8, 5 EventID bits, ITT at 0x4567_8900, valid.
    let c = [0x0000_0008_0000_0008, 0x4, 0x8000_0000_4567_8900, 0];
    assert_eq!(decode(c), Ok(Command::Mapd { dev: 8, size: 4, itt: 0x4567_8900, valid: true }));
    // MAPC ICID 1 to processor 1 (RDbase in bits 50:16), valid.
    let c = [0x9, 0, 0x8000_0000_0001_0001, 0];
    assert_eq!(decode(c), Ok(Command::Mapc { icid: 1, rdbase: 1, valid: true }));
    // MAPTI dev 8 event 0 -> 8192, ICID 0.
    let c = [0x0000_0008_0000_000a, 0x0000_2000_0000_0000, 0, 0];
    assert_eq!(decode(c), Ok(Command::Mapti { dev: 8, event: 0, intid: 8192, icid: 0 }));
}

#[test]
fn garbage_opcodes_are_errors() {
    for opcode in [0x00u8, 0x02, 0x06, 0x07, 0x10, 0x21, 0x22, 0x25, 0x29, 0x2a, 0xff] {
        let c = [0xdead_beef_0000_0000 | opcode as u64, u64::MAX, u64::MAX, u64::MAX];
        assert_eq!(decode(c), Err(CmdError::UnknownOpcode(opcode)));
    }
}

#[test]
fn error_codes_follow_the_architecture_encoding() {
    assert_eq!(CmdError::DeviceOutOfRange { opcode: op::MAPD, dev: 1 }.code(), 0x010801);
    assert_eq!(CmdError::IttSizeOutOfRange { dev: 1, size: 30 }.code(), 0x010802);
    assert_eq!(CmdError::ProcessorOutOfRange { opcode: op::MAPC, rdbase: 9 }.code(), 0x010902);
    assert_eq!(CmdError::CollectionOutOfRange { opcode: op::MAPC, icid: 9 }.code(), 0x010903);
    assert_eq!(CmdError::UnmappedDevice { opcode: op::MAPTI, dev: 1 }.code(), 0x010a04);
    assert_eq!(CmdError::EventOutOfRange { opcode: op::MAPTI, dev: 1, event: 1 }.code(), 0x010a05);
    assert_eq!(CmdError::IntidOutOfRange { opcode: op::MAPTI, intid: 1 }.code(), 0x010a06);
    assert_eq!(CmdError::UnmappedInterrupt { opcode: op::INT, dev: 1, event: 1 }.code(), 0x010307);
    assert_eq!(CmdError::UnmappedCollection { opcode: op::INVALL, icid: 1 }.code(), 0x010d09);
}

#[test]
fn from_bytes_is_little_endian() {
    let mut b = [0u8; 32];
    b[0] = 0x0a;
    b[4] = 0x08;
    b[12] = 0x00;
    b[14] = 0x20;
    assert_eq!(from_bytes(&b), [0x0000_0008_0000_000a, 0x0020_0000_0000_0000, 0, 0]);
}
