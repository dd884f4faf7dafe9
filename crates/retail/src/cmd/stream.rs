//! `retail stream`: run the stream processor from the configuration until Ctrl-C.

use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct StreamArgs {
    /// Consumer group (default: `kafka.group_id` of the configuration). Processes in one group
    /// share the partitions.
    #[arg(long)]
    pub group: Option<String>,
    /// Checkpoint and commit at least this often, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub checkpoint_ms: u64,
    /// Records per poll.
    #[arg(long, default_value_t = 20_000)]
    pub batch: usize,
    /// How long after a window's end late sales are still counted into it, in seconds.
    #[arg(long, default_value_t = 600)]
    pub allowed_lateness_s: i64,
    /// Stop once every input partition is caught up (one-shot backfill).
    #[arg(long)]
    pub exit_when_idle: bool,
}

/// The bus, lake and warehouse the configuration names.
pub struct Sinks {
    pub bus: Arc<dyn retail_bus::EventBus>,
    pub lake: retail_lake::Lake,
    pub warehouse: Arc<dyn retail_warehouse::Warehouse>,
}

pub async fn open_sinks(config: &Config, bus_url: &str) -> anyhow::Result<Sinks> {
    let bus = crate::wiring::open_bus(config, bus_url).await?;
    let lake = crate::wiring::open_lake(config).await?;
    let warehouse = crate::wiring::open_warehouse_for_writing(config, &lake).await?;
    Ok(Sinks { bus, lake, warehouse })
}

pub async fn run(args: StreamArgs, config: &Config) -> anyhow::Result<()> {
    let sinks = open_sinks(config, &config.bus).await?;
    let catalog = retail_stream::load_catalog(&*sinks.warehouse).await?;
    if catalog.products.is_empty() {
        tracing::warn!("dim_product is empty: costs are 0 and lead times default until the catalog is loaded");
    }
    let mut cfg = retail_stream::StreamConfig {
        group: args.group.unwrap_or_else(|| config.kafka.group_id.clone()),
        max_batch: args.batch,
        checkpoint_interval: Duration::from_millis(args.checkpoint_ms),
        stop_when_idle: args.exit_when_idle,
        ..Default::default()
    };
    cfg.processor.allowed_lateness_ms = args.allowed_lateness_s * 1000;
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C: finishing the current batch, checkpointing and committing");
            on_signal.cancel();
        }
    });
    tracing::info!(bus = %config.bus, lake = %config.lake, warehouse = %config.warehouse, group = %cfg.group, products = catalog.products.len(), "stream processor starting");
    let metrics = retail_stream::StreamMetrics::new();
    let summary = retail_stream::run(cfg, sinks.bus, sinks.lake, sinks.warehouse, &catalog, metrics, cancel).await?;
    println!("processed {} records ({} valid, {} dead-lettered), {} checkpoints", summary.records, summary.valid, summary.dead_letters, summary.checkpoints);
    Ok(())
}
