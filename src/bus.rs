//! bus (to be written).
