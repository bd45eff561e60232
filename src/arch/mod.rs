//! AArch64 register access (being written).
