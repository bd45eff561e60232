//! Device drivers (being written).
