//! `retail bench alerts`: how good the stream's restock alerts and anomaly flags are, scored against the
//! simulator's truth. The simulator knows, per store×SKU and day, the units customers wanted but
//! could not buy (`lost_units`): a stock-out. The processor (pure, no sinks) runs over the
//! simulated events, and its alerts are matched with those stock-outs:
//!
//! - precision: of the predictive alerts opened (risk or reorder point, not "already out"),
//!   the share followed by a stock-out of that store×SKU within the horizon;
//! - recall: of the stock-out episodes (first day of a run of stock-out days), the share that a
//!   predictive alert announced within the horizon before (or on) that day.
//!
//! The simulator also labels the anomalies it injects; each counts as caught when a flag of
//! its detector kind names its store×SKU during it or up to an hour after.

use crate::config::Config;
use chrono::NaiveDate;
use retail_core::{AlertStatus, AnomalyKind, Severity};
use retail_stream::{Catalog, Outputs, Processor, ProcessorConfig};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct BenchAlertsArgs {
    #[arg(long, default_value_t = 20)]
    pub stores: usize,
    #[arg(long, default_value_t = 2_000)]
    pub products: usize,
    /// Simulated days.
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// Events per minute per open store.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Days after an alert in which a stock-out counts as announced by it.
    #[arg(long, default_value_t = 3)]
    pub horizon_days: i64,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Multiplier of the simulator's anomaly injection rates (more injected anomalies to score).
    #[arg(long, default_value_t = 1.0)]
    pub anomaly_rate: f64,
}

type Key = (String, String);

/// An anomaly flag the processor raised.
struct Flag {
    kind: AnomalyKind,
    store: String,
    product: String,
    at: chrono::DateTime<chrono::Utc>,
}

/// Whether `flag` is what the detector of an injected anomaly should raise: its kind, naming
/// its store×SKU (a stuck POS: its store), between its start and an hour after its end.
fn is_flag_for(flag: &Flag, label: &retail_sim::AnomalyLabel) -> bool {
    flag.kind == label.detector_kind
        && flag.store == label.store_id
        && (label.kind == retail_sim::InjectedAnomaly::StuckPos || flag.product == label.product_id)
        && flag.at >= label.start
        && flag.at <= label.end + chrono::Duration::hours(1)
}

/// Count one more of `key`, and whether it was a hit: (key, count, hits), in first-seen order.
fn tally<K: PartialEq>(counts: &mut Vec<(K, usize, usize)>, key: K, hit: bool) {
    match counts.iter_mut().find(|(k, ..)| *k == key) {
        Some((_, n, h)) => {
            *n += 1;
            *h += hit as usize;
        }
        None => counts.push((key, 1, hit as usize)),
    }
}

/// What the scoring found.
#[derive(Debug)]
pub struct AlertScore {
    pub events: u64,
    pub keys_selling: usize,
    pub episodes: usize,
    pub stockout_days: usize,
    pub predictive: usize,
    pub already_out: u64,
    pub precision: f64,
    pub recall: f64,
    /// Per injected anomaly kind: (injected, caught by a flag of its detector kind).
    pub anomalies: Vec<(retail_sim::InjectedAnomaly, usize, usize)>,
    /// Flags raised, per kind: (kind, raised, matching an injected anomaly).
    pub flags: Vec<(AnomalyKind, usize, usize)>,
}

/// Simulate, run the processor over the events, and score its alerts against the truth.
pub fn score(args: &BenchAlertsArgs) -> anyhow::Result<AlertScore> {
    let world_config = retail_sim::WorldConfig {
        seed: args.seed,
        stores: args.stores,
        products: args.products,
        skus_per_store: args.products,
        traffic_per_store_minute: args.rate,
        anomaly_rate: args.anomaly_rate,
        demand_truth: true,
        threads: 2,
    };
    let world = Arc::new(retail_sim::World::generate(&world_config)?);
    let start = "2025-01-06T00:00:00Z".parse().expect("valid constant");
    let mut sim = retail_sim::Simulator::new(Arc::clone(&world), start)?;
    let catalog = Catalog { products: world.products().to_vec(), stores: world.stores().to_vec() };
    let mut processor = Processor::new(ProcessorConfig::default(), &catalog);
    let mut out = Outputs::default();
    let mut flags: Vec<Flag> = Vec::new();
    // Predictive opens (store×SKU, day) and opens because stock is already out.
    let mut predictive: Vec<(Key, NaiveDate)> = Vec::new();
    let (mut already_out, mut events) = (0u64, 0u64);
    let mut offset = 0i64;
    for hour in sim.backfill(args.days) {
        for e in &hour {
            let Some(kind) = retail_stream::TopicKind::from_topic(e.event_type().topic()) else { continue };
            events += 1;
            let msg = retail_bus::Message {
                topic: kind.topic().into(),
                partition: 0,
                offset,
                key: None,
                payload: e.to_json().into(),
                // Arrival = event time: a backfill replayed as if live.
                timestamp_ms: e.timestamp().timestamp_millis() + 1_000,
            };
            offset += 1;
            processor.process(&msg, &mut out);
        }
        processor.flush(&mut out);
        for a in out.alerts.drain(..) {
            if a.status != AlertStatus::Open {
                continue;
            }
            if a.severity == Severity::Critical {
                already_out += 1;
            } else {
                predictive.push(((a.store_id, a.product_id), a.timestamp.date_naive()));
            }
        }
        flags.extend(out.anomalies.drain(..).map(|f| Flag { kind: f.kind, store: f.store_id, product: f.product_id, at: f.event_time }));
        out.clear();
    }
    let truth = sim.take_truth();
    let mut anomalies: Vec<(retail_sim::InjectedAnomaly, usize, usize)> = Vec::new();
    for label in &truth.anomalies {
        tally(&mut anomalies, label.kind, flags.iter().any(|f| is_flag_for(f, label)));
    }
    let mut flag_counts: Vec<(AnomalyKind, usize, usize)> = Vec::new();
    for f in &flags {
        tally(&mut flag_counts, f.kind, truth.anomalies.iter().any(|l| is_flag_for(f, l)));
    }
    let stockouts: BTreeSet<(Key, NaiveDate)> =
        truth.demand.iter().filter(|d| d.lost_units > 0).map(|d| ((d.store_id.clone(), d.product_id.clone()), d.date)).collect();
    // Episodes: a stock-out day whose day before was not one.
    let episodes: Vec<&(Key, NaiveDate)> = stockouts.iter().filter(|(k, d)| !stockouts.contains(&(k.clone(), *d - chrono::Duration::days(1)))).collect();
    let horizon = chrono::Duration::days(args.horizon_days);
    let mut alerts_by_key: HashMap<&Key, Vec<NaiveDate>> = HashMap::new();
    for (k, d) in &predictive {
        alerts_by_key.entry(k).or_default().push(*d);
    }
    let useful = predictive.iter().filter(|(k, d)| stockouts.range((k.clone(), *d)..=(k.clone(), *d + horizon)).next().is_some()).count();
    let announced = episodes.iter().filter(|(k, d)| alerts_by_key.get(k).is_some_and(|days| days.iter().any(|a| *a <= *d && *d - *a <= horizon))).count();
    let keys_selling = truth.demand.iter().filter(|d| d.sold_units > 0).map(|d| (&d.store_id, &d.product_id)).collect::<BTreeSet<_>>().len();
    Ok(AlertScore {
        events,
        keys_selling,
        episodes: episodes.len(),
        stockout_days: stockouts.len(),
        predictive: predictive.len(),
        already_out,
        precision: useful as f64 / predictive.len().max(1) as f64,
        recall: announced as f64 / episodes.len().max(1) as f64,
        anomalies,
        flags: flag_counts,
    })
}

pub async fn run(args: BenchAlertsArgs, _config: &Config) -> anyhow::Result<()> {
    let s = score(&args)?;
    println!(
        "retail bench alerts ({} stores × {} SKUs, {} days at {}/min per open store; {} events)",
        args.stores, args.products, args.days, args.rate, s.events
    );
    println!("  store×SKUs that sold           {}", s.keys_selling);
    println!("  stock-out episodes (truth)     {} ({} stock-out days)", s.episodes, s.stockout_days);
    println!("  predictive alerts opened       {} ({:.0} a day)", s.predictive, s.predictive as f64 / args.days.max(1) as f64);
    println!("  'already out' alerts opened    {}", s.already_out);
    println!("  precision (stock-out ≤ {} d)    {:.3}", args.horizon_days, s.precision);
    println!("  recall (announced ≤ {} d ahead) {:.3}", args.horizon_days, s.recall);
    println!("  injected anomalies caught by the stream's flags (same store×SKU, during it or ≤ 1 h after):");
    for (kind, n, caught) in &s.anomalies {
        println!("    {:<20} {caught:>5} of {n:<5} ({:.2})", format!("{kind:?}"), *caught as f64 / (*n).max(1) as f64);
    }
    let flags: Vec<String> = s.flags.iter().map(|(k, n, m)| format!("{} {n} ({m} on an injected anomaly)", k.as_str())).collect();
    println!("  flags raised: {}", flags.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Alert quality on a small simulated world, against its truth. Velocity smoothed over
    /// ≈ 5 hours (α = 0.2) without a prior gave 17.1 k alerts here at precision 0.07; the
    /// defaults (α = 0.01, 24 prior hours) give 4.6 k at 0.15, every episode still announced.
    #[test]
    fn alerts_announce_stock_outs_without_crying_wolf() {
        let args = BenchAlertsArgs { stores: 10, products: 600, days: 7, rate: 10.0, horizon_days: 3, seed: 7, anomaly_rate: 1.0 };
        let s = score(&args).unwrap();
        assert!(s.episodes > 50, "the world has stock-outs to announce: {s:?}");
        assert!(s.recall >= 0.95, "{s:?}");
        assert!(s.precision >= 0.12, "{s:?}");
        assert!(s.predictive < 8_000, "{s:?}");
    }
}
