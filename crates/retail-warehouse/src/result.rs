//! One result shape for both backends, and its renderings (table, CSV, JSON).
//!
//! Values are normalized so the same query gives equal results on both engines: integers as
//! JSON integers (ClickHouse quotes 64-bit ones), decimals and floats as JSON numbers, dates as
//! `YYYY-MM-DD`, date-times as `YYYY-MM-DD HH:MM:SS` (UTC), NaN/∞ as null.

use crate::{QueryResult, WarehouseError};
use chrono::{DateTime, NaiveDate};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type, TimeUnit, TimestampSecondType, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::Value;

fn num(x: f64) -> Value {
    serde_json::Number::from_f64(x).map(Value::Number).unwrap_or(Value::Null)
}

/// Arrow batches (DataFusion's answer) → normalized rows.
pub fn from_batches(batches: &[RecordBatch]) -> Result<QueryResult, WarehouseError> {
    let err = |e: datafusion::arrow::error::ArrowError| WarehouseError::Query(format!("cannot render result: {e}"));
    let mut out = QueryResult::default();
    let Some(first) = batches.first() else { return Ok(out) };
    out.columns = first.schema().fields().iter().map(|f| f.name().clone()).collect();
    for b in batches {
        let mut cols: Vec<Vec<Value>> = Vec::with_capacity(b.num_columns());
        for col in b.columns() {
            let n = col.len();
            let mut vals = Vec::with_capacity(n);
            match col.data_type() {
                DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 | DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => {
                    let a = cast(col, &DataType::Int64).map_err(err)?;
                    let a = a.as_primitive::<Int64Type>();
                    for i in 0..n {
                        vals.push(if a.is_null(i) { Value::Null } else { Value::from(a.value(i)) });
                    }
                }
                DataType::UInt64 => {
                    let a = col.as_primitive::<UInt64Type>();
                    for i in 0..n {
                        vals.push(if a.is_null(i) { Value::Null } else { Value::from(a.value(i)) });
                    }
                }
                DataType::Float16
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..) => {
                    let a = cast(col, &DataType::Float64).map_err(err)?;
                    let a = a.as_primitive::<Float64Type>();
                    for i in 0..n {
                        vals.push(if a.is_null(i) { Value::Null } else { num(a.value(i)) });
                    }
                }
                DataType::Date32 => {
                    let a = col.as_primitive::<Date32Type>();
                    for i in 0..n {
                        vals.push(if a.is_null(i) {
                            Value::Null
                        } else {
                            let d = NaiveDate::from_num_days_from_ce_opt(a.value(i) + 719_163).unwrap_or_default();
                            Value::from(d.format("%Y-%m-%d").to_string())
                        });
                    }
                }
                DataType::Timestamp(_, _) | DataType::Date64 => {
                    let a = cast(col, &DataType::Timestamp(TimeUnit::Second, None)).map_err(err)?;
                    let a = a.as_primitive::<TimestampSecondType>();
                    for i in 0..n {
                        vals.push(if a.is_null(i) {
                            Value::Null
                        } else {
                            let t = DateTime::from_timestamp(a.value(i), 0).unwrap_or_default();
                            Value::from(t.format("%Y-%m-%d %H:%M:%S").to_string())
                        });
                    }
                }
                DataType::Boolean => {
                    let a = col.as_boolean();
                    for i in 0..n {
                        vals.push(if a.is_null(i) { Value::Null } else { Value::from(a.value(i) as u8) });
                    }
                }
                _ => {
                    let a = cast(col, &DataType::Utf8).map_err(err)?;
                    let a = a.as_string::<i32>();
                    for i in 0..n {
                        vals.push(if a.is_null(i) { Value::Null } else { Value::from(a.value(i)) });
                    }
                }
            }
            cols.push(vals);
        }
        for r in 0..b.num_rows() {
            out.rows.push(cols.iter().map(|c| c[r].clone()).collect());
        }
    }
    Ok(out)
}

/// Strip `Nullable(…)` / `LowCardinality(…)` from a ClickHouse type name.
fn base_type(t: &str) -> &str {
    let mut t = t;
    for w in ["Nullable(", "LowCardinality("] {
        if let Some(inner) = t.strip_prefix(w).and_then(|x| x.strip_suffix(')')) {
            t = inner;
        }
    }
    t
}

/// A ClickHouse value of type `ty` (as in `FORMAT JSONCompact`'s meta) → normalized JSON.
pub fn clickhouse_value(ty: &str, v: Value) -> Value {
    let ty = base_type(ty);
    if v.is_null() {
        return v;
    }
    let s = match &v {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    };
    if ty.starts_with("Int") || ty.starts_with("UInt") {
        match (s, &v) {
            (Some(s), _) => s.parse::<i64>().map(Value::from).or_else(|_| s.parse::<u64>().map(Value::from)).unwrap_or(v.clone()),
            _ => v,
        }
    } else if ty.starts_with("Float") || ty.starts_with("Decimal") {
        match (s, &v) {
            (Some(s), _) => s.parse::<f64>().map(num).unwrap_or(Value::Null),
            (None, Value::Number(n)) => n.as_f64().map(num).unwrap_or(Value::Null),
            _ => v,
        }
    } else {
        v
    }
}

/// `FORMAT JSONCompact` body → normalized rows.
pub fn from_clickhouse_json_compact(body: &[u8]) -> Result<QueryResult, WarehouseError> {
    #[derive(serde::Deserialize)]
    struct Meta {
        name: String,
        #[serde(rename = "type")]
        ty: String,
    }
    #[derive(serde::Deserialize)]
    struct Body {
        meta: Vec<Meta>,
        data: Vec<Vec<Value>>,
    }
    let b: Body = serde_json::from_slice(body).map_err(|e| WarehouseError::Query(format!("unexpected ClickHouse response: {e}")))?;
    let rows = b.data.into_iter().map(|r| r.into_iter().zip(&b.meta).map(|(v, m)| clickhouse_value(&m.ty, v)).collect()).collect();
    Ok(QueryResult { columns: b.meta.into_iter().map(|m| m.name).collect(), rows })
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl QueryResult {
    /// An aligned text table (numbers right-aligned), for people.
    pub fn to_table(&self) -> String {
        let cells: Vec<Vec<String>> = self.rows.iter().map(|r| r.iter().map(cell).collect()).collect();
        let mut width: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for r in &cells {
            for (i, c) in r.iter().enumerate() {
                if i < width.len() {
                    width[i] = width[i].max(c.chars().count());
                }
            }
        }
        let numeric: Vec<bool> =
            (0..self.columns.len()).map(|i| self.rows.iter().all(|r| matches!(r.get(i), Some(Value::Number(_)) | Some(Value::Null)))).collect();
        let mut out = String::new();
        let line = |out: &mut String, vals: &[String], header: bool| {
            let parts: Vec<String> = vals
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let pad = width[i].saturating_sub(v.chars().count());
                    if numeric[i] && !header {
                        format!("{}{v}", " ".repeat(pad))
                    } else {
                        format!("{v}{}", " ".repeat(pad))
                    }
                })
                .collect();
            out.push_str(parts.join(" | ").trim_end());
            out.push('\n');
        };
        line(&mut out, &self.columns, true);
        out.push_str(&width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("-+-"));
        out.push('\n');
        for r in &cells {
            line(&mut out, r, false);
        }
        out.push_str(&format!("({} row{})\n", self.rows.len(), if self.rows.len() == 1 { "" } else { "s" }));
        out
    }

    /// RFC 4180 CSV with a header line.
    pub fn to_csv(&self) -> String {
        let esc = |s: &str| {
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        let mut out = self.columns.iter().map(|c| esc(c)).collect::<Vec<_>>().join(",");
        out.push('\n');
        for r in &self.rows {
            let vals: Vec<String> = r.iter().map(|v| if v.is_null() { String::new() } else { esc(&cell(v)) }).collect();
            out.push_str(&vals.join(","));
            out.push('\n');
        }
        out
    }

    /// One JSON object per row, in an array.
    pub fn to_json(&self) -> String {
        let objs: Vec<serde_json::Map<String, Value>> = self.rows.iter().map(|r| self.columns.iter().cloned().zip(r.iter().cloned()).collect()).collect();
        serde_json::to_string_pretty(&objs).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clickhouse_values_normalize_like_datafusion() {
        assert_eq!(clickhouse_value("UInt64", Value::from("42")), Value::from(42));
        assert_eq!(clickhouse_value("Nullable(Int64)", Value::Null), Value::Null);
        assert_eq!(clickhouse_value("Decimal(38, 2)", Value::from("12.50")), Value::from(12.5));
        assert_eq!(clickhouse_value("Decimal(38, 2)", serde_json::json!(12.5)), Value::from(12.5));
        assert_eq!(clickhouse_value("Float64", Value::from("inf")), Value::Null);
        assert_eq!(clickhouse_value("Date", Value::from("2025-01-01")), Value::from("2025-01-01"));
    }

    #[test]
    fn renderings() {
        let r = QueryResult {
            columns: vec!["store".into(), "revenue".into()],
            rows: vec![vec![Value::from("a,b"), Value::from(1.5)], vec![Value::from("c"), Value::Null]],
        };
        assert_eq!(r.to_csv(), "store,revenue\n\"a,b\",1.5\nc,\n");
        assert_eq!(r.to_table(), "store | revenue\n------+--------\na,b   |     1.5\nc     |    NULL\n(2 rows)\n");
        assert!(r.to_json().contains("\"store\": \"a,b\""));
    }
}
