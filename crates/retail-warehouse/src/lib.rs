//! retail-warehouse
