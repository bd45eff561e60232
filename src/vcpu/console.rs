//! Console input when several VMs share el2visor's console: el2visor reads the UART itself and
//! hands each byte to the VM that has the input, through its vpl011, whose output then shows as
//! it comes (its prompt, the echo of what is typed) until the input goes elsewhere, rather than
//! a whole line at a time (`vm::console::Output`); pressing Ctrl-A three times
//! gives the input to the next VM with a vpl011 that has not ended (what is typed to one that
//! ended meanwhile is dropped, with a line saying so), and after the last to el2visor itself, where
//! the person types line commands (`vm::console_cmd`: `help`, `vms`, `snapshot <vm>`,
//! `restore <vm> [kind]`); a line says who has the input (as on Xen). Used only when el2visor
//! owns the UART (no dom0-like VM it is passed through to).

use alloc::vec::Vec;

use crate::drivers::pl011::Pl011;
use crate::vcpu::snapshot::{ask, Ask};
use crate::vm::console::{Input, InputSwitch};
use crate::vm::console_cmd::{parse, Command, Edit, LineEditor, HELP};
use crate::vm::instance::{Vm, OFF};
use crate::vm::table;
use crate::vm::vpl011;

struct Switch {
    uart: Pl011,
    switch: InputSwitch,
    /// VM-table slots of the VMs that take input, in switch order.
    slots: Vec<usize>,
    /// The command line at el2visor's stop.
    editor: LineEditor,
    /// The person was told the VM with the input is off (until the input moves).
    told_off: bool,
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
    *SWITCH.lock() = Some(Switch { uart, switch: InputSwitch::with_hyp_stop(slots.len()), slots, editor: LineEditor::new(), told_off: false });
    uart.enable_rx_interrupt();
    if let Err(e) = crate::gic::hw::claim_device_irq(intid, 0, on_input) {
        log::warn!("console input interrupt {intid}: {e}: the VMs get no console input");
    }
}

/// The console's receive interrupt: hand every waiting byte to the VM that has the input.
fn on_input() {
    let mut guard = SWITCH.lock();
    let Some(s) = guard.as_mut() else { return };
    while let Some((b, errors)) = s.uart.getc_with_errors() {
        // A break, framing or parity error on the line goes to the VM with the input as its
        // own UART would show it (a break is Linux's SysRq); at el2visor's stop it is dropped.
        let line_errors = errors & (vpl011::RX_BREAK | vpl011::RX_FRAMING | vpl011::RX_PARITY);
        if line_errors != 0 {
            let vm = s.switch.focus().and_then(|i| not_ended(s.slots[i]));
            if let Some((vm, u)) = vm.and_then(|vm| vm.vuart.as_ref().map(|u| (vm, u))) {
                u.input_with_errors(vm.vgic.as_ref(), &vm.irqs, b, line_errors);
            }
            continue;
        }
        let slots = &s.slots;
        match s.switch.input_among(b, |i| not_ended(slots[i]).is_some()) {
            Input::To(i, bytes) => {
                let Some(vm) = not_ended(s.slots[i]) else {
                    if let Some(vm) = table::get(s.slots[i]).filter(|_| !s.told_off) {
                        s.told_off = true;
                        crate::println!("el2visor: VM {} is off: what is typed to it is dropped (press Ctrl-A three times to switch)", vm.name);
                    }
                    continue;
                };
                if let Some(u) = &vm.vuart {
                    // The person types to it: its output shows as it comes from now on.
                    u.set_live(true);
                    for b in bytes {
                        u.input(vm.vgic.as_ref(), &vm.irqs, b);
                    }
                }
            }
            Input::Switched(i) => {
                s.told_off = false;
                whole_lines(&s.slots);
                crate::println!("el2visor: console input now goes to VM {}", name(s.slots[i]));
            }
            Input::SwitchedToHyp => {
                s.told_off = false;
                whole_lines(&s.slots);
                crate::println!("el2visor: console input now goes to el2visor (type help)");
            }
            Input::Hyp(bytes) => {
                for b in bytes {
                    match s.editor.input(b) {
                        Edit::Echo(e) => crate::logging::write_raw(e),
                        Edit::EchoByte(c) => crate::logging::write_raw(&[c]),
                        Edit::Line(line) => {
                            crate::logging::write_raw(b"\r\n");
                            run(&line);
                        }
                        Edit::None => {}
                    }
                }
            }
            Input::Held => {}
        }
    }
}

/// The VM in slot `slot` of the VM table, unless it has ended.
fn not_ended(slot: usize) -> Option<&'static Vm> {
    table::get(slot).filter(|vm| vm.state() != OFF)
}

/// Output in whole lines again for every VM in `slots` (the input went elsewhere).
fn whole_lines(slots: &[usize]) {
    for &slot in slots {
        if let Some(u) = table::get(slot).and_then(|vm| vm.vuart.as_ref()) {
            u.set_live(false);
        }
    }
}

/// Run one command line typed at el2visor's stop; every answer is one line or more, each
/// starting `el2visor: `.
fn run(line: &str) {
    let cmd = match parse(line) {
        Ok(Some(c)) => c,
        Ok(None) => return,
        Err(e) => return crate::println!("el2visor: {e}"),
    };
    let vm_named = |n: &str| table::all().find(|vm| vm.name == n);
    match cmd {
        Command::Help => {
            for l in HELP {
                crate::println!("el2visor: {l}");
            }
        }
        Command::Vms => {
            for vm in table::all() {
                let snap = match &vm.snapshot {
                    None => "no snapshots",
                    Some(s) if s.is_taken() => "snapshot taken",
                    Some(_) => "no snapshot yet",
                };
                let state = if vm.is_running() { "running" } else { "not running" };
                crate::println!("el2visor: VM {}: {} vCPUs, {state}, {snap}", vm.name, vm.vcpus.len());
            }
        }
        Command::Snapshot(n) | Command::Restore(n, _) => {
            let Some(vm) = vm_named(n) else {
                return crate::println!("el2visor: no VM is called '{}' (type vms)", n.escape_default());
            };
            let op = match cmd {
                Command::Restore(_, k) => {
                    Ask::Restore(k.unwrap_or_else(|| vm.snapshot.as_ref().map_or(crate::cmdline::RestoreKind::DirtyOnly, |s| s.options.kind)))
                }
                _ => Ask::Take,
            };
            match ask(vm, op) {
                Ok(()) => match op {
                    Ask::Take => crate::println!("el2visor: VM {}: snapshot asked for", vm.name),
                    Ask::Restore(k) => crate::println!("el2visor: VM {}: {} restore asked for", vm.name, k.name()),
                },
                Err(e) => crate::println!("el2visor: VM {}: cannot: {e}", vm.name),
            }
        }
    }
}
