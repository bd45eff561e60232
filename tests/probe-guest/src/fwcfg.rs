//! QEMU's fw_cfg DMA interface (QEMU's docs/specs/fw_cfg.rst), for the `fw_cfg_dma` probe: a
//! request is a 16-byte `FWCfgDmaAccess { control, length, address }`, every field big-endian;
//! writing the request's physical address, big-endian, to the DMA register starts it, and the
//! device then reads or writes `length` bytes at `address`, any physical address at all.

/// The DMA address register's offset in the device.
pub const DMA_REGISTER: u64 = 0x10;
/// `control` bits.
pub const CTL_ERROR: u32 = 0x01;
pub const CTL_READ: u32 = 0x02;
pub const CTL_SELECT: u32 = 0x08;
/// The signature item: reads `QEMU`.
pub const SIGNATURE: u16 = 0x0000;

/// One request, as the device reads it from memory.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaAccess {
    pub control: u32,
    pub length: u32,
    pub address: u64,
}

/// Select item `selector` and read `length` bytes of it to physical `address`.
pub fn read_request(selector: u16, length: u32, address: u64) -> DmaAccess {
    DmaAccess {
        control: ((u32::from(selector) << 16) | CTL_SELECT | CTL_READ).to_be(),
        length: length.to_be(),
        address: address.to_be(),
    }
}

/// What a little-endian 64-bit store must write to the (big-endian) DMA register so that the
/// device sees `request_pa`.
pub fn register_value(request_pa: u64) -> u64 {
    request_pa.swap_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_read_request_is_big_endian_in_memory() {
        let r = read_request(SIGNATURE, 4, 0x4000_1000);
        // SAFETY-free view of the bytes the device reads.
        let bytes: [u8; 16] = [
            r.control.to_ne_bytes(),
            r.length.to_ne_bytes(),
            (r.address as u32).to_ne_bytes(),
            ((r.address >> 32) as u32).to_ne_bytes(),
        ]
        .concat()
        .try_into()
        .unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(bytes, [0, 0, 0, 0x0a, 0, 0, 0, 4, 0, 0, 0, 0, 0x40, 0, 0x10, 0]);
        }
        assert_eq!(core::mem::size_of::<DmaAccess>(), 16);
        assert_eq!(register_value(0x4000_1000).to_le_bytes(), [0, 0, 0, 0, 0x40, 0, 0x10, 0]);
    }
}
