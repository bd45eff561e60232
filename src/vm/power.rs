//! The PSCI view of a VM's vCPUs: each one's power state and MPIDR, and where a vCPU may start.
//! Plain data: the PSCI call handler (`trap::psci`) reads and changes it through its
//! `PowerState` trait, implemented there.

#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::coherency::Setting;

/// PSCI power state of one vCPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VcpuPower {
    Off,
    OnPending,
    On,
}

/// The power states of a VM's vCPUs, under the VM's power lock.
#[derive(Clone, Debug)]
pub struct Power {
    pub states: Vec<VcpuPower>,
    /// Each vCPU's MPIDR affinity.
    pub mpidrs: Vec<u64>,
    /// The VM's RAM as `[start, end)` IPA ranges: a vCPU may start only in it.
    pub ram: Vec<(u64, u64)>,
    pub setting: Setting,
}

impl Power {
    /// vCPU 0 `OnPending` (it starts at the kernel entry), the others `Off`.
    pub fn new(mpidrs: Vec<u64>, ram: Vec<(u64, u64)>, setting: Setting) -> Self {
        let mut states = alloc::vec![VcpuPower::Off; mpidrs.len()];
        if let Some(s) = states.first_mut() {
            *s = VcpuPower::OnPending;
        }
        Power { states, mpidrs, ram, setting }
    }

    /// Whether a vCPU may start executing at IPA `entry` (aligned, inside the VM's RAM).
    pub fn is_valid_entry(&self, entry: u64) -> bool {
        entry.is_multiple_of(4) && self.ram.iter().any(|&(s, e)| entry >= s && entry < e)
    }
}
