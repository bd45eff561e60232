//! el2visor's binary: the boot sequence (see `el2visor::boot`).
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("el2visor runs bare-metal: build it with `make image` and boot target/el2visor.img");
}
