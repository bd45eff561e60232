//! The pure parts of the probe guest: the el2visor guest ABI, DT discovery and the stage-1 table
//! builder. No register access here, so `cargo test --lib --target x86_64-unknown-linux-gnu`
//! checks them on the host; the bare-metal binary (`main.rs`) drives them.

#![cfg_attr(not(test), no_std)]

pub mod abi;
pub mod dt;
pub mod fwcfg;
pub mod hostile;
pub mod msg;
pub mod pagetable;
pub mod rng;
pub mod tvm;
