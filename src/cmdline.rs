//! el2visor's own command line (being written).
