//! VMs (being written).
