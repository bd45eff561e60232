//! Bringing up the other CPUs at EL2: PSCI CPU_ON through the host DT's conduit (QEMU virt,
//! boards with TF-A), or the spin table (Raspberry Pi firmware). Each CPU reports in; one that
//! does not within a second is named on the console and left out.

use core::sync::atomic::Ordering;

use alloc::vec::Vec;

use crate::arch::{boot as arch_boot, cache, cpu, psci, sysreg};
use crate::percpu::{self, MAX_CPUS};
use crate::platform::{EnableMethod, Platform};

/// Record every CPU's EL2 stack bounds in its per-CPU record, and the boot CPU as online.
pub fn init_stacks() {
    for i in 0..MAX_CPUS {
        let c = percpu::get(i);
        let slot = arch_boot::stack_base(i);
        c.stack_lo.store(slot + arch_boot::STACK_GUARD as u64, Ordering::Relaxed);
        c.stack_hi.store(slot + arch_boot::STACK_SIZE as u64, Ordering::Relaxed);
    }
    // The boot CPU is logical CPU 0 (not read from TPIDR_EL2: this runs before the EL check,
    // and at EL1 that register does not exist).
    percpu::get(0).online.store(true, Ordering::Release);
}

/// How many CPUs are up at EL2 (the primary included).
pub fn online() -> usize {
    percpu::online().count()
}

/// Whether logical CPU `i` came up.
pub fn is_online(i: usize) -> bool {
    i < MAX_CPUS && percpu::get(i).online.load(Ordering::Acquire)
}

/// Called by each secondary once it runs Rust with its MMU on.
pub fn report_in(index: usize) {
    percpu::get(index).online.store(true, Ordering::Release);
}

/// The firmware conduit as the arch layer names it.
pub fn arch_conduit(c: crate::platform::Conduit) -> psci::Conduit {
    match c {
        crate::platform::Conduit::Smc => psci::Conduit::Smc,
        crate::platform::Conduit::Hvc => psci::Conduit::Hvc,
    }
}

fn conduit(p: &Platform) -> Option<psci::Conduit> {
    p.psci.as_ref().map(|x| arch_conduit(x.conduit))
}

/// The logical CPU order: the boot CPU first, then the others in DT order, at most MAX_CPUS.
pub fn cpu_order(p: &Platform) -> Vec<u64> {
    let me = sysreg::mpidr_el1() & 0xff_00ff_ffff;
    let mut order = alloc::vec![me];
    order.extend(p.enabled_cpus().map(|c| c.mpidr).filter(|m| *m != me));
    order.truncate(MAX_CPUS);
    order
}

/// Start every other enabled CPU and wait for each to report in.
pub fn start_secondaries(p: &Platform, order: &[u64], mmu: [u64; 4]) {
    arch_boot::publish_for_secondaries(order, Some(mmu));
    let entry = arch_boot::secondary_entry_pa();
    let freq = sysreg::cntfrq_el0().max(1);
    for (index, &mpidr) in order.iter().enumerate().skip(1) {
        let Some(cpu_desc) = p.enabled_cpus().find(|c| c.mpidr == mpidr) else { continue };
        let started = match &cpu_desc.enable {
            EnableMethod::Psci => match conduit(p) {
                Some(c) => {
                    let r = psci::cpu_on(c, mpidr, entry, index as u64);
                    if r != 0 {
                        log::warn!("cpu {index} (MPIDR {mpidr:#x}): PSCI CPU_ON failed with {r}");
                    }
                    r == 0
                }
                None => {
                    log::warn!("cpu {index} (MPIDR {mpidr:#x}): enable-method psci but no /psci node");
                    false
                }
            },
            EnableMethod::SpinTable { release_addr } => {
                let addr = release_addr.raw();
                // SAFETY: the DT names this word as the CPU's release address; it lies in RAM
                // the firmware reserved for it, identity mapped RW.
                unsafe { core::ptr::write_volatile(addr as *mut u64, entry) };
                cache::clean_inval_range(addr, 8);
                cpu::send_event();
                true
            }
            other => {
                log::warn!("cpu {index} (MPIDR {mpidr:#x}): cannot start it: enable-method {other:?}");
                false
            }
        };
        if !started {
            continue;
        }
        let t0 = sysreg::cntpct_el0();
        while !is_online(index) && sysreg::cntpct_el0() - t0 < freq {
            core::hint::spin_loop();
        }
        if !is_online(index) {
            log::warn!("cpu {index} (MPIDR {mpidr:#x}) did not report in within a second; left out");
        }
    }
}

/// How many CPUs from CPU 0 up are online without a gap: vCPU i runs on pCPU i, so a VM can have
/// only these.
pub fn online_prefix() -> usize {
    (0..MAX_CPUS).take_while(|&i| is_online(i)).count()
}
