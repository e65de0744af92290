//! proto (to be written).
