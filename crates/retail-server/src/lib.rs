//! retail-server
