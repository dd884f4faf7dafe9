//! The async loop around the processor: poll → process → sinks → checkpoint → commit.
//!
//! Exactly-once effect (argued in full in docs/stream.md):
//! 1. every sink write is idempotent — warehouse rows carry natural keys, and lake objects are
//!    named after (topic, partition, first offset, last offset);
//! 2. offsets are committed only after the lake, the warehouse and the partition's checkpoint
//!    hold everything up to them;
//! 3. on (re)assignment a partition resumes from its checkpoint, and lake objects that start at
//!    or after the checkpoint's offset (written after it, never committed) are deleted before the
//!    partition's first new write, so a replay with different batch boundaries cannot leave an
//!    overlapping object behind.

use crate::metrics::{Stage, StreamMetrics};
use crate::processor::FinishedRows;
use crate::processor::{Outputs, Processor, StateError};
use crate::state::PartSnapshot;
use crate::validate::TopicKind;
use crate::{Catalog, ProcessorConfig};
use retail_bus::{BusError, Consumer, EventBus, Message, Rebalance, Record, TopicPartition};
use retail_core::{topics, Event};
use retail_lake::RawKind;
use retail_lake::{Lake, LakeError};
use retail_warehouse::{RecordBatch, Warehouse, WarehouseError};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How the runner batches, checkpoints and names things.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    pub group: String,
    pub topics: Vec<String>,
    /// Records per poll.
    pub max_batch: usize,
    /// A poll's records are processed in chunks of this many; a chunk's sink writes run while
    /// the next chunk is processed (two cores busy instead of one). On a bus that can rebalance
    /// (Kafka) every write of a poll is finished before the next poll, so a rebalance never
    /// finds a write in flight; on the embedded log the last chunk's writes overlap the next poll.
    pub sink_chunk: usize,
    /// Threads busy with validation (parsing) including the loop's: while the loop's thread
    /// applies one chunk in order, the next is validated on the other `validate_threads − 1`
    /// (1 = all on the loop's thread, no overlap); default: the machine's cores.
    pub validate_threads: usize,
    pub poll_timeout: Duration,
    /// Checkpoint and commit at least this often (wall time) while records flow.
    pub checkpoint_interval: Duration,
    /// A partition's buffered raw events are written to the lake once this many accumulate
    /// (and at every checkpoint). These writes run in the background, beside the processing,
    /// and the next checkpoint waits for them.
    pub lake_flush_events: usize,
    /// The warehouse persists what it holds (`Warehouse::flush`) in the background after this
    /// many records, so a checkpoint's own flush finds less to do (0: only at checkpoints).
    pub warehouse_flush_events: usize,
    /// Lake prefix of the checkpoints: `<prefix>/<group>/<topic>/<partition>.state`.
    pub checkpoint_prefix: String,
    /// Stop once a poll finds nothing and every input partition's lag is 0 (benchmarks,
    /// tests and one-shot backfills); a service leaves it off.
    pub stop_when_idle: bool,
    pub processor: ProcessorConfig,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            group: "retail-stream".into(),
            topics: vec![topics::SALES.into(), topics::INVENTORY.into(), topics::PRICE_CHANGES.into(), topics::CUSTOMER_EVENTS.into()],
            max_batch: 40_000,
            sink_chunk: 10_000,
            validate_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            poll_timeout: Duration::from_millis(200),
            checkpoint_interval: Duration::from_secs(5),
            lake_flush_events: 50_000,
            warehouse_flush_events: 200_000,
            checkpoint_prefix: "state/stream".into(),
            stop_when_idle: false,
            processor: ProcessorConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    #[error("lake: {0}")]
    Lake(#[from] LakeError),
    #[error("warehouse: {0}")]
    Warehouse(#[from] WarehouseError),
    #[error("state: {0}")]
    State(#[from] StateError),
    #[error("{topic}/{partition}: the bus keeps delivering from offset {got} although the checkpoint resumes at {expected}; refusing to skip records")]
    Gap { topic: String, partition: i32, expected: i64, got: i64 },
    #[error("sink task failed: {0}")]
    Sink(String),
    #[error("checkpoint `{key}` is unreadable: {reason}")]
    Checkpoint { key: String, reason: String },
}

/// A partition's checkpoint, encoded and ready to write.
struct Encoded {
    tp: TopicPartition,
    next_offset: i64,
    key: String,
    bytes: Result<Vec<u8>, StreamError>,
    /// Dedup buckets changed since the last checkpoint, one object each, and the stock base or
    /// delta (written first).
    side: Vec<(String, Result<bytes::Bytes, StreamError>)>,
    /// Objects only the previous checkpoint referred to (deleted after).
    unused: Vec<String>,
}

/// What a run did, returned when it stops.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunSummary {
    pub records: u64,
    pub valid: u64,
    pub dead_letters: u64,
    pub checkpoints: u64,
}

/// The handles a sink task needs (all cheap clones).
#[derive(Clone)]
struct Sinks {
    bus: Arc<dyn EventBus>,
    lake: Lake,
    warehouse: Arc<dyn Warehouse>,
    metrics: StreamMetrics,
}

/// One chunk's writes, handed to a task: the processor's outputs and the chunk's bus append
/// times (for event→sink latency).
struct SinkJob {
    out: Outputs,
    /// The chunk's accepted sales and inventory updates, finished (their raw batches also went
    /// to the lake buffers): the sink builds the fact rows over them.
    sales: Option<FinishedRows<[f64; 3]>>,
    inventory: Option<FinishedRows<[i32; 2]>>,
    appended_ms: Vec<i64>,
}

/// A checkpoint's writes, done: what to commit and how long it took.
struct Durable {
    positions: Vec<(TopicPartition, i64)>,
    /// Each partition's snapshot size (the next one's buffer is sized from it).
    sizes: Vec<(TopicPartition, usize)>,
    started: Instant,
    flushed: Duration,
    snapshotted: Duration,
}

/// The tables an early warehouse flush persists: those that grow with the stream (facts, one
/// row per window, alerts, anomalies). Not `rt_stock`: it holds one row per store×SKU, replaced
/// in place, so a row persisted early is usually superseded before the checkpoint, whose flush
/// writes the latest row of each key changed (in `retail bench stream`, 100 k instead of 500 k
/// stock rows encoded per million events).
const EARLY_FLUSH_TABLES: &[&retail_warehouse::schema::Table] = &[
    &retail_warehouse::schema::FACT_SALES,
    &retail_warehouse::schema::FACT_INVENTORY,
    &retail_warehouse::schema::RT_SALES_5MIN,
    &retail_warehouse::schema::RT_RESTOCK_ALERTS,
    &retail_warehouse::schema::RT_ANOMALIES,
];

/// Raw lake writes in flight beyond this many: the loop waits for the oldest (bounds the
/// memory of events written behind the processing).
const MAX_LAKE_WRITES: usize = 4;

struct RawBuf {
    first: i64,
    last: i64,
    /// Sales and inventory partitions: the raw rows in offset order, slices of each chunk's
    /// raw batch (shared with the warehouse's fact rows).
    batches: Vec<RecordBatch>,
    /// Price and customer partitions: the events in offset order, with strings of their own
    /// (they wait here beyond the messages they were read from; these topics are a small share
    /// of the traffic, and their raw rows are JSON payloads, built when written).
    events: Vec<Event>,
    len: usize,
}

/// A full raw buffer on its way to the lake.
struct LakeWrite {
    kind: TopicKind,
    /// The object name (`batch_name`).
    name: String,
    batches: Vec<RecordBatch>,
    events: Vec<Event>,
}

impl LakeWrite {
    fn len(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum::<usize>() + self.events.len()
    }
}

/// Per-partition bookkeeping outside the pure processor.
#[derive(Default)]
struct Owned {
    /// Lake objects of the partition starting at or after this offset are leftovers of an
    /// uncommitted attempt; delete them before the first write. None once done.
    clean_from: Option<i64>,
    needs_clean: bool,
    /// After a restore, the offset the partition must resume at. A record beyond it means the
    /// bus is still delivering from an older position (fetched before a rebalance, or a seek
    /// not yet effective) or skipped ahead (a broker that cannot fetch from inside a record
    /// batch): applying it would skip the records in between.
    expect: Option<i64>,
    /// Seeks back so far because the bus delivered records beyond `expect`. Each one rewinds
    /// further before `expect` (records before it are dropped by offset): a broker may only
    /// serve fetches from a record batch's first offset (tansu skips to the next batch when
    /// asked for an offset inside one), and `expect` is usually inside a batch.
    gap_seeks: u32,
    /// Where the last such seek went; once the start of the log did not help, the run stops
    /// with `StreamError::Gap` rather than seeking forever or skipping records.
    rewound_to: Option<i64>,
}

/// First rewind before the resume offset after a gap; doubled on every further gap.
const GAP_REWIND: i64 = 1024;
const MAX_GAP_SEEKS: u32 = 40;

fn rewind_target(expect: i64, seeks_before: u32) -> i64 {
    let back = GAP_REWIND.checked_shl(seeks_before.min(40)).unwrap_or(i64::MAX);
    expect.saturating_sub(back).max(0)
}

pub struct Runner {
    cfg: StreamConfig,
    bus: Arc<dyn EventBus>,
    lake: Lake,
    warehouse: Arc<dyn Warehouse>,
    metrics: StreamMetrics,
    processor: Processor,
    consumer: Box<dyn Consumer>,
    raw: BTreeMap<(TopicKind, i32), RawBuf>,
    owned: BTreeMap<(TopicKind, i32), Owned>,
    /// Output buffers returned by finished sink tasks, reused by the next chunk.
    spare: Vec<Outputs>,
    /// The last applied chunk's accepted events per partition (checked against its raw rows).
    chunk_accepted: Vec<((TopicKind, i32), usize)>,
    inflight: Option<tokio::task::JoinHandle<Result<Outputs, StreamError>>>,
    /// Raw lake writes running in the background (oldest first); a checkpoint waits for all.
    lake_writes: std::collections::VecDeque<tokio::task::JoinHandle<Result<(), StreamError>>>,
    /// A warehouse flush started ahead of the next checkpoint, and records since the last one.
    early_flush: Option<tokio::task::JoinHandle<()>>,
    since_flush: usize,
    /// A checkpoint whose writes are running; its offsets are committed when they are done.
    pending_checkpoint: Option<tokio::task::JoinHandle<Result<Durable, StreamError>>>,
    lag_task: Option<tokio::task::JoinHandle<()>>,
    last_checkpoint: Instant,
    dirty_since_checkpoint: bool,
    /// Each partition's last snapshot size: the next encodes into a buffer that size (tens of MB
    /// grown by doubling cost as much copying as encoding).
    snapshot_bytes: BTreeMap<TopicPartition, usize>,
    /// Per partition, the dedup and stock objects its last checkpoint refers to (the next one
    /// deletes those it no longer refers to).
    side_objects: BTreeMap<TopicPartition, BTreeSet<String>>,
    summary: RunSummary,
}

/// Run the processor until `cancel` fires, then checkpoint and commit what was processed.
pub async fn run(
    cfg: StreamConfig,
    bus: Arc<dyn EventBus>,
    lake: Lake,
    warehouse: Arc<dyn Warehouse>,
    catalog: &Catalog,
    metrics: StreamMetrics,
    cancel: CancellationToken,
) -> Result<RunSummary, StreamError> {
    let mut runner = Runner::start(cfg, bus, lake, warehouse, catalog, metrics).await?;
    // Cancellation is checked between steps only: a step cut short after `process` but before
    // its sinks would let the final checkpoint commit offsets whose rows were never written.
    // A step is bounded by the poll timeout, so shutdown stays prompt.
    // An empty poll does not mean the end: a broker may just be slow to serve the next fetch.
    // Checking costs a checkpoint and a lag query, so check only after this much idle polling.
    let idle_check_after = (runner.cfg.poll_timeout * 3).max(Duration::from_millis(300));
    // The first empty poll after records is checked at once, though: the checkpoint it costs
    // is the one stopping needs anyway, and a drained backlog should not sit idle.
    let mut idle = Duration::ZERO;
    let mut checked_since_records = true;
    while !cancel.is_cancelled() {
        let started = Instant::now();
        let n = runner.step().await?;
        idle = if n == 0 { idle + started.elapsed() } else { Duration::ZERO };
        if n > 0 {
            checked_since_records = false;
        }
        if runner.cfg.stop_when_idle && n == 0 && (idle >= idle_check_after || !checked_since_records) {
            checked_since_records = true;
            if runner.caught_up().await? {
                break;
            }
            idle = Duration::ZERO;
        }
    }
    if runner.dirty_since_checkpoint {
        runner.checkpoint().await?;
    } else {
        // Already durable (an idle stop checkpoints first): writing the same state again would
        // only cost a full snapshot.
        runner.wait_for_sinks().await?;
        join_lake_writes(std::mem::take(&mut runner.lake_writes)).await?;
    }
    runner.finish_checkpoint().await?;
    tracing::info!(records = runner.summary.records, checkpoints = runner.summary.checkpoints, "stream processor stopped");
    Ok(runner.summary.clone())
}

async fn retry<T, E: std::fmt::Display, F, Fut>(what: &str, retryable: impl Fn(&E) -> bool, mut f: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if retryable(&e) && attempt < 6 => {
                tracing::warn!(%e, attempt, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn batch_name(kind: TopicKind, partition: i32, first: i64, last: i64) -> String {
    format!("{}-{partition:03}-{first:020}-{last:020}", kind.topic())
}

/// (topic, partition, first offset) of a raw object written by [`batch_name`], from its key.
fn parse_batch_key(key: &str) -> Option<(&str, i32, i64)> {
    let name = key.rsplit('/').next()?.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let mut it = name.rsplitn(4, '-');
    let _last = it.next()?;
    let first = it.next()?.parse().ok()?;
    let partition = it.next()?.parse().ok()?;
    Some((it.next()?, partition, first))
}

/// One chunk's writes: warehouse rows, dead letters and alerts to the bus; then its latency.
/// Returns the output buffers for reuse.
async fn run_sink_job(sinks: Sinks, job: SinkJob) -> Result<Outputs, StreamError> {
    let SinkJob { mut out, sales, inventory, appended_ms } = job;
    // Read before the write drains the builders into batches.
    let window_ends = out.windows.window_ends().to_vec();
    let t = Instant::now();
    write_warehouse_and_bus(&sinks, &mut out, sales, inventory).await?;
    sinks.metrics.add_stage_time(Stage::Warehouse, t.elapsed());
    let now_ms = chrono::Utc::now().timestamp_millis();
    let c = &sinks.metrics.counters;
    for ms in &appended_ms {
        let lat = now_ms - ms;
        c.record_latency(lat, 1);
        sinks.metrics.event_to_sink.observe(lat.max(0) as f64 / 1000.0);
    }
    c.sunk.fetch_add(appended_ms.len() as u64, Ordering::Relaxed);
    for end_s in &window_ends {
        let behind = now_ms - end_s * 1000;
        if behind >= 0 {
            sinks.metrics.window_latency.observe(behind as f64 / 1000.0);
        }
    }
    // Freeing the rows here keeps it off the processing thread, which reuses `out` next.
    let mut out = out;
    out.clear();
    Ok(out)
}

/// Write full raw buffers to the lake, one task per partition so their Arrow conversion and
/// Parquet encoding run on every core. Returns once all are done (the first error, if any).
async fn write_lake(sinks: &Sinks, writes: Vec<LakeWrite>) -> Result<(), StreamError> {
    if writes.is_empty() {
        return Ok(());
    }
    // Wall time of all the writes together (per-task times would count the overlap twice).
    let t = Instant::now();
    let tasks: Vec<_> = writes
        .into_iter()
        .map(|w| {
            let sinks = sinks.clone();
            tokio::spawn(async move {
                let lake = &sinks.lake;
                if !w.batches.is_empty() {
                    retry("lake raw write", LakeError::is_retryable, || lake.write_raw_batches(&w.name, w.kind.raw_kind(), &w.batches)).await?;
                }
                if !w.events.is_empty() {
                    retry("lake raw write", LakeError::is_retryable, || lake.write_raw(&w.name, &w.events)).await?;
                }
                sunk(&sinks.metrics, &format!("lake_{}", w.kind.lake_kind()), w.len());
                Ok::<(), StreamError>(())
            })
        })
        .collect();
    let written = join_lake_writes(tasks).await;
    sinks.metrics.add_stage_time(Stage::Lake, t.elapsed());
    written
}

/// Wait for every lake write task (all of them, even after an error: none is left writing
/// behind the caller); the first error.
async fn join_lake_writes(tasks: impl IntoIterator<Item = tokio::task::JoinHandle<Result<(), StreamError>>>) -> Result<(), StreamError> {
    let mut first_error = None;
    for task in tasks {
        if let Err(e) = task.await.unwrap_or_else(|e| Err(StreamError::Sink(e.to_string()))) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn sunk(metrics: &StreamMetrics, sink: &str, n: usize) {
    if n > 0 {
        metrics.events_out.get_or_create(&vec![("sink".into(), sink.to_string())]).inc_by(n as u64);
    }
}

/// Write a batch (none: nothing to write), retried while the warehouse is unavailable.
async fn insert_batch<F, Fut>(what: &str, batch: &Option<RecordBatch>, insert: F) -> Result<(), WarehouseError>
where
    F: Fn(RecordBatch) -> Fut,
    Fut: std::future::Future<Output = Result<(), WarehouseError>>,
{
    match batch {
        None => Ok(()),
        Some(b) => retry(what, WarehouseError::is_retryable, || insert(b.clone())).await,
    }
}

async fn write_warehouse_and_bus(
    sinks: &Sinks,
    out: &mut Outputs,
    sales: Option<FinishedRows<[f64; 3]>>,
    inventory: Option<FinishedRows<[i32; 2]>>,
) -> Result<(), StreamError> {
    let wh = &sinks.warehouse;
    let r = WarehouseError::is_retryable;
    let (window_rows, stock_rows) = (out.windows.len(), out.stock.len());
    let sales_batch = sales.map(|f| f.facts()).transpose()?;
    let inventory_batch = inventory.map(|f| f.facts()).transpose()?;
    let sales_rows = sales_batch.as_ref().map_or(0, RecordBatch::num_rows);
    let inventory_rows = inventory_batch.as_ref().map_or(0, RecordBatch::num_rows);
    let windows_batch = (window_rows > 0).then(|| out.windows.finish()).transpose()?;
    let stock_batch = (stock_rows > 0).then(|| out.stock.finish()).transpose()?;
    let out = &*out;
    let sales = insert_batch("fact_sales insert", &sales_batch, |b| wh.insert_sales_batch(b));
    let inv = insert_batch("fact_inventory insert", &inventory_batch, |b| wh.insert_inventory_batch(b));
    let win = insert_batch("rt_sales_5min upsert", &windows_batch, |b| wh.upsert_sales_windows_batch(b));
    let stock = insert_batch("rt_stock upsert", &stock_batch, |b| wh.upsert_stock_batch(b));
    let alerts = async {
        if out.alerts.is_empty() {
            Ok(())
        } else {
            retry("rt_restock_alerts insert", r, || wh.insert_alerts(&out.alerts)).await
        }
    };
    let anomalies = async {
        if out.anomalies.is_empty() {
            Ok(())
        } else {
            retry("rt_anomalies insert", r, || wh.insert_anomalies(&out.anomalies)).await
        }
    };
    tokio::try_join!(sales, inv, win, stock, alerts, anomalies)?;
    let m = &sinks.metrics;
    sunk(m, "fact_sales", sales_rows);
    sunk(m, "fact_inventory", inventory_rows);
    sunk(m, "rt_sales_5min", window_rows);
    sunk(m, "rt_stock", stock_rows);
    sunk(m, "rt_restock_alerts", out.alerts.len());
    sunk(m, "rt_anomalies", out.anomalies.len());

    // Dead letters and alerts to the bus: at-least-once (a replay may publish them again;
    // each carries its source offset or stable alert id, so readers can drop repeats).
    let dlq: Vec<(Vec<u8>, Vec<u8>)> =
        out.dead_letters.iter().map(|d| (d.source_topic.as_bytes().to_vec(), serde_json::to_vec(d).unwrap_or_default())).collect();
    let alerts: Vec<(Vec<u8>, Vec<u8>)> = out.alerts.iter().map(|a| (a.store_id.as_bytes().to_vec(), Event::Alert(a.clone()).to_json())).collect();
    let mut records: Vec<Record> = dlq.iter().map(|(k, p)| Record { topic: topics::DEAD_LETTER, key: k, payload: p }).collect();
    records.extend(alerts.iter().map(|(k, p)| Record { topic: topics::RESTOCK_ALERTS, key: k, payload: p }));
    if !records.is_empty() {
        let bus = &sinks.bus;
        retry("dead-letter/alert publish", BusError::is_retryable, || bus.publish(&records)).await?;
        sunk(m, "dead_letter", dlq.len());
        sunk(m, "restock_alerts_topic", alerts.len());
    }
    Ok(())
}

impl Runner {
    pub async fn start(
        cfg: StreamConfig,
        bus: Arc<dyn EventBus>,
        lake: Lake,
        warehouse: Arc<dyn Warehouse>,
        catalog: &Catalog,
        metrics: StreamMetrics,
    ) -> Result<Runner, StreamError> {
        let topics: Vec<&str> = cfg.topics.iter().map(|s| s.as_str()).collect();
        let consumer = bus.subscribe(&cfg.group, &topics).await?;
        let processor = Processor::new(cfg.processor.clone(), catalog);
        let mut runner = Runner {
            cfg,
            bus,
            lake,
            warehouse,
            metrics,
            processor,
            consumer,
            raw: BTreeMap::new(),
            owned: BTreeMap::new(),
            spare: Vec::new(),
            chunk_accepted: Vec::new(),
            inflight: None,
            lake_writes: Default::default(),
            early_flush: None,
            since_flush: 0,
            pending_checkpoint: None,
            lag_task: None,
            last_checkpoint: Instant::now(),
            dirty_since_checkpoint: false,
            snapshot_bytes: BTreeMap::new(),
            side_objects: BTreeMap::new(),
            summary: RunSummary::default(),
        };
        let initial = runner.consumer.assignment();
        runner.assign(&initial).await?;
        Ok(runner)
    }

    /// Checkpoint what is pending, then: is nothing left to read for this group?
    pub async fn caught_up(&mut self) -> Result<bool, StreamError> {
        if self.dirty_since_checkpoint {
            self.checkpoint().await?;
        }
        // The lag counts from the committed offsets: the checkpoint's commit comes first.
        self.finish_checkpoint().await?;
        let topics: Vec<&str> = self.cfg.topics.iter().map(|s| s.as_str()).collect();
        let lags = self.bus.lag(&self.cfg.group, &topics).await?;
        self.metrics.counters.lag.store(lags.iter().map(|(_, l)| (*l).max(0)).sum(), Ordering::Relaxed);
        Ok(lags.iter().all(|(_, l)| *l <= 0))
    }

    pub fn summary(&self) -> &RunSummary {
        &self.summary
    }

    fn sinks(&self) -> Sinks {
        Sinks { bus: self.bus.clone(), lake: self.lake.clone(), warehouse: self.warehouse.clone(), metrics: self.metrics.clone() }
    }

    fn checkpoint_key(&self, topic: &str, partition: i32) -> String {
        self.checkpoint_key_with(topic, partition, "state")
    }

    /// `extension` "json": where versions before the binary checkpoints kept them (read when
    /// there is no newer one).
    fn checkpoint_key_with(&self, topic: &str, partition: i32, extension: &str) -> String {
        format!("{}/{}/{}/{:03}.{extension}", self.cfg.checkpoint_prefix, self.cfg.group, topic, partition)
    }

    /// Where a partition's dedup buckets are kept, one object per bucket and version.
    fn dedup_prefix(&self, topic: &str, partition: i32) -> String {
        self.checkpoint_key_with(topic, partition, "dedup/")
    }

    fn dedup_key(&self, topic: &str, partition: i32, bucket: i64, version: i64) -> String {
        format!("{}{bucket}-{version}.ids", self.dedup_prefix(topic, partition))
    }

    /// Where a partition's stock objects are kept: a base, then deltas.
    fn stock_prefix(&self, topic: &str, partition: i32) -> String {
        self.checkpoint_key_with(topic, partition, "stock/")
    }

    /// The stock object at `position` in the chain (0: the base), written at `version`.
    fn stock_key(&self, topic: &str, partition: i32, position: usize, version: i64) -> String {
        format!("{}{position}-{version}.stock", self.stock_prefix(topic, partition))
    }

    /// Every object a stored snapshot refers to besides itself.
    fn side_keys(&self, tp: &TopicPartition, snap: &PartSnapshot) -> BTreeSet<String> {
        let dedup = snap.dedup_segments.iter().map(|&(b, v)| self.dedup_key(&tp.topic, tp.partition, b, v));
        let stock = snap.stock_segments.iter().enumerate().map(|(i, &v)| self.stock_key(&tp.topic, tp.partition, i, v));
        dedup.chain(stock).collect()
    }

    async fn read_side_object(&self, key: &str) -> Result<bytes::Bytes, StreamError> {
        let lake = self.lake.clone();
        retry("checkpoint read", LakeError::is_retryable, || lake.get(key))
            .await?
            .ok_or_else(|| StreamError::Checkpoint { key: key.to_string(), reason: "an object the checkpoint refers to is missing".into() })
    }

    /// Load the dedup buckets and stock entries a stored snapshot refers to into it, and delete
    /// the partition's objects it does not refer to (left by a checkpoint that crashed before
    /// its state object was written). Returns the keys referred to.
    async fn load_side_objects(&self, tp: &TopicPartition, snapshot: Option<&mut PartSnapshot>) -> Result<BTreeSet<String>, StreamError> {
        let mut referenced = BTreeSet::new();
        if let Some(snap) = snapshot {
            let bad = |key: &str, reason: String| StreamError::Checkpoint { key: key.to_string(), reason };
            for &(bucket, version) in &snap.dedup_segments {
                let key = self.dedup_key(&tp.topic, tp.partition, bucket, version);
                let ids = crate::state::decode_dedup_ids(&self.read_side_object(&key).await?).map_err(|r| bad(&key, r))?;
                snap.dedup.push((bucket, ids));
            }
            // In chain order, after any entries held inline: later entries win.
            for (position, &version) in snap.stock_segments.iter().enumerate() {
                let key = self.stock_key(&tp.topic, tp.partition, position, version);
                let entries = crate::state::decode_stock(&self.read_side_object(&key).await?).map_err(|r| bad(&key, r))?;
                snap.stock.items_mut().map_err(|r| bad(&key, r))?.extend(entries);
            }
            referenced = self.side_keys(tp, snap);
        }
        for prefix in [self.dedup_prefix(&tp.topic, tp.partition), self.stock_prefix(&tp.topic, tp.partition)] {
            let lake = self.lake.clone();
            let stored = retry("checkpoint list", LakeError::is_retryable, || lake.list(&prefix)).await?;
            for obj in stored.into_iter().filter(|o| !referenced.contains(&o.key)) {
                if let Err(e) = self.lake.delete(&obj.key).await {
                    tracing::warn!(key = %obj.key, %e, "deleting an unused checkpoint object failed; it is only garbage");
                }
            }
        }
        Ok(referenced)
    }

    async fn assign(&mut self, tps: &[TopicPartition]) -> Result<(), StreamError> {
        let mut restored = Vec::new();
        for tp in tps {
            let Some(kind) = TopicKind::from_topic(&tp.topic) else { continue };
            if self.owned.contains_key(&(kind, tp.partition)) {
                continue;
            }
            let mut snapshot = None;
            for key in [self.checkpoint_key(&tp.topic, tp.partition), self.checkpoint_key_with(&tp.topic, tp.partition, "json")] {
                let lake = self.lake.clone();
                if let Some(b) = retry("checkpoint read", LakeError::is_retryable, || lake.get(&key)).await? {
                    snapshot = Some(PartSnapshot::decode(&b).map_err(|reason| StreamError::Checkpoint { key, reason })?);
                    break;
                }
            }
            let side = self.load_side_objects(tp, snapshot.as_mut()).await?;
            self.side_objects.insert(tp.clone(), side);
            let resume = self.processor.assign(&tp.topic, tp.partition, snapshot)?;
            if let Some(offset) = resume {
                // A failed seek loses nothing: `expect` below holds the partition to this offset
                // (records before it are dropped, records beyond it seek back again).
                if let Err(e) = self.consumer.seek(tp, offset).await {
                    tracing::warn!(topic = %tp.topic, partition = tp.partition, offset, %e, "seek to the restored offset failed; the first records decide");
                }
                restored.push((tp.clone(), offset));
            }
            tracing::info!(topic = %tp.topic, partition = tp.partition, resume = ?resume, "partition assigned");
            self.owned.insert((kind, tp.partition), Owned { clean_from: resume, needs_clean: true, expect: resume, gap_seeks: 0, rewound_to: None });
        }
        if !restored.is_empty() {
            // The checkpoints hold these positions (everything before them is durable), but a
            // crash between writing a checkpoint and committing leaves the group's offset
            // behind it. Commit them now: otherwise, with nothing after the checkpoint to
            // process, no new checkpoint would ever commit, and the lag would never reach 0
            // (an idle stop waited forever). A failed commit is retried by the next checkpoint.
            if let Err(e) = self.consumer.commit(&restored).await {
                tracing::warn!(%e, "committing restored checkpoint positions failed; the next checkpoint retries");
            }
        }
        Ok(())
    }

    fn revoke(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            let Some(kind) = TopicKind::from_topic(&tp.topic) else { continue };
            // Whatever was not committed is replayed by the new owner from the checkpoint;
            // raw events buffered here are dropped, never written.
            self.raw.remove(&(kind, tp.partition));
            self.owned.remove(&(kind, tp.partition));
            self.side_objects.remove(tp);
            self.processor.revoke(&tp.topic, tp.partition);
            tracing::info!(topic = %tp.topic, partition = tp.partition, "partition revoked");
        }
    }

    /// One poll and everything it leads to. Not cancel-safe: run it to completion (a crash in
    /// the middle is fine — nothing uncommitted survives — but continuing after dropping it is not).
    pub async fn step(&mut self) -> Result<usize, StreamError> {
        self.apply_rebalances().await?;
        let t = Instant::now();
        // The previous poll's last writes may still be running (only left so when the consumer
        // cannot rebalance): they go on beside this poll and the next chunk's processing, which
        // waits for them before its own writes (`process`). Waiting here instead idled the
        // loop's core once per poll for a chunk's warehouse inserts (≈ 10 % of a backlog run).
        let mut msgs = self.consumer.poll_batch(self.cfg.max_batch, self.cfg.poll_timeout).await?;
        self.metrics.add_stage_time(Stage::Poll, t.elapsed());
        // A rebalance can happen inside the poll: apply it before touching the records, and
        // keep only records of partitions this member owns now (the new owner replays the rest).
        self.apply_rebalances().await?;
        if !msgs.is_empty() {
            // A handful of partitions: a scan beats building a key per record.
            let assigned = self.consumer.assignment();
            msgs.retain(|m| assigned.iter().any(|tp| tp.partition == m.partition && tp.topic == *m.topic));
        }
        // Partitions the bus delivered without announcing them (the embedded log assigns all at
        // subscribe) are adopted here, through the same checkpoint path.
        let unknown: Vec<TopicPartition> = msgs
            .iter()
            .filter_map(|m| {
                let kind = TopicKind::from_topic(&m.topic)?;
                (!self.owned.contains_key(&(kind, m.partition))).then(|| TopicPartition { topic: m.topic.to_string(), partition: m.partition })
            })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        if !unknown.is_empty() {
            // Partition changes never overlap a write.
            self.wait_for_sinks().await?;
            self.assign(&unknown).await?;
        }
        self.enforce_resume_points(&mut msgs).await?;
        let n = msgs.len();
        if n > 0 {
            self.process(&msgs).await?;
            self.dirty_since_checkpoint = true;
        }
        if self.pending_checkpoint.as_ref().is_some_and(|t| t.is_finished()) {
            self.finish_checkpoint().await?;
        }
        let due = self.last_checkpoint.elapsed() >= self.cfg.checkpoint_interval;
        if due && self.dirty_since_checkpoint {
            self.checkpoint().await?;
        }
        self.metrics.checkpoint_age.set(self.last_checkpoint.elapsed().as_secs_f64());
        Ok(n)
    }

    /// Revocations and assignments the consumer reported, applied once no write is in flight.
    async fn apply_rebalances(&mut self) -> Result<(), StreamError> {
        let rebalances = self.consumer.take_rebalances();
        if !rebalances.is_empty() {
            self.wait_for_sinks().await?;
        }
        for r in rebalances {
            match r {
                Rebalance::Revoked(tps) => self.revoke(&tps),
                Rebalance::Assigned(tps) => self.assign(&tps).await?,
            }
        }
        Ok(())
    }

    /// Hold a restored partition to its resume offset: records before it are dropped (already
    /// applied: they come back when a seek had to rewind to a batch start), and records beyond
    /// it mean the bus skipped some, so seek back — further each time — and drop them.
    async fn enforce_resume_points(&mut self, msgs: &mut Vec<Message>) -> Result<(), StreamError> {
        let mut gaps: Vec<(TopicKind, i32, i64, i64, i64)> = Vec::new();
        let mut gap_error = None;
        msgs.retain(|m| {
            let Some(kind) = TopicKind::from_topic(&m.topic) else { return true };
            if gaps.iter().any(|(k, p, ..)| *k == kind && *p == m.partition) {
                return false;
            }
            let Some(o) = self.owned.get_mut(&(kind, m.partition)) else { return true };
            match o.expect {
                Some(e) if m.offset > e && o.rewound_to != Some(0) && o.gap_seeks < MAX_GAP_SEEKS => {
                    let target = rewind_target(e, o.gap_seeks);
                    o.gap_seeks += 1;
                    o.rewound_to = Some(target);
                    gaps.push((kind, m.partition, e, target, m.offset));
                    false
                }
                Some(e) if m.offset > e => {
                    // Rewinding to the start of the log did not bring the records back: stop
                    // rather than silently skip them (a restart restores and tries again; an
                    // operator sees the error).
                    gap_error = Some(StreamError::Gap { topic: m.topic.to_string(), partition: m.partition, expected: e, got: m.offset });
                    false
                }
                Some(e) if m.offset == e => {
                    o.expect = None;
                    true
                }
                // Before the resume offset: applied before the checkpoint; skip it.
                Some(_) => false,
                None => true,
            }
        });
        if let Some(e) = gap_error {
            return Err(e);
        }
        for (kind, partition, expect, target, got) in gaps {
            tracing::info!(topic = kind.topic(), partition, expect, got, seek = target, "records beyond the restored offset; seeking back");
            // Failed, the next poll brings records beyond `expect` again and seeks once more.
            if let Err(e) = self.consumer.seek(&TopicPartition { topic: kind.topic().to_string(), partition }, target).await {
                tracing::warn!(topic = kind.topic(), partition, %e, "seek back failed; retried at the next poll");
            }
        }
        Ok(())
    }

    /// Process a poll's records chunk by chunk, as a pipeline: while the processor applies one
    /// chunk, other threads validate the next, and the previous chunk's sink writes run. Returns
    /// once every write of the poll is done — except, on a bus that never rebalances, the last
    /// chunk's, which then overlap the next poll.
    async fn process(&mut self, msgs: &[Message]) -> Result<(), StreamError> {
        let parts: Vec<&[Message]> = msgs.chunks(self.cfg.sink_chunk.max(1)).collect();
        let threads = self.cfg.validate_threads.max(1);
        let t = Instant::now();
        let mut verdicts = parts.first().map(|p| crate::validate::check_all(p, threads));
        self.metrics.add_stage_time(Stage::Process, t.elapsed());
        for (i, part) in parts.iter().enumerate() {
            let current = verdicts.take().expect("a chunk's verdicts are ready before it is applied");
            let next = parts.get(i + 1).copied();
            let t = Instant::now();
            let (out, next_verdicts) = match next {
                Some(n) if threads > 1 => {
                    // Validation is pure: the next chunk's runs on helper threads beside this
                    // chunk's processing, and this thread joins them once its part is done.
                    let (out, verdicts) = crate::validate::validate_beside(n, threads, || self.apply_checked(part, current));
                    (out, Some(verdicts))
                }
                _ => (self.apply_checked(part, current), next.map(|n| crate::validate::check_all(n, 1))),
            };
            verdicts = next_verdicts;
            self.metrics.add_stage_time(Stage::Process, t.elapsed());
            let (job, lake) = self.sink_job(part, out).await?;
            let waited = Instant::now();
            self.wait_for_sinks().await?;
            self.inflight = Some(tokio::spawn(run_sink_job(self.sinks(), job)));
            self.start_lake_writes(lake).await?;
            self.metrics.add_stage_time(Stage::SinkWait, waited.elapsed());
            self.flush_warehouse_early(part.len());
        }
        if self.consumer.may_rebalance() {
            // A rebalance happens inside a poll: no write may be in flight then.
            self.wait_for_sinks().await?;
            join_lake_writes(std::mem::take(&mut self.lake_writes)).await?;
        }
        Ok(())
    }

    /// Write full raw buffers in the background: the processing goes on meanwhile, and the
    /// next checkpoint waits for them (at most `MAX_LAKE_WRITES` run; beyond, wait for the oldest).
    async fn start_lake_writes(&mut self, lake: Vec<LakeWrite>) -> Result<(), StreamError> {
        if lake.is_empty() {
            return Ok(());
        }
        while self.lake_writes.len() >= MAX_LAKE_WRITES {
            if let Some(oldest) = self.lake_writes.pop_front() {
                oldest.await.unwrap_or_else(|e| Err(StreamError::Sink(e.to_string())))?;
            }
        }
        let sinks = self.sinks();
        self.lake_writes.push_back(tokio::spawn(async move { write_lake(&sinks, lake).await }));
        Ok(())
    }

    /// Start a warehouse flush ahead of the checkpoint once enough records went in, so the
    /// checkpoint's flush (the one offsets wait for) finds little left. Best effort: a failure
    /// only means the checkpoint's flush writes those rows.
    fn flush_warehouse_early(&mut self, records: usize) {
        self.since_flush += records;
        let every = self.cfg.warehouse_flush_events;
        if every == 0 || self.since_flush < every || self.early_flush.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.since_flush = 0;
        let wh = self.warehouse.clone();
        self.early_flush = Some(tokio::spawn(async move {
            if let Err(e) = wh.flush_tables(EARLY_FLUSH_TABLES).await {
                tracing::warn!(%e, "early warehouse flush failed; the next checkpoint flushes again");
            }
        }));
    }

    async fn wait_for_sinks(&mut self) -> Result<(), StreamError> {
        if let Some(task) = self.inflight.take() {
            let out = task.await.map_err(|e| StreamError::Sink(e.to_string()))??;
            self.spare.push(out);
        }
        Ok(())
    }

    /// The processor over one validated chunk, its raw events added to the partitions' buffers.
    fn apply_checked(&mut self, msgs: &[Message], verdicts: Vec<crate::validate::Verdict<'_>>) -> Outputs {
        let mut out = self.spare.pop().unwrap_or_default();
        out.clear();
        // Per partition (a handful per chunk, so a scan), the positions of the lake's events.
        let mut accepted: Vec<(&str, i32, Vec<u32>)> = Vec::new();
        for (i, (m, v)) in msgs.iter().zip(&verdicts).enumerate() {
            if self.processor.process_checked(m, v, &mut out) {
                match accepted.iter_mut().find(|(t, p, _)| *p == m.partition && *t == &*m.topic) {
                    Some((_, _, positions)) => positions.push(i as u32),
                    None => accepted.push((&m.topic, m.partition, vec![i as u32])),
                }
            }
        }
        self.processor.flush(&mut out);
        self.account(msgs, &out);
        self.chunk_accepted.clear();
        for (topic, partition, positions) in accepted {
            let Some(kind) = TopicKind::from_topic(topic) else { continue };
            let key = (kind, partition);
            let (first, last) = (msgs[positions[0] as usize].offset, msgs[positions[positions.len() - 1] as usize].offset);
            if let Some(o) = self.owned.get_mut(&key) {
                if o.clean_from.is_none() {
                    // No checkpoint: this attempt starts at the first offset seen.
                    o.clean_from = Some(first);
                }
            }
            let buf = self.raw.entry(key).or_insert_with(|| RawBuf { first, last, batches: Vec::new(), events: Vec::new(), len: 0 });
            if buf.len == 0 {
                buf.first = first;
            }
            buf.last = last;
            buf.len += positions.len();
            self.chunk_accepted.push((key, positions.len()));
            // Sales and inventory rows reach the buffer as raw batches (`sink_job`).
            if kind.raw_kind() == RawKind::Events {
                buf.events.extend(positions.iter().filter_map(|&i| match &verdicts[i as usize] {
                    Some(Ok(e)) => Some(e.to_owned_strings()),
                    _ => None,
                }));
            }
        }
        out
    }

    /// A chunk's writes: its outputs and the raw buffers that are full now (their partitions'
    /// uncommitted leftovers cleaned first, so the task's writes never race a cleanup).
    async fn sink_job(&mut self, msgs: &[Message], mut out: Outputs) -> Result<(SinkJob, Vec<LakeWrite>), StreamError> {
        let appended_ms = msgs.iter().map(|m| m.timestamp_ms).collect();
        // The chunk's raw rows join their partitions' lake buffers before any buffer is
        // written, as slices of one batch per kind (the sink builds the facts over the same).
        let sales = (!out.sales.is_empty()).then(|| out.sales.finish()).transpose()?;
        let inventory = (!out.inventory.is_empty()).then(|| out.inventory.finish()).transpose()?;
        let slices = [
            (TopicKind::Sales, sales.as_ref().map(FinishedRows::raw_by_partition)),
            (TopicKind::Inventory, inventory.as_ref().map(FinishedRows::raw_by_partition)),
        ];
        let mut rows: Vec<((TopicKind, i32), usize)> = Vec::new();
        for (kind, parts) in slices {
            for (partition, batch) in parts.into_iter().flatten() {
                match rows.iter_mut().find(|(k, _)| *k == (kind, partition)) {
                    Some((_, n)) => *n += batch.num_rows(),
                    None => rows.push(((kind, partition), batch.num_rows())),
                }
                if let Some(buf) = self.raw.get_mut(&(kind, partition)) {
                    buf.batches.push(batch);
                }
            }
        }
        // Every accepted sale and inventory update has its raw row, in its partition's buffer.
        // A mismatch is a bug, and writing on would put the wrong events in the lake.
        let batched = |k: &(TopicKind, i32)| k.0.raw_kind() != RawKind::Events;
        let accepted = self.chunk_accepted.iter().filter(|(k, _)| batched(k));
        if accepted.clone().count() != rows.len() || accepted.clone().any(|(k, n)| !rows.contains(&(*k, *n)) || !self.raw.contains_key(k)) {
            return Err(StreamError::Sink(format!("raw rows {rows:?} do not match the accepted events {:?}", self.chunk_accepted)));
        }
        let full: Vec<(TopicKind, i32)> = self.raw.iter().filter(|(_, b)| b.len >= self.cfg.lake_flush_events).map(|(k, _)| *k).collect();
        let mut lake = Vec::new();
        for k in full {
            if let Some(w) = self.take_raw(k).await? {
                lake.push(w);
            }
        }
        Ok((SinkJob { out, sales, inventory, appended_ms }, lake))
    }

    fn account(&mut self, msgs: &[Message], out: &Outputs) {
        let mut per_topic: BTreeMap<&str, u64> = BTreeMap::new();
        for m in msgs {
            *per_topic.entry(&*m.topic).or_default() += 1;
        }
        for (t, n) in per_topic {
            self.metrics.events_in.get_or_create(&vec![("topic".into(), t.to_string())]).inc_by(n);
        }
        let s = &out.stats;
        let m = &self.metrics;
        m.dead_letters.inc_by(out.dead_letters.len() as u64);
        m.duplicates.inc_by(s.duplicates);
        m.late_events.inc_by(s.late);
        m.beyond_dedup_horizon.inc_by(s.beyond_dedup_horizon);
        m.stale_inventory.inc_by(s.stale_inventory);
        m.anomalies.inc_by(out.anomalies.len() as u64);
        m.alerts.inc_by(out.alerts.len() as u64);
        let c = &m.counters;
        c.events_in.fetch_add(msgs.len() as u64, Ordering::Relaxed);
        c.valid.fetch_add(s.valid, Ordering::Relaxed);
        c.dead_letters.fetch_add(out.dead_letters.len() as u64, Ordering::Relaxed);
        c.duplicates.fetch_add(s.duplicates, Ordering::Relaxed);
        c.late.fetch_add(s.late, Ordering::Relaxed);
        c.alerts.fetch_add(out.alerts.len() as u64, Ordering::Relaxed);
        c.anomalies.fetch_add(out.anomalies.len() as u64, Ordering::Relaxed);
        self.summary.records += msgs.len() as u64;
        self.summary.valid += s.valid;
        self.summary.dead_letters += out.dead_letters.len() as u64;
    }

    /// Delete a partition's lake objects left by an uncommitted attempt (see module docs).
    async fn clean_partition(&mut self, key: (TopicKind, i32)) -> Result<(), StreamError> {
        let Some(o) = self.owned.get(&key) else { return Ok(()) };
        if !o.needs_clean {
            return Ok(());
        }
        let Some(from) = o.clean_from else { return Ok(()) };
        let (kind, partition) = key;
        let lake = self.lake.clone();
        let prefix = format!("raw-data/{}/", kind.lake_kind());
        let objects = retry("lake list", LakeError::is_retryable, || lake.list(&prefix)).await?;
        let mut deleted = 0;
        for obj in objects {
            if let Some((topic, p, first)) = parse_batch_key(&obj.key) {
                if topic == kind.topic() && p == partition && first >= from {
                    retry("lake delete", LakeError::is_retryable, || lake.delete(&obj.key)).await?;
                    deleted += 1;
                }
            }
        }
        if deleted > 0 {
            tracing::info!(topic = kind.topic(), partition, from, deleted, "removed uncommitted lake objects before replay");
        }
        if let Some(o) = self.owned.get_mut(&key) {
            o.needs_clean = false;
        }
        Ok(())
    }

    /// Take a partition's buffered raw events as a named lake write (cleaning leftovers first).
    async fn take_raw(&mut self, key: (TopicKind, i32)) -> Result<Option<LakeWrite>, StreamError> {
        if self.raw.get(&key).is_none_or(|b| b.len == 0) {
            return Ok(None);
        }
        self.clean_partition(key).await?;
        let Some(buf) = self.raw.get_mut(&key) else { return Ok(None) };
        let name = batch_name(key.0, key.1, buf.first, buf.last);
        buf.len = 0;
        Ok(Some(LakeWrite { kind: key.0, name, batches: std::mem::take(&mut buf.batches), events: std::mem::take(&mut buf.events) }))
    }

    /// Make everything processed so far durable, then commit: lake raw objects, warehouse
    /// flush, one checkpoint per owned partition, and only then the offsets. The state is
    /// captured here; the writes run in a task, and the commit follows when it is done
    /// (`finish_checkpoint`) — on a bus that can rebalance right away, on the embedded log
    /// while the next records are processed. One checkpoint is in flight at a time.
    pub async fn checkpoint(&mut self) -> Result<(), StreamError> {
        self.finish_checkpoint().await?;
        // Never write a checkpoint for a partition this member lost: its new owner may already
        // have restored the previous one and cleaned the lake from there.
        let assigned: HashSet<TopicPartition> = self.consumer.assignment().into_iter().collect();
        let lost: Vec<TopicPartition> = self.processor.owned().into_iter().filter(|tp| !assigned.contains(tp)).collect();
        if !lost.is_empty() {
            self.revoke(&lost);
        }
        self.wait_for_sinks().await?;
        let keys: Vec<(TopicKind, i32)> = self.raw.keys().copied().collect();
        let mut writes = Vec::new();
        for k in keys {
            if let Some(w) = self.take_raw(k).await? {
                writes.push(w);
            }
        }
        let started = Instant::now();
        // Encode the partitions' snapshots on the encoding threads while the lake and the warehouse
        // write: the three are independent. Only the snapshot *writes* wait, since a checkpoint
        // must never be ahead of the data.
        let mut encodes = Vec::new();
        let owned = self.processor.owned();
        for (tp, mut snap) in self.processor.snapshots(&owned, self.cfg.validate_threads)? {
            let key = self.checkpoint_key(&tp.topic, tp.partition);
            let size = self.snapshot_bytes.get(&tp).map_or(64 << 10, |n| n + n / 8);
            // Changed dedup buckets and the stock base or delta go to objects of their own; the
            // state object refers to them all, and the objects it no longer refers to go after
            // it is written.
            let changed: Vec<(String, Vec<u64>)> = std::mem::take(&mut snap.dedup)
                .into_iter()
                .map(|(bucket, ids)| {
                    snap.dedup_segments.push((bucket, snap.next_offset));
                    (self.dedup_key(&tp.topic, tp.partition, bucket, snap.next_offset), ids)
                })
                .collect();
            let stock = std::mem::take(&mut snap.stock);
            let stock_key = (!stock.is_empty()).then(|| self.stock_key(&tp.topic, tp.partition, snap.stock_segments.len(), snap.next_offset));
            if stock_key.is_some() {
                snap.stock_segments.push(snap.next_offset);
            }
            let referenced = self.side_keys(&tp, &snap);
            let previous = self.side_objects.insert(tp.clone(), referenced.clone()).unwrap_or_default();
            let unused: Vec<String> = previous.difference(&referenced).cloned().collect();
            encodes.push(tokio::spawn(retail_lake::run_cpu(move || {
                let checkpoint_err = |key: &str, reason: String| StreamError::Checkpoint { key: key.to_string(), reason };
                let mut buf = Vec::with_capacity(size);
                let bytes = snap.encode(&mut buf).map(|()| buf).map_err(|reason| checkpoint_err(&key, reason));
                let mut side: Vec<(String, Result<bytes::Bytes, StreamError>)> =
                    changed.into_iter().map(|(k, ids)| (k, Ok(crate::state::encode_dedup_ids(&ids).into()))).collect();
                if let Some(k) = stock_key {
                    let encoded = crate::state::encode_stock(&stock).map(bytes::Bytes::from).map_err(|reason| checkpoint_err(&k, reason));
                    side.push((k, encoded));
                }
                Encoded { tp, next_offset: snap.next_offset, key, bytes, side, unused }
            })));
        }
        let sinks = self.sinks();
        let background = std::mem::take(&mut self.lake_writes);
        let early_flush = self.early_flush.take();
        self.since_flush = 0;
        self.pending_checkpoint = Some(tokio::spawn(async move {
            let wh = sinks.warehouse.clone();
            let (lake_written, background_written, wh_flushed) = tokio::join!(write_lake(&sinks, writes), join_lake_writes(background), async {
                let t = Instant::now();
                if let Some(f) = early_flush {
                    // Its outcome does not matter: the flush below covers everything either way.
                    let _ = f.await;
                }
                let r = retry("warehouse flush", WarehouseError::is_retryable, || wh.flush()).await;
                (r, t.elapsed())
            });
            lake_written?;
            background_written?;
            let (wh_result, flushed) = wh_flushed;
            wh_result?;
            let mut done = Durable { positions: Vec::new(), sizes: Vec::new(), started, flushed, snapshotted: Duration::ZERO };
            for task in encodes {
                let Encoded { tp, next_offset, key, bytes, side, unused } =
                    task.await.map_err(|e| StreamError::Checkpoint { key: "snapshot".into(), reason: e.to_string() })?;
                let bytes = bytes::Bytes::from(bytes?);
                done.sizes.push((tp.clone(), bytes.len()));
                // The dedup and stock objects first: the state object refers to them.
                for (k, b) in side {
                    let b = b?;
                    retry("checkpoint write", LakeError::is_retryable, || sinks.lake.put(&k, b.clone())).await?;
                }
                retry("checkpoint write", LakeError::is_retryable, || sinks.lake.put(&key, bytes.clone())).await?;
                for k in unused {
                    if let Err(e) = sinks.lake.delete(&k).await {
                        tracing::warn!(key = %k, %e, "deleting a replaced checkpoint object failed; it is only garbage");
                    }
                }
                done.positions.push((tp, next_offset));
            }
            done.snapshotted = started.elapsed();
            Ok(done)
        }));
        self.last_checkpoint = Instant::now();
        self.dirty_since_checkpoint = false;
        let (w, s) = self.processor.sizes();
        self.metrics.open_windows.set(w as i64);
        self.metrics.tracked_keys.set(s as i64);
        if self.consumer.may_rebalance() {
            // A rebalance happens inside a poll: the checkpoint must be written (and committed)
            // before the next one, or it could land after the partition's new owner restored.
            self.finish_checkpoint().await?;
        }
        Ok(())
    }

    /// Wait for the checkpoint in flight, if any, and commit its offsets.
    async fn finish_checkpoint(&mut self) -> Result<(), StreamError> {
        let Some(task) = self.pending_checkpoint.take() else { return Ok(()) };
        let done = task.await.map_err(|e| StreamError::Sink(e.to_string()))??;
        let waited = Instant::now();
        if !done.positions.is_empty() {
            // Not retried in a loop here: a failed commit is harmless (the checkpoint already
            // holds the position and a restart resumes from it), the next checkpoint retries.
            if let Err(e) = self.consumer.commit(&done.positions).await {
                tracing::warn!(%e, "offset commit failed; the next checkpoint retries");
            }
        }
        self.snapshot_bytes.extend(done.sizes);
        tracing::debug!(
            flush_ms = done.flushed.as_millis() as u64,
            snapshots_ms = done.snapshotted.saturating_sub(done.flushed).as_millis() as u64,
            commit_ms = waited.elapsed().as_millis() as u64,
            total_ms = done.started.elapsed().as_millis() as u64,
            "checkpoint"
        );
        self.metrics.add_stage_time(Stage::Checkpoint, done.snapshotted + waited.elapsed());
        self.summary.checkpoints += 1;
        let c = &self.metrics.counters;
        c.checkpoints.fetch_add(1, Ordering::Relaxed);
        c.last_checkpoint_unix_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
        self.update_lag();
        Ok(())
    }

    /// Refresh the lag metrics in the background: on Kafka it is a few broker round trips per
    /// partition, which the processing loop should not wait for. At most one refresh runs.
    fn update_lag(&mut self) {
        if self.lag_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        let bus = self.bus.clone();
        let metrics = self.metrics.clone();
        let group = self.cfg.group.clone();
        let topics = self.cfg.topics.clone();
        self.lag_task = Some(tokio::spawn(async move {
            let topics: Vec<&str> = topics.iter().map(|s| s.as_str()).collect();
            match bus.lag(&group, &topics).await {
                Ok(lags) => {
                    let mut total = 0;
                    for (tp, lag) in lags {
                        total += lag.max(0);
                        metrics.lag.get_or_create(&vec![("topic".into(), tp.topic), ("partition".into(), tp.partition.to_string())]).set(lag);
                    }
                    metrics.counters.lag.store(total, Ordering::Relaxed);
                }
                Err(e) => tracing::debug!(%e, "lag unavailable"),
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_names_round_trip_through_lake_keys() {
        let name = batch_name(TopicKind::Sales, 2, 100, 250);
        let key = format!("raw-data/sales/year=2025/month=01/day=01/part-{name}.parquet");
        assert_eq!(parse_batch_key(&key), Some((topics::SALES, 2, 100)));
        assert_eq!(retail_lake::safe_batch_id(&name), name, "the lake must keep our names verbatim");
        assert_eq!(parse_batch_key("raw-data/sales/year=2025/month=01/day=01/compacted-00ff.parquet"), None);
    }

    #[test]
    fn gap_rewinds_double_and_stop_at_the_log_start() {
        assert_eq!(rewind_target(5000, 0), 5000 - 1024);
        assert_eq!(rewind_target(5000, 1), 5000 - 2048);
        assert_eq!(rewind_target(5000, 2), 5000 - 4096);
        assert_eq!(rewind_target(5000, 3), 0);
        assert_eq!(rewind_target(1 << 40, 100), 0, "no overflow however many seeks");
    }
}
