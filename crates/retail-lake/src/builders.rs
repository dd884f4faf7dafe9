//! Arrow builders that start over sized for the next batch: a stream appends about as many
//! rows per chunk as the last one, and growing a builder of megabytes by doubling copies it.
//! Shared by the lake's raw rows and the warehouse's rows.

use datafusion::arrow::array::{ArrayBuilder, PrimitiveArray, PrimitiveBuilder, StringArray, StringBuilder};
use datafusion::arrow::datatypes::ArrowPrimitiveType;

/// A string column's array; the builder starts over with room for as much again.
pub fn renew_strings(b: &mut StringBuilder) -> StringArray {
    let (rows, bytes) = (b.len(), b.values_slice().len());
    std::mem::replace(b, StringBuilder::with_capacity(rows, bytes)).finish()
}

/// A primitive column's array; the builder starts over with room for as many values again.
pub fn renew_primitive<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>) -> PrimitiveArray<T> {
    let rows = b.len();
    std::mem::replace(b, PrimitiveBuilder::with_capacity(rows)).finish()
}

/// A vector's values; it starts over with room for as many again.
pub fn renew_vec<T>(v: &mut Vec<T>) -> Vec<T> {
    let n = v.len();
    std::mem::replace(v, Vec::with_capacity(n))
}
