//! Coherency policy (being written).
