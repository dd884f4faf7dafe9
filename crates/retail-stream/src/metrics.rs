//! Health of the processor: Prometheus metrics (for `/metrics`) and plain atomic counters
//! (for the live dashboard and the benchmark), updated once per batch, not per event.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

type Labels = Vec<(String, String)>;

/// The processor's metrics. Cheap to clone (every metric is shared); register once.
#[derive(Clone)]
pub struct StreamMetrics {
    pub events_in: Family<Labels, Counter>,
    pub events_out: Family<Labels, Counter>,
    pub dead_letters: Counter,
    pub duplicates: Counter,
    pub late_events: Counter,
    pub beyond_dedup_horizon: Counter,
    pub stale_inventory: Counter,
    pub anomalies: Counter,
    pub alerts: Counter,
    pub lag: Family<Labels, Gauge>,
    pub window_latency: Histogram,
    pub event_to_sink: Histogram,
    pub checkpoint_age: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub open_windows: Gauge,
    pub tracked_keys: Gauge,
    /// Wall seconds spent per runner stage (where a slow processor spends its time).
    pub stage_seconds: Family<Labels, Counter<f64, AtomicU64>>,
    pub counters: Arc<StreamCounters>,
}

impl Default for StreamMetrics {
    fn default() -> Self {
        StreamMetrics {
            events_in: Family::default(),
            events_out: Family::default(),
            dead_letters: Counter::default(),
            duplicates: Counter::default(),
            late_events: Counter::default(),
            beyond_dedup_horizon: Counter::default(),
            stale_inventory: Counter::default(),
            anomalies: Counter::default(),
            alerts: Counter::default(),
            lag: Family::default(),
            // 1 ms … ~65 s
            window_latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            event_to_sink: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            checkpoint_age: Gauge::default(),
            open_windows: Gauge::default(),
            tracked_keys: Gauge::default(),
            stage_seconds: Family::default(),
            counters: Arc::new(StreamCounters::default()),
        }
    }
}

impl StreamMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register every metric under `retail_stream_*`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("retail_stream");
        r.register("events_in", "Records read, per input topic", self.events_in.clone());
        r.register("events_out", "Rows and records written, per sink", self.events_out.clone());
        r.register("dead_letters", "Records routed to the dead-letter topic (invalid or late)", self.dead_letters.clone());
        r.register("duplicates", "Records dropped as duplicate event ids", self.duplicates.clone());
        r.register("late_events", "Sales beyond the allowed lateness (stored, not windowed)", self.late_events.clone());
        r.register(
            "beyond_dedup_horizon",
            "Records accepted from further behind the watermark than the dedup horizon (a re-send of one would not be caught by the stream)",
            self.beyond_dedup_horizon.clone(),
        );
        r.register(
            "stale_inventory_updates",
            "Inventory updates older than the one the stock level came from (kept as facts; the newer level stands)",
            self.stale_inventory.clone(),
        );
        r.register("anomalies", "Anomaly flags raised", self.anomalies.clone());
        r.register("alerts", "Restock alert events (open and resolved)", self.alerts.clone());
        r.register("consumer_lag", "Records not yet committed, per topic-partition", self.lag.clone());
        r.register("window_latency_seconds", "Wall time from a window's end to its emission", self.window_latency.clone());
        r.register("event_to_sink_seconds", "Wall time from bus append to the warehouse holding the rows", self.event_to_sink.clone());
        r.register("checkpoint_age_seconds", "Time since the last committed checkpoint", self.checkpoint_age.clone());
        r.register("open_windows", "Windows held in memory", self.open_windows.clone());
        r.register("tracked_keys", "Store×SKUs with stock state", self.tracked_keys.clone());
        r.register("stage_seconds", "Wall seconds spent per runner stage", self.stage_seconds.clone());
    }

    pub fn counters(&self) -> Arc<StreamCounters> {
        self.counters.clone()
    }

    /// Add `d` to a stage's time (Prometheus and the plain counters).
    pub fn add_stage_time(&self, stage: Stage, d: std::time::Duration) {
        self.stage_seconds.get_or_create(&vec![("stage".into(), stage.name().into())]).inc_by(d.as_secs_f64());
        self.counters.stage_ns[stage as usize].fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// The runner's stages, for time accounting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Waiting for and reading records from the bus.
    Poll,
    /// Validation and the processor core.
    Process,
    /// Warehouse inserts and dead-letter/alert publishing.
    Warehouse,
    /// Raw Parquet objects to the lake.
    Lake,
    /// Warehouse flush, checkpoints and offset commits.
    Checkpoint,
    /// The loop waiting for the previous chunk's sink writes or the oldest background lake
    /// write before it can hand on the next (backpressure: the sinks are behind).
    SinkWait,
}

impl Stage {
    pub const ALL: [Stage; 6] = [Stage::Poll, Stage::Process, Stage::Warehouse, Stage::Lake, Stage::Checkpoint, Stage::SinkWait];
    pub fn name(self) -> &'static str {
        match self {
            Stage::Poll => "poll",
            Stage::Process => "process",
            Stage::Warehouse => "warehouse",
            Stage::Lake => "lake",
            Stage::Checkpoint => "checkpoint",
            Stage::SinkWait => "sink_wait",
        }
    }
}

/// Live counters for the dashboard, plus an event→sink latency histogram with millisecond
/// resolution (for the benchmark's p50/p99; Prometheus buckets are too coarse for that).
pub struct StreamCounters {
    pub events_in: AtomicU64,
    pub valid: AtomicU64,
    pub dead_letters: AtomicU64,
    pub duplicates: AtomicU64,
    pub late: AtomicU64,
    pub alerts: AtomicU64,
    pub anomalies: AtomicU64,
    pub lag: AtomicI64,
    pub checkpoints: AtomicU64,
    pub last_checkpoint_unix_ms: AtomicI64,
    /// Records whose sink writes completed (the latency histogram's population).
    pub sunk: AtomicU64,
    /// Nanoseconds per [`Stage`].
    pub stage_ns: [AtomicU64; 6],
    latency_ms: Vec<AtomicU64>,
}

/// 0..1000 ms by 1 ms, then 1 s..60 s by 100 ms, then one overflow bucket.
const FINE: usize = 1000;
const COARSE: usize = 590;

impl Default for StreamCounters {
    fn default() -> Self {
        StreamCounters {
            events_in: AtomicU64::new(0),
            valid: AtomicU64::new(0),
            dead_letters: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            late: AtomicU64::new(0),
            alerts: AtomicU64::new(0),
            anomalies: AtomicU64::new(0),
            lag: AtomicI64::new(0),
            checkpoints: AtomicU64::new(0),
            last_checkpoint_unix_ms: AtomicI64::new(0),
            sunk: AtomicU64::new(0),
            stage_ns: Default::default(),
            latency_ms: (0..FINE + COARSE + 1).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// A point-in-time copy of the counters.
#[derive(Serialize, Clone, Debug, Default, PartialEq)]
pub struct CountersSnapshot {
    pub events_in: u64,
    pub valid: u64,
    pub dead_letters: u64,
    pub duplicates: u64,
    pub late: u64,
    pub alerts: u64,
    pub anomalies: u64,
    pub lag: i64,
    pub checkpoints: u64,
    pub last_checkpoint_unix_ms: i64,
    pub sunk: u64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Seconds per stage, in [`Stage::ALL`] order.
    pub stage_secs: [f64; 6],
}

impl StreamCounters {
    fn bucket(ms: i64) -> usize {
        let ms = ms.max(0) as usize;
        if ms < FINE {
            ms
        } else {
            (FINE + (ms - FINE) / 100).min(FINE + COARSE)
        }
    }

    fn bucket_value(b: usize) -> f64 {
        if b < FINE {
            b as f64
        } else {
            (FINE + (b - FINE) * 100) as f64
        }
    }

    /// Record `n` records that reached the sinks `ms` after they were appended to the bus.
    pub fn record_latency(&self, ms: i64, n: u64) {
        self.latency_ms[Self::bucket(ms)].fetch_add(n, Ordering::Relaxed);
    }

    /// The latency below which a fraction `q` of recorded records fall (bucket lower bound).
    pub fn latency_quantile_ms(&self, q: f64) -> f64 {
        let counts: Vec<u64> = self.latency_ms.iter().map(|c| c.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::bucket_value(b);
            }
        }
        Self::bucket_value(counts.len() - 1)
    }

    pub fn reset_latency(&self) {
        for c in &self.latency_ms {
            c.store(0, Ordering::Relaxed);
        }
    }

    pub fn snapshot(&self) -> CountersSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CountersSnapshot {
            events_in: l(&self.events_in),
            valid: l(&self.valid),
            dead_letters: l(&self.dead_letters),
            duplicates: l(&self.duplicates),
            late: l(&self.late),
            alerts: l(&self.alerts),
            anomalies: l(&self.anomalies),
            lag: self.lag.load(Ordering::Relaxed),
            checkpoints: l(&self.checkpoints),
            last_checkpoint_unix_ms: self.last_checkpoint_unix_ms.load(Ordering::Relaxed),
            sunk: l(&self.sunk),
            latency_p50_ms: self.latency_quantile_ms(0.5),
            latency_p99_ms: self.latency_quantile_ms(0.99),
            stage_secs: std::array::from_fn(|i| l(&self.stage_ns[i]) as f64 / 1e9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_quantiles_follow_the_recorded_distribution() {
        let c = StreamCounters::default();
        c.record_latency(3, 98);
        c.record_latency(250, 1);
        c.record_latency(4321, 1);
        assert_eq!(c.latency_quantile_ms(0.5), 3.0);
        assert_eq!(c.latency_quantile_ms(0.99), 250.0);
        assert_eq!(c.latency_quantile_ms(1.0), 4300.0);
        c.record_latency(-5, 1000); // clock skew clamps to 0, never panics
        assert_eq!(c.latency_quantile_ms(0.5), 0.0);
    }

    #[test]
    fn metrics_register_and_encode() {
        let m = StreamMetrics::new();
        let mut reg = Registry::default();
        m.register(&mut reg);
        m.events_in.get_or_create(&vec![("topic".into(), "retail-sales-transactions".into())]).inc_by(3);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
        assert!(text.contains("retail_stream_events_in_total{topic=\"retail-sales-transactions\"} 3"), "{text}");
        assert!(text.contains("retail_stream_checkpoint_age_seconds"), "{text}");
    }
}
