//! A bare processor process for the crash and Kafka tests (which need a real process to kill)
//! and for ad-hoc runs: `retail-stream-worker --bus URL --lake URL [--group G] [--exit-when-idle]`.
//! The product entry point is `retail stream`; this binary exists so the crate's own tests can
//! spawn and SIGKILL processors without building the whole CLI.

use retail_stream::{Catalog, StreamConfig, StreamMetrics};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    tracing_subscriber_init();
    let args: Vec<String> = std::env::args().collect();
    let (Some(bus_url), Some(lake_url)) = (arg(&args, "--bus"), arg(&args, "--lake")) else {
        eprintln!("usage: retail-stream-worker --bus URL --lake URL [--group G] [--checkpoint-ms N] [--batch N] [--lake-flush N] [--warehouse-flush N] [--kafka-property K=V]... [--exit-when-idle]");
        return std::process::ExitCode::from(2);
    };
    let mut cfg = StreamConfig::default();
    if let Some(g) = arg(&args, "--group") {
        cfg.group = g;
    }
    if let Some(ms) = arg(&args, "--checkpoint-ms").and_then(|v| v.parse().ok()) {
        cfg.checkpoint_interval = Duration::from_millis(ms);
    }
    if let Some(n) = arg(&args, "--batch").and_then(|v| v.parse().ok()) {
        cfg.max_batch = n;
    }
    if let Some(n) = arg(&args, "--lake-flush").and_then(|v| v.parse().ok()) {
        cfg.lake_flush_events = n;
    }
    if let Some(n) = arg(&args, "--warehouse-flush").and_then(|v| v.parse().ok()) {
        cfg.warehouse_flush_events = n;
    }
    cfg.stop_when_idle = args.iter().any(|a| a == "--exit-when-idle");
    let mut bus_options = retail_bus::BusOptions::default();
    for pair in args.windows(2).filter(|w| w[0] == "--kafka-property").map(|w| &w[1]) {
        let Some((k, v)) = pair.split_once('=') else {
            eprintln!("--kafka-property wants KEY=VALUE, got `{pair}`");
            return std::process::ExitCode::from(2);
        };
        bus_options.kafka.properties.insert(k.to_string(), v.to_string());
    }
    let result = async {
        let bus = retail_bus::open(&bus_url, &bus_options).await?;
        bus.ensure_topics().await?;
        let lake = retail_lake::Lake::open(&lake_url, &retail_lake::S3Options::default())?;
        let warehouse = retail_warehouse::open("embedded", &retail_warehouse::WarehouseOptions::default(), Some(lake.clone())).await?;
        warehouse.init().await?;
        let cancel = CancellationToken::new();
        let c = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            c.cancel();
        });
        let summary = retail_stream::run(cfg, bus, lake, warehouse, &Catalog::default(), StreamMetrics::new(), cancel).await?;
        println!(
            "{}",
            serde_json::json!({"records": summary.records, "valid": summary.valid, "dead_letters": summary.dead_letters, "checkpoints": summary.checkpoints})
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn tracing_subscriber_init() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("RETAIL_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
