//! QEMU integration tests: boot `target/el2visor.img` on emulated machines and check what it
//! prints (the output contract in the README). `make test` builds the image and the DTBs first.

mod harness;

mod boot;
mod crash;
mod dom0less;
mod faults;
mod gdb;
mod isolation;
mod its;
mod linux;
mod pci;
mod memory;
mod probe;
mod reset;
mod rpi4;
mod smmu;
mod snapshot;
mod stage2;
