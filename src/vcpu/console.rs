//! Console input when several VMs share el2visor's console: el2visor reads the UART itself and
//! hands each byte to the VM that has the input, through its vpl011; pressing Ctrl-A three times
//! gives the input to the next VM with a vpl011, and a line says which (as on Xen). Used only when
//! el2visor owns the UART (no dom0-like VM it is passed through to).

use alloc::vec::Vec;

use crate::drivers::pl011::Pl011;
use crate::vm::console::{Input, InputSwitch};
use crate::vm::table;

struct Switch {
    uart: Pl011,
    switch: InputSwitch,
    /// VM-table slots of the VMs that take input, in switch order.
    slots: Vec<usize>,
}

static SWITCH: spin::Mutex<Option<Switch>> = spin::Mutex::new(None);

fn name(slot: usize) -> &'static str {
    table::get(slot).map_or("?", |vm| vm.name.as_str())
}

/// Take console input from the PL011 at `base` (its interrupt `intid`, handled on pCPU 0) for the
/// VMs in the table that have a vpl011. Does nothing when none has.
pub fn start(base: usize, intid: Option<u32>) {
    let slots: Vec<usize> = table::all().filter(|vm| vm.vuart.is_some()).map(|vm| vm.slot).collect();
    if slots.is_empty() {
        return;
    }
    let Some(intid) = intid else {
        log::warn!("the console UART has no GIC interrupt in the DT: the VMs get no console input");
        return;
    };
    // SAFETY: `base` is the console PL011 el2visor already writes to; it is not passed through
    // to any VM when this is called.
    let uart = unsafe { Pl011::new(base) };
    crate::println!("el2visor: console input goes to VM {} (press Ctrl-A three times to switch)", name(slots[0]));
    *SWITCH.lock() = Some(Switch { uart, switch: InputSwitch::new(slots.len()), slots });
    uart.enable_rx_interrupt();
    if let Err(e) = crate::gic::hw::claim_device_irq(intid, 0, on_input) {
        log::warn!("console input interrupt {intid}: {e}: the VMs get no console input");
    }
}

/// The console's receive interrupt: hand every waiting byte to the VM that has the input.
fn on_input() {
    let mut guard = SWITCH.lock();
    let Some(s) = guard.as_mut() else { return };
    while let Some(b) = s.uart.getc() {
        match s.switch.input(b) {
            Input::To(i, bytes) => {
                let Some(vm) = table::get(s.slots[i]) else { continue };
                if let Some(u) = &vm.vuart {
                    for b in bytes {
                        u.input(vm.vgic.as_ref(), &vm.irqs, b);
                    }
                }
            }
            Input::Switched(i) => crate::println!("el2visor: console input now goes to VM {}", name(s.slots[i])),
            Input::Held => {}
        }
    }
}
