//! A VM's vpl011 as an emulated MMIO region: the [`Vpl011`] model behind a lock, its output cut
//! into lines printed on el2visor's console with the VM's name in front (or, while the person
//! types to this VM, shown as it comes: [`Output`]), and its interrupt line driven into the VM's
//! virtual GIC after every access and every byte of input.

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::gic::lrs::VcpuIrq;
use crate::gic::virt::VGic;
use crate::vm::console::{is_panic_line, prefixed, Output, Put, Tail};
use crate::vm::mmio::{MmioCtx, MmioDevice, MmioError};
use crate::vm::snapshot::plan::ConsoleWatch;
use crate::vm::vpl011::{Vpl011, GUEST_INTID};

/// One VM's emulated UART.
pub struct VUart {
    name: String,
    /// `(<name>) `, what each of its lines starts with on the console.
    prefix: String,
    state: spin::Mutex<(Vpl011, Output)>,
    /// The last 4 KiB it printed, for the crash report.
    tail: spin::Mutex<Tail>,
    /// It printed Linux's panic line since the dispatcher last looked.
    panic_seen: AtomicBool,
    /// `snapshot_on=`: every byte it prints is fed here too.
    watch: spin::Once<Arc<ConsoleWatch>>,
}

impl VUart {
    pub fn new(name: &str) -> Self {
        VUart {
            name: String::from(name),
            prefix: alloc::format!("({name}) "),
            state: spin::Mutex::new((Vpl011::new(), Output::new())),
            tail: spin::Mutex::new(Tail::new()),
            panic_seen: AtomicBool::new(false),
            watch: spin::Once::new(),
        }
    }

    /// Watch what the VM prints for `snapshot_on=`'s text (set once, at boot).
    pub fn watch(&self, w: Arc<ConsoleWatch>) {
        self.watch.call_once(|| w);
    }

    /// The last bytes the VM printed, oldest first.
    pub fn tail(&self) -> Vec<u8> {
        self.tail.lock().contents()
    }

    /// Whether the VM printed Linux's panic line since the last call.
    pub fn take_panic_seen(&self) -> bool {
        self.panic_seen.swap(false, Ordering::AcqRel)
    }

    /// Whether the person types to this VM: then its output is shown as it comes, else in whole
    /// lines ([`Output`]). Turned on, what it left unfinished (a prompt) shows at once.
    pub fn set_live(&self, on: bool) {
        let mut s = self.state.lock();
        let rest = s.1.set_live(on);
        self.show(&rest);
    }

    /// Show `bytes` of its output as they come (under the device's lock: in order).
    fn show(&self, bytes: &[u8]) {
        if !bytes.is_empty() {
            // The device's address: unique, and never 0.
            crate::logging::write_partial(self.owner(), self.prefix.as_bytes(), bytes);
        }
    }

    /// Print what one byte of output gives ([`Output::put`]).
    fn print(&self, p: Put) {
        self.show(&p.live);
        if let Some(line) = p.line {
            crate::println!("{}", prefixed(&self.name, &line));
        }
        if p.whole.is_some_and(|w| is_panic_line(&w)) {
            self.panic_seen.store(true, Ordering::Release);
        }
    }

    /// A byte of console input for the VM; `false` if its receive FIFO was full.
    pub fn input(&self, vgic: Option<&VGic>, irqs: &[VcpuIrq], byte: u8) -> bool {
        self.input_with_errors(vgic, irqs, byte, 0)
    }

    /// A byte of console input that came with receive errors (`vpl011::RX_*`: a break).
    pub fn input_with_errors(&self, vgic: Option<&VGic>, irqs: &[VcpuIrq], byte: u8, errors: u8) -> bool {
        let mut s = self.state.lock();
        let taken = s.0.push_rx_with_errors(byte, errors);
        // Under the device's lock: see `drive`.
        drive(vgic, irqs, usize::MAX, s.0.irq_level());
        taken
    }

    /// The emulated device's state, for a snapshot (`vm::snapshot`).
    pub fn save(&self) -> Vpl011 {
        self.state.lock().0.clone()
    }

    /// Put back a snapshot's device state (the VM is paused) and drive its interrupt line to
    /// match it: console input that arrived between the virtual GIC's save or restore and the
    /// device's would otherwise leave the line and the FIFOs out of step. The console's line
    /// being collected is left as it is: what was printed is not unprinted.
    pub fn restore(&self, vgic: Option<&VGic>, irqs: &[VcpuIrq], v: &Vpl011) {
        let mut st = self.state.lock();
        st.0 = v.clone();
        drive(vgic, irqs, usize::MAX, st.0.irq_level());
    }

    /// The UART as a reset leaves it (a VM reset): FIFOs empty, every interrupt masked, nothing
    /// latched (what the person typed for the old run is not the new run's input), its line
    /// driven low. What is left of the old run's last line is printed first, so the new run's
    /// first line starts a line of its own.
    pub fn reset(&self, vgic: Option<&VGic>, irqs: &[VcpuIrq]) {
        let mut st = self.state.lock();
        self.end_line(&mut st.1);
        st.0 = Vpl011::new();
        drive(vgic, irqs, usize::MAX, st.0.irq_level());
    }

    /// Print what is left of the VM's last line (it ended without a newline).
    pub fn flush(&self) {
        self.end_line(&mut self.state.lock().1);
    }

    /// What is left of the VM's last line, collected in `out`, printed; a line shown live (a
    /// prompt) ended too.
    fn end_line(&self, out: &mut Output) {
        if let Some(line) = out.flush() {
            crate::println!("{}", prefixed(&self.name, &line));
        }
        crate::logging::end_partial(self.owner());
    }

    /// This UART's owner number on el2visor's console (`logging::write_partial`): its address.
    fn owner(&self) -> usize {
        self as *const Self as usize
    }
}

/// Drive the VM's UART interrupt line to `level`. Called with the device's state locked, so that
/// the levels reach the virtual GIC in the order the device took them: one computed by a guest
/// access and driven after console input had raised the line (on another pCPU) would lower it
/// again and lose that input's interrupt. Lock order: the device, then the distributor.
fn drive(vgic: Option<&VGic>, irqs: &[VcpuIrq], writer: usize, level: bool) {
    if let Some(vg) = vgic {
        vg.set_line(irqs, writer, GUEST_INTID, level);
    }
}

fn err(e: crate::vm::vpl011::AccessError) -> MmioError {
    MmioError(alloc::format!("{e}"))
}

impl MmioDevice for Arc<VUart> {
    fn read(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8) -> Result<u64, MmioError> {
        let mut s = self.state.lock();
        let v = s.0.read(offset, size).map_err(err)?;
        drive(ctx.vgic, ctx.irqs, ctx.vcpu, s.0.irq_level());
        Ok(u64::from(v))
    }

    fn write(&self, ctx: &MmioCtx<'_>, offset: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let mut s = self.state.lock();
        if let Some(b) = s.0.write(offset, size, value as u32).map_err(err)? {
            self.tail.lock().push(b);
            if let Some(w) = self.watch.get() {
                w.feed(b);
            }
            let p = s.1.put(b);
            self.print(p);
        }
        drive(ctx.vgic, ctx.irqs, ctx.vcpu, s.0.irq_level());
        Ok(())
    }
}
