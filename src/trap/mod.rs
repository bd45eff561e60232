//! Traps from guests (being written).
