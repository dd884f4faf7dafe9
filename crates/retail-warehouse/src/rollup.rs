//! Rollup partial sums of a batch of fact rows: `SELECT date_key, <keys>, <measures> FROM src
//! [WHERE quantity_on_hand <= 0] GROUP BY date_key, <keys>`, groups in order of first
//! appearance — the aggregation ClickHouse's materialized views run. This runs on every fact
//! insert (three rollups per sales batch), so grouping is exact and cheap:
//!
//! - each key column is encoded once per batch as small integer codes (strings through a
//!   per-batch dictionary, dates as offsets from the batch's minimum), and the codes are shared
//!   by every rollup of that batch (`KeyCodes`);
//! - a group id is built column by column: (group of the previous columns, code) → a new
//!   compact id, through a dense table when the pairs are few (the usual case: a chunk holds
//!   a few hundred stores × products) and a hash map otherwise. Ids are handed out in row order,
//!   so groups come out in order of first appearance.

use crate::row_hash::{hash_rows, FastMix};
use crate::schema::{Measure, Rollup};
use crate::WarehouseError;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Decimal128Array, GenericByteArray, Int64Array, OffsetSizeTrait, UInt32Array};
use datafusion::arrow::compute::{cast, filter_record_batch, take};
use datafusion::arrow::datatypes::*;
use datafusion::arrow::record_batch::RecordBatch;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::Arc;

type Fast = BuildHasherDefault<FastMix>;

fn other(e: impl std::fmt::Display) -> WarehouseError {
    WarehouseError::Other(e.to_string())
}

/// One column's rows as codes `0..card` (equal codes ⇔ equal values, nulls included).
struct Codes {
    codes: Vec<u32>,
    card: u32,
}

/// The key columns of one batch, encoded on first use and shared by its rollups.
pub struct KeyCodes<'a> {
    src: &'a RecordBatch,
    cols: HashMap<&'static str, Codes>,
}

impl<'a> KeyCodes<'a> {
    pub fn new(src: &'a RecordBatch) -> KeyCodes<'a> {
        KeyCodes { src, cols: HashMap::new() }
    }

    fn column(&mut self, name: &'static str) -> Result<&Codes, WarehouseError> {
        if !self.cols.contains_key(name) {
            let a = self.src.column_by_name(name).ok_or_else(|| other(format!("missing key column {name}")))?;
            let codes = encode(self.src, name, a)?;
            self.cols.insert(name, codes);
        }
        Ok(&self.cols[name])
    }
}

/// A dictionary of distinct values → codes in order of first appearance, with one code for null.
struct Dict<K> {
    map: HashMap<K, u32, Fast>,
    null: Option<u32>,
    next: u32,
}

impl<K: std::hash::Hash + Eq> Dict<K> {
    fn new() -> Dict<K> {
        Dict { map: HashMap::default(), null: None, next: 0 }
    }

    #[inline]
    fn code(&mut self, k: Option<K>) -> u32 {
        let next = &mut self.next;
        let slot = match k {
            Some(k) => self.map.entry(k).or_insert(*next),
            None => self.null.get_or_insert(*next),
        };
        let c = *slot;
        *next += (c == *next) as u32;
        c
    }
}

fn encode_bytes<T: ByteArrayType>(a: &GenericByteArray<T>) -> Codes
where
    T::Offset: OffsetSizeTrait,
{
    let offsets = a.value_offsets();
    let data = a.value_data();
    let nulls = a.nulls().filter(|n| n.null_count() > 0);
    let mut dict: Dict<&[u8]> = Dict::new();
    let mut codes = Vec::with_capacity(a.len());
    let mut prev: Option<(&[u8], u32)> = None;
    for i in 0..a.len() {
        if nulls.is_some_and(|n| n.is_null(i)) {
            codes.push(dict.code(None));
            continue;
        }
        let v = &data[offsets[i].as_usize()..offsets[i + 1].as_usize()];
        // Sorted or clustered batches repeat the previous value: skip the lookup.
        let c = match prev {
            Some((p, c)) if p == v => c,
            _ => dict.code(Some(v)),
        };
        prev = Some((v, c));
        codes.push(c);
    }
    Codes { codes, card: dict.next }
}

/// Integer-like values: offsets from the minimum when their range is small (dates in a batch
/// span a day or two), else a dictionary.
fn encode_ints(values: impl Iterator<Item = Option<i64>> + Clone, n: usize) -> Codes {
    let (mut lo, mut hi) = (i64::MAX, i64::MIN);
    for v in values.clone().flatten() {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    let range = if lo <= hi { hi.abs_diff(lo) } else { 0 };
    if range < (n as u64).saturating_mul(4) + 1024 {
        // Codes 0..=range for values, range + 1 for null.
        let null = if lo <= hi { range as u32 + 1 } else { 0 };
        let codes: Vec<u32> = values.map(|v| v.map_or(null, |v| v.abs_diff(lo) as u32)).collect();
        return Codes { codes, card: null + 1 };
    }
    let mut dict: Dict<i64> = Dict::new();
    let codes = values.map(|v| dict.code(v)).collect();
    Codes { codes, card: dict.next }
}

fn encode(src: &RecordBatch, name: &str, a: &ArrayRef) -> Result<Codes, WarehouseError> {
    macro_rules! ints {
        ($t:ty) => {{
            let p = a.as_primitive::<$t>();
            encode_ints(p.iter().map(|v| v.map(|v| v as i64)), p.len())
        }};
    }
    Ok(match a.data_type() {
        DataType::Utf8 => encode_bytes(a.as_string::<i32>()),
        DataType::LargeUtf8 => encode_bytes(a.as_string::<i64>()),
        DataType::Binary => encode_bytes(a.as_binary::<i32>()),
        DataType::LargeBinary => encode_bytes(a.as_binary::<i64>()),
        DataType::Date32 => ints!(Date32Type),
        DataType::Int32 => ints!(Int32Type),
        DataType::Int64 => ints!(Int64Type),
        DataType::Timestamp(TimeUnit::Second, _) => ints!(TimestampSecondType),
        // Any other key type (none today): its 128-bit row hash, as the keyed tables use.
        _ => {
            let hashes = hash_rows(src, &[name]).map_err(other)?;
            let mut dict: Dict<u128> = Dict::new();
            let codes = hashes.into_iter().map(|h| dict.code(Some(h))).collect();
            Codes { codes, card: dict.next }
        }
    })
}

/// Dense group tables up to this many (previous group, code) pairs, or a few per row.
const DENSE_PAIRS: u64 = 1 << 16;

/// The group of each selected row over the columns `cols`, ids in order of first appearance;
/// and the number of groups.
fn group_ids(cols: &[&Codes], rows: &[u32]) -> (Vec<u32>, u32) {
    let m = rows.len();
    let mut g = vec![0u32; m];
    let mut groups = u32::from(m > 0);
    for c in cols {
        let pairs = groups as u64 * c.card as u64;
        let mut next = 0u32;
        if pairs <= DENSE_PAIRS.max(4 * m as u64) {
            let mut table = vec![u32::MAX; pairs as usize];
            for (gi, &r) in g.iter_mut().zip(rows) {
                let slot = &mut table[*gi as usize * c.card as usize + c.codes[r as usize] as usize];
                if *slot == u32::MAX {
                    *slot = next;
                    next += 1;
                }
                *gi = *slot;
            }
        } else {
            let mut table: HashMap<u64, u32, Fast> = HashMap::with_capacity_and_hasher(m.min(groups as usize * 4 + 1024), Fast::default());
            for (gi, &r) in g.iter_mut().zip(rows) {
                let key = ((*gi as u64) << 32) | c.codes[r as usize] as u64;
                *gi = *table.entry(key).or_insert_with(|| {
                    next += 1;
                    next - 1
                });
            }
        }
        groups = next;
    }
    (g, groups)
}

/// Sums of `values` (read at `rows`) per group, wrapping as the i64 the column stores.
fn sum_ints(values: &[i64], rows: &[u32], g: &[u32], groups: u32) -> Vec<i64> {
    let mut sums = vec![0i64; groups as usize];
    for (&gi, &r) in g.iter().zip(rows) {
        let s = &mut sums[gi as usize];
        *s = s.wrapping_add(values[r as usize]);
    }
    sums
}

/// `SELECT date_key, <keys>, <measures> FROM src [WHERE quantity_on_hand <= 0] GROUP BY
/// date_key, <keys>` as a batch of `r.table`, groups in order of first appearance.
pub fn rollup_batch(r: &Rollup, codes: &mut KeyCodes, measures: &[(&'static str, Measure)], only_out_of_stock: bool) -> Result<RecordBatch, WarehouseError> {
    let src = codes.src;
    let col = |n: &str| src.column_by_name(n).ok_or_else(|| other(format!("{} lacks {n}", r.source.name)));
    if only_out_of_stock {
        // Usually few rows (often none) are out of stock: encode only those.
        let oh = col("quantity_on_hand")?.as_primitive::<Int32Type>();
        let mask: BooleanArray = oh.values().iter().map(|v| Some(*v <= 0)).collect();
        // Only the columns the rollup reads are filtered.
        let mut names = vec!["date_key"];
        names.extend(r.keys.iter().copied());
        names.extend(measures.iter().filter_map(|(_, m)| match m {
            Measure::SumInt(c) | Measure::SumMoney(c) => Some(*c),
            Measure::Count => None,
        }));
        let schema = src.schema();
        let indices = names.iter().map(|n| schema.index_of(n).map_err(|_| other(format!("{} lacks {n}", r.source.name)))).collect::<Result<Vec<_>, _>>()?;
        let kept = filter_record_batch(&src.project(&indices).map_err(other)?, &mask).map_err(other)?;
        return rollup_batch(r, &mut KeyCodes::new(&kept), measures, false);
    }
    let rows: Vec<u32> = (0..src.num_rows() as u32).collect();
    let mut key_cols = vec!["date_key"];
    key_cols.extend(r.keys.iter().copied());
    for k in &key_cols {
        codes.column(k)?;
    }
    let encoded: Vec<&Codes> = key_cols.iter().map(|k| &codes.cols[k]).collect();
    let (g, groups) = group_ids(&encoded, &rows);
    // The first row of each group: ids are handed out in row order.
    let mut first_rows: Vec<u32> = Vec::with_capacity(groups as usize);
    for (&gi, &r) in g.iter().zip(&rows) {
        if gi as usize == first_rows.len() {
            first_rows.push(r);
        }
    }
    let idx = UInt32Array::from(first_rows);
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(key_cols.len() + measures.len());
    for k in &key_cols {
        cols.push(take(col(k)?.as_ref(), &idx, None).map_err(other)?);
    }
    for (_, m) in measures {
        cols.push(match m {
            Measure::SumInt(c) => {
                let a = col(c)?;
                let sums = match a.data_type() {
                    DataType::Int64 => sum_ints(a.as_primitive::<Int64Type>().values(), &rows, &g, groups),
                    DataType::Int32 => {
                        let wide: Vec<i64> = a.as_primitive::<Int32Type>().values().iter().map(|v| *v as i64).collect();
                        sum_ints(&wide, &rows, &g, groups)
                    }
                    _ => sum_ints(cast(a, &DataType::Int64).map_err(other)?.as_primitive::<Int64Type>().values(), &rows, &g, groups),
                };
                Arc::new(Int64Array::from(sums))
            }
            Measure::SumMoney(c) => {
                let values = col(c)?.as_primitive::<Decimal128Type>().values();
                let mut sums = vec![0i128; groups as usize];
                for (&gi, &r) in g.iter().zip(&rows) {
                    sums[gi as usize] += values[r as usize];
                }
                Arc::new(Decimal128Array::from(sums).with_precision_and_scale(18, 2).map_err(other)?)
            }
            Measure::Count => {
                let mut sums = vec![0i64; groups as usize];
                for &gi in &g {
                    sums[gi as usize] += 1;
                }
                Arc::new(Int64Array::from(sums))
            }
        });
    }
    RecordBatch::try_new(r.table.arrow_schema(), cols).map_err(other)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{inventory_batch, sales_batch};
    use crate::schema::ROLLUPS;
    use chrono::{NaiveDate, TimeZone, Utc};
    use retail_core::{FactInventory, FactSale};

    /// The rollup the slow obvious way: tuples of key values, groups in first-appearance order.
    fn reference(r: &Rollup, src: &RecordBatch, only_out_of_stock: bool) -> RecordBatch {
        let mut key_cols = vec!["date_key"];
        key_cols.extend(r.keys.iter().copied());
        let text = |c: &str, i: usize| -> String {
            let a = src.column_by_name(c).unwrap();
            match a.data_type() {
                DataType::Utf8 => a.as_string::<i32>().value(i).to_string(),
                _ => a.as_primitive::<Date32Type>().value(i).to_string(),
            }
        };
        let mut order: Vec<(Vec<String>, usize)> = vec![];
        let mut index: HashMap<Vec<String>, usize> = HashMap::new();
        let mut sums: Vec<Vec<i128>> = vec![];
        for i in 0..src.num_rows() {
            if only_out_of_stock && src.column_by_name("quantity_on_hand").unwrap().as_primitive::<Int32Type>().value(i) > 0 {
                continue;
            }
            let key: Vec<String> = key_cols.iter().map(|c| text(c, i)).collect();
            let g = *index.entry(key.clone()).or_insert_with(|| {
                order.push((key, i));
                sums.push(vec![0; r.measures.len()]);
                order.len() - 1
            });
            for (j, (_, m)) in r.measures.iter().enumerate() {
                sums[g][j] += match m {
                    Measure::SumInt(c) => src.column_by_name(c).unwrap().as_primitive::<Int32Type>().value(i) as i128,
                    Measure::SumMoney(c) => src.column_by_name(c).unwrap().as_primitive::<Decimal128Type>().value(i),
                    Measure::Count => 1,
                };
            }
        }
        let idx = UInt32Array::from(order.iter().map(|(_, i)| *i as u32).collect::<Vec<_>>());
        let mut cols: Vec<ArrayRef> = key_cols.iter().map(|c| take(src.column_by_name(c).unwrap().as_ref(), &idx, None).unwrap()).collect();
        for (j, (_, m)) in r.measures.iter().enumerate() {
            let column = sums.iter().map(|s| s[j]);
            cols.push(match m {
                Measure::SumMoney(_) => Arc::new(Decimal128Array::from_iter_values(column).with_precision_and_scale(18, 2).unwrap()),
                _ => Arc::new(Int64Array::from_iter_values(column.map(|v| v as i64))),
            });
        }
        RecordBatch::try_new(r.table.arrow_schema(), cols).unwrap()
    }

    fn sales(n: usize, stores: usize, products: usize, day_spread: i64) -> RecordBatch {
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = |m: usize| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % m as u64) as usize
        };
        let day0 = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap();
        let rows: Vec<FactSale> = (0..n)
            .map(|i| {
                // Names that concatenate alike ("ab"+"c" vs "a"+"bc") and repeat in runs.
                let s = next(stores);
                let p = if i % 7 == 0 { 0 } else { next(products) };
                FactSale {
                    sale_id: format!("s{i}"),
                    date_key: day0 + chrono::Duration::days(next(3) as i64 * day_spread),
                    product_key: format!("{}{p}", ["", "1", "11"][p % 3]),
                    store_key: format!("{s}{}", ["", "1", "11"][s % 3]),
                    quantity: next(5) as i32 - 1,
                    revenue: next(10_000) as f64 / 100.0,
                    cost: 1.25,
                    profit: -3.5,
                    unit_price: 1.0,
                    discount_pct: 0.0,
                    basket_id: "b".into(),
                    customer_id: None,
                    payment_method: "cash".into(),
                    event_time: Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap(),
                }
            })
            .collect();
        sales_batch(&rows).unwrap()
    }

    #[test]
    fn rollups_equal_the_obvious_group_by() {
        // Few pairs (dense tables), many (hash maps), dates close and far apart, no rows.
        for (n, stores, products, spread) in [(5_000, 200, 25, 0), (3_000, 1_000, 1_000, 1), (2_000, 40, 40, 100_000), (1, 1, 1, 0), (0, 1, 1, 0)] {
            let src = sales(n, stores, products, spread);
            let mut codes = KeyCodes::new(&src);
            for r in ROLLUPS.iter().filter(|r| r.source.name == "fact_sales") {
                let got = rollup_batch(r, &mut codes, r.measures, false).unwrap();
                assert_eq!(got, reference(r, &src, false), "{} over {n} rows", r.table.name);
            }
        }
    }

    #[test]
    fn stockouts_count_only_rows_out_of_stock() {
        let t = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let rows: Vec<FactInventory> = (0..500)
            .map(|i| FactInventory {
                inventory_id: format!("i{i}"),
                date_key: t.date_naive() + chrono::Duration::days(i % 3),
                product_key: "p".into(),
                store_key: format!("store_{}", i % 17),
                quantity_on_hand: (i % 5) as i32 - 2,
                reorder_point: 1,
                safety_stock: 1,
                quantity_change: -1,
                reason: "sale".into(),
                event_time: t,
            })
            .collect();
        let src = inventory_batch(&rows).unwrap();
        let r = ROLLUPS.iter().find(|r| r.source.name == "fact_inventory").unwrap();
        let got = rollup_batch(r, &mut KeyCodes::new(&src), r.measures, r.only_out_of_stock).unwrap();
        assert_eq!(got, reference(r, &src, true));
        assert!(got.num_rows() > 10);
    }
}
