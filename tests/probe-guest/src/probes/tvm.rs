//! `tvm_<reg>`: a write to each of the eleven registers HCR_EL2.TVM traps takes effect: write a
//! value that differs from the current one and is safe to run with, read it back, compare with
//! what the architecture and el2visor allow (`probe_guest::tvm`), restore.

use super::Context;
use crate::report::outcome;
use crate::sysreg;
use probe_guest::pagetable::PROBE_MAIR;
use probe_guest::tvm::{Mismatch, TvmReg};

fn probe(reg: TvmReg, ctx: &Context) -> Result<(), Mismatch> {
    let old = sysreg::read_tvm(reg);
    let value = reg.test_value(old);
    // SAFETY: `test_value` only changes fields the probe does not depend on (see its doc).
    unsafe { sysreg::write_tvm(reg, value) };
    let read = sysreg::read_tvm(reg);
    // MAIR is restored to the probe's own value (its read-back may be el2visor's override).
    let restore = if reg == TvmReg::Mair { PROBE_MAIR } else { old };
    // SAFETY: the value the probe was running with.
    unsafe { sysreg::write_tvm(reg, restore) };
    if reg == TvmReg::Ttbr0 {
        sysreg::tlbi_vmalle1();
    }
    reg.check(value, read, ctx.mode_if_known())
}

/// Run the eleven `tvm_*` probes.
pub fn run_all(ctx: &Context) {
    for reg in TvmReg::ALL {
        outcome(reg.probe_name(), probe(reg, ctx));
    }
}
