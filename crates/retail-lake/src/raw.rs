//! Raw events as Parquet: schemas that follow the event contracts, batch writes, reads, compaction.

use crate::layout::{day_of_key, fnv1a, raw_day_prefix, safe_batch_id, RawKind};
use crate::parquet_io::{batches_to_json_rows, rows_to_batch};
use crate::{Lake, LakeError};
use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float64Builder, Int32Builder, PrimitiveBuilder, StringBuilder, TimestampMicrosecondArray, UInt32Builder,
};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{ArrowPrimitiveType, TimestampMicrosecondType};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use retail_core::{CustomerEvent, Event, InventoryUpdate, PriceChange, RestockAlert, SaleTransaction};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, OnceLock};

fn ts() -> DataType {
    // Microseconds in UTC: the contracts' timestamps are RFC 3339 UTC with sub-second precision.
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn f(name: &str, dt: DataType, nullable: bool) -> Field {
    Field::new(name, dt, nullable)
}

/// `raw-data/sales`: one column per field of `SaleTransaction`, same names.
pub fn sales_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            f("event_type", DataType::Utf8, false),
            f("schema_version", DataType::UInt32, false),
            f("transaction_id", DataType::Utf8, false),
            f("basket_id", DataType::Utf8, false),
            f("store_id", DataType::Utf8, false),
            f("product_id", DataType::Utf8, false),
            f("quantity", DataType::Int32, false),
            f("unit_price", DataType::Float64, false),
            f("list_price", DataType::Float64, false),
            f("discount_pct", DataType::Float64, false),
            f("promotion_id", DataType::Utf8, true),
            f("timestamp", ts(), false),
            f("customer_id", DataType::Utf8, true),
            f("payment_method", DataType::Utf8, false),
        ]))
    })
    .clone()
}

/// `raw-data/inventory`: one column per field of `InventoryUpdate`, same names.
pub fn inventory_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            f("event_type", DataType::Utf8, false),
            f("schema_version", DataType::UInt32, false),
            f("inventory_id", DataType::Utf8, false),
            f("store_id", DataType::Utf8, false),
            f("product_id", DataType::Utf8, false),
            f("quantity_change", DataType::Int32, false),
            f("previous_quantity", DataType::Int32, false),
            f("new_quantity", DataType::Int32, false),
            f("reason", DataType::Utf8, false),
            f("reference_id", DataType::Utf8, true),
            f("timestamp", ts(), false),
        ]))
    })
    .clone()
}

/// `raw-data/events`: price changes, customer events and restock alerts share one file per day.
/// The common fields are columns (for filtering); `payload` is the event's exact contract JSON.
pub fn events_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            f("event_type", DataType::Utf8, false),
            f("schema_version", DataType::UInt32, false),
            f("event_id", DataType::Utf8, false),
            f("store_id", DataType::Utf8, false),
            f("product_id", DataType::Utf8, true),
            f("timestamp", ts(), false),
            f("payload", DataType::Utf8, false),
        ]))
    })
    .clone()
}

pub fn schema_of(kind: RawKind) -> SchemaRef {
    match kind {
        RawKind::Sales => sales_schema(),
        RawKind::Inventory => inventory_schema(),
        RawKind::Events => events_schema(),
    }
}

#[derive(Serialize)]
struct EventRow<'a> {
    event_type: &'static str,
    schema_version: u32,
    event_id: &'a str,
    store_id: &'a str,
    product_id: Option<&'a str>,
    timestamp: chrono::DateTime<chrono::Utc>,
    payload: String,
}

/// Events of one kind → one record batch of that kind's schema.
pub fn events_to_batch(kind: RawKind, events: &[&Event]) -> Result<RecordBatch, String> {
    let schema = schema_of(kind);
    match kind {
        RawKind::Sales => {
            let rows: Vec<&SaleTransaction> = events.iter().filter_map(|e| if let Event::Sale(s) = e { Some(s) } else { None }).collect();
            sales_to_batch(schema, &rows)
        }
        RawKind::Inventory => {
            let rows: Vec<&InventoryUpdate> = events.iter().filter_map(|e| if let Event::Inventory(s) = e { Some(s) } else { None }).collect();
            inventory_to_batch(schema, &rows)
        }
        RawKind::Events => {
            let rows: Vec<EventRow> = events
                .iter()
                .filter(|e| RawKind::of(e) == RawKind::Events)
                .map(|e| EventRow {
                    event_type: e.event_type().as_str(),
                    schema_version: retail_core::SCHEMA_VERSION,
                    event_id: e.event_id(),
                    store_id: e.store_id(),
                    product_id: match e {
                        Event::Price(p) => Some(p.product_id.as_str()),
                        Event::Alert(a) => Some(a.product_id.as_str()),
                        _ => None,
                    },
                    timestamp: e.timestamp(),
                    payload: String::from_utf8(e.to_json()).expect("serde_json emits UTF-8"),
                })
                .collect();
            rows_to_batch(schema, &rows)
        }
    }
}

// Sales and inventory updates are most of the lake's rows, so they are built with Arrow builders
// directly instead of through serde + arrow-json (which formats each timestamp as text and
// parses it back). Same batch either way; the tests check it against the serde path.

fn strings(n: usize) -> StringBuilder {
    StringBuilder::with_capacity(n, n * 16)
}

/// A builder for a column of ids, sized from the first row's: ids of one source have one
/// length (UUIDs: 36), and growing a builder of megabytes by doubling copies it each time.
fn ids(n: usize, first: Option<&str>) -> StringBuilder {
    StringBuilder::with_capacity(n, n * first.map_or(16, |s| s.len() + 1))
}

/// Microseconds since the epoch (what arrow-json makes of the RFC 3339 text), in the column's
/// timezone.
fn micros(schema: &SchemaRef, column: usize, values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_data_type(schema.field(column).data_type().clone()))
}

fn sales_to_batch(schema: SchemaRef, rows: &[&SaleTransaction]) -> Result<RecordBatch, String> {
    let mut b = RawSales::with_capacity(rows.len(), rows.first().map(|r| r.transaction_id.as_str()));
    for r in rows {
        b.push(r);
    }
    debug_assert_eq!(schema, b.schema);
    b.finish()
}

fn inventory_to_batch(schema: SchemaRef, rows: &[&InventoryUpdate]) -> Result<RecordBatch, String> {
    let mut b = RawInventory::with_capacity(rows.len(), rows.first().map(|r| r.inventory_id.as_str()));
    for r in rows {
        b.push(r);
    }
    debug_assert_eq!(schema, b.schema);
    b.finish()
}

fn renew_strings(b: &mut StringBuilder) -> ArrayRef {
    Arc::new(crate::builders::renew_strings(b))
}

fn renew_micros(schema: &SchemaRef, column: usize, v: &mut Vec<i64>) -> ArrayRef {
    micros(schema, column, crate::builders::renew_vec(v))
}

fn renew<T: ArrowPrimitiveType>(b: &mut PrimitiveBuilder<T>) -> ArrayRef {
    Arc::new(crate::builders::renew_primitive(b))
}

/// `raw-data/sales` rows appended one sale at a time: what the lake writes, and what the stream
/// processor fills as it accepts sales (the warehouse's `fact_sales` shares these columns'
/// buffers instead of copying the strings again).
pub struct RawSales {
    schema: SchemaRef,
    event_type: StringBuilder,
    schema_version: UInt32Builder,
    transaction_id: StringBuilder,
    basket_id: StringBuilder,
    store_id: StringBuilder,
    product_id: StringBuilder,
    quantity: Int32Builder,
    unit_price: Float64Builder,
    list_price: Float64Builder,
    discount_pct: Float64Builder,
    promotion_id: StringBuilder,
    timestamp: Vec<i64>,
    customer_id: StringBuilder,
    payment_method: StringBuilder,
}

impl Default for RawSales {
    fn default() -> Self {
        RawSales::with_capacity(0, None)
    }
}

impl RawSales {
    /// Room for `n` sales whose ids are about as long as `first_id`.
    pub fn with_capacity(n: usize, first_id: Option<&str>) -> RawSales {
        RawSales {
            schema: sales_schema(),
            event_type: strings(n),
            schema_version: UInt32Builder::with_capacity(n),
            transaction_id: ids(n, first_id),
            basket_id: ids(n, first_id),
            store_id: strings(n),
            product_id: strings(n),
            quantity: Int32Builder::with_capacity(n),
            unit_price: Float64Builder::with_capacity(n),
            list_price: Float64Builder::with_capacity(n),
            discount_pct: Float64Builder::with_capacity(n),
            promotion_id: strings(n),
            timestamp: Vec::with_capacity(n),
            customer_id: strings(n),
            payment_method: strings(n),
        }
    }

    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamp.is_empty()
    }

    pub fn push<S: std::ops::Deref<Target = str>>(&mut self, r: &SaleTransaction<S>) {
        self.event_type.append_value(r.event_type.as_str());
        self.schema_version.append_value(r.schema_version);
        self.transaction_id.append_value(&*r.transaction_id);
        self.basket_id.append_value(&*r.basket_id);
        self.store_id.append_value(&*r.store_id);
        self.product_id.append_value(&*r.product_id);
        self.quantity.append_value(r.quantity);
        self.unit_price.append_value(r.unit_price);
        self.list_price.append_value(r.list_price);
        self.discount_pct.append_value(r.discount_pct);
        self.promotion_id.append_option(r.promotion_id.as_deref());
        self.timestamp.push(r.timestamp.timestamp_micros());
        self.customer_id.append_option(r.customer_id.as_deref());
        self.payment_method.append_value(r.payment_method.as_str());
    }

    /// The rows so far as one batch of the raw sales schema; the builder starts over, sized
    /// for as many rows again.
    pub fn finish(&mut self) -> Result<RecordBatch, String> {
        let columns: Vec<ArrayRef> = vec![
            renew_strings(&mut self.event_type),
            renew(&mut self.schema_version),
            renew_strings(&mut self.transaction_id),
            renew_strings(&mut self.basket_id),
            renew_strings(&mut self.store_id),
            renew_strings(&mut self.product_id),
            renew(&mut self.quantity),
            renew(&mut self.unit_price),
            renew(&mut self.list_price),
            renew(&mut self.discount_pct),
            renew_strings(&mut self.promotion_id),
            renew_micros(&self.schema, 11, &mut self.timestamp),
            renew_strings(&mut self.customer_id),
            renew_strings(&mut self.payment_method),
        ];
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }
}

/// `raw-data/inventory` rows appended one update at a time (see [`RawSales`]).
pub struct RawInventory {
    schema: SchemaRef,
    event_type: StringBuilder,
    schema_version: UInt32Builder,
    inventory_id: StringBuilder,
    store_id: StringBuilder,
    product_id: StringBuilder,
    quantity_change: Int32Builder,
    previous_quantity: Int32Builder,
    new_quantity: Int32Builder,
    reason: StringBuilder,
    reference_id: StringBuilder,
    timestamp: Vec<i64>,
}

impl Default for RawInventory {
    fn default() -> Self {
        RawInventory::with_capacity(0, None)
    }
}

impl RawInventory {
    /// Room for `n` updates whose ids are about as long as `first_id`.
    pub fn with_capacity(n: usize, first_id: Option<&str>) -> RawInventory {
        RawInventory {
            schema: inventory_schema(),
            event_type: strings(n),
            schema_version: UInt32Builder::with_capacity(n),
            inventory_id: ids(n, first_id),
            store_id: strings(n),
            product_id: strings(n),
            quantity_change: Int32Builder::with_capacity(n),
            previous_quantity: Int32Builder::with_capacity(n),
            new_quantity: Int32Builder::with_capacity(n),
            reason: strings(n),
            reference_id: strings(n),
            timestamp: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.timestamp.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamp.is_empty()
    }

    pub fn push<S: std::ops::Deref<Target = str>>(&mut self, r: &InventoryUpdate<S>) {
        self.event_type.append_value(r.event_type.as_str());
        self.schema_version.append_value(r.schema_version);
        self.inventory_id.append_value(&*r.inventory_id);
        self.store_id.append_value(&*r.store_id);
        self.product_id.append_value(&*r.product_id);
        self.quantity_change.append_value(r.quantity_change);
        self.previous_quantity.append_value(r.previous_quantity);
        self.new_quantity.append_value(r.new_quantity);
        self.reason.append_value(r.reason.as_str());
        self.reference_id.append_option(r.reference_id.as_deref());
        self.timestamp.push(r.timestamp.timestamp_micros());
    }

    /// The rows so far as one batch of the raw inventory schema; the builder starts over.
    pub fn finish(&mut self) -> Result<RecordBatch, String> {
        let columns: Vec<ArrayRef> = vec![
            renew_strings(&mut self.event_type),
            renew(&mut self.schema_version),
            renew_strings(&mut self.inventory_id),
            renew_strings(&mut self.store_id),
            renew_strings(&mut self.product_id),
            renew(&mut self.quantity_change),
            renew(&mut self.previous_quantity),
            renew(&mut self.new_quantity),
            renew_strings(&mut self.reason),
            renew_strings(&mut self.reference_id),
            renew_micros(&self.schema, 10, &mut self.timestamp),
        ];
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|e| e.to_string())
    }
}

/// Rows of raw batches by the UTC day of their `timestamp` (the lake's folder): a batch within
/// one day as it is, one that spans days split by a filter.
fn split_by_day(batches: &[RecordBatch]) -> Result<BTreeMap<NaiveDate, Vec<RecordBatch>>, String> {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let mut by_day: BTreeMap<NaiveDate, Vec<RecordBatch>> = BTreeMap::new();
    let date = |day: i64| NaiveDate::from_num_days_from_ce_opt((day + 719_163) as i32).ok_or_else(|| format!("day {day} out of range"));
    for b in batches.iter().filter(|b| b.num_rows() > 0) {
        let ts = b
            .column_by_name("timestamp")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or("a raw batch without a microsecond `timestamp` column")?;
        let days: Vec<i64> = ts.values().iter().map(|us| us.div_euclid(MICROS_PER_DAY)).collect();
        if days.iter().all(|d| *d == days[0]) {
            by_day.entry(date(days[0])?).or_default().push(b.clone());
            continue;
        }
        let mut distinct = days.clone();
        distinct.sort_unstable();
        distinct.dedup();
        for d in distinct {
            let mask = BooleanArray::from(days.iter().map(|x| *x == d).collect::<Vec<bool>>());
            by_day.entry(date(d)?).or_default().push(filter_record_batch(b, &mask).map_err(|e| e.to_string())?);
        }
    }
    Ok(by_day)
}

/// Record batches of one kind → typed events.
pub fn batches_to_events(kind: RawKind, batches: &[RecordBatch]) -> Result<Vec<Event>, String> {
    let rows = batches_to_json_rows(batches)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let ev = match kind {
            RawKind::Sales => Event::Sale(serde_json::from_value(row).map_err(|e| e.to_string())?),
            RawKind::Inventory => Event::Inventory(serde_json::from_value(row).map_err(|e| e.to_string())?),
            RawKind::Events => {
                let payload = row.get("payload").and_then(|p| p.as_str()).ok_or("event row without payload")?;
                let ty = row.get("event_type").and_then(|p| p.as_str()).unwrap_or_default();
                let bad = |e: serde_json::Error| format!("{ty} payload: {e}");
                match ty {
                    "price_change" => Event::Price(serde_json::from_str::<PriceChange>(payload).map_err(bad)?),
                    "customer_event" => Event::Customer(serde_json::from_str::<CustomerEvent>(payload).map_err(bad)?),
                    "restock_alert" => Event::Alert(serde_json::from_str::<RestockAlert>(payload).map_err(bad)?),
                    other => return Err(format!("unexpected event_type `{other}` in raw-data/events")),
                }
            }
        };
        out.push(ev);
    }
    Ok(out)
}

/// What [`Lake::compact`] did for one day.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CompactionReport {
    pub files_before: usize,
    pub files_after: usize,
    pub rows_before: usize,
    pub rows_after: usize,
}

fn dedup(events: Vec<Event>) -> Vec<Event> {
    let mut seen = HashSet::with_capacity(events.len());
    events.into_iter().filter(|e| seen.insert(e.event_id().to_string())).collect()
}

impl Lake {
    /// Write one batch of valid events as Parquet under `raw-data/<kind>/year=/month=/day=/`,
    /// one file per kind and day: `part-<batch_id>.parquet`. Atomic per file; idempotent by
    /// `batch_id` (the same id always maps to the same object names, which are overwritten).
    pub async fn write_raw<'a>(&self, batch_id: &str, events: impl IntoIterator<Item = &'a Event>) -> Result<(), LakeError> {
        let name = safe_batch_id(batch_id);
        let mut groups: BTreeMap<(RawKind, NaiveDate), Vec<&Event>> = BTreeMap::new();
        for e in events {
            groups.entry((RawKind::of(e), e.timestamp().date_naive())).or_default().push(e);
        }
        let mut writes = Vec::with_capacity(groups.len());
        for ((kind, day), evs) in groups {
            let key = format!("{}part-{name}.parquet", raw_day_prefix(kind, day));
            let batch = events_to_batch(kind, &evs).map_err(|detail| LakeError::Format { key: key.clone(), detail })?;
            writes.push(async move { self.write_parquet(&key, &[batch]).await });
        }
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    /// `write_raw` for rows already in Arrow form (batches of `kind`'s raw schema, in order):
    /// one file per day, `part-<batch_id>.parquet`, the same objects `write_raw` would write for
    /// those events.
    pub async fn write_raw_batches(&self, batch_id: &str, kind: RawKind, batches: &[RecordBatch]) -> Result<(), LakeError> {
        let name = safe_batch_id(batch_id);
        let by_day = split_by_day(batches).map_err(|detail| LakeError::Format { key: format!("raw-data/{}/…/part-{name}.parquet", kind.dir()), detail })?;
        let writes = by_day.into_iter().map(|(day, batches)| {
            let key = format!("{}part-{name}.parquet", raw_day_prefix(kind, day));
            async move { self.write_parquet(&key, &batches).await }
        });
        futures::future::try_join_all(writes).await?;
        Ok(())
    }

    /// The record batches of one kind and day, as stored (duplicates across files not removed).
    pub async fn read_raw_batches(&self, kind: RawKind, day: NaiveDate) -> Result<Vec<RecordBatch>, LakeError> {
        let files = self.read_parquet_prefix(&raw_day_prefix(kind, day)).await?;
        Ok(files.into_iter().flat_map(|(_, b)| b).collect())
    }

    /// The events of one kind and day, each event id once (replays and pre-compaction
    /// leftovers are dropped), in file order.
    pub async fn read_raw(&self, kind: RawKind, day: NaiveDate) -> Result<Vec<Event>, LakeError> {
        let prefix = raw_day_prefix(kind, day);
        let batches = self.read_raw_batches(kind, day).await?;
        let events = batches_to_events(kind, &batches).map_err(|detail| LakeError::Format { key: prefix, detail })?;
        Ok(dedup(events))
    }

    /// The days that hold raw data of a kind, ascending.
    pub async fn raw_days(&self, kind: RawKind) -> Result<Vec<NaiveDate>, LakeError> {
        let mut days: Vec<NaiveDate> =
            self.list(&format!("raw-data/{}/", kind.dir())).await?.iter().filter(|o| o.key.ends_with(".parquet")).filter_map(|o| day_of_key(&o.key)).collect();
        days.dedup();
        days.sort();
        days.dedup();
        Ok(days)
    }

    /// Merge one day's small files (of every kind) into one file per kind, dropping duplicate
    /// event ids and sorting by time. Safe to run while writers add files (files listed before
    /// the merge are the only ones deleted) and safe to crash: the merged file is written before
    /// any input is deleted, and readers drop the duplicates a crash in between leaves.
    pub async fn compact(&self, day: NaiveDate) -> Result<CompactionReport, LakeError> {
        let mut report = CompactionReport::default();
        for kind in RawKind::ALL {
            let prefix = raw_day_prefix(kind, day);
            let inputs: Vec<String> = self.list(&prefix).await?.into_iter().map(|o| o.key).filter(|k| k.ends_with(".parquet")).collect();
            report.files_before += inputs.len();
            if inputs.len() <= 1 {
                // Nothing to merge; count what is there so the report adds up.
                report.files_after += inputs.len();
                for k in &inputs {
                    let n: usize = self.read_parquet(k).await?.unwrap_or_default().iter().map(|b| b.num_rows()).sum();
                    report.rows_before += n;
                    report.rows_after += n;
                }
                continue;
            }
            let mut all = Vec::new();
            for k in &inputs {
                if let Some(b) = self.read_parquet(k).await? {
                    all.extend(b);
                }
            }
            let events = batches_to_events(kind, &all).map_err(|detail| LakeError::Format { key: prefix.clone(), detail })?;
            report.rows_before += events.len();
            let mut events = dedup(events);
            events.sort_by(|a, b| a.timestamp().cmp(&b.timestamp()).then_with(|| a.event_id().cmp(b.event_id())));
            report.rows_after += events.len();
            // Named after its content: compacting the same set twice yields the same object.
            let mut ids = Vec::with_capacity(events.len() * 37);
            for e in &events {
                ids.extend_from_slice(e.event_id().as_bytes());
                ids.push(0);
            }
            let out_key = format!("{prefix}compacted-{:016x}.parquet", fnv1a(&ids));
            let refs: Vec<&Event> = events.iter().collect();
            let batch = events_to_batch(kind, &refs).map_err(|detail| LakeError::Format { key: out_key.clone(), detail })?;
            self.write_parquet(&out_key, &[batch]).await?;
            for k in inputs.iter().filter(|k| **k != out_key) {
                self.delete(k).await?;
            }
            report.files_after += 1;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use retail_core::{EventType, InventoryReason, PaymentMethod, SCHEMA_VERSION};

    const PAYMENTS: [PaymentMethod; 5] =
        [PaymentMethod::CreditCard, PaymentMethod::DebitCard, PaymentMethod::Cash, PaymentMethod::Mobile, PaymentMethod::GiftCard];
    const REASONS: [InventoryReason; 7] = [
        InventoryReason::Sale,
        InventoryReason::Restock,
        InventoryReason::Return,
        InventoryReason::Damage,
        InventoryReason::Theft,
        InventoryReason::CountCorrection,
        InventoryReason::Transfer,
    ];
    const NAMES: &[&str] = &["store_001", "", "SKU-ümlaut-€", "quote\"back\\slash\nnewline", "store_1000"];

    fn serde_name<T: Serialize>(v: T) -> String {
        serde_json::to_value(v).unwrap().as_str().unwrap().to_string()
    }

    #[test]
    fn enum_names_are_the_serde_names() {
        for m in PAYMENTS {
            assert_eq!(m.as_str(), serde_name(m));
        }
        for r in REASONS {
            assert_eq!(r.as_str(), serde_name(r));
        }
        for t in EventType::ALL {
            assert_eq!(t.as_str(), serde_name(t));
        }
    }

    /// Timestamps with sub-microsecond parts (truncated), before and after the epoch.
    fn times() -> Vec<DateTime<Utc>> {
        vec![
            Utc.with_ymd_and_hms(2025, 1, 15, 10, 30, 0).unwrap() + chrono::Duration::microseconds(123_456),
            Utc.with_ymd_and_hms(2025, 3, 30, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(999_999_999),
            Utc.with_ymd_and_hms(1969, 12, 31, 23, 59, 59).unwrap() + chrono::Duration::nanoseconds(500_000_001),
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2031, 7, 4, 12, 0, 0).unwrap() + chrono::Duration::nanoseconds(1_999),
        ]
    }

    fn events() -> Vec<Event> {
        let times = times();
        let mut out = Vec::new();
        for i in 0..50usize {
            let t = times[i % times.len()];
            out.push(Event::Sale(SaleTransaction {
                event_type: if i == 7 { EventType::InventoryUpdate } else { EventType::Sale },
                schema_version: if i == 9 { u32::MAX } else { SCHEMA_VERSION },
                transaction_id: format!("t-{i}"),
                basket_id: format!("b-{}", i / 3),
                store_id: NAMES[i % NAMES.len()].to_string(),
                product_id: NAMES[(i + 1) % NAMES.len()].to_string(),
                quantity: [1, 3, -2, 0, i32::MAX, i32::MIN][i % 6],
                unit_price: [29.99, 59.979999, -1.5, 0.1 + 0.2, 1e300, f64::MIN_POSITIVE, -0.0][i % 7],
                list_price: [34.99, 59.98, 0.0, 1.0 / 3.0][i % 4],
                discount_pct: [0.0, 0.1428, 1.0 / 3.0, -0.0, 1.0][i % 5],
                promotion_id: if i % 2 == 0 { Some(format!("promo-{i}")) } else { None },
                timestamp: t,
                customer_id: if i % 3 == 0 { None } else { Some(format!("cust_{i}")) },
                payment_method: PAYMENTS[i % PAYMENTS.len()],
            }));
            out.push(Event::Inventory(InventoryUpdate {
                event_type: if i == 8 { EventType::Sale } else { EventType::InventoryUpdate },
                schema_version: SCHEMA_VERSION,
                inventory_id: format!("i-{i}"),
                store_id: NAMES[(i + 2) % NAMES.len()].to_string(),
                product_id: NAMES[i % NAMES.len()].to_string(),
                quantity_change: [-2, 120, 0, -1, i32::MIN, i32::MAX][i % 6],
                previous_quantity: [50, 0, -3, 7][i % 4],
                new_quantity: [48, 120, -4, 0, 9][i % 5],
                reason: REASONS[i % REASONS.len()],
                reference_id: if i % 4 == 1 { None } else { Some(format!("t-{i}")) },
                timestamp: t,
            }));
            if i % 10 == 0 {
                out.push(Event::Price(PriceChange {
                    event_type: EventType::PriceChange,
                    schema_version: SCHEMA_VERSION,
                    price_change_id: format!("p-{i}"),
                    store_id: "store_003".into(),
                    product_id: "SKU9".into(),
                    old_price: 10.0,
                    new_price: 8.5,
                    reason: retail_core::PriceChangeReason::Promotion,
                    promotion_id: None,
                    timestamp: t,
                }));
            }
        }
        out
    }

    #[test]
    fn sales_batch_equals_serde_path() {
        let events = events();
        let refs: Vec<&Event> = events.iter().collect();
        let rows: Vec<&SaleTransaction> = events.iter().filter_map(|e| if let Event::Sale(s) = e { Some(s) } else { None }).collect();
        let batch = events_to_batch(RawKind::Sales, &refs).unwrap();
        assert_eq!(batch, rows_to_batch(sales_schema(), &rows).unwrap());
        assert_eq!(batch.num_rows(), 50);
        assert_eq!(events_to_batch(RawKind::Sales, &[]).unwrap(), rows_to_batch::<&SaleTransaction>(sales_schema(), &[]).unwrap());
        assert_eq!(batch.column(10).null_count(), rows.iter().filter(|r| r.promotion_id.is_none()).count());
        assert_eq!(batch.column(12).null_count(), rows.iter().filter(|r| r.customer_id.is_none()).count());
    }

    #[test]
    fn inventory_batch_equals_serde_path() {
        let events = events();
        let refs: Vec<&Event> = events.iter().collect();
        let rows: Vec<&InventoryUpdate> = events.iter().filter_map(|e| if let Event::Inventory(s) = e { Some(s) } else { None }).collect();
        let batch = events_to_batch(RawKind::Inventory, &refs).unwrap();
        assert_eq!(batch, rows_to_batch(inventory_schema(), &rows).unwrap());
        assert_eq!(batch.num_rows(), 50);
        assert_eq!(batch.column(9).null_count(), rows.iter().filter(|r| r.reference_id.is_none()).count());
        assert_eq!(events_to_batch(RawKind::Inventory, &[]).unwrap(), rows_to_batch::<&InventoryUpdate>(inventory_schema(), &[]).unwrap());
    }
}
