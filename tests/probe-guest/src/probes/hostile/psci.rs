//! `hostile_psci`: PSCI calls naming CPUs outside the VM, through HVC (the DT's conduit) and a
//! trapped SMC (CPUs outside the VM: any MPIDR its DT's `/cpus` does not list): CPU_ON and
//! AFFINITY_INFO (both conventions) must answer INVALID_PARAMETERS, the
//! optional calls that take a target (MIGRATE, NODE_HW_STATE, the statistics) INVALID_PARAMETERS
//! or NOT_SUPPORTED, and none may start anything: a CPU started at the entry given (this image's
//! start) would print `PROBE START` again. CPU_ON of itself answers ALREADY_ON and
//! AFFINITY_INFO of itself ON, before and after, so the calls are seen at all.

use super::smc;
use crate::hvc;
use probe_guest::hostile::psci::*;
use probe_guest::msg;
use probe_guest::msg::Msg;

extern "C" {
    static _start: u8;
}

#[derive(Clone, Copy)]
enum Conduit {
    Hvc,
    Smc,
}

fn call(c: Conduit, fid: u64, a1: u64, a2: u64, a3: u64) -> Result<i64, Msg> {
    match c {
        Conduit::Hvc => {
            // SAFETY: the C-ABI HVC stub of entry.S; an SMCCC callee preserves what the ABI asks.
            Ok(unsafe { hvc_call(fid, a1, a2, a3) } as i64)
        }
        Conduit::Smc => smc(fid, a1, a2, a3)
            .map(|r| r as i64)
            .map_err(|esr| msg!("SMC {fid:#x} took an exception (ESR_EL1 {esr:#x})")),
    }
}

extern "C" {
    #[link_name = "probe_hvc"]
    fn hvc_call(x0: u64, x1: u64, x2: u64, x3: u64) -> u64;
}

fn name(c: Conduit) -> &'static str {
    match c {
        Conduit::Hvc => "HVC",
        Conduit::Smc => "SMC",
    }
}

/// CPU_ON and AFFINITY_INFO of the caller itself: the calls are answered at all.
fn controls(c: Conduit, own: u64, entry: u64) -> Result<(), Msg> {
    let r = call(c, CPU_ON_64, own, entry, 0)?;
    if r != ALREADY_ON {
        return Err(msg!(
            "{} CPU_ON of itself ({own:#x}) returned {r}, not ALREADY_ON (-4)",
            name(c)
        ));
    }
    let r = call(c, AFFINITY_INFO_64, own, 0, 0)?;
    if r != SUCCESS {
        return Err(msg!(
            "{} AFFINITY_INFO of itself ({own:#x}) returned {r}, not ON (0)",
            name(c)
        ));
    }
    Ok(())
}

pub fn run(fdt: &fdt::Fdt<'_>) -> Result<(), Msg> {
    let mut mine = [u64::MAX; 16];
    for (slot, cpu) in mine.iter_mut().zip(fdt.cpus()) {
        *slot = cpu.ids().first() as u64 & 0xff_00ff_ffff;
    }
    let version = hvc::hvc(VERSION, 0);
    if version >> 16 == 0 && version & 0xffff < 2 {
        return Err(msg!("PSCI_VERSION returned {version:#x}"));
    }
    let own = {
        let m: u64;
        // SAFETY: reading MPIDR_EL1 has no side effect.
        unsafe { core::arch::asm!("mrs {}, mpidr_el1", out(reg) m, options(nomem, nostack)) };
        m & 0xff_00ff_ffff
    };
    // Only the address of the linker symbol is taken.
    let entry = core::ptr::addr_of!(_start) as u64;
    // Other Aff0 values of its cluster (the other VM's vCPUs and the machine's CPUs have such
    // MPIDRs), other clusters, and affinity bits nothing has.
    let mut targets = [0u64; 24];
    let mut n = 0;
    for t in (0..16u64).map(|a0| own & !0xff | a0).chain([
        own ^ 0x100,
        own ^ 0x1_0000,
        own ^ 0x1_0000_0000,
        0xff_00ff_ffff,
        own | 0xff,
    ]) {
        if t != own && !mine.contains(&t) && n < targets.len() {
            targets[n] = t;
            n += 1;
        }
    }
    let mut calls = 0;
    for c in [Conduit::Hvc, Conduit::Smc] {
        controls(c, own, entry)?;
        for &t in &targets[..n] {
            let tries: [(u64, u64, u64, u64); 8] = [
                (CPU_ON_64, t, entry, 0x5a5a),
                (CPU_ON_32, t & 0xffff_ffff, entry, 0x5a5a),
                (AFFINITY_INFO_64, t, 0, 0),
                (AFFINITY_INFO_32, t & 0xffff_ffff, 0, 0),
                (MIGRATE_64, t, 0, 0),
                (NODE_HW_STATE_64, t, 0, 0),
                (STAT_RESIDENCY_64, t, 0, 0),
                (STAT_COUNT_64, t, 0, 0),
            ];
            for (fid, a1, a2, a3) in tries {
                // A 32-bit call cannot name Aff3: those targets are their 64-bit twins' business.
                if matches!(fid, CPU_ON_32 | AFFINITY_INFO_32) && t >> 32 != 0 {
                    continue;
                }
                let r = call(c, fid, a1, a2, a3)?;
                calls += 1;
                if !refuses_foreign_cpu(fid, r) {
                    return Err(msg!(
                        "{} {fid:#x} naming MPIDR {a1:#x} (not this VM's) returned {r}",
                        name(c)
                    ));
                }
            }
        }
        controls(c, own, entry)?;
    }
    println!("probe: {calls} PSCI calls naming other CPUs refused");
    Ok(())
}
