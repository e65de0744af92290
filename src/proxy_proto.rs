//! proxy_proto (to be written).
