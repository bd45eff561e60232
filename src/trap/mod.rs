//! Traps from guests: the pure logic of everything a guest can make el2visor handle at EL2.
//!
//! - [`esr`]: ESR_EL2 split into exception class and ISS, and said in words;
//!   [`esr::hpfar_to_ipa`] for Stage-2 aborts.
//! - [`iss`]: the decoded ISS of aborts (with every fault status code), sysreg traps, HVC/SMC
//!   immediates and WFx.
//! - [`sysreg`]: system register encodings, their names, the TVM registers and the value
//!   el2visor writes for a guest's write to one.
//! - [`inject`]: the syndrome and the vector entry for an abort or UNDEF injected into a guest.
//! - [`psci`], [`smccc`], [`vendor`]: the PSCI 1.1 / SMCCC 1.1 / el2visor vendor call handler;
//!   [`call`] is their interface to the runtime; [`abi`] holds the guest-visible function IDs
//!   as plain constants.
//! - [`serror`]: what a guest's physical SError becomes (a virtual SError, or nothing).
//! - [`wfx`]: what a trapped WFI/WFIT makes the vCPU do (idle, until a WFIT's deadline at most).
//! - [`par`]: PAR_EL1 in words; [`callname`]: SMCCC call names for `trace=psci`.
//! - [`endian`]: whether a guest's emulated MMIO access is big-endian (SCTLR_EL1.EE/E0E, an
//!   AArch32 PSTATE.E) and the byte swap its value then takes to and from the device.
//!
//! Everything here is register-free and tested on the host; the runtime dispatcher that reads
//! the registers and turns these decisions into an [`dispatch::Exit`] for the run loop lives
//! beside them: `dispatch` (every guest exit), `calls` (HVC and trapped SMC), `dispatch_fast` (the lean path for the virtual GIC
//! distributor's accesses, decided by the pure `fastmmio`), `mmio` (emulated MMIO accesses), `inject_hw`
//! (delivering an abort or UNDEF), `tvm` (the TVM registers' slow path, SCTLR_EL1 with
//! HCR_EL2.DC), `firmware` (asking the host firmware about the SMCCC workarounds and forwarding
//! them), `report` (the guest fault report) and `crash` (a guest panic: its report and
//! `on_crash=`).

#![forbid(unsafe_code)]

pub mod abi;
pub mod call;
pub mod callname;
pub mod endian;
pub mod esr;
pub mod fastmmio;
pub mod inject;
pub mod iss;
pub mod par;
pub mod psci;
pub mod ratelimit;
pub mod serror;
pub mod smccc;
pub mod sysreg;
pub mod vendor;
pub mod wfx;

#[cfg(target_os = "none")]
pub mod calls;
#[cfg(target_os = "none")]
pub mod crash;
#[cfg(target_os = "none")]
pub mod dispatch;
#[cfg(target_os = "none")]
pub mod dispatch_fast;
#[cfg(target_os = "none")]
pub mod firmware;
#[cfg(target_os = "none")]
pub mod guest_log;
#[cfg(target_os = "none")]
pub mod inject_hw;
#[cfg(target_os = "none")]
pub mod mmio;
#[cfg(target_os = "none")]
pub mod report;
#[cfg(target_os = "none")]
pub mod s2fault;
#[cfg(target_os = "none")]
pub mod tvm;
