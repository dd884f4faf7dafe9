//! `retail bench stream`: processor throughput (events/s over a pre-filled backlog, every sink
//! included) and event→sink latency (p50/p99 under a steady paced load), on the embedded bus
//! and, when a broker is given, on Kafka. Prints one table.

use crate::config::Config;
use retail_bus::{BusOptions, EventBus, Record};
use retail_core::topics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct BenchStreamArgs {
    /// Events in the throughput backlog.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Kafka bootstrap servers (host:port) to also measure through Kafka; default
    /// `RETAIL_TEST_KAFKA` when set.
    #[arg(long, env = "RETAIL_TEST_KAFKA")]
    pub kafka: Option<String>,
    /// Paced load for the latency run, events/s.
    #[arg(long, default_value_t = 100_000)]
    pub latency_rate: usize,
    /// Length of the latency run, seconds.
    #[arg(long, default_value_t = 10)]
    pub latency_secs: u64,
    /// What the throughput backlog holds.
    #[arg(long, value_enum, default_value_t = Workload::Pairs)]
    pub workload: Workload,
    /// Keep each run's bus, lake and warehouse under this folder (`embedded/`, `kafka/`; new or
    /// empty folders) to inspect afterwards; by default they live in a temporary folder that
    /// is removed. The global `--data-dir` is not used: a benchmark never writes into a real
    /// data directory.
    #[arg(long)]
    pub keep_dir: Option<std::path::PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// A sale and the inventory movement it causes, round-robin over 200 stores × 500 SKUs:
    /// every store×SKU equally often, the worst case for anything keyed (each window and stock
    /// row changes once per 200 k events, so nothing coalesces).
    Pairs,
    /// The simulator's retail world (100 stores × 5,000 SKUs): demand by SKU popularity, hour
    /// and promotions, every input event type, its injected anomalies and malformed records.
    Sim,
}

struct Row {
    backend: String,
    stages: [f64; 6],
    /// valid, dead letters, anomalies, alerts: what the workload made the processor do.
    outcome: [u64; 4],
    events: u64,
    secs: f64,
    p50: f64,
    p99: f64,
    rate: usize,
    /// CPU time of the whole process during the run (all threads), where the OS reports it.
    cpu_secs: Option<f64>,
    /// CPU time of the thread that ran the processor's loop, when the bench ran it itself.
    loop_cpu_secs: Option<f64>,
    /// Memory the process touched for the first time during the run (minor page faults × page
    /// size), MiB: the kernel zeroes and maps each such page, a cost that shows in the CPU time.
    new_memory_mib: Option<f64>,
    /// Resident memory at the end of the run, MiB.
    rss_mib: Option<f64>,
    /// CPU seconds by thread group (thread name without its number), largest first.
    thread_cpu: Vec<(String, f64)>,
}

use crate::process_metrics::{thread_cpu_between, thread_cpu_seconds, ProcessStats};

/// How much of the machine's cores the process kept busy over a run: CPU seconds (all
/// threads) ÷ (wall seconds × cores), in percent. Below 100, throughput is lost to waiting,
/// not only to work; at 100, only less CPU per event helps.
fn cores_busy_percent(cpu_secs: f64, wall_secs: f64, cores: usize) -> f64 {
    100.0 * cpu_secs / (wall_secs.max(1e-9) * cores.max(1) as f64)
}

/// CPU seconds of the calling thread: the backlog run's processor loop runs on it, and that
/// loop is serial, so its CPU time against the run's wall time shows whether it is the bound.
fn thread_cpu_secs() -> Option<f64> {
    ProcessStats::cpu_seconds_of("/proc/thread-self/stat")
}

/// What the process used between two readings of `/proc`: CPU seconds (user + system, every
/// thread: steadier than wall time on a shared host, and what "µs per event" compares between
/// builds), memory touched for the first time (MiB), and resident memory at the end (MiB).
/// Linux only.
fn usage_between(before: &Option<ProcessStats>, after: &Option<ProcessStats>) -> (Option<f64>, Option<f64>, Option<f64>) {
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    match (before, after) {
        (Some(b), Some(a)) => (
            Some(a.cpu_seconds - b.cpu_seconds),
            Some(mib(a.minor_faults.saturating_sub(b.minor_faults) * crate::process_metrics::page_size())),
            Some(mib(a.resident_bytes)),
        ),
        _ => (None, None, None),
    }
}

/// On-hand stock per store×SKU of the generated workload, so every inventory update continues
/// the previous one (a workload of contradicting updates would measure the anomaly path).
#[derive(Default)]
struct Stock(std::collections::HashMap<u64, i64>);

/// A sale and the inventory movement it causes, as contract JSON, from a counter: cheap enough
/// to generate a million without dominating the setup. Stores × SKUs spread the keys.
fn event_pair(i: u64, base_ms: i64, stock: &mut Stock, out: &mut Vec<(&'static str, Vec<u8>, Vec<u8>)>) {
    let store = format!("store_{:03}", 1 + i % 200);
    let sku = 1 + (i / 200) % 500;
    let ts = chrono::DateTime::from_timestamp_millis(base_ms + (i as i64) * 2).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let qty = 1 + i % 3;
    let price = 1.0 + (sku % 40) as f64 * 0.5;
    let sale = format!(
        r#"{{"event_type":"sale","schema_version":1,"transaction_id":"00000000-0000-4000-8000-{:012}","basket_id":"00000000-0000-4000-9000-{:012}","store_id":"{store}","product_id":"SKU{sku}","quantity":{qty},"unit_price":{price:.2},"list_price":{price:.2},"discount_pct":0.0,"promotion_id":null,"timestamp":"{ts}","customer_id":"cust_{}","payment_method":"credit_card"}}"#,
        2 * i,
        i,
        i % 10_000
    );
    let on_hand = stock.0.entry((i % 200) * 1000 + sku).or_insert(1_000_000);
    let previous = *on_hand;
    *on_hand -= qty as i64;
    let inv = format!(
        r#"{{"event_type":"inventory_update","schema_version":1,"inventory_id":"00000000-0000-4000-8000-{:012}","store_id":"{store}","product_id":"SKU{sku}","quantity_change":-{qty},"previous_quantity":{previous},"new_quantity":{},"reason":"sale","reference_id":null,"timestamp":"{ts}"}}"#,
        2 * i + 1,
        *on_hand
    );
    out.push((topics::SALES, store.clone().into_bytes(), sale.into_bytes()));
    out.push((topics::INVENTORY, store.into_bytes(), inv.into_bytes()));
}

async fn publish_range(bus: &Arc<dyn EventBus>, from: u64, pairs: u64, base_ms: i64, stock: &mut Stock) -> anyhow::Result<()> {
    let mut buf = Vec::with_capacity(10_000);
    let mut i = from;
    while i < from + pairs {
        buf.clear();
        let end = (i + 5_000).min(from + pairs);
        for k in i..end {
            event_pair(k, base_ms, stock, &mut buf);
        }
        let recs: Vec<Record> = buf.iter().map(|(t, k, p)| Record { topic: t, key: k, payload: p }).collect();
        bus.publish(&recs).await?;
        i = end;
    }
    Ok(())
}

/// The simulator's world and its first `events` events (from a week back, so all lie in the
/// past), published as contract JSON keyed by store. Returns the catalog the processor needs.
async fn publish_sim(bus: &Arc<dyn EventBus>, events: usize) -> anyhow::Result<retail_stream::Catalog> {
    let config = retail_sim::WorldConfig {
        seed: 42,
        stores: 100,
        products: 5_000,
        skus_per_store: 5_000,
        traffic_per_store_minute: 3.0,
        anomaly_rate: 1.0,
        demand_truth: false,
        threads: 2,
    };
    let world = Arc::new(retail_sim::World::generate(&config)?);
    let start = retail_sim::backfill_start(chrono::Utc::now(), 7);
    let mut sim = retail_sim::Simulator::new(Arc::clone(&world), start)?;
    let mut published = 0;
    let mut backfill = sim.backfill(7);
    while published < events {
        let Some(hour) = backfill.next() else { anyhow::bail!("the simulated week holds fewer than {events} events") };
        let take = hour.len().min(events - published);
        let encoded: Vec<(&'static str, Vec<u8>, Vec<u8>)> =
            hour[..take].iter().map(|e| (e.event_type().topic(), e.store_id().as_bytes().to_vec(), e.to_json())).collect();
        for chunk in encoded.chunks(5_000) {
            let recs: Vec<Record> = chunk.iter().map(|(t, k, p)| Record { topic: t, key: k, payload: p }).collect();
            bus.publish(&recs).await?;
        }
        published += take;
    }
    Ok(retail_stream::Catalog { products: world.products().to_vec(), stores: world.stores().to_vec() })
}

async fn measure(backend: &str, bus_url: &str, args: &BenchStreamArgs, config: &Config) -> anyhow::Result<(Row, Row)> {
    // Removed when dropped, at the end of this run (made only when the run is not kept).
    let temp;
    let dir = match &args.keep_dir {
        Some(keep) => {
            let dir = keep.join(backend);
            std::fs::create_dir_all(&dir)?;
            anyhow::ensure!(std::fs::read_dir(&dir)?.next().is_none(), "{} is not empty: keep each run in a new folder", dir.display());
            dir
        }
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    let mut cfg = config.clone();
    cfg.lake = format!("file://{}/lake", dir.display());
    cfg.warehouse = "embedded".into();
    let bus_url = bus_url.replace("{tmp}", &dir.display().to_string());
    let sinks = super::stream::open_sinks(&cfg, &bus_url).await?;
    // Events are 2 ms of event time apart, backlog and paced run alike: start far enough back
    // that the last one is still in the past (a future timestamp is a dead letter).
    let all_pairs = (args.events as u64).div_ceil(2) + (args.latency_rate as u64 / 2).max(100) * args.latency_secs;
    let base_ms = chrono::Utc::now().timestamp_millis() - 600_000 - (all_pairs as i64 * 2).max(3_000_000);
    let group = format!("bench-{}", uuid_like());
    let mut stream_cfg = retail_stream::StreamConfig {
        group: group.clone(),
        stop_when_idle: true,
        // The end of the backlog is noticed one empty poll after it: keep that wait short. The
        // embedded log answers at once when records arrive; a broker's fetch may take longer
        // than 10 ms mid-backlog, and each empty poll there costs an idle check.
        poll_timeout: Duration::from_millis(if bus_url.starts_with("kafka://") { 50 } else { 10 }),
        ..Default::default()
    };
    if args.workload == Workload::Pairs {
        stream_cfg.topics = vec![topics::SALES.into(), topics::INVENTORY.into()];
    }

    // Throughput: drain a backlog of `events` records.
    let pairs = (args.events as u64).div_ceil(2);
    // A new group reads from the start: records left by earlier runs would join the backlog.
    let inputs: Vec<&str> = stream_cfg.topics.iter().map(String::as_str).collect();
    let existing: i64 = sinks.bus.lag(&group, &inputs).await.map(|l| l.iter().map(|(_, n)| (*n).max(0)).sum()).unwrap_or(0);
    if existing > 0 {
        eprintln!(
            "[{backend}] warning: the topics already hold ≈ {existing} records, which the backlog run reads too; use a fresh broker for comparable numbers"
        );
    }
    let mut stock = Stock::default();
    let catalog = match args.workload {
        Workload::Pairs => {
            eprintln!("[{backend}] publishing {} records …", pairs * 2);
            publish_range(&sinks.bus, 0, pairs, base_ms, &mut stock).await?;
            retail_stream::Catalog::default()
        }
        Workload::Sim => {
            eprintln!("[{backend}] simulating and publishing {} events …", args.events);
            publish_sim(&sinks.bus, args.events).await?
        }
    };
    let metrics = retail_stream::StreamMetrics::new();
    let counters = metrics.counters();
    let started = Instant::now();
    let usage_before = ProcessStats::read();
    let threads_before = thread_cpu_seconds();
    let loop_cpu_before = thread_cpu_secs();
    retail_stream::run(stream_cfg.clone(), sinks.bus.clone(), sinks.lake.clone(), sinks.warehouse.clone(), &catalog, metrics, CancellationToken::new()).await?;
    let secs = started.elapsed().as_secs_f64();
    let loop_cpu_secs = loop_cpu_before.zip(thread_cpu_secs()).map(|(a, b)| b - a);
    let (cpu_secs, new_memory_mib, rss_mib) = usage_between(&usage_before, &ProcessStats::read());
    let thread_cpu = threads_before.zip(thread_cpu_seconds()).map(|(b, a)| thread_cpu_between(&b, &a)).unwrap_or_default();
    let snap = counters.snapshot();
    let throughput = Row {
        thread_cpu,
        new_memory_mib,
        rss_mib,
        loop_cpu_secs,
        backend: format!("{backend} backlog"),
        events: snap.events_in,
        secs,
        p50: snap.latency_p50_ms,
        p99: snap.latency_p99_ms,
        rate: 0,
        stages: snap.stage_secs,
        outcome: [snap.valid, snap.dead_letters, snap.anomalies, snap.alerts],
        cpu_secs,
    };

    // Latency: a paced producer while the processor runs live.
    let metrics = retail_stream::StreamMetrics::new();
    let counters = metrics.counters();
    let cancel = CancellationToken::new();
    let live_cfg = retail_stream::StreamConfig { stop_when_idle: false, max_batch: 5_000, poll_timeout: Duration::from_millis(20), ..stream_cfg };
    let (bus, lake, wh) = (sinks.bus.clone(), sinks.lake.clone(), sinks.warehouse.clone());
    let c2 = cancel.clone();
    let processor = tokio::spawn(async move { retail_stream::run(live_cfg, bus, lake, wh, &catalog, metrics, c2).await });
    let tick = Duration::from_millis(10);
    let pairs_per_tick = ((args.latency_rate as u64) / 2 / 100).max(1);
    let mut next = pairs;
    let start = Instant::now();
    let usage_before = ProcessStats::read();
    let threads_before = thread_cpu_seconds();
    let mut interval = tokio::time::interval(tick);
    // A tick's publish waits for its acknowledgements (on Kafka: linger, acks=all), which can
    // take longer than a tick: several ticks are in flight so the offered rate holds. Past
    // `MAX_IN_FLIGHT` the generator waits, and the table shows the rate actually reached.
    const MAX_IN_FLIGHT: usize = 16;
    let mut in_flight = std::collections::VecDeque::new();
    while start.elapsed() < Duration::from_secs(args.latency_secs) {
        interval.tick().await;
        let mut buf = Vec::with_capacity(2 * pairs_per_tick as usize);
        for k in next..next + pairs_per_tick {
            event_pair(k, base_ms, &mut stock, &mut buf);
        }
        next += pairs_per_tick;
        let bus = sinks.bus.clone();
        in_flight.push_back(tokio::spawn(async move {
            let recs: Vec<Record> = buf.iter().map(|(t, k, p)| Record { topic: t, key: k, payload: p }).collect();
            bus.publish(&recs).await
        }));
        while in_flight.len() > MAX_IN_FLIGHT {
            if let Some(oldest) = in_flight.pop_front() {
                oldest.await??;
            }
        }
    }
    for publish in in_flight {
        publish.await??;
    }
    // Let the tail drain before stopping.
    let want = (next - pairs) * 2;
    let drain = Instant::now();
    while counters.snapshot().sunk < want && drain.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cancel.cancel();
    processor.await??;
    let snap = counters.snapshot();
    // The paced run's CPU includes the generator's (it runs in this process).
    let (cpu_secs, new_memory_mib, rss_mib) = usage_between(&usage_before, &ProcessStats::read());
    let thread_cpu = threads_before.zip(thread_cpu_seconds()).map(|(b, a)| thread_cpu_between(&b, &a)).unwrap_or_default();
    let latency = Row {
        thread_cpu,
        new_memory_mib,
        rss_mib,
        backend: format!("{backend} paced"),
        events: snap.events_in,
        secs: start.elapsed().as_secs_f64(),
        p50: snap.latency_p50_ms,
        p99: snap.latency_p99_ms,
        rate: args.latency_rate,
        stages: snap.stage_secs,
        outcome: [snap.valid, snap.dead_letters, snap.anomalies, snap.alerts],
        cpu_secs,
        loop_cpu_secs: None,
    };
    Ok((throughput, latency))
}

fn uuid_like() -> String {
    format!("{:x}", chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default())
}

pub async fn run(args: BenchStreamArgs, config: &Config) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    let (a, b) = measure("embedded", "file://{tmp}/bus", &args, config).await?;
    rows.push(a);
    rows.push(b);
    if let Some(k) = &args.kafka {
        let url = if k.contains("://") { k.clone() } else { format!("kafka://{k}") };
        let (a, b) = measure("kafka", &url, &args, config).await?;
        rows.push(a);
        rows.push(b);
    }
    let _ = BusOptions::default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{:<18} {:>10} {:>9} {:>12} {:>10} {:>10} {:>10} {:>12} {:>8}",
        "run", "events", "seconds", "events/s", "offered/s", "p50 ms", "p99 ms", "cpu µs/event", "busy %"
    );
    for r in &rows {
        let offered = if r.rate == 0 { "backlog".to_string() } else { r.rate.to_string() };
        let cpu = r.cpu_secs.filter(|_| r.events > 0).map_or("-".to_string(), |c| format!("{:.2}", c * 1e6 / r.events as f64));
        let busy = r.cpu_secs.map_or("-".to_string(), |c| format!("{:.0}", cores_busy_percent(c, r.secs, cores)));
        println!(
            "{:<18} {:>10} {:>9.2} {:>12.0} {:>10} {:>10.0} {:>10.0} {:>12} {:>8}",
            r.backend,
            r.events,
            r.secs,
            r.events as f64 / r.secs.max(1e-9),
            offered,
            r.p50,
            r.p99,
            cpu,
            busy
        );
    }
    println!();
    print!("{:<18}", "stage seconds");
    for s in retail_stream::Stage::ALL {
        print!(" {:>10}", s.name());
    }
    println!(" {:>10}", "loop cpu");
    for r in &rows {
        print!("{:<18}", r.backend);
        for v in r.stages {
            print!(" {v:>10.2}");
        }
        println!(" {:>10}", r.loop_cpu_secs.map_or("-".to_string(), |c| format!("{c:.2}")));
    }
    println!();
    println!("{:<18} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}", "outcome", "valid", "dead", "anomalies", "alerts", "new MiB", "rss MiB");
    for r in &rows {
        let mib = |v: Option<f64>| v.map_or("-".to_string(), |m| format!("{m:.0}"));
        println!(
            "{:<18} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            r.backend,
            r.outcome[0],
            r.outcome[1],
            r.outcome[2],
            r.outcome[3],
            mib(r.new_memory_mib),
            mib(r.rss_mib)
        );
    }
    println!();
    println!("cpu seconds by thread");
    for r in &rows {
        let groups: Vec<String> = r.thread_cpu.iter().filter(|(_, c)| *c >= 0.005).map(|(g, c)| format!("{g} {c:.2}")).collect();
        println!("{:<18} {}", r.backend, if groups.is_empty() { "-".to_string() } else { groups.join(", ") });
    }
    println!("event→sink latency = bus append time → the batch's warehouse rows written (backlog rows include queueing behind the backlog).");
    println!("stage seconds: wall time per stage (stages overlap); loop cpu = CPU time of the thread running the processor's loop.");
    println!("new MiB = memory the process touched for the first time during the run (page faults; the paced run's includes its generator); rss MiB = resident at its end.");
    println!("cpu µs/event = the process's CPU time (all threads) over the run ÷ events; on 2 cores, 1 M events/s needs ≤ 2.");
    println!("busy % = that CPU time ÷ (seconds × {cores} cores): below 100, some core waited (idle, or the host ran something else).");
    println!("cpu seconds by thread: retail = the processor's loop (this bench runs it on the main thread), retail-validate = validation helpers,");
    println!("retail-encode = Parquet and checkpoint encoding, tokio-* = the async runtime (warehouse inserts, file I/O; the paced run's generator).");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cores_busy_percent;

    #[test]
    fn cores_busy_is_cpu_over_wall_times_cores() {
        assert_eq!(cores_busy_percent(2.0, 1.25, 2), 80.0);
        assert_eq!(cores_busy_percent(1.0, 1.0, 1), 100.0);
        // A zero-length run or no core count never divides by zero.
        assert!(cores_busy_percent(0.5, 0.0, 0).is_finite());
    }
}
