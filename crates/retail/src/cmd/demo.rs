//! `retail demo`: the whole system in one process.
//!
//! World → warehouse dimensions → stream processor + HTTP server → backfill history through the
//! bus (as fast as the machine allows) → real time at the seed's rates, until Ctrl-C.
//!
//! Restart without duplicated history: `demo-state.json` in the data dir records the world and
//! how far its events were published. On a restart the (deterministic) simulator is replayed
//! to that point without publishing, so it continues with the same stock and the same event
//! ids; the stream processor resumes from its committed offsets.

use crate::config::Config;
use anyhow::{bail, Context};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use retail_bus::{EventBus, Record};
use retail_core::Event;
use retail_sim::{Simulator, World, WorldConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    #[arg(long, default_value_t = 50)]
    pub stores: usize,
    #[arg(long, default_value_t = 2000)]
    pub products: usize,
    /// SKUs carried by the largest store format (default: all products).
    #[arg(long)]
    pub skus_per_store: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Days of history generated before real time.
    #[arg(long, default_value_t = 30)]
    pub backfill_days: u32,
    /// History traffic, events per minute per open store (kept low so the backfill is quick).
    #[arg(long, default_value_t = 2.0)]
    pub backfill_rate: f64,
    /// Real-time traffic, events per minute per open store (the seed's range is 100–500).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Dashboard refresh period, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub refresh_ms: u64,
}

/// What a data dir's demo is, and how far it got. Written atomically after each publish.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct DemoState {
    world: WorldConfig,
    backfill_rate: f64,
    live_rate: f64,
    /// The simulator's start (hour boundary).
    start: DateTime<Utc>,
    /// The hour from which traffic is the live rate (set when the backfill first caught up).
    live_from: Option<DateTime<Utc>>,
    /// Every event before this instant has been published.
    published_until: DateTime<Utc>,
}

impl DemoState {
    fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("demo-state.json")
    }

    fn load(data_dir: &Path) -> anyhow::Result<Option<DemoState>> {
        match std::fs::read(Self::path(data_dir)) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).context("demo-state.json is unreadable")?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("reading demo-state.json"),
        }
    }

    fn save(&self, data_dir: &Path) -> anyhow::Result<()> {
        let path = Self::path(data_dir);
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

pub async fn run(args: DemoArgs, config: &Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    println!("retail demo — data in {}", data_dir.display());
    println!("  bus {}  ·  lake {}  ·  warehouse {}", config.bus, config.lake, config.warehouse);

    let world_config = WorldConfig {
        seed: args.seed,
        stores: args.stores,
        products: args.products,
        skus_per_store: args.skus_per_store.unwrap_or(args.products),
        traffic_per_store_minute: args.backfill_rate,
        demand_truth: false,
        ..WorldConfig::default()
    };
    let now = Utc::now();
    let state = match DemoState::load(&data_dir)? {
        Some(s) if s.world == world_config && s.backfill_rate == args.backfill_rate && s.live_rate == args.rate => {
            println!("continuing the demo from {} (published up to {})", s.start.format("%F"), s.published_until.format("%F %T"));
            s
        }
        Some(s) => bail!(
            "{} holds a demo of another world ({} stores × {} SKUs, seed {}); use another --data-dir or the same arguments",
            data_dir.display(),
            s.world.stores,
            s.world.products,
            s.world.seed
        ),
        None => {
            let start = retail_sim::backfill_start(now, args.backfill_days);
            DemoState { world: world_config.clone(), backfill_rate: args.backfill_rate, live_rate: args.rate, start, live_from: None, published_until: start }
        }
    };

    println!("creating the world: {} stores × {} SKUs (seed {})…", args.stores, args.products, args.seed);
    let world = Arc::new(World::generate(&world_config)?);
    let bus = crate::wiring::open_bus(config, &config.bus).await?;
    let lake = crate::wiring::open_lake(config).await?;
    let warehouse = crate::wiring::open_warehouse_for_writing(config, &lake).await?;
    let dates = retail_warehouse::dim_date(
        state.start.date_naive() - ChronoDuration::days(1),
        now.date_naive() + ChronoDuration::days(400),
        &retail_warehouse::HolidayCalendar::default(),
    );
    warehouse.load_dimensions(world.stores(), world.products(), &dates).await.context("loading dimensions")?;
    warehouse.flush().await?;
    state.save(&data_dir)?;

    let cancel = super::serve::cancel_on_ctrl_c();
    let metrics = retail_stream::StreamMetrics::new();
    let status = Arc::new(super::serve::PipelineStatus::new(metrics.clone()));
    let server = super::serve::bind(config, args.refresh_ms, warehouse.clone(), status, cancel.clone()).await?;
    let server_task = tokio::spawn(server.serve(cancel.clone()));

    let catalog = retail_stream::Catalog { products: world.products().to_vec(), stores: world.stores().to_vec() };
    let stream_cfg = retail_stream::StreamConfig { group: config.kafka.group_id.clone(), ..Default::default() };
    let (stream_bus, stream_warehouse, stop) = (bus.clone(), warehouse.clone(), cancel.clone());
    let stream_task = tokio::spawn(async move { retail_stream::run(stream_cfg, stream_bus, lake, stream_warehouse, &catalog, metrics, stop).await });
    println!("stream processor running; Ctrl-C stops everything cleanly");

    let simulated = simulate(world, state, &data_dir, bus, args.rate, cancel.clone()).await;
    if let Err(e) = &simulated {
        eprintln!("simulator stopped: {e:#}");
        cancel.cancel();
    }
    let streamed = stream_task.await.context("stream processor task")?;
    let served = server_task.await.context("server task")?;
    warehouse.flush().await.context("flushing the warehouse")?;
    let summary = streamed.context("stream processor")?;
    served.context("HTTP server")?;
    simulated?;
    println!("stopped: {} records processed this run ({} dead-lettered)", summary.records, summary.dead_letters);
    Ok(())
}

/// Replays the world to where it was published, backfills up to now, then runs in real time.
async fn simulate(
    world: Arc<World>,
    mut state: DemoState,
    data_dir: &Path,
    bus: Arc<dyn EventBus>,
    live_rate: f64,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let mut sim = Simulator::new(world.clone(), state.start)?;
    let mut live = false;
    // Replay what earlier runs published (same seed → same events), publishing nothing.
    if state.published_until > state.start {
        let spinner = indicatif::ProgressBar::new_spinner().with_message("replaying the world to where the last run stopped");
        spinner.enable_steady_tick(Duration::from_millis(200));
        advance(&mut sim, &state, state.published_until, live_rate, &mut live)?;
        spinner.finish_and_clear();
    }

    // Backfill: whole past hours, as fast as the bus takes them.
    let now = Utc::now().timestamp();
    let target = DateTime::<Utc>::from_timestamp(now - now.rem_euclid(3600), 0).context("clock out of range")?;
    let hours = (target - sim.clock()).num_hours().max(0) as u64;
    if hours > 0 {
        let bar = indicatif::ProgressBar::new(hours).with_style(
            indicatif::ProgressStyle::with_template("backfill {bar:40} {pos}/{len} h  {msg}  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let mut published = 0u64;
        while sim.clock() < target && !cancel.is_cancelled() {
            switch_to_live(&mut sim, &state, live_rate, &mut live)?;
            let events = sim.next_hour();
            // Ground truth is for offline scoring (`retail simulate` writes it); the demo drops it.
            drop(sim.take_truth());
            publish(&*bus, &events).await?;
            published += events.len() as u64;
            state.published_until = sim.clock();
            state.save(data_dir)?;
            bar.inc(1);
            bar.set_message(format!("{published} events"));
        }
        bar.finish();
    }
    if cancel.is_cancelled() {
        return Ok(());
    }

    // Real time at the live rate from the current hour on.
    if state.live_from.is_none() {
        state.live_from = Some(sim.clock());
        state.save(data_dir)?;
    }
    switch_to_live(&mut sim, &state, live_rate, &mut live)?;
    let open = world.stores_open_at(Utc::now());
    println!("history published; now live at {live_rate} events/min per open store ({open} of {} stores open now)", world.stores().len());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let now = Utc::now();
        let events = sim.events_until(now);
        drop(sim.take_truth());
        publish(&*bus, &events).await?;
        state.published_until = now;
        state.save(data_dir)?;
    }
}

/// Generates (and drops) every event before `until`, switching to the live rate where the
/// original run did, so the simulator ends in the state the published events left it in.
fn advance(sim: &mut Simulator, state: &DemoState, until: DateTime<Utc>, live_rate: f64, live: &mut bool) -> anyhow::Result<()> {
    while sim.clock() + ChronoDuration::hours(1) <= until {
        switch_to_live(sim, state, live_rate, live)?;
        sim.next_hour();
        drop(sim.take_truth());
    }
    switch_to_live(sim, state, live_rate, live)?;
    sim.events_until(until);
    drop(sim.take_truth());
    Ok(())
}

/// Traffic becomes the live rate from the hour `live_from` on (once, as in the original run).
fn switch_to_live(sim: &mut Simulator, state: &DemoState, live_rate: f64, live: &mut bool) -> anyhow::Result<()> {
    if !*live && state.live_from.is_some_and(|t| sim.clock() >= t) {
        sim.set_traffic(live_rate)?;
        *live = true;
    }
    Ok(())
}

async fn publish(bus: &dyn EventBus, events: &[Event]) -> anyhow::Result<()> {
    for chunk in events.chunks(50_000) {
        let payloads: Vec<(Vec<u8>, &Event)> = chunk.iter().map(|e| (e.to_json(), e)).collect();
        let records: Vec<Record<'_>> = payloads.iter().map(|(payload, e)| Record { topic: e.topic(), key: e.store_id().as_bytes(), payload }).collect();
        bus.publish(&records).await.context("publishing to the bus")?;
    }
    Ok(())
}
