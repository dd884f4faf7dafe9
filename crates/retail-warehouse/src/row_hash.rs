//! 128-bit hashes of a table's key columns, computed straight from the Arrow arrays, one column
//! at a time: no cast to strings, no per-row allocation.
//!
//! Each row carries two 64-bit lanes with different seeds and multipliers. A column feeds every
//! row's lanes the value's bytes (strings and binaries: their bytes in 8-byte words; primitives:
//! the value's bits) and then a terminator that holds the column's position and the value's
//! length (or a null mark), so `("ab", "c")`, `("a", "bc")`, `("abc", "")` and `(null, "abc")`
//! all feed different sequences.
//!
//! The hashes are never persisted (the embedded warehouse rebuilds its indexes on load), so the
//! function may change between builds; it is deterministic within one.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, GenericByteArray, OffsetSizeTrait};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;
use std::hash::Hasher;

const SEED_A: u64 = 0x243F_6A88_85A3_08D3;
const SEED_B: u64 = 0x1319_8A2E_0370_7344;
const MUL_A: u64 = 0x9E37_79B9_7F4A_7C15;
const MUL_B: u64 = 0xC2B2_AE3D_27D4_EB4F;
const FIN_A: u64 = 0xFF51_AFD7_ED55_8CCD;
const FIN_B: u64 = 0xC4CE_B9FE_1A85_EC53;
/// Terminator of a null value (lengths never reach bit 62).
const NULL_MARK: u64 = 1 << 62;

/// The high and low halves of a 64×64-bit product, xored.
#[inline(always)]
fn fold(x: u64, k: u64) -> u64 {
    let m = (x as u128).wrapping_mul(k as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

/// A row's running hash state, fed one 64-bit word at a time.
trait Mixer: Copy {
    fn word(&mut self, w: u64);

    #[inline(always)]
    fn bytes(&mut self, b: &[u8]) {
        let mut chunks = b.chunks_exact(8);
        for c in &mut chunks {
            self.word(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.word(u64::from_le_bytes(buf));
        }
    }
}

/// Two lanes: the 128-bit hashes of the keyed tables' keys.
#[derive(Clone, Copy)]
struct Lanes(u64, u64);

impl Mixer for Lanes {
    #[inline(always)]
    fn word(&mut self, w: u64) {
        self.0 = fold(self.0 ^ w, MUL_A);
        self.1 = fold(self.1 ^ w.rotate_left(29), MUL_B);
    }
}

/// One lane: the 64-bit hashes of the fact tables' ids, half the work of two lanes folded.
#[derive(Clone, Copy)]
struct Lane(u64);

impl Mixer for Lane {
    #[inline(always)]
    fn word(&mut self, w: u64) {
        self.0 = fold(self.0 ^ w, MUL_A);
    }
}

impl Lanes {
    #[inline(always)]
    fn finish(self) -> u128 {
        let a = fold(self.0 ^ FIN_B, FIN_A);
        let b = fold(self.1 ^ FIN_A, FIN_B);
        ((a as u128) << 64) | b as u128
    }
}

/// One 128-bit hash per row of `batch` over the columns `cols` (in that order).
pub fn hash_rows(batch: &RecordBatch, cols: &[&str]) -> Result<Vec<u128>, String> {
    Ok(mix_rows(batch, cols, Lanes(SEED_A, SEED_B))?.into_iter().map(Lanes::finish).collect())
}

/// One 64-bit hash per row of `batch` over the columns `cols` (the fact tables' id sets): the
/// same words as `hash_rows` feeds, through one lane.
pub fn hash_rows_u64(batch: &RecordBatch, cols: &[&str]) -> Result<Vec<u64>, String> {
    Ok(mix_rows(batch, cols, Lane(SEED_A))?.into_iter().map(|l| fold(l.0 ^ FIN_B, FIN_A)).collect())
}

/// Each row's state after the columns `cols`, in that order, from `seed`.
fn mix_rows<M: Mixer>(batch: &RecordBatch, cols: &[&str], seed: M) -> Result<Vec<M>, String> {
    let mut lanes = vec![seed; batch.num_rows()];
    for (i, name) in cols.iter().enumerate() {
        let a = batch.column_by_name(name).ok_or_else(|| format!("missing key column {name}"))?;
        absorb(&mut lanes, (i as u64 + 1) << 40, a)?;
    }
    Ok(lanes)
}

fn bytes_column<M: Mixer, T: ByteArrayType>(lanes: &mut [M], tag: u64, a: &GenericByteArray<T>)
where
    T::Offset: OffsetSizeTrait,
{
    let offsets = a.value_offsets();
    let data = a.value_data();
    let nulls = a.nulls().filter(|n| n.null_count() > 0);
    for (i, h) in lanes.iter_mut().enumerate() {
        if nulls.is_some_and(|n| n.is_null(i)) {
            h.word(tag ^ NULL_MARK);
            continue;
        }
        let (s, e) = (offsets[i].as_usize(), offsets[i + 1].as_usize());
        h.bytes(&data[s..e]);
        h.word(tag ^ (e - s) as u64);
    }
}

fn absorb<M: Mixer>(lanes: &mut [M], tag: u64, a: &ArrayRef) -> Result<(), String> {
    macro_rules! prim {
        ($t:ty, $bits:expr) => {{
            let p = a.as_primitive::<$t>();
            let width = std::mem::size_of::<<$t as ArrowPrimitiveType>::Native>() as u64;
            let values = p.values();
            let nulls = p.nulls().filter(|n| n.null_count() > 0);
            let bits = $bits;
            for (i, h) in lanes.iter_mut().enumerate() {
                if nulls.is_some_and(|n| n.is_null(i)) {
                    h.word(tag ^ NULL_MARK);
                } else {
                    h.word(bits(values[i]));
                    h.word(tag ^ width);
                }
            }
        }};
    }
    match a.data_type() {
        DataType::Utf8 => bytes_column(lanes, tag, a.as_string::<i32>()),
        DataType::LargeUtf8 => bytes_column(lanes, tag, a.as_string::<i64>()),
        DataType::Binary => bytes_column(lanes, tag, a.as_binary::<i32>()),
        DataType::LargeBinary => bytes_column(lanes, tag, a.as_binary::<i64>()),
        DataType::Int8 => prim!(Int8Type, |v: i8| v as i64 as u64),
        DataType::Int16 => prim!(Int16Type, |v: i16| v as i64 as u64),
        DataType::Int32 => prim!(Int32Type, |v: i32| v as i64 as u64),
        DataType::Int64 => prim!(Int64Type, |v: i64| v as u64),
        DataType::UInt8 => prim!(UInt8Type, |v: u8| v as u64),
        DataType::UInt16 => prim!(UInt16Type, |v: u16| v as u64),
        DataType::UInt32 => prim!(UInt32Type, |v: u32| v as u64),
        DataType::UInt64 => prim!(UInt64Type, |v: u64| v),
        DataType::Float32 => prim!(Float32Type, |v: f32| v.to_bits() as u64),
        DataType::Float64 => prim!(Float64Type, |v: f64| v.to_bits()),
        DataType::Date32 => prim!(Date32Type, |v: i32| v as i64 as u64),
        DataType::Date64 => prim!(Date64Type, |v: i64| v as u64),
        DataType::Timestamp(TimeUnit::Second, _) => prim!(TimestampSecondType, |v: i64| v as u64),
        DataType::Timestamp(TimeUnit::Millisecond, _) => prim!(TimestampMillisecondType, |v: i64| v as u64),
        DataType::Timestamp(TimeUnit::Microsecond, _) => prim!(TimestampMicrosecondType, |v: i64| v as u64),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => prim!(TimestampNanosecondType, |v: i64| v as u64),
        DataType::Decimal128(_, _) => {
            let p = a.as_primitive::<Decimal128Type>();
            let nulls = p.nulls().filter(|n| n.null_count() > 0);
            for (i, h) in lanes.iter_mut().enumerate() {
                if nulls.is_some_and(|n| n.is_null(i)) {
                    h.word(tag ^ NULL_MARK);
                } else {
                    let v = p.value(i) as u128;
                    h.word(v as u64);
                    h.word((v >> 64) as u64);
                    h.word(tag ^ 16);
                }
            }
        }
        // Anything else (no key column today): its text form.
        _ => {
            let s = cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
            bytes_column(lanes, tag, s.as_string::<i32>());
        }
    }
    Ok(())
}

/// A quick `Hasher` for in-process maps keyed by integers or short byte strings (a fold per
/// 8 bytes; SipHash would cost more than the rest of a rollup's grouping).
#[derive(Default)]
pub struct FastMix(u64);

impl Hasher for FastMix {
    #[inline]
    fn finish(&self) -> u64 {
        fold(self.0 ^ FIN_B, FIN_A)
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap()));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut buf = [0u8; 8];
            buf[..rest.len()].copy_from_slice(rest);
            self.write_u64(u64::from_le_bytes(buf));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = fold(self.0 ^ x, MUL_A);
    }
    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn write_i64(&mut self, x: i64) {
        self.write_u64(x as u64);
    }
    #[inline]
    fn write_u128(&mut self, x: u128) {
        self.write_u64(x as u64);
        self.write_u64((x >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Date32Array, Int32Array, StringArray, TimestampSecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use std::sync::Arc;

    fn two_strings(rows: &[(Option<&str>, Option<&str>)]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true), Field::new("b", DataType::Utf8, true)]));
        let a = StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>());
        let b = StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>());
        RecordBatch::try_new(schema, vec![Arc::new(a), Arc::new(b)]).unwrap()
    }

    #[test]
    fn column_boundaries_lengths_and_nulls_are_part_of_the_key() {
        let rows = [
            (Some("ab"), Some("c")),
            (Some("a"), Some("bc")),
            (Some("abc"), Some("")),
            (Some(""), Some("abc")),
            (None, Some("abc")),
            (Some("abc"), None),
            (Some("a\0"), Some("bc")),
            (Some("12345678"), Some("9")),
            (Some("123456789"), Some("")),
            (Some("ab"), Some("c")),
        ];
        let h = hash_rows(&two_strings(&rows), &["a", "b"]).unwrap();
        assert_eq!(h[0], h[9], "equal keys hash equal");
        let distinct: std::collections::HashSet<u128> = h[..9].iter().copied().collect();
        assert_eq!(distinct.len(), 9, "{h:x?}");
        let short = hash_rows_u64(&two_strings(&rows), &["a", "b"]).unwrap();
        assert_eq!(short[0], short[9], "equal keys hash equal in 64 bits too");
        let short: std::collections::HashSet<u64> = short[..9].iter().copied().collect();
        assert_eq!(short.len(), 9);
        // Column order matters too.
        let swapped = hash_rows(&two_strings(&rows), &["b", "a"]).unwrap();
        assert_ne!(h[0], swapped[0]);
    }

    #[test]
    fn primitive_keys_hash_their_values_without_text() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("d", DataType::Date32, false),
            Field::new("n", DataType::Int32, false),
            Field::new("t", DataType::Timestamp(TimeUnit::Second, Some("UTC".into())), false),
        ]));
        let b = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Date32Array::from(vec![1, 1, 2, 1])),
                Arc::new(Int32Array::from(vec![2, 2, 1, 2])),
                Arc::new(TimestampSecondArray::from(vec![5, 5, 5, 6]).with_timezone("UTC")),
            ],
        )
        .unwrap();
        let h = hash_rows(&b, &["d", "n", "t"]).unwrap();
        assert_eq!(h[0], h[1]);
        assert_ne!(h[0], h[2]);
        assert_ne!(h[0], h[3]);
        assert_ne!(h[2], h[3]);
        assert!(hash_rows(&b, &["nope"]).is_err());
    }

    #[test]
    fn many_distinct_keys_do_not_collide() {
        let n = 200_000;
        let ids: Vec<String> = (0..n).map(|i| format!("store_{:03}|SKU{}", i % 1000, i / 1000)).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, false)]));
        let b = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(ids))]).unwrap();
        let h = hash_rows(&b, &["a"]).unwrap();
        let full: std::collections::HashSet<u128> = h.iter().copied().collect();
        let short: std::collections::HashSet<u64> = hash_rows_u64(&b, &["a"]).unwrap().into_iter().collect();
        assert_eq!((full.len(), short.len()), (n, n));
    }
}
