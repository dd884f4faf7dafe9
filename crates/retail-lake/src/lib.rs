//! retail-lake
