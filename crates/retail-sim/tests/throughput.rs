//! Generation throughput without the CLI (the CLI's `retail bench simulate` is the reference):
//! `cargo test --release -p retail-sim --test throughput -- --ignored --nocapture`

use retail_sim::*;
use std::sync::Arc;
use std::time::Instant;

#[test]
#[ignore = "a measurement, not a check; run explicitly"]
fn events_per_second_in_backfill() {
    let config = WorldConfig {
        stores: 100,
        products: 5_000,
        skus_per_store: 5_000,
        traffic_per_store_minute: 3.0,
        demand_truth: false,
        threads: 2,
        ..Default::default()
    };
    let t = Instant::now();
    let world = Arc::new(World::generate(&config).unwrap());
    println!("world: {:.2} s", t.elapsed().as_secs_f64());
    let mut sim = Simulator::new(world, "2025-01-01T00:00:00Z".parse().unwrap()).unwrap();
    let t = Instant::now();
    let events: usize = sim.backfill(7).map(|h| h.len()).sum();
    let secs = t.elapsed().as_secs_f64();
    println!("{events} events in {secs:.2} s = {:.0} events/s", events as f64 / secs);
}
