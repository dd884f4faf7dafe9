//! retail-stream
