//! `retail stream`: run the stream processor from the configuration until Ctrl-C.

use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;

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
    /// Serve Prometheus metrics (`/metrics`) and `/healthz` on this address, e.g.
    /// `127.0.0.1:9464`; each process of a consumer group needs a port of its own.
    #[arg(long, env = "RETAIL_STREAM_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
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
    // Ctrl-C or SIGTERM (what service managers send): finish the current batch, checkpoint and
    // commit, then exit.
    let cancel = super::serve::cancel_on_ctrl_c();
    tracing::info!(bus = %config.bus, lake = %config.lake, warehouse = %config.warehouse, group = %cfg.group, products = catalog.products.len(), "stream processor starting");
    let metrics = retail_stream::StreamMetrics::new();
    let metrics_server = match args.metrics_listen {
        Some(listen) => {
            let status = Arc::new(super::serve::PipelineStatus::new(metrics.clone()));
            let server = retail_server::bind_metrics(listen, status).await?;
            tracing::info!(addr = %server.local_addr, "serving Prometheus metrics at /metrics");
            let stop = cancel.clone();
            Some(tokio::spawn(server.serve(stop)))
        }
        None => None,
    };
    let summary = retail_stream::run(cfg, sinks.bus, sinks.lake, sinks.warehouse, &catalog, metrics, cancel.clone()).await;
    // The metrics server stops with the processor, whichever way it ended.
    cancel.cancel();
    if let Some(server) = metrics_server {
        if let Ok(Err(e)) = server.await {
            tracing::warn!(error = %e, "metrics server");
        }
    }
    let summary = summary?;
    println!("processed {} records ({} valid, {} dead-lettered), {} checkpoints", summary.records, summary.valid, summary.dead_letters, summary.checkpoints);
    Ok(())
}
