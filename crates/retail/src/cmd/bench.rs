//! `retail bench …`: benchmarks that print a table of what they measured.

use crate::config::Config;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchWhich,
}

#[derive(clap::Subcommand, Debug)]
pub enum BenchWhich {
    /// Events generated per second in backfill.
    Simulate(super::bench_simulate::BenchSimulateArgs),
    /// Stream processor throughput and event→sink latency.
    Stream(super::bench_stream::BenchStreamArgs),
    /// Dashboard-shaped query latency on each warehouse backend.
    Query(super::bench_query::BenchQueryArgs),
    /// Restock alerts scored against the simulator's truth (stock-outs announced, alerts useful).
    Alerts(super::bench_alerts::BenchAlertsArgs),
}

pub async fn run(args: BenchArgs, config: &Config) -> anyhow::Result<()> {
    match args.which {
        BenchWhich::Simulate(a) => super::bench_simulate::run(a, config).await,
        BenchWhich::Stream(a) => super::bench_stream::run(a, config).await,
        BenchWhich::Query(a) => super::bench_query::run(a, config).await,
        BenchWhich::Alerts(a) => super::bench_alerts::run(a, config).await,
    }
}
