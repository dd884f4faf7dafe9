//! `retail bench simulate`: events generated per second in backfill.
//!
//! Defaults mirror the sizing (100 stores × 5,000 SKUs at ~3 events/min per open store ≈
//! 10^8 events per simulated year) over a shorter span, so it finishes in seconds.

use crate::config::Config;
use retail_sim::{Simulator, World, WorldConfig};
use std::sync::Arc;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct BenchSimulateArgs {
    #[arg(long, default_value_t = 100)]
    pub stores: usize,
    #[arg(long, default_value_t = 5_000)]
    pub products: usize,
    /// Simulated days of backfill.
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Events per minute per open store.
    #[arg(long, default_value_t = 3.0)]
    pub rate: f64,
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Also serialise every event to JSON (into a discarding writer) and report that rate.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: BenchSimulateArgs, _config: &Config) -> anyhow::Result<()> {
    let config = WorldConfig {
        seed: args.seed,
        stores: args.stores,
        products: args.products,
        skus_per_store: args.products,
        traffic_per_store_minute: args.rate,
        anomaly_rate: 1.0,
        demand_truth: false,
        threads: args.threads,
    };
    let started = Instant::now();
    let world = Arc::new(World::generate(&config)?);
    let world_secs = started.elapsed().as_secs_f64();
    let start = "2025-01-01T00:00:00Z".parse().expect("valid constant");

    let mut sim = Simulator::new(Arc::clone(&world), start)?;
    let started = Instant::now();
    let mut events = 0u64;
    for hour in sim.backfill(args.days) {
        events += hour.len() as u64;
    }
    let gen_secs = started.elapsed().as_secs_f64();

    let mut json_line = None;
    if args.json {
        let mut sim = Simulator::new(Arc::clone(&world), start)?;
        let started = Instant::now();
        let mut bytes = 0u64;
        let mut buf = Vec::with_capacity(1 << 20);
        for hour in sim.backfill(args.days) {
            for e in &hour {
                buf.clear();
                buf.extend_from_slice(&e.to_json());
                bytes += buf.len() as u64 + 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        json_line = Some((secs, bytes));
    }

    let cells: usize = (0..world.stores().len()).map(|s| world.assortment(s).len()).sum();
    println!("retail bench simulate");
    println!("  world            {} stores × {} SKUs ({} store×SKU cells), generated in {:.2} s", args.stores, args.products, cells, world_secs);
    println!("  backfill         {} simulated days at {} events/min per open store, {} threads", args.days, args.rate, args.threads);
    println!("  events           {events}");
    println!("  generation       {:.2} s  →  {:.0} events/s", gen_secs, events as f64 / gen_secs.max(1e-9));
    if let Some((secs, bytes)) = json_line {
        println!("  + JSON encoding  {:.2} s  →  {:.0} events/s, {:.0} bytes/event", secs, events as f64 / secs.max(1e-9), bytes as f64 / events.max(1) as f64);
    }
    let per_year = events as f64 / args.days.max(1) as f64 * 365.0;
    println!("  a simulated year at this size ≈ {:.2e} events ≈ {:.0} s", per_year, per_year / (events as f64 / gen_secs.max(1e-9)));
    Ok(())
}
