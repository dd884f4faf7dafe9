//! retail-core
