//! shutdown (to be written).
