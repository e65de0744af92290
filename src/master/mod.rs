//! master (to be written).
