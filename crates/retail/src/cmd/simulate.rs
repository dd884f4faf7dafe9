//! `retail simulate`: generate POS events from the retail world model.
//!
//! Backfill (`--backfill-days D`): a simulated clock, as fast as the machine allows; same seed
//! and arguments (and `--start`) → byte-identical output. Real time (`--duration`, or no
//! `--backfill-days`): events paced by the wall clock at `--rate` events/min per open store,
//! continuing the backfilled world when both are given.

use crate::config::Config;
use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use retail_core::Event;
use retail_sim::{Simulator, Truth, World, WorldConfig};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct SimulateArgs {
    /// Number of stores (store_001 …).
    #[arg(long, default_value_t = 50)]
    pub stores: usize,
    /// Number of SKUs in the catalog.
    #[arg(long, default_value_t = 2_000)]
    pub products: usize,
    /// Assortment of the largest stores (smaller formats carry less). Default: all products.
    #[arg(long)]
    pub skus_per_store: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Simulate this many days on a simulated clock, as fast as possible.
    #[arg(long)]
    pub backfill_days: Option<u32>,
    /// First simulated instant (RFC 3339). Default: 2025-01-01T00:00:00Z for a backfill alone;
    /// `backfill-days` before now when real time follows.
    #[arg(long)]
    pub start: Option<DateTime<Utc>>,
    /// Traffic of the backfill, events per minute per open store.
    #[arg(long, default_value_t = 10.0)]
    pub backfill_rate: f64,
    /// Real-time traffic, events per minute per open store (the seed asks for 100–500).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Run in real time for this long (e.g. 90s, 10m, 2h); without it real time runs until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Where events go: `-` (stdout), `jsonl:FILE` (one event per line; `event_type` names the
    /// topic), `jsonl:DIR/` (one FILE per topic), a bus URL `file://DIR` / `kafka://host:port`,
    /// or `lake` (raw Parquet straight into the configured lake, e.g. history for batch jobs).
    #[arg(long, default_value = "-")]
    pub out: String,
    /// Directory for the ground truth and catalog (demand.csv, anomalies.jsonl, orders.jsonl,
    /// weather.csv, dim_store.jsonl, dim_product.jsonl, assortment.csv). Default: beside a
    /// jsonl output (`<out>.truth/`); none for stdout or a bus.
    #[arg(long)]
    pub truth: Option<PathBuf>,
    /// Multiplier of the anomaly injection rates (0 = none).
    #[arg(long, default_value_t = 1.0)]
    pub anomaly_rate: f64,
    /// Leave expected demand per store×SKU×day out of the truth (it is the largest part).
    #[arg(long)]
    pub no_demand_truth: bool,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| format!("`{s}`: expected e.g. 90s, 10m, 2h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("`{s}`: unit must be s, m, h or d")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Where events are written.
enum Sink {
    Lines(Box<dyn Write + Send>),
    PerTopic {
        dir: PathBuf,
        files: Vec<(&'static str, std::io::BufWriter<std::fs::File>)>,
    },
    Bus(Arc<dyn retail_bus::EventBus>),
    /// Straight into the configured lake as raw Parquet, bypassing bus and processor (history
    /// for batch jobs). Idempotent: a batch's objects are named after its first event id.
    Lake {
        lake: retail_lake::Lake,
        pending: Vec<Event>,
    },
}

/// Raw events buffered before a lake write, so files are large rather than one per hour.
const LAKE_BATCH_EVENTS: usize = 250_000;

impl Sink {
    async fn open(out: &str, config: &Config) -> anyhow::Result<Sink> {
        if out == "-" {
            return Ok(Sink::Lines(Box::new(std::io::BufWriter::with_capacity(1 << 20, std::io::stdout()))));
        }
        if let Some(path) = out.strip_prefix("jsonl:") {
            if path.is_empty() {
                bail!("--out jsonl: needs a path, e.g. jsonl:events.jsonl or jsonl:events/");
            }
            let p = Path::new(path);
            if path.ends_with('/') || p.is_dir() {
                std::fs::create_dir_all(p).with_context(|| format!("cannot create {path}"))?;
                return Ok(Sink::PerTopic { dir: p.to_path_buf(), files: Vec::new() });
            }
            if let Some(parent) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
            }
            let file = std::fs::File::create(p).with_context(|| format!("cannot create {path}"))?;
            return Ok(Sink::Lines(Box::new(std::io::BufWriter::with_capacity(1 << 20, file))));
        }
        if out == "lake" {
            return Ok(Sink::Lake { lake: crate::wiring::open_lake(config).await?, pending: Vec::new() });
        }
        if out.starts_with("file://") || out.starts_with("kafka://") {
            return Ok(Sink::Bus(crate::wiring::open_bus(config, out).await?));
        }
        bail!("--out `{out}`: expected -, jsonl:FILE, jsonl:DIR/, file://DIR, kafka://host:port or lake")
    }

    async fn write(&mut self, events: &[Event]) -> anyhow::Result<()> {
        match self {
            Sink::Lines(w) => {
                for e in events {
                    write_json_line(w, e)?;
                }
            }
            Sink::PerTopic { dir, files } => {
                for e in events {
                    let topic = e.topic();
                    let index = match files.iter().position(|(t, _)| *t == topic) {
                        Some(i) => i,
                        None => {
                            let path = dir.join(format!("{topic}.jsonl"));
                            let f = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
                            files.push((topic, std::io::BufWriter::with_capacity(1 << 20, f)));
                            files.len() - 1
                        }
                    };
                    write_json_line(&mut files[index].1, e)?;
                }
            }
            Sink::Bus(bus) => {
                let payloads: Vec<Vec<u8>> = events.iter().map(|e| e.to_json()).collect();
                for (events, payloads) in events.chunks(10_000).zip(payloads.chunks(10_000)) {
                    let records: Vec<retail_bus::Record<'_>> =
                        events.iter().zip(payloads).map(|(e, p)| retail_bus::Record { topic: e.topic(), key: e.store_id().as_bytes(), payload: p }).collect();
                    bus.publish(&records).await.context("publishing to the bus")?;
                }
            }
            Sink::Lake { pending, .. } => {
                pending.extend_from_slice(events);
                if pending.len() >= LAKE_BATCH_EVENTS {
                    self.flush().await?;
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Sink::Lines(w) => w.flush()?,
            Sink::PerTopic { files, .. } => {
                for (_, f) in files {
                    f.flush()?;
                }
            }
            Sink::Bus(_) => {}
            Sink::Lake { lake, pending } => {
                if let Some(first) = pending.first() {
                    let batch_id = format!("sim-{}-{}", first.event_id(), pending.len());
                    lake.write_raw(&batch_id, pending.iter()).await.context("writing raw events to the lake")?;
                    pending.clear();
                }
            }
        }
        Ok(())
    }
}

fn write_json_line(w: &mut impl Write, e: &Event) -> anyhow::Result<()> {
    match e {
        Event::Sale(x) => serde_json::to_writer(&mut *w, x)?,
        Event::Inventory(x) => serde_json::to_writer(&mut *w, x)?,
        Event::Price(x) => serde_json::to_writer(&mut *w, x)?,
        Event::Customer(x) => serde_json::to_writer(&mut *w, x)?,
        Event::Alert(x) => serde_json::to_writer(&mut *w, x)?,
    }
    w.write_all(b"\n")?;
    Ok(())
}

pub async fn run(args: SimulateArgs, config: &Config) -> anyhow::Result<()> {
    let realtime = args.backfill_days.is_none() || args.duration.is_some();
    if args.rate.is_nan() || args.rate <= 0.0 {
        bail!("--rate must be more than 0 events per minute per store");
    }
    let world_config = WorldConfig {
        seed: args.seed,
        stores: args.stores,
        products: args.products,
        skus_per_store: args.skus_per_store.unwrap_or(args.products),
        traffic_per_store_minute: if args.backfill_days.is_some() { args.backfill_rate } else { args.rate },
        anomaly_rate: args.anomaly_rate,
        demand_truth: !args.no_demand_truth,
        threads: args.threads,
    };
    let world = Arc::new(World::generate(&world_config)?);
    let now = Utc::now();
    let days = args.backfill_days.unwrap_or(0);
    let start = match args.start {
        Some(s) => s,
        None if realtime => retail_sim::backfill_start(now, days),
        None => "2025-01-01T00:00:00Z".parse().expect("valid constant"),
    };
    if start + chrono::Duration::days(days as i64) > now + chrono::Duration::hours(1) {
        bail!("the backfill would run into the future ({start} + {days} days is after now); pass an earlier --start");
    }
    let truth_dir = match (&args.truth, args.out.strip_prefix("jsonl:")) {
        (Some(dir), _) => Some(dir.clone()),
        (None, Some(path)) => Some(PathBuf::from(format!("{}.truth", path.trim_end_matches('/')))),
        (None, None) => None,
    };
    if let Some(dir) = &truth_dir {
        write_catalog(&world, dir)?;
    }
    let mut truth_writer = truth_dir.as_deref().map(TruthWriter::create).transpose()?;
    let mut sink = Sink::open(&args.out, config).await?;
    let mut sim = Simulator::new(Arc::clone(&world), start)?;
    let mut total = 0u64;

    if days > 0 {
        let hours = days as u64 * 24;
        let bar = indicatif::ProgressBar::new(hours);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} simulated hours, {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let started = std::time::Instant::now();
        for events in sim.backfill(days) {
            total += events.len() as u64;
            sink.write(&events).await?;
            bar.inc(1);
            bar.set_message(format!("{total} events"));
        }
        bar.finish_and_clear();
        if let Some(t) = truth_writer.as_mut() {
            t.write(sim.take_truth())?;
        }
        sink.flush().await?;
        tracing::info!(events = total, seconds = started.elapsed().as_secs_f64(), "backfill done");
    }

    if realtime {
        sim.set_traffic(args.rate)?;
        if days == 0 {
            // Live only: the world starts at the top of the hour; what happened before now
            // shapes its stock but is not replayed as a burst.
            let skipped = sim.events_until(Utc::now()).len();
            tracing::info!(skipped, "real time starts now");
        }
        let deadline = args.duration.map(|d| tokio::time::Instant::now() + d);
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::signal::ctrl_c() => break,
            }
            let events = sim.events_until(Utc::now());
            total += events.len() as u64;
            sink.write(&events).await?;
            sink.flush().await?;
            if let Some(t) = truth_writer.as_mut() {
                t.write(sim.take_truth())?;
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                break;
            }
        }
    }
    sink.flush().await?;
    if let Some(t) = truth_writer.as_mut() {
        t.write(sim.take_truth())?;
        t.flush()?;
    }
    tracing::info!(events = total, "simulation finished");
    Ok(())
}

/// dim_store / dim_product rows and the assortment, for the warehouse's dimension tables.
fn write_catalog(world: &World, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("dim_store.jsonl"))?);
    for s in world.stores() {
        serde_json::to_writer(&mut f, s)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("dim_product.jsonl"))?);
    for p in world.products() {
        serde_json::to_writer(&mut f, p)?;
        f.write_all(b"\n")?;
    }
    f.flush()?;
    let mut f = std::io::BufWriter::new(std::fs::File::create(dir.join("assortment.csv"))?);
    writeln!(f, "store_id,product_id")?;
    for (s, p) in world.assortment_pairs() {
        writeln!(f, "{s},{p}")?;
    }
    f.flush()?;
    Ok(())
}

struct TruthWriter {
    demand: std::io::BufWriter<std::fs::File>,
    anomalies: std::io::BufWriter<std::fs::File>,
    orders: std::io::BufWriter<std::fs::File>,
    weather: std::io::BufWriter<std::fs::File>,
}

impl TruthWriter {
    fn create(dir: &Path) -> anyhow::Result<TruthWriter> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let open = |name: &str| -> anyhow::Result<std::io::BufWriter<std::fs::File>> {
            let path = dir.join(name);
            Ok(std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?))
        };
        let mut w =
            TruthWriter { demand: open("demand.csv")?, anomalies: open("anomalies.jsonl")?, orders: open("orders.jsonl")?, weather: open("weather.csv")? };
        writeln!(
            w.demand,
            "date,store_id,product_id,expected_units,demand_units,sold_units,lost_units,on_promotion,closing_system_stock,closing_physical_stock"
        )?;
        writeln!(w.weather, "date,region,temp_c,rain_mm")?;
        Ok(w)
    }

    fn write(&mut self, truth: Truth) -> anyhow::Result<()> {
        for d in &truth.demand {
            writeln!(
                self.demand,
                "{},{},{},{},{},{},{},{},{},{}",
                d.date,
                d.store_id,
                d.product_id,
                d.expected_units,
                d.demand_units,
                d.sold_units,
                d.lost_units,
                d.on_promotion as u8,
                d.closing_system_stock,
                d.closing_physical_stock
            )?;
        }
        for a in &truth.anomalies {
            serde_json::to_writer(&mut self.anomalies, a)?;
            self.anomalies.write_all(b"\n")?;
        }
        for o in &truth.orders {
            serde_json::to_writer(&mut self.orders, o)?;
            self.orders.write_all(b"\n")?;
        }
        for w in &truth.weather {
            writeln!(self.weather, "{},{},{},{}", w.date, w.region, w.temp_c, w.rain_mm)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        self.demand.flush()?;
        self.anomalies.flush()?;
        self.orders.flush()?;
        self.weather.flush()?;
        Ok(())
    }
}
