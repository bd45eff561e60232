//! A GICv2m MSI frame: el2visor only reads its MSI_TYPER (which SPIs the frame raises) to give
//! the VM that gets the frame those SPIs; the VM programs its devices with the frame's address.

use tock_registers::interfaces::Readable;
use tock_registers::register_structs;
use tock_registers::registers::ReadOnly;

use super::mmio::Frame;

register_structs! {
    V2mRegs {
        (0x000 => _reserved0),
        (0x008 => msi_typer: ReadOnly<u32>),
        (0x00c => @END),
    }
}

/// The frame's MSI_TYPER.
///
/// # Safety
/// `base` must be a GICv2m frame identity mapped as Device memory at EL2 (el2visor maps every
/// non-RAM address so).
pub unsafe fn msi_typer(base: usize) -> u32 {
    // SAFETY: the caller guarantees `base` is a mapped GICv2m frame, which has MSI_TYPER at 0x8.
    let frame = unsafe { Frame::<V2mRegs>::new(base) };
    frame.regs().msi_typer.get()
}
