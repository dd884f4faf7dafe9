//! Raw events as Parquet: schemas that follow the event contracts, batch writes, reads, compaction.

use crate::layout::{day_of_key, fnv1a, raw_day_prefix, safe_batch_id, RawKind};
use crate::parquet_io::{batches_to_json_rows, rows_to_batch};
use crate::{Lake, LakeError};
use chrono::NaiveDate;
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
            let rows: Vec<&SaleTransaction> = events
                .iter()
                .filter_map(|e| if let Event::Sale(s) = e { Some(s) } else { None })
                .collect();
            rows_to_batch(schema, &rows)
        }
        RawKind::Inventory => {
            let rows: Vec<&InventoryUpdate> = events
                .iter()
                .filter_map(|e| if let Event::Inventory(s) = e { Some(s) } else { None })
                .collect();
            rows_to_batch(schema, &rows)
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
    pub async fn write_raw(&self, batch_id: &str, events: &[Event]) -> Result<(), LakeError> {
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
        let mut days: Vec<NaiveDate> = self
            .list(&format!("raw-data/{}/", kind.dir()))
            .await?
            .iter()
            .filter(|o| o.key.ends_with(".parquet"))
            .filter_map(|o| day_of_key(&o.key))
            .collect();
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
            let inputs: Vec<String> = self
                .list(&prefix)
                .await?
                .into_iter()
                .map(|o| o.key)
                .filter(|k| k.ends_with(".parquet"))
                .collect();
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
