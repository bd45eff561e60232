//! AArch64 register access for el2visor running at EL2: the only place (with `drivers`) where
//! system registers, barriers and cache maintenance are touched. Each wrapper is thin and each
//! `unsafe` block says why it is sound.

pub mod boot;
pub mod cache;
pub mod cpu;
pub mod cpu_features;
pub mod debugreg;
pub mod el1;
pub mod exception;
pub mod feature_regs;
pub mod frame;
pub mod hvc_fast;
pub mod psci;
pub mod serror;
pub mod sve_regs;
pub mod sysreg;
pub mod sysreg_ext;
pub mod sysreg_gic;
pub mod translate;
pub mod vcpu_state;
