//! The ITS (Interrupt Translation Service) as a VM sees it, as pure state machines tested on the
//! host. See docs/its.md for the design.
//!
//! - [`cmd`]: the 32-byte ITS commands, decoded from a guest's queue and encoded for el2visor's
//!   own queue on the physical ITS, and the command errors.
//! - [`model`]: a VM's device / event / collection tables; each command is validated against
//!   the VM's [`model::ItsPolicy`] (DeviceIDs it owns, its vCPUs, its LPIs) and turned into
//!   [`model::Effect`]s on the physical ITS and the VM's LPI delivery.
//! - [`frame`]: the guest's ITS control frame (GITS_* registers) and its command queue, read
//!   through a bounds-checked guest-memory reader.
//! - [`lpi`]: GICR_PROPBASER / PENDBASER fields, LPI configuration bytes, a VM's pending LPIs.
//! - [`pool`]: the host's physical LPIs.

#![forbid(unsafe_code)]

pub mod cmd;
pub mod frame;
pub mod lpi;
pub mod model;
pub mod pool;

#[cfg(test)]
mod tests_cmd;
#[cfg(test)]
mod tests_frame;
#[cfg(test)]
mod tests_model;
