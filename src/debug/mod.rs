//! el2visor's GDB stub: the remote serial protocol on a UART no guest owns (`debug_uart=`).
//! See docs/debugging.md. The protocol and everything it decides are pure (`rsp`, `packet`,
//! `regs`, `walk`, `step`, `stub`); `target` is the machine side (stopping and resuming vCPUs,
//! the debug registers), `machine` the [`stub::Target`] over it (registers, guest memory through
//! `mem`), and `uart` the serial line.

pub mod packet;
pub mod regs;
pub mod rsp;
pub mod step;
pub mod stub;
pub mod walk;

#[cfg(target_os = "none")]
pub mod target;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod machine;
#[cfg(target_os = "none")]
pub mod mem;
#[cfg(target_os = "none")]
pub mod uart;
