//! `retail serve`: the live page, JSON API and `/metrics`, over the configured warehouse.

use crate::config::Config;
use anyhow::Context;
use retail_server::{ServerOptions, StatusSource};
use retail_stream::StreamMetrics;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// How often the dashboard snapshot is recomputed, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub refresh_ms: u64,
}

pub async fn run(args: ServeArgs, config: &Config) -> anyhow::Result<()> {
    let lake = crate::wiring::open_lake(config).await?;
    let warehouse = crate::wiring::open_warehouse_for_writing(config, &lake).await?;
    let cancel = cancel_on_ctrl_c();
    let server = bind(config, args.refresh_ms, warehouse, Arc::new(ServerOnlyStatus::new()), cancel.clone()).await?;
    server.serve(cancel).await?;
    Ok(())
}

pub async fn bind(
    config: &Config,
    refresh_ms: u64,
    warehouse: Arc<dyn retail_warehouse::Warehouse>,
    status: Arc<dyn StatusSource>,
    cancel: CancellationToken,
) -> anyhow::Result<retail_server::BoundServer> {
    let listen = config.server.listen.parse().context("server.listen")?;
    let options = ServerOptions { listen, refresh: Duration::from_millis(refresh_ms.max(100)) };
    let server = retail_server::bind(options, warehouse, status, cancel).await?;
    println!("serving the live page at http://{}/  (Ctrl-C to stop)", server.local_addr);
    Ok(server)
}

/// A token cancelled by Ctrl-C (SIGINT) or SIGTERM.
pub fn cancel_on_ctrl_c() -> CancellationToken {
    let cancel = CancellationToken::new();
    let token = cancel.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        eprintln!("stopping: finishing the current batch, checkpointing, committing…");
        token.cancel();
    });
    cancel
}

/// `retail serve` runs no processor: no live counters, only the process's own metrics.
struct ServerOnlyStatus {
    registry: prometheus_client::registry::Registry,
}

impl ServerOnlyStatus {
    fn new() -> ServerOnlyStatus {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        ServerOnlyStatus { registry }
    }
}

impl StatusSource for ServerOnlyStatus {
    fn live_counters(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn metrics_text(&self) -> String {
        registry_text(&self.registry)
    }
}

/// A registry in Prometheus text, without the closing `# EOF` (the server appends its own lines).
fn registry_text(registry: &prometheus_client::registry::Registry) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    text.trim_end().trim_end_matches("# EOF").to_string()
}

/// The stream processor's live counters and Prometheus registry, for the page and `/metrics`.
pub struct PipelineStatus {
    metrics: StreamMetrics,
    registry: prometheus_client::registry::Registry,
    /// (when, events_in) of the previous look, for an events/s rate.
    last: Mutex<(Instant, u64, f64)>,
}

impl PipelineStatus {
    pub fn new(metrics: StreamMetrics) -> PipelineStatus {
        let mut registry = prometheus_client::registry::Registry::default();
        metrics.register(&mut registry);
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        PipelineStatus { metrics, registry, last: Mutex::new((Instant::now(), 0, 0.0)) }
    }
}

impl StatusSource for PipelineStatus {
    fn live_counters(&self) -> serde_json::Value {
        let c = self.metrics.counters();
        let events_in = c.events_in.load(Ordering::Relaxed);
        let rate = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let dt = last.0.elapsed().as_secs_f64();
            if dt >= 0.5 {
                last.2 = events_in.saturating_sub(last.1) as f64 / dt;
                *last = (Instant::now(), events_in, last.2);
            }
            last.2
        };
        let checkpoint_ms = c.last_checkpoint_unix_ms.load(Ordering::Relaxed);
        let checkpoint_age_s = if checkpoint_ms > 0 { (chrono::Utc::now().timestamp_millis() - checkpoint_ms) as f64 / 1000.0 } else { -1.0 };
        serde_json::json!({
            "events_in": events_in,
            "events_per_sec": rate,
            "valid": c.valid.load(Ordering::Relaxed),
            "dead_letters": c.dead_letters.load(Ordering::Relaxed),
            "duplicates": c.duplicates.load(Ordering::Relaxed),
            "late_events": c.late.load(Ordering::Relaxed),
            "alerts": c.alerts.load(Ordering::Relaxed),
            "anomalies": c.anomalies.load(Ordering::Relaxed),
            "lag": c.lag.load(Ordering::Relaxed),
            "checkpoints": c.checkpoints.load(Ordering::Relaxed),
            "checkpoint_age_s": checkpoint_age_s,
        })
    }

    fn metrics_text(&self) -> String {
        registry_text(&self.registry)
    }
}
