//! logging (to be written).
