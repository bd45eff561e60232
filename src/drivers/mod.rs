//! Device drivers el2visor itself uses: the PL011 console.

#[cfg(target_os = "none")]
pub mod pl011;
