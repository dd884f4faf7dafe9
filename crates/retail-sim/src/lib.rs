//! retail-sim
