//! el2visor's binary: the boot sequence, top to bottom. Everything it calls lives in the library.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("el2visor runs bare-metal: build it with `make image` and boot target/el2visor.img");
}

#[cfg(target_os = "none")]
mod bare {
    use el2visor::boot;

    /// Primary CPU, from boot/entry.S: `dtb` from x0, the exception level we started at, where
    /// the image runs, and whether el2visor has already moved itself there (1) or this is the
    /// loader's entry (0).
    #[no_mangle]
    extern "C" fn primary_main(dtb: usize, el: u64, _base: usize, relocated: u64) -> ! {
        boot::primary(dtb, el as u8, relocated == 1)
    }

    /// Secondary CPU `index`, from boot/entry.S after it found itself in the per-CPU records.
    #[no_mangle]
    extern "C" fn secondary_main(index: usize) -> ! {
        boot::secondary(index)
    }
}
