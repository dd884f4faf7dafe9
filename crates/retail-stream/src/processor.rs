//! The processor core: a deterministic state machine with no I/O.
//!
//! `process` applies one bus record; `flush` emits what changed (dirty windows and stock rows)
//! and closes windows behind the watermark. Every decision depends only on the partition's
//! state and its records in offset order — never on the wall clock or on how records of
//! different partitions interleave — so a replay from a checkpoint reproduces the same rows
//! with the same keys, which is what makes the sinks' idempotent writes exactly-once.

use crate::config::{index_catalog, Catalog, ProcessorConfig, ProductInfo};
use crate::model::{self, round2, Interner};
use crate::state::{DirtyStock, PartSnapshot, PartState, StockState, NEVER};
use crate::validate::{self, TopicKind};
use chrono::{DateTime, Utc};
use retail_bus::{Message, TopicPartition};
use retail_core::{
    stable_event_id, AlertStatus, AnomalyFlag, AnomalyKind, DeadLetter, Event, EventType, InventoryReason, InventoryUpdate, RestockAlert, SaleTransaction,
    Severity, Str, SCHEMA_VERSION,
};
use retail_warehouse::{RecordBatch, SalesWindows, StockLevels, StockRow, WarehouseError, WindowRow};
use std::collections::{BTreeMap, HashMap};

/// Counts of what a batch did, for metrics and the live dashboard.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    pub valid: u64,
    pub invalid: u64,
    pub duplicates: u64,
    /// Accepted although their event time is further behind the watermark than the dedup
    /// horizon: the ids of that time are forgotten, so a re-send would not be caught here
    /// (the warehouse's id-keyed facts and the lake's readers still drop it).
    pub beyond_dedup_horizon: u64,
    pub late: u64,
    /// Records below the partition's checkpointed offset (already applied), skipped.
    pub replayed: u64,
    pub unknown_products: u64,
    pub alerts_suppressed: u64,
    /// Inventory updates older than the one the stock level already came from (out of order):
    /// kept as facts and in velocity, but the newer count stands.
    pub stale_inventory: u64,
}

/// Accepted events of one kind as the lake's raw columns, plus what their `fact_*` rows add
/// and each row's bus partition. Built once per event: the lake writes the raw batch (sliced
/// per partition) and the warehouse's facts share its arrays (`retail_warehouse::*_from_raw`).
#[derive(Default)]
pub struct AcceptedRows<B, X> {
    pub raw: B,
    /// Per row: sales [revenue, cost, profit]; inventory [reorder point, safety stock].
    pub extra: Vec<X>,
    pub partitions: Vec<i32>,
}

pub type SaleRows = AcceptedRows<retail_lake::RawSales, [f64; 3]>;
pub type InventoryRows = AcceptedRows<retail_lake::RawInventory, [i32; 2]>;

/// One chunk's accepted rows of a kind, finished: the raw batch, each row's fact extras and
/// bus partition.
pub struct FinishedRows<X> {
    pub raw: RecordBatch,
    pub extra: Vec<X>,
    pub partitions: Vec<i32>,
}

impl<B, X> std::fmt::Debug for AcceptedRows<B, X> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceptedRows").field("rows", &self.len()).finish()
    }
}

impl<B, X> AcceptedRows<B, X> {
    pub fn len(&self) -> usize {
        self.partitions.len()
    }
    pub fn is_empty(&self) -> bool {
        self.partitions.is_empty()
    }
}

/// The lake's raw row builders, as `AcceptedRows` finishes them.
pub trait RawRows {
    fn finish_batch(&mut self) -> Result<RecordBatch, String>;
}

impl RawRows for retail_lake::RawSales {
    fn finish_batch(&mut self) -> Result<RecordBatch, String> {
        self.finish()
    }
}

impl RawRows for retail_lake::RawInventory {
    fn finish_batch(&mut self) -> Result<RecordBatch, String> {
        self.finish()
    }
}

impl<B: RawRows, X> AcceptedRows<B, X> {
    /// The rows so far; empty afterwards (the builders keep room for as many again).
    pub fn finish(&mut self) -> Result<FinishedRows<X>, WarehouseError> {
        let n = self.len();
        let raw = self.raw.finish_batch().map_err(WarehouseError::Other)?;
        Ok(FinishedRows {
            raw,
            extra: std::mem::replace(&mut self.extra, Vec::with_capacity(n)),
            partitions: std::mem::replace(&mut self.partitions, Vec::with_capacity(n)),
        })
    }
}

impl SaleRows {
    fn push<S: std::ops::Deref<Target = str>>(&mut self, partition: i32, s: &SaleTransaction<S>, money: [f64; 3]) {
        self.raw.push(s);
        self.extra.push(money);
        self.partitions.push(partition);
    }

    /// The rows so far as `fact_sales` rows.
    pub fn finish_facts(&mut self) -> Result<RecordBatch, WarehouseError> {
        self.finish()?.facts()
    }
}

impl InventoryRows {
    fn push<S: std::ops::Deref<Target = str>>(&mut self, partition: i32, i: &InventoryUpdate<S>, levels: [i32; 2]) {
        self.raw.push(i);
        self.extra.push(levels);
        self.partitions.push(partition);
    }

    /// The rows so far as `fact_inventory` rows.
    pub fn finish_facts(&mut self) -> Result<RecordBatch, WarehouseError> {
        self.finish()?.facts()
    }
}

impl FinishedRows<[f64; 3]> {
    pub fn facts(&self) -> Result<RecordBatch, WarehouseError> {
        retail_warehouse::sales_facts_from_raw(&self.raw, &self.extra)
    }
}

impl FinishedRows<[i32; 2]> {
    pub fn facts(&self) -> Result<RecordBatch, WarehouseError> {
        retail_warehouse::inventory_facts_from_raw(&self.raw, &self.extra)
    }
}

impl<X> FinishedRows<X> {
    /// Each partition's rows as slices of the raw batch (no copy), in row order: a chunk holds
    /// a run of records per partition (a poll reads partition by partition), so usually one.
    pub fn raw_by_partition(&self) -> Vec<(i32, RecordBatch)> {
        let mut out: Vec<(i32, RecordBatch)> = Vec::new();
        let mut start = 0;
        while start < self.partitions.len() {
            let p = self.partitions[start];
            let len = self.partitions[start..].iter().take_while(|&&q| q == p).count();
            out.push((p, self.raw.slice(start, len)));
            start += len;
        }
        out
    }
}

/// Everything the processor produced since the outputs were last drained.
#[derive(Debug, Default)]
pub struct Outputs {
    /// Accepted sales and inventory updates: the lake's raw rows and the `fact_sales` /
    /// `fact_inventory` rows over them, built as Arrow columns straight from the events.
    pub sales: SaleRows,
    pub inventory: InventoryRows,
    /// `rt_sales_5min` and `rt_stock` rows, as Arrow columns.
    pub windows: SalesWindows,
    pub stock: StockLevels,
    pub alerts: Vec<RestockAlert>,
    pub anomalies: Vec<AnomalyFlag>,
    pub dead_letters: Vec<DeadLetter>,
    pub stats: BatchStats,
}

impl Outputs {
    pub fn clear(&mut self) {
        // Normally already drained into batches. Otherwise the rows are dropped the same way,
        // which keeps the builders' capacity for the next chunk (like `Vec::clear`).
        if !self.sales.is_empty() {
            let _ = self.sales.finish();
        }
        if !self.inventory.is_empty() {
            let _ = self.inventory.finish();
        }
        if !self.windows.is_empty() {
            let _ = self.windows.finish();
        }
        if !self.stock.is_empty() {
            let _ = self.stock.finish();
        }
        self.alerts.clear();
        self.anomalies.clear();
        self.dead_letters.clear();
        self.stats = BatchStats::default();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("topic `{0}` is not an input of the processor")]
    UnknownTopic(String),
    #[error("checkpoint for {topic}/{partition} does not match (format {format}, holds {held_topic}/{held_partition})")]
    Mismatch { topic: String, partition: i32, format: u32, held_topic: String, held_partition: i32 },
    #[error("checkpoint for {topic}/{partition} is damaged: {reason}")]
    Damaged { topic: String, partition: i32, reason: String },
    #[error("snapshot of {topic}/{partition} failed: {reason}")]
    Snapshot { topic: String, partition: i32, reason: String },
}

pub struct Processor {
    cfg: ProcessorConfig,
    catalog: HashMap<Box<str>, ProductInfo>,
    /// Catalog lookups by interned name id (ids are dense): `None` = not looked up yet.
    product_info: Vec<Option<Option<ProductInfo>>>,
    names: Interner,
    parts: BTreeMap<(TopicKind, i32), PartState>,
}

fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

fn severity_from(n: u8) -> Severity {
    match n {
        0 => Severity::Low,
        1 => Severity::Medium,
        2 => Severity::High,
        _ => Severity::Critical,
    }
}

pub fn dead_letter(msg: &Message, reasons: Vec<String>) -> DeadLetter {
    let (original, original_encoding) = match std::str::from_utf8(&msg.payload) {
        Ok(s) => (s.to_string(), "utf8"),
        Err(_) => (msg.payload.iter().map(|b| format!("{b:02x}")).collect(), "hex"),
    };
    DeadLetter {
        source_topic: msg.topic.to_string(),
        source_partition: msg.partition,
        source_offset: msg.offset,
        original,
        original_encoding: original_encoding.to_string(),
        reasons,
        received_at: ms_to_time(msg.timestamp_ms),
    }
}

/// Derived stock figures of one store×SKU at one moment.
struct StockView {
    velocity: f64,
    days_of_cover: f64,
    risk: f64,
    reorder_point: i32,
    safety_stock: i32,
    lead_mean: f64,
}

impl Processor {
    pub fn new(cfg: ProcessorConfig, catalog: &Catalog) -> Processor {
        Processor { cfg, catalog: index_catalog(catalog), product_info: Vec::new(), names: Interner::default(), parts: BTreeMap::new() }
    }

    pub fn config(&self) -> &ProcessorConfig {
        &self.cfg
    }

    /// Take ownership of a partition, from its checkpoint when there is one. Returns the offset
    /// to resume reading at (None = no checkpoint: wherever the group's committed offset is).
    pub fn assign(&mut self, topic: &str, partition: i32, snapshot: Option<PartSnapshot>) -> Result<Option<i64>, StateError> {
        let kind = TopicKind::from_topic(topic).ok_or_else(|| StateError::UnknownTopic(topic.to_string()))?;
        let (state, resume) = match snapshot {
            Some(s) => {
                if model::IdHash::of_format(s.format).is_none() || s.topic != topic || s.partition != partition {
                    return Err(StateError::Mismatch { topic: topic.into(), partition, format: s.format, held_topic: s.topic, held_partition: s.partition });
                }
                let resume = s.next_offset;
                let state =
                    PartState::from_snapshot(kind, s, &mut self.names).map_err(|reason| StateError::Damaged { topic: topic.into(), partition, reason })?;
                (state, Some(resume))
            }
            None => (PartState::new(kind, partition), None),
        };
        self.parts.insert((kind, partition), state);
        Ok(resume)
    }

    /// Drop a partition's state (another process owns it now; it restores the checkpoint).
    pub fn revoke(&mut self, topic: &str, partition: i32) {
        if let Some(kind) = TopicKind::from_topic(topic) {
            self.parts.remove(&(kind, partition));
        }
    }

    pub fn owned(&self) -> Vec<TopicPartition> {
        self.parts.keys().map(|(k, p)| TopicPartition { topic: k.topic().to_string(), partition: *p }).collect()
    }

    /// The partition's state as stored: dedup buckets changed since the last snapshot with
    /// their ids, the others as references to the objects written for them before (see
    /// [`PartSnapshot::dedup_segments`]). The first snapshot of a partition holds every id.
    /// `None` for a partition it does not own.
    pub fn snapshot(&mut self, topic: &str, partition: i32) -> Result<Option<PartSnapshot>, StateError> {
        let Some(kind) = TopicKind::from_topic(topic) else { return Ok(None) };
        let names = &self.names;
        self.parts
            .get_mut(&(kind, partition))
            .map(|p| p.to_snapshot(names).map_err(|reason| StateError::Snapshot { topic: topic.into(), partition, reason }))
            .transpose()
    }

    /// `snapshot` of each of `partitions` it owns, taken side by side on up to `threads` threads
    /// (the partitions' states are independent), in the order asked.
    pub fn snapshots(&mut self, partitions: &[TopicPartition], threads: usize) -> Result<Vec<(TopicPartition, PartSnapshot)>, StateError> {
        let wanted: Vec<((TopicKind, i32), &TopicPartition)> =
            partitions.iter().filter_map(|tp| Some(((TopicKind::from_topic(&tp.topic)?, tp.partition), tp))).collect();
        let mut states: Vec<(&TopicPartition, &mut PartState)> = Vec::with_capacity(wanted.len());
        for (key, state) in self.parts.iter_mut() {
            if let Some((_, tp)) = wanted.iter().find(|(k, _)| k == key) {
                states.push((tp, state));
            }
        }
        let names = &self.names;
        let taken = validate::map_beside(states, threads, |(tp, state)| (tp.clone(), state.to_snapshot(names)));
        let mut snaps = taken
            .into_iter()
            .map(|(tp, snap)| snap.map(|s| (tp.clone(), s)).map_err(|reason| StateError::Snapshot { topic: tp.topic, partition: tp.partition, reason }))
            .collect::<Result<Vec<_>, _>>()?;
        snaps.sort_by_key(|(tp, _)| partitions.iter().position(|p| p == tp));
        Ok(snaps)
    }

    /// For each owned partition, the offset of the next record to read (what to commit).
    pub fn positions(&self) -> Vec<(TopicPartition, i64)> {
        self.parts.iter().map(|((k, p), s)| (TopicPartition { topic: k.topic().to_string(), partition: *p }, s.next_offset)).collect()
    }

    /// Open windows and tracked store×SKUs, for gauges.
    pub fn sizes(&self) -> (usize, usize) {
        let w = self.parts.values().map(|p| p.windows.values().map(|m| m.len()).sum::<usize>()).sum();
        let s = self.parts.values().map(|p| p.stock.len()).sum();
        (w, s)
    }

    /// Apply one record. Never panics on input: anything unusable becomes a dead letter.
    /// Returns whether its event belongs in the raw lake (see [`Processor::process_checked`]).
    pub fn process(&mut self, msg: &Message, out: &mut Outputs) -> bool {
        let verdict = validate::check(msg);
        self.process_checked(msg, &verdict, out)
    }

    /// Apply one record whose validation already ran ([`validate::check`], possibly on another
    /// thread: validation is pure, so where it runs changes nothing). Returns whether the
    /// record's event is valid and new — the raw lake's input; the caller keeps the events
    /// (the verdicts), so none is copied on its way to the lake.
    pub fn process_checked(&mut self, msg: &Message, verdict: &validate::Verdict, out: &mut Outputs) -> bool {
        let Some(kind) = TopicKind::from_topic(&msg.topic) else {
            out.stats.invalid += 1;
            out.dead_letters.push(dead_letter(msg, vec![format!("topic `{}` is not an input of the processor", msg.topic)]));
            return false;
        };
        let part = self.parts.entry((kind, msg.partition)).or_insert_with(|| PartState::new(kind, msg.partition));
        if msg.offset < part.next_offset {
            out.stats.replayed += 1;
            return false;
        }
        part.next_offset = msg.offset + 1;
        let event = match verdict {
            Some(Ok(e)) => e,
            Some(Err(reasons)) => {
                out.stats.invalid += 1;
                out.dead_letters.push(dead_letter(msg, reasons.clone()));
                return false;
            }
            // A caller's mistake (`validate::check` gives every input topic a verdict): validate
            // here rather than guess or panic.
            None => {
                part.next_offset = msg.offset;
                return self.process_checked(msg, &validate::check(msg), out);
            }
        };
        let ts = event.timestamp().timestamp_millis();
        // The watermark is computed *before* this event moves it: an event is late against what
        // the partition had already promised, not against itself.
        let watermark = part.watermark(self.cfg.max_out_of_orderness_ms);
        part.max_event_ms = part.max_event_ms.max(ts);

        // A sale's store, interned once for the stuck-POS check and the sale itself.
        let sale_store = if let Event::Sale(s) = event {
            let store = self.names.intern(&s.store_id);
            // Before dedup: a stuck POS re-sending one line is exactly a run of duplicates.
            Self::stuck_pos(&self.cfg, store, part, s, out);
            store
        } else {
            0
        };
        let bucket = ts.div_euclid(self.cfg.window_ms);
        let id = part.id_hash.hash(event.event_id().as_bytes());
        let first_time = match part.dedup.get_mut(&bucket) {
            Some(b) => {
                let new = b.ids.insert(id);
                if new {
                    b.segment = None;
                }
                new
            }
            None => {
                if watermark != NEVER && bucket < (watermark - self.cfg.dedup_horizon_ms).div_euclid(self.cfg.window_ms) {
                    out.stats.beyond_dedup_horizon += 1;
                }
                // A new bucket starts the size of the newest one: traffic changes slowly, and
                // growing a set of ten thousands of ids by doubling rehashes (and first-touches)
                // it each time.
                let hint = part.dedup.last_key_value().map_or(0, |(_, b)| b.ids.len());
                let mut ids = crate::state::IdSet::with_capacity_and_hasher(hint, Default::default());
                ids.insert(id);
                part.dedup.insert(bucket, crate::state::DedupBucket { ids, segment: None });
                true
            }
        };
        if !first_time {
            out.stats.duplicates += 1;
            return false;
        }
        out.stats.valid += 1;
        match event {
            Event::Sale(s) => self.on_sale(kind, msg, s, sale_store, ts, watermark, out),
            Event::Inventory(i) => self.on_inventory(kind, msg.partition, i, ts, out),
            Event::Price(p) => {
                let pid = self.names.intern(&p.product_id);
                if let Some(info) = self.info(pid) {
                    let ratio = p.new_price / info.list_price.max(0.01);
                    if !(0.2..=5.0).contains(&ratio) {
                        out.anomalies.push(anomaly(
                            AnomalyKind::PriceOutlier,
                            &p.store_id,
                            &p.product_id,
                            ratio,
                            format!("new price {} is {:.2}× the list price {}", p.new_price, ratio, info.list_price),
                            &p.price_change_id,
                            ts,
                        ));
                    }
                }
            }
            Event::Customer(_) | Event::Alert(_) => {}
        }
        true
    }

    fn info(&mut self, product: u32) -> Option<ProductInfo> {
        if let Some(Some(i)) = self.product_info.get(product as usize) {
            return *i;
        }
        let info = self.catalog.get(self.names.name(product)).copied();
        if self.product_info.len() <= product as usize {
            self.product_info.resize(product as usize + 1, None);
        }
        self.product_info[product as usize] = Some(info);
        info
    }

    fn stuck_pos(cfg: &ProcessorConfig, store: u32, part: &mut PartState, s: &SaleTransaction<Str<'_>>, out: &mut Outputs) {
        let mut sig = part.id_hash.hash(s.product_id.as_bytes());
        sig ^= (s.quantity as u64).rotate_left(17) ^ s.unit_price.to_bits().rotate_left(31);
        sig ^= part.id_hash.hash(s.customer_id.as_deref().unwrap_or("").as_bytes()).rotate_left(7);
        let run = part.pos.entry(store).or_default();
        if run.signature == sig {
            run.count = run.count.saturating_add(1);
        } else {
            run.signature = sig;
            run.count = 1;
        }
        if run.count == cfg.stuck_pos_repeats {
            out.anomalies.push(anomaly(
                AnomalyKind::StuckPos,
                &s.store_id,
                &s.product_id,
                run.count as f64,
                format!("{} identical sale lines in a row (quantity {}, price {})", run.count, s.quantity, s.unit_price),
                &s.transaction_id,
                s.timestamp.timestamp_millis(),
            ));
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_sale(&mut self, kind: TopicKind, msg: &Message, s: &SaleTransaction<Str<'_>>, store: u32, ts: i64, watermark: i64, out: &mut Outputs) {
        let product = self.names.intern(&s.product_id);
        let key = model::pack_key(store, product);
        let info = self.info(product);
        if info.is_none() {
            out.stats.unknown_products += 1;
        }
        let revenue = round2(s.quantity as f64 * s.unit_price);
        let cost = round2(s.quantity as f64 * info.map_or(0.0, |i| i.unit_cost));
        out.sales.push(msg.partition, s, [revenue, cost, round2(revenue - cost)]);

        let cfg = &self.cfg;
        let part = self.parts.get_mut(&(kind, msg.partition)).expect("partition entry created by process");
        let ws = ts.div_euclid(cfg.window_ms) * cfg.window_ms;
        if watermark != NEVER && ws + cfg.window_ms + cfg.allowed_lateness_ms <= watermark {
            out.stats.late += 1;
            out.dead_letters.push(dead_letter(
                msg,
                vec![format!(
                    "late_event: window starting {} closed (watermark {}, allowed lateness {} s); stored as a fact, not windowed",
                    ms_to_time(ws).to_rfc3339(),
                    ms_to_time(watermark).to_rfc3339(),
                    cfg.allowed_lateness_ms / 1000
                )],
            ));
        } else {
            // A new window starts the size of the newest one (as dedup buckets do): growing a
            // map of thousands of keys by doubling rehashes it each time.
            let newest = part.windows.last_key_value().map_or(0, |(_, m)| m.len());
            let window = part.windows.entry(ws).or_insert_with(|| crate::model::IdMap::with_capacity_and_hasher(newest, Default::default()));
            let agg = window.entry(key).or_default();
            agg.add(s.quantity, s.unit_price, s.customer_id.as_deref().map(|c| part.id_hash.hash(c.as_bytes())));
            PartState::window_changed(&mut part.dirty_windows, part.flush_epoch, ws, key, agg);
        }

        let qty = part.qty_norm.entry(product).or_default().score_then_update(s.quantity as f64, cfg.outlier_min_samples, 1.0);
        if let Some(z) = qty.filter(|z| *z > cfg.outlier_z) {
            out.anomalies.push(anomaly(
                AnomalyKind::QuantityOutlier,
                &s.store_id,
                &s.product_id,
                z,
                format!("quantity {} far from this SKU's normal", s.quantity),
                &s.transaction_id,
                ts,
            ));
        }
        let norm = part.price_norm.entry(product).or_default();
        // Until the SKU's own norm exists (slow movers take weeks to sell often enough), the
        // catalog's list price is the normal, as for price changes.
        let young = norm.n < cfg.outlier_min_samples;
        // Promotions move prices by tens of percent; only a deviation of many times 10 % counts.
        let floor = 0.1 * norm.mean.abs().max(0.01);
        if let Some(z) = norm.score_then_update(s.unit_price, cfg.outlier_min_samples, floor).filter(|z| *z > cfg.outlier_z) {
            out.anomalies.push(anomaly(
                AnomalyKind::PriceOutlier,
                &s.store_id,
                &s.product_id,
                z,
                format!("unit price {} far from this SKU's normal {:.2}", s.unit_price, norm.mean),
                &s.transaction_id,
                ts,
            ));
        } else if let Some(info) = info.filter(|_| young) {
            let ratio = s.list_price / info.list_price.max(0.01);
            if !(0.2..=5.0).contains(&ratio) {
                out.anomalies.push(anomaly(
                    AnomalyKind::PriceOutlier,
                    &s.store_id,
                    &s.product_id,
                    ratio,
                    format!("shelf price {} is {ratio:.2}× the catalog's {}", s.list_price, info.list_price),
                    &s.transaction_id,
                    ts,
                ));
            }
        }
    }

    fn on_inventory(&mut self, kind: TopicKind, partition: i32, i: &InventoryUpdate<Str<'_>>, ts: i64, out: &mut Outputs) {
        let product = self.names.intern(&i.product_id);
        let key = model::pack_key(self.names.intern(&i.store_id), product);
        let info = self.info(product);
        let cfg = &self.cfg;
        let part = self.parts.get_mut(&(kind, partition)).expect("partition entry created by process");
        let st = part.stock.entry(key).or_default();
        // An update older than the one the count came from (out of order across a producer's
        // retries, or a late batch from a store) describes a past level: the newer count
        // already includes its movement, so it must not overwrite the count, nor be checked
        // against it.
        let stale = st.known && ts < st.updated_ms;

        if st.known && !stale && i.previous_quantity != st.on_hand {
            out.anomalies.push(anomaly(
                AnomalyKind::StockMismatch,
                &i.store_id,
                &i.product_id,
                (i.previous_quantity - st.on_hand).abs() as f64,
                format!("update says previous stock {} but the stream's count is {}: a movement is missing or doubled", i.previous_quantity, st.on_hand),
                &i.inventory_id,
                ts,
            ));
        }
        if i.new_quantity < 0 {
            out.anomalies.push(anomaly(
                AnomalyKind::NegativeStock,
                &i.store_id,
                &i.product_id,
                -i.new_quantity as f64,
                format!("stock would be {}", i.new_quantity),
                &i.inventory_id,
                ts,
            ));
        }
        let drop = -i.quantity_change;
        let explained = matches!(i.reason, InventoryReason::Sale | InventoryReason::Transfer);
        let large_drop =
            !explained && drop >= cfg.unexplained_drop_min_units && drop as f64 >= cfg.unexplained_drop_fraction * i.previous_quantity.max(1) as f64;
        if large_drop {
            out.anomalies.push(anomaly(
                AnomalyKind::UnexplainedStockDrop,
                &i.store_id,
                &i.product_id,
                drop as f64 / i.previous_quantity.max(1) as f64,
                format!("stock fell by {drop} ({}) without sales", i.reason.as_str()),
                &i.inventory_id,
                ts,
            ));
        }

        st.roll_to(ts, cfg.velocity_alpha);
        if i.reason == InventoryReason::Sale {
            // Velocity comes from the stock movements that sales cause, so stock and its
            // depletion rate are one partition's state even when sales are consumed elsewhere.
            st.hour_units += drop as i64;
        }
        if stale {
            out.stats.stale_inventory += 1;
        } else {
            st.on_hand = i.new_quantity;
            st.known = true;
            st.updated_ms = ts;
        }
        let view = stock_view(cfg, st, info);
        out.inventory.push(partition, i, [view.reorder_point, view.safety_stock]);
        // A stale update changed no level, so it neither raises nor resolves an alert.
        if let Some(alert) = (!stale).then(|| evaluate_alert(cfg, st, &view, info, i, ts, &mut out.stats)).flatten() {
            out.alerts.push(alert);
        }
        let row = DirtyStock {
            key,
            on_hand: st.on_hand,
            reorder_point: view.reorder_point,
            velocity_per_hour: view.velocity,
            days_of_cover: view.days_of_cover,
            stockout_risk: view.risk,
            updated_ms: st.updated_ms,
        };
        PartState::stock_changed(&mut part.dirty_stock, part.flush_epoch, st, row);
        if !st.unsaved {
            st.unsaved = true;
            part.unsaved_stock.push(key);
        }
        if i.reason == InventoryReason::Theft && drop > 0 {
            Self::theft_burst(cfg, &self.names, part, key, i, ts, large_drop, out);
        }
    }

    /// Thefts of several SKUs of one store within a few hours: each theft may be small (a few
    /// units, under the large-drop rule), but together they are a burst (a shoplifting
    /// round, an inside job). When the store's recent thefts span `theft_burst_skus` SKUs, each
    /// theft of the window not yet flagged is (its own event id, so a replay flags the same).
    #[allow(clippy::too_many_arguments)] // the state, the event and where flags go
    fn theft_burst<S: std::ops::Deref<Target = str>>(
        cfg: &ProcessorConfig,
        names: &Interner,
        part: &mut PartState,
        key: model::Key,
        i: &InventoryUpdate<S>,
        ts: i64,
        flagged: bool,
        out: &mut Outputs,
    ) {
        let (store, product) = ((key >> 32) as u32, key as u32);
        let recent = part.thefts.entry(store).or_default();
        recent.retain(|t| t.ts > ts - cfg.theft_burst_window_ms && t.ts <= ts + cfg.theft_burst_window_ms);
        recent.push(crate::state::Theft { ts, product, event_id: i.inventory_id.to_string(), flagged });
        let mut skus: Vec<u32> = recent.iter().map(|t| t.product).collect();
        skus.sort_unstable();
        skus.dedup();
        if skus.len() < cfg.theft_burst_skus {
            return;
        }
        let hours = cfg.theft_burst_window_ms as f64 / 3_600_000.0;
        for t in recent.iter_mut().filter(|t| !t.flagged) {
            t.flagged = true;
            out.anomalies.push(anomaly(
                AnomalyKind::UnexplainedStockDrop,
                names.name(store),
                names.name(t.product),
                skus.len() as f64,
                format!("theft burst: {} SKUs of this store recorded stolen within {hours} h", skus.len()),
                &t.event_id,
                t.ts,
            ));
        }
    }

    /// Emit every window and stock row changed since the last flush, then close windows past
    /// the watermark plus allowed lateness and forget event ids behind the dedup horizon.
    pub fn flush(&mut self, out: &mut Outputs) {
        let cfg = &self.cfg;
        for part in self.parts.values_mut() {
            for w in part.dirty_windows.drain(..) {
                out.windows.push(WindowRow {
                    store_id: self.names.store_of(w.key),
                    product_id: self.names.product_of(w.key),
                    window_start: ms_to_time(w.window_start),
                    window_end: ms_to_time(w.window_start + cfg.window_ms),
                    units: w.units,
                    revenue: round2(w.revenue),
                    transactions: w.transactions,
                    avg_price: model::avg_price(w.revenue, w.units),
                    distinct_customers: w.customers as i64,
                });
            }
            // Rows as of each entry's latest change: the view is a function of the entry alone,
            // which only an inventory update changes, so it is what a flush would compute.
            for r in part.dirty_stock.drain(..) {
                out.stock.push(StockRow {
                    store_id: self.names.store_of(r.key),
                    product_id: self.names.product_of(r.key),
                    on_hand: r.on_hand,
                    reorder_point: r.reorder_point,
                    velocity_per_hour: model::round(r.velocity_per_hour * 1000.0) / 1000.0,
                    days_of_cover: r.days_of_cover,
                    stockout_risk: model::round(r.stockout_risk * 10_000.0) / 10_000.0,
                    updated_at: ms_to_time(r.updated_ms),
                });
            }
            part.next_flush_epoch();
            let wm = part.watermark(cfg.max_out_of_orderness_ms);
            if wm != NEVER {
                let closed_before = wm - cfg.window_ms - cfg.allowed_lateness_ms; // ws + len + lateness <= wm
                let keep = part.windows.split_off(&(closed_before + 1));
                part.windows = keep;
                let horizon_bucket = (wm - cfg.dedup_horizon_ms).div_euclid(cfg.window_ms);
                let keep = part.dedup.split_off(&horizon_bucket);
                part.dedup = keep;
            }
        }
    }
}

fn anomaly(kind: AnomalyKind, store: &str, product: &str, score: f64, detail: String, event_id: &str, ts: i64) -> AnomalyFlag {
    AnomalyFlag {
        anomaly_id: stable_event_id(&[b"anomaly", kind.as_str().as_bytes(), event_id.as_bytes()]),
        store_id: store.to_string(),
        product_id: product.to_string(),
        kind,
        score: (score * 1000.0).round() / 1000.0,
        detail,
        event_id: Some(event_id.to_string()),
        event_time: ms_to_time(ts),
    }
}

fn stock_view(cfg: &ProcessorConfig, st: &StockState, info: Option<ProductInfo>) -> StockView {
    let (velocity, variance) = st.velocity_and_variance(cfg.velocity_alpha, cfg.velocity_prior_hours);
    let (lead, lead_sd) = info.map_or((cfg.default_lead_time_days, cfg.default_lead_time_sd_days), |i| (i.lead_time_days, i.lead_time_sd_days));
    let (mean, sd) = model::lead_time_demand(velocity, variance, lead, lead_sd);
    let safety = (cfg.service_z * sd).ceil();
    StockView {
        velocity,
        days_of_cover: model::days_of_cover(st.on_hand, velocity),
        risk: model::stockout_risk(st.on_hand, mean, sd),
        reorder_point: (mean + safety).ceil().min(i32::MAX as f64) as i32,
        safety_stock: safety.min(i32::MAX as f64) as i32,
        lead_mean: mean,
    }
}

/// Open, escalate or resolve the store×SKU's restock alert after a stock change.
fn evaluate_alert<S: std::ops::Deref<Target = str>>(
    cfg: &ProcessorConfig,
    st: &mut StockState,
    v: &StockView,
    info: Option<ProductInfo>,
    i: &InventoryUpdate<S>,
    ts: i64,
    stats: &mut crate::processor::BatchStats,
) -> Option<RestockAlert> {
    let below_rop = st.on_hand < v.reorder_point;
    let triggered = v.risk >= cfg.risk_threshold || below_rop || st.on_hand <= 0;
    let severity: u8 = if st.on_hand <= 0 {
        3
    } else if v.risk >= 0.8 {
        2
    } else if v.risk >= cfg.risk_threshold {
        1
    } else {
        0
    };
    let cooled = st.last_open_ms == NEVER || ts - st.last_open_ms >= cfg.alert_cooldown_ms;
    let status = if triggered && (!st.alert_open || severity > st.alert_severity) {
        if !cooled {
            stats.alerts_suppressed += 1;
            return None;
        }
        st.alert_open = true;
        st.alert_severity = severity;
        st.last_open_ms = ts;
        AlertStatus::Open
    } else if st.alert_open && !below_rop && st.on_hand > 0 && v.risk < 0.8 * cfg.risk_threshold {
        // Hysteresis: resolve clearly below the opening threshold, so a value hovering at the
        // threshold does not flap open/resolved on every update.
        st.alert_open = false;
        AlertStatus::Resolved
    } else {
        return None;
    };
    let status_str: &[u8] = if status == AlertStatus::Open { b"open" } else { b"resolved" };
    let pack = info.map_or(1, |i| i.pack_size).max(1);
    // Order up to the reorder point plus one more lead time of demand, in whole packs.
    let want = (v.reorder_point as f64 + v.lead_mean - st.on_hand as f64).max(0.0).ceil() as i64;
    let suggested = if status == AlertStatus::Open { ((want + pack as i64 - 1) / pack as i64 * pack as i64).min(i32::MAX as i64) as i32 } else { 0 };
    let reason = match status {
        AlertStatus::Resolved => format!("stock {} is back above the reorder point {} (risk {:.2})", st.on_hand, v.reorder_point, v.risk),
        AlertStatus::Open if st.on_hand <= 0 => format!("out of stock ({})", st.on_hand),
        AlertStatus::Open if v.risk >= cfg.risk_threshold => format!("stock-out risk {:.2} ≥ {:.2}", v.risk, cfg.risk_threshold),
        AlertStatus::Open => format!("stock {} below reorder point {}", st.on_hand, v.reorder_point),
    };
    Some(RestockAlert {
        event_type: EventType::RestockAlert,
        schema_version: SCHEMA_VERSION,
        alert_id: stable_event_id(&[b"restock", i.store_id.as_bytes(), i.product_id.as_bytes(), status_str, i.inventory_id.as_bytes()]),
        store_id: i.store_id.to_string(),
        product_id: i.product_id.to_string(),
        status,
        severity: severity_from(st.alert_severity),
        on_hand: st.on_hand,
        reorder_point: v.reorder_point,
        velocity_per_hour: model::round(v.velocity * 1000.0) / 1000.0,
        days_of_cover: v.days_of_cover,
        stockout_risk: model::round(v.risk * 10_000.0) / 10_000.0,
        suggested_order_qty: suggested,
        reason,
        timestamp: ms_to_time(ts),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Array;

    /// Kafka may hand over a partition's records in several runs per poll: each run is its own
    /// slice, in row order, and together they hold every row exactly once.
    #[test]
    fn raw_rows_split_into_per_partition_runs() {
        let mut rows = InventoryRows::default();
        let update = |n: i32| InventoryUpdate {
            event_type: EventType::InventoryUpdate,
            schema_version: SCHEMA_VERSION,
            inventory_id: format!("inv-{n}"),
            store_id: "store_001".into(),
            product_id: "SKU1".into(),
            quantity_change: -1,
            previous_quantity: 10,
            new_quantity: 9,
            reason: InventoryReason::Sale,
            reference_id: None,
            timestamp: ms_to_time(1_735_725_600_000 + n as i64),
        };
        let partitions = [0, 0, 1, 1, 0, 2, 2, 2];
        for (n, p) in partitions.iter().enumerate() {
            rows.push(*p, &update(n as i32), [n as i32, 0]);
        }
        let finished = rows.finish().unwrap();
        assert!(rows.is_empty());
        let runs = finished.raw_by_partition();
        let shape: Vec<(i32, usize)> = runs.iter().map(|(p, b)| (*p, b.num_rows())).collect();
        assert_eq!(shape, vec![(0, 2), (1, 2), (0, 1), (2, 3)]);
        let ids: Vec<String> = runs
            .iter()
            .flat_map(|(_, b)| {
                let col = b.column_by_name("inventory_id").unwrap().as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap().clone();
                (0..col.len()).map(move |i| col.value(i).to_string())
            })
            .collect();
        assert_eq!(ids, (0..8).map(|n| format!("inv-{n}")).collect::<Vec<_>>());
        // The facts over the same rows keep each row's levels.
        let facts = finished.facts().unwrap();
        assert_eq!(facts.num_rows(), 8);
    }

    /// Snapshots taken side by side are the ones taken one at a time, in the order asked.
    #[test]
    fn snapshots_side_by_side_equal_one_at_a_time() {
        let sale = |i: i64| {
            format!(
                r#"{{"event_type":"sale","schema_version":1,"transaction_id":"00000000-0000-4000-8000-{i:012}","basket_id":"00000000-0000-4000-9000-{i:012}","store_id":"store_00{}","product_id":"SKU{}","quantity":1,"unit_price":2.5,"list_price":2.5,"discount_pct":0.0,"promotion_id":null,"timestamp":"{}","customer_id":"cust_{i}","payment_method":"cash"}}"#,
                i % 3,
                i % 5,
                ms_to_time(1_735_725_600_000 + i * 1_000).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            )
        };
        let msgs: Vec<Message> = (0..300)
            .map(|i| Message {
                topic: retail_core::topics::SALES.into(),
                partition: (i % 3) as i32,
                offset: i / 3,
                key: None,
                payload: sale(i).into_bytes().into(),
                timestamp_ms: 1_735_725_600_000 + 3_600_000,
            })
            .collect();
        let fed = || {
            let mut p = Processor::new(ProcessorConfig::default(), &Catalog::default());
            let mut out = Outputs::default();
            for m in &msgs {
                p.process(m, &mut out);
            }
            p.flush(&mut out);
            assert!(out.dead_letters.is_empty(), "{:?}", out.dead_letters.first().map(|d| &d.reasons));
            p
        };
        let (mut serial, mut parallel) = (fed(), fed());
        let tp = |partition| TopicPartition { topic: retail_core::topics::SALES.to_string(), partition };
        let asked = vec![tp(2), tp(0), tp(1)];
        let one_at_a_time: Vec<(TopicPartition, PartSnapshot)> =
            asked.iter().map(|t| (t.clone(), serial.snapshot(&t.topic, t.partition).unwrap().expect("an owned partition"))).collect();
        let side_by_side = parallel.snapshots(&asked, 2).unwrap();
        assert_eq!(side_by_side, one_at_a_time);
        assert!(side_by_side.iter().all(|(_, s)| !s.windows.is_empty()), "every partition has open windows");
    }
}
