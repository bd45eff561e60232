//! Stage-2 translation tables (being written).
