//! Snapshots and restores from the vCPUs' side (docs/snapshots.md): every vCPU of the VM stops
//! at an instruction boundary with its state saved, the VM's RAM and virtual GIC are copied or
//! restored (`vm::snapshot`), and the vCPUs that were on resume from the saved states.
//!
//! The VM becomes PAUSED under its power lock, as a reset makes it RESETTING, so no call changes
//! a power state meanwhile. The vCPU that asked kicks the others (every 10 ms, as a reset does);
//! each leaves its guest at its next exit (`leave_for_pause`, from the run loop): its state goes
//! to the snapshot's `live` slot and it stops. Then the operation runs on the asking pCPU, and
//! every vCPU with a state in `live` (the one that asked too) is made pending: its pCPU takes
//! that state like a start request and enters the guest with it (`vcpu::run`).

use core::sync::atomic::Ordering;

use crate::arch::exception::TrapFrame;
use crate::arch::sysreg;
use crate::cmdline::RestoreKind;
use crate::vcpu::lifecycle;
use crate::vm::instance::{Vm, OFF, PAUSED, RUNNING};
use crate::vm::power::VcpuPower;
use crate::vm::snapshot::{self as snap, plan};

/// What the run loop does after a snapshot operation.
pub enum After {
    /// Back into the guest with the frame as it is (nothing was done, or an error is in x0).
    Resume,
    /// Stop this vCPU: it resumes from its saved state like a start request.
    Stop,
    /// The VM was powered off (`restores=` used up).
    Off,
    /// Not ours: reboot as a SYSTEM_RESET does.
    Reboot,
}

/// How long the pause waits for the other vCPUs to leave their guest.
const STOP_TIMEOUT_S: u64 = 10;

/// Make the VM PAUSED and wait until every other vCPU has left its guest and saved its state.
/// `false` when the VM was not running (someone else is pausing, resetting or ending it: the
/// run loop's state check then stops this vCPU too) or a vCPU did not stop (the VM ends).
fn pause(vm: &Vm, me: usize) -> bool {
    {
        let _power = vm.power.lock();
        if vm.state.compare_exchange(RUNNING, PAUSED, Ordering::AcqRel, Ordering::Acquire).is_err() {
            return false;
        }
    }
    let freq = sysreg::cntfrq_el0().max(1);
    let t0 = sysreg::cntpct_el0();
    let mut last_kick: Option<u64> = None;
    loop {
        if vm.state() == OFF {
            // Another vCPU ended the VM meanwhile: no snapshot. The run loop's state check stops
            // this vCPU and idles its pCPU (not parked: pCPU 0 serves console input).
            return false;
        }
        let running: alloc::vec::Vec<usize> = {
            let p = vm.power.lock();
            (0..vm.vcpus.len()).filter(|&i| i != me && p.states[i] == VcpuPower::On).collect()
        };
        if running.is_empty() {
            return true;
        }
        let now = sysreg::cntpct_el0();
        if last_kick.is_none_or(|t| now - t > freq / 100) {
            for &i in &running {
                vm.kick(i);
            }
            last_kick = Some(now);
        }
        if now - t0 > STOP_TIMEOUT_S * freq {
            log::error!("VM {}: snapshot: vCPUs {running:?} did not stop within {STOP_TIMEOUT_S} s; the VM ends", vm.name);
            lifecycle::end_vm(vm);
            return false;
        }
        core::hint::spin_loop();
    }
}

/// This vCPU leaves its guest because the VM is paused: its state (with `frame`) goes to the
/// snapshot's `live` slot, its power state off. The run loop then stops it.
pub fn leave_for_pause(vm: &Vm, me: usize, frame: &TrapFrame) {
    log::debug!("VM {}: vCPU {me} stops for a snapshot operation at {:#x}", vm.name, frame.elr);
    if let Some(s) = &vm.snapshot {
        *s.live[me].lock() = Some(snap::save_vcpu(vm, me, frame));
    }
    // Its timer would otherwise keep firing at this pCPU while it waits (a level interrupt
    // el2visor acknowledges and drops, for ever): the saved state restarts it.
    crate::arch::vcpu_state::stop_timers();
    vm.power.lock().states[me] = VcpuPower::Off;
}

/// Every vCPU with a state in `live` is made pending, and so is one with a start request (a
/// CPU_ON the guest was told succeeded, made before the pause, or in the restored snapshot); the
/// others stay off, and the VM runs.
fn resume_all(vm: &Vm, me: usize) {
    let Some(s) = &vm.snapshot else { return };
    {
        let mut p = vm.power.lock();
        // Only a VM still PAUSED runs again: one ended meanwhile stays ended, every vCPU off.
        let resumes = vm.state.compare_exchange(PAUSED, RUNNING, Ordering::AcqRel, Ordering::Acquire).is_ok();
        for v in 0..vm.vcpus.len() {
            let mut start = vm.vcpus[v].start.lock();
            let live = resumes && s.live[v].lock().is_some();
            let starting = resumes && !live && start.is_some();
            p.states[v] = if live || starting { VcpuPower::OnPending } else { VcpuPower::Off };
            if !starting {
                *start = None;
            }
        }
        if !resumes {
            drop(p);
            log::info!("VM {}: snapshot: the VM ended while it was paused; it stays off", vm.name);
            return;
        }
    }
    for v in (0..vm.vcpus.len()).filter(|&v| v != me) {
        log::debug!("VM {}: vCPU {v} may resume (power {:?})", vm.name, vm.power.lock().states[v]);
        vm.kick(v);
    }
}

/// Take a snapshot at this vCPU's instruction boundary (`frame`): `Stop` when done (or failed:
/// the VM goes on as it was, and the caller's x0 says −1 for a vendor call).
pub fn take(vm: &Vm, me: usize, frame: &mut TrapFrame, log_dirty: bool, call: bool) -> After {
    if vm.snapshot.is_none() {
        return After::Resume;
    }
    if !pause(vm, me) {
        replay(frame, call);
        return After::Resume;
    }
    if call {
        // The call returns 0 now, and 1 after a restore (`vm::snapshot::restore`).
        frame.x[0] = 0;
    }
    leave_for_pause(vm, me, frame);
    if let Err(e) = snap::take(vm, call.then_some(me), log_dirty) {
        log::warn!("snapshot: VM {}: not taken: {e}", vm.name);
        call_failed(vm, me, call);
    }
    resume_all(vm, me);
    After::Stop
}

/// A guest's call (`call`) for a snapshot operation failed after the pause: it returns
/// NOT_SUPPORTED (−1) in x0 of the state vCPU `me` resumes from.
fn call_failed(vm: &Vm, me: usize, call: bool) {
    if let (true, Some(s)) = (call, &vm.snapshot) {
        if let Some(st) = s.live[me].lock().as_mut() {
            st.frame.x[0] = crate::trap::abi::smccc::NOT_SUPPORTED as u64;
        }
    }
}

/// `pause` (or a reset) lost a race with another vCPU's snapshot, reset or power-off: a guest's call (`call`:
/// its HVC or SMC, which `frame` has stepped over) is made again once that is done, from the
/// state a pause saves or at once if it is over, not answered as if it had been carried out.
pub fn replay(frame: &mut TrapFrame, call: bool) {
    if call {
        frame.elr -= 4;
    }
}

/// Restore the snapshot the `kind` way (`call`: a vendor call or a SYSTEM_RESET, else el2visor's
/// console): `Stop` when done; on failure the VM goes on as it was.
pub fn restore(vm: &Vm, me: usize, frame: &mut TrapFrame, kind: RestoreKind, call: bool) -> After {
    if vm.snapshot.is_none() {
        return After::Resume;
    }
    if !pause(vm, me) {
        replay(frame, call);
        return After::Resume;
    }
    leave_for_pause(vm, me, frame);
    match snap::restore(vm, kind) {
        // Reported at the first guest entry (`report_restore`), once that is timed.
        Ok(r) => *vm.snapshot.as_ref().map(|s| &s.report).expect("checked above").lock() = Some(r),
        Err(e) => {
            log::warn!("snapshot: VM {}: not restored: {e}", vm.name);
            call_failed(vm, me, call);
        }
    }
    resume_all(vm, me);
    After::Stop
}

/// What el2visor's console asks of a VM (`vcpu::console`).
#[derive(Clone, Copy, Debug)]
pub enum Ask {
    Take,
    Restore(RestoreKind),
}

/// Ask `vm` for a snapshot operation from outside it (el2visor's console): one of its vCPUs
/// that is on is kicked, and the first of them to leave its guest does it there, at its
/// instruction boundary ([`on_request`]). `Err`: why not, for one line.
pub fn ask(vm: &Vm, op: Ask) -> Result<(), &'static str> {
    let s = vm.snapshot.as_ref().ok_or("it has no snapshots (snapshot_mem= is not set, or the boot log says why)")?;
    if matches!(op, Ask::Restore(_)) && !s.is_taken() {
        return Err("it has no snapshot taken yet");
    }
    let v = {
        let p = vm.power.lock();
        if vm.state() != RUNNING {
            return Err("it is not running");
        }
        (0..vm.vcpus.len()).find(|&i| p.states[i] == VcpuPower::On).ok_or("none of its vCPUs is on")?
    };
    let code = match op {
        Ask::Take => snap::REQUEST_TAKE,
        Ask::Restore(k) => snap::REQUEST_RESTORE + k.code() as u8,
    };
    s.request.store(code, Ordering::Release);
    vm.kick(v);
    Ok(())
}

/// After an exit: what el2visor's console asked of this VM ([`ask`]), done now.
pub fn on_request(vm: &Vm, me: usize, frame: &mut TrapFrame) -> Option<After> {
    let s = vm.snapshot.as_ref()?;
    // While another vCPU pauses or resets the VM the request waits for a later exit (it is not
    // taken now only to be dropped by a `pause` that cannot succeed).
    if s.request.load(Ordering::Relaxed) == 0 || vm.state() != RUNNING {
        return None;
    }
    let after = match s.request.swap(0, Ordering::AcqRel) {
        0 => return None,
        snap::REQUEST_TAKE => {
            log::info!("VM {}: snapshot asked for on el2visor's console", vm.name);
            take(vm, me, frame, s.options.kind == RestoreKind::DirtyOnly, false)
        }
        c => {
            let kind = RestoreKind::from_code(u64::from(c - snap::REQUEST_RESTORE))?;
            log::info!("VM {}: {} restore asked for on el2visor's console", vm.name, kind.name());
            restore(vm, me, frame, kind, false)
        }
    };
    if matches!(after, After::Resume) {
        // `pause` lost a race with another vCPU's snapshot, reset or power-off: say so rather
        // than leave the console's "asked for" line without an outcome.
        crate::println!("el2visor: VM {}: busy (paused, resetting or ending): the console's request was not done", vm.name);
    }
    Some(after)
}

/// PSCI SYSTEM_RESET (`call`) or a crash restart under `reset=snapshot`: restore the snapshot
/// (`restores=` times at most, then power the VM off); `Reboot` when the VM reboots as usual.
pub fn on_reset(vm: &Vm, me: usize, frame: &mut TrapFrame, call: bool) -> After {
    let Some(s) = &vm.snapshot else { return After::Reboot };
    let done = s.reset_restores.load(Ordering::Acquire);
    match plan::on_reset(s.options.reset_restores, s.is_taken(), done, s.options.restores) {
        plan::OnReset::Reboot => After::Reboot,
        plan::OnReset::PowerOff => {
            log::info!("VM {}: reset: restores={done} used up; powering the VM off", vm.name);
            lifecycle::end_vm(vm);
            After::Off
        }
        plan::OnReset::Restore(n) => {
            s.reset_restores.store(n, Ordering::Release);
            log::info!("VM {}: reset: restoring the snapshot ({n})", vm.name);
            restore(vm, me, frame, s.options.kind, call)
        }
    }
}

/// At the first guest entry after a restore (on the pCPU that enters): time it from the request
/// and print the restore's figures (`make bench` reads the `SNAPSHOT` line, docs/snapshots.md).
pub fn report_restore(vm: &Vm) {
    let Some(s) = &vm.snapshot else { return };
    if !s.first_entry_pending.swap(false, Ordering::AcqRel) {
        return;
    }
    let first = snap::ticks_us(sysreg::cntpct_el0() - s.request_t.load(Ordering::Relaxed));
    let Some(r) = s.report.lock().take() else { return };
    let us = snap::ticks_us(r.ticks);
    log::info!(
        "snapshot: VM {}: {} restore: {} pages copied, {} cache lines cleaned, {}.{:03} ms; first guest entry after {first} us",
        vm.name,
        r.kind.name(),
        r.pages,
        r.cmo_lines,
        us / 1000,
        us % 1000
    );
    let at = snap::ticks_us(s.request_t.load(Ordering::Relaxed));
    crate::println!(
        "SNAPSHOT restore kind={} pages={} cmo_lines={} us={} first_entry_us={first} at_us={at}",
        r.kind.name(),
        r.pages,
        r.cmo_lines,
        us
    );
}
