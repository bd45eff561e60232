//! Platform discovery from the device tree (being written).
