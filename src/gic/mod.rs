//! GIC (being written).
