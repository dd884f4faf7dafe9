//! retail-bus
