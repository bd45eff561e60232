//! A VM's life: started on its pCPUs, reset from its pristine images (PSCI SYSTEM_RESET), ended
//! (SYSTEM_OFF, or a fault it cannot survive), and the machine powered off when it was the last.
//! The run loop calls these; nothing below calls up into them.

use core::sync::atomic::{AtomicUsize, Ordering};

use crate::arch::{cache, cpu, psci, sysreg};
use crate::logging;
use crate::percpu::stats::Totals;
use crate::vm::instance::{Vm, OFF, RESETTING, RUNNING};
use crate::vm::crash::Restart;
use crate::vm::power::VcpuPower;

/// Give each vCPU of `vm` its pCPU. vCPU 0's start request was set when the VM was built.
pub fn start(vm: &'static Vm) {
    for (i, v) in vm.vcpus.iter().enumerate() {
        crate::percpu::get(v.pcpu).assign(vm.slot, i);
    }
}

/// How long a reset waits for the other vCPUs to leave their guest before it gives up. Each is
/// kicked every 10 ms and leaves at its next exit, which the kick itself forces; only a pCPU
/// stuck at EL2 would not, and then the VM cannot be reset safely.
const RESET_STOP_TIMEOUT_S: u64 = 10;

/// PSCI SYSTEM_RESET from vCPU `me` (or `on_crash=restart`): unless the VM has crashed more
/// times in a row than `crash_restarts=` allows (`vm::crash`: then it ends), stop every other vCPU, put the virtual GIC back to its reset
/// state, reload the pristine images and ask vCPU 0 to start at the kernel entry again. Returns
/// when the calling vCPU must stop (the run loop stops it); ends the VM when it cannot be reset.
/// `false`: nothing done, the VM was not running (another vCPU is pausing, resetting or ending
/// it).
///
/// The VM becomes RESETTING under its power lock, the lock under which a CPU_ON marks a vCPU
/// pending with its start request and a pCPU takes a start request and marks its vCPU on
/// (`trap::calls::call`, `vcpu::run`). So from then on no call changes a power state and no
/// vCPU starts: the reset waits only for the vCPUs that are on, and a vCPU left pending by a
/// CPU_ON just before is simply not started (its request is dropped with the others).
pub fn reset_vm(vm: &Vm, me: usize) -> bool {
    {
        let _power = vm.power.lock();
        if vm.state.compare_exchange(RUNNING, RESETTING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            // Someone else is pausing, resetting or powering off: the caller's state check
            // stops this vCPU the way that asks (a pause saves its state).
            return false;
        }
    }
    let n = vm.vcpus.len();
    let freq = sysreg::cntfrq_el0().max(1);
    let t0 = sysreg::cntpct_el0();
    // The restart limit: a VM that keeps crashing is halted rather than restarted for ever.
    match vm.crash.on_reset(t0, freq) {
        Restart::Halt { streak } => {
            logging::print_line(format_args!("el2visor: VM {} crashed {streak} times in a row; halted", vm.name));
            end_vm(vm);
            return true;
        }
        Restart::Go { streak: 0 } => {}
        Restart::Go { streak } => logging::print_line(format_args!(
            "el2visor: VM {} crashed ({streak} in a row, crash_restarts={}): restarting it",
            vm.name,
            crate::vm::crash::restart_limit()
        )),
    }
    let mut last_kick = None;
    loop {
        if vm.state() == OFF {
            // Another vCPU ended the VM meanwhile (a fatal guest fault, the abort-loop detector, a
            // pvpanic with on_crash=halt): no reset. Back to the caller, which stops this vCPU
            // and idles the pCPU as for any ended VM; parking it here (interrupts masked) would
            // also take away console input, which pCPU 0 serves for every VM.
            return true;
        }
        let running: alloc::vec::Vec<usize> = {
            let p = vm.power.lock();
            (0..n).filter(|&i| i != me && p.states[i] == VcpuPower::On).collect()
        };
        if running.is_empty() {
            break;
        }
        let now = sysreg::cntpct_el0();
        // Kick every 10 ms: a vCPU in the middle of a trap when the first kick came gets another.
        if last_kick.is_none_or(|t| now - t > freq / 100) {
            for &i in &running {
                vm.kick(i);
            }
            last_kick = Some(now);
        }
        if now - t0 > RESET_STOP_TIMEOUT_S * freq {
            log::error!(
                "VM {}: reset: vCPUs {running:?} did not stop within {RESET_STOP_TIMEOUT_S} s; the VM cannot be reset safely and ends",
                vm.name
            );
            end_vm(vm);
            return true;
        }
        core::hint::spin_loop();
    }
    if let Some(vg) = &vm.vgic {
        vg.reset_local(&vm.irqs[me]);
        vg.reset(&vm.irqs);
    }
    // Its UART out of reset too: FIFOs empty, interrupts masked, the old run's last line out.
    if let Some(u) = &vm.vuart {
        u.reset(vm.vgic.as_ref(), &vm.irqs);
    }
    if vm.clean {
        // Without FWB, lines the old guest left dirty anywhere in its RAM could later be evicted
        // over what the new one writes with its MMU and caches off.
        for r in &vm.ram {
            cache::clean_inval_range(r.pa.raw(), r.size as usize);
        }
    }
    if let Err(e) = vm.reload() {
        log::error!("VM {}: reset: {e}", vm.name);
        end_vm(vm);
        return true;
    }
    // The new run starts with no panic reported and not held for a debugger.
    vm.crash.events.store(0, Ordering::Relaxed);
    vm.crash.hold.release();
    {
        let mut p = vm.power.lock();
        for i in 0..n {
            p.states[i] = VcpuPower::Off;
            *vm.vcpus[i].start.lock() = None;
        }
        // Only a VM still RESETTING runs again: one ended meanwhile (its STATS line may be out
        // already, and the machine may be powering off) stays ended, every vCPU off.
        if vm.state.compare_exchange(RESETTING, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_err() {
            drop(p);
            log::info!("VM {}: reset: the VM ended while it was being reset; it stays off", vm.name);
            return true;
        }
        p.states[0] = VcpuPower::OnPending;
        *vm.vcpus[0].start.lock() = Some(crate::vm::instance::VcpuStart::boot(vm.entry.raw(), vm.dtb.raw()));
    }
    log::info!("VM {}: reset: images reloaded, vCPU 0 restarts at {:#x}", vm.name, vm.entry.raw());
    if me != 0 {
        vm.kick(0);
    }
    true
}

/// This vCPU stops because its VM is resetting: its list registers and banked interrupts back
/// to their reset state, its power state off. The run loop then stops it.
pub fn leave_for_reset(vm: &Vm, me: usize) {
    if let Some(vg) = &vm.vgic {
        vg.reset_local(&vm.irqs[me]);
    }
    vm.power.lock().states[me] = VcpuPower::Off;
}

/// How many VMs have printed their `STATS vm=` line. The VM whose line makes it the number of
/// VMs prints the machine-wide line and powers off: one CPU, and only after every VM's line
/// (a VM is OFF from the start of [`end_vm`], before its line, so the states cannot say it).
static REPORTED: AtomicUsize = AtomicUsize::new(0);

/// The exits of `vm`'s vCPUs: each runs on its own pCPU, so the VM's are its pCPUs' counters.
fn vm_totals(vm: &Vm) -> Totals {
    let mut t = Totals::default();
    for v in &vm.vcpus {
        t.add(&crate::percpu::get(v.pcpu).totals());
    }
    t
}

/// The VM is over (SYSTEM_OFF, or a fault it cannot survive): its other vCPUs leave their guest
/// and park, and `STATS vm=<name> …` says what it did. When it was the last VM, the machine-wide
/// `STATS exits=…` line follows and the machine powers off (PSCI SYSTEM_OFF) where the platform
/// can, else `el2visor: halted` and park. Otherwise this returns, and the caller parks its CPU:
/// the VM's CPUs idle from now on.
pub fn end_vm(vm: &Vm) {
    if vm.state.swap(OFF, Ordering::AcqRel) == OFF {
        return;
    }
    let me = vm.vcpu_on(cpu::current());
    for v in (0..vm.vcpus.len()).filter(|v| Some(*v) != me) {
        vm.kick(v);
    }
    cpu::send_event();
    if let Some(u) = &vm.vuart {
        u.flush();
    }
    // DMA faults the SMMU recorded for it (and any other VM) go to the log before its STATS.
    crate::vm::smmu::poll();
    if let Some(l) = &vm.lazy {
        // Each span copied on a first write was a dabt or iabt exit (an iabt when the write was
        // the guest's own page-table walk, updating an access flag, for a fetch).
        let (fault, copier) = l.counts();
        log::info!("VM {}: pristine copies: {fault} spans copied on the guest's first write (an abort exit each), {copier} in the background", vm.name);
    }
    let line = alloc::format!("{}", vm_totals(vm));
    crate::println!("STATS vm={} {}", vm.name, line.strip_prefix("STATS ").unwrap_or(&line));
    if REPORTED.fetch_add(1, Ordering::AcqRel) + 1 == crate::vm::table::all().count() {
        crate::println!("{}", crate::percpu::totals());
        power_off()
    }
}

/// Power the machine off through PSCI where the platform has it; otherwise say so and park.
pub fn power_off() -> ! {
    logging::flush();
    if let Some(Some(c)) = psci::HOST_CONDUIT.get() {
        psci::system_off(*c);
    }
    crate::println!("el2visor: halted");
    logging::flush();
    cpu::park()
}
