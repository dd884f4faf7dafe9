//! HTTP server: the live operations page, its JSON API, server-sent events and `/metrics`.
//!
//! One background task refreshes a dashboard snapshot from the warehouse every
//! `refresh` interval; every page, API call and SSE client reads that snapshot, so the
//! warehouse load does not grow with the number of viewers.

mod snapshot;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::stream::Stream;
use retail_warehouse::Warehouse;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use snapshot::{DashboardQueries, Snapshot};

/// Live numbers the server does not own (the stream processor's counters, lag, …) and the
/// Prometheus exposition of the process. Implemented by whoever runs the pipeline.
pub trait StatusSource: Send + Sync {
    /// A JSON object of live counters shown on the page (e.g. events_in, dead_letters, late_events).
    fn live_counters(&self) -> serde_json::Value;
    /// Prometheus text exposition format (0.0.4) of the process's metrics.
    fn metrics_text(&self) -> String;
}

/// A `StatusSource` for a server that runs without a pipeline in-process (`retail serve`).
pub struct NoLiveStatus;

impl StatusSource for NoLiveStatus {
    fn live_counters(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn metrics_text(&self) -> String {
        String::new()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source} (is another process using the port? set server.listen / RETAIL_HTTP_LISTEN)")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error(
        "cannot listen on {addr} for metrics: {source} (is another process using the port? choose one with --metrics-listen / RETAIL_STREAM_METRICS_LISTEN)"
    )]
    MetricsBind { addr: SocketAddr, source: std::io::Error },
    #[error("server error: {0}")]
    Serve(#[from] std::io::Error),
}

pub struct ServerOptions {
    pub listen: SocketAddr,
    /// How often the dashboard snapshot is recomputed from the warehouse.
    pub refresh: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions { listen: SocketAddr::from(([127, 0, 0, 1], 8080)), refresh: Duration::from_secs(1) }
    }
}

#[derive(Clone)]
struct AppState {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    status: Arc<dyn StatusSource>,
}

/// A bound server: the address is known (port 0 resolves) before serving starts.
pub struct BoundServer {
    listener: tokio::net::TcpListener,
    router: Router,
    pub local_addr: SocketAddr,
}

/// Bind the listener and start the snapshot refresher. Serving starts with [`BoundServer::serve`].
pub async fn bind(
    options: ServerOptions,
    warehouse: Arc<dyn Warehouse>,
    status: Arc<dyn StatusSource>,
    cancel: CancellationToken,
) -> Result<BoundServer, ServerError> {
    let listener = tokio::net::TcpListener::bind(options.listen).await.map_err(|source| ServerError::Bind { addr: options.listen, source })?;
    let local_addr = listener.local_addr()?;
    let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
    tokio::spawn(snapshot::refresh_loop(warehouse, status.clone(), DashboardQueries::default(), options.refresh, tx, cancel));
    let router = router(AppState { snapshots: rx, status });
    Ok(BoundServer { listener, router, local_addr })
}

impl BoundServer {
    /// Serve until `cancel` fires, then finish in-flight requests and return.
    pub async fn serve(self, cancel: CancellationToken) -> Result<(), ServerError> {
        axum::serve(self.listener, self.router).with_graceful_shutdown(async move { cancel.cancelled().await }).await?;
        Ok(())
    }
}

/// Only `/metrics` and `/healthz`, for a process without the dashboard (`retail stream`: each
/// instance of a consumer group is scraped on its own).
pub async fn bind_metrics(listen: SocketAddr, status: Arc<dyn StatusSource>) -> Result<BoundServer, ServerError> {
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|source| ServerError::MetricsBind { addr: listen, source })?;
    let local_addr = listener.local_addr()?;
    let router = Router::new().route("/healthz", get(|| async { "ok" })).route(
        "/metrics",
        get(move || {
            let text = status.metrics_text();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text + "\n") }
        }),
    );
    Ok(BoundServer { listener, router, local_addr })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/chart.umd.min.js", get(chart_js))
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(metrics))
        .route("/api/snapshot", get(api_snapshot))
        .route("/api/sales-windows", get(|s: State<AppState>| part(s, |x| &x.sales_windows)))
        .route("/api/risk", get(|s: State<AppState>| part(s, |x| &x.riskiest)))
        .route("/api/alerts", get(|s: State<AppState>| part(s, |x| &x.open_alerts)))
        .route("/api/anomalies", get(|s: State<AppState>| part(s, |x| &x.anomalies)))
        .route("/api/totals", get(|s: State<AppState>| part(s, |x| &x.totals)))
        .route("/api/stream", get(sse))
        .with_state(state)
}

async fn index() -> Html<&'static str> {
    Html(include_str!("../assets/index.html"))
}

async fn chart_js() -> Response {
    ([(header::CONTENT_TYPE, "application/javascript"), (header::CACHE_CONTROL, "public, max-age=86400")], include_str!("../assets/chart.umd.min.js"))
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = state.snapshots.borrow().clone();
    let mut text = state.status.metrics_text();
    text.push_str(&snapshot.metrics_text());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn api_snapshot(State(state): State<AppState>) -> Json<Arc<Snapshot>> {
    Json(state.snapshots.borrow().clone())
}

async fn part(State(state): State<AppState>, pick: fn(&Snapshot) -> &serde_json::Value) -> Response {
    let snapshot = state.snapshots.borrow().clone();
    if snapshot.generation == 0 {
        return (StatusCode::SERVICE_UNAVAILABLE, "warming up: no snapshot yet").into_response();
    }
    Json(pick(&snapshot).clone()).into_response()
}

/// Pushes every new snapshot to the browser as it is computed (the current one first).
async fn sse(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let mut rx = state.snapshots.clone();
    rx.mark_changed();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            let snapshot = rx.borrow_and_update().clone();
            if snapshot.generation > 0 {
                let data = serde_json::to_string(&*snapshot).unwrap_or_else(|_| "{}".into());
                return Some((Ok(SseEvent::default().event("snapshot").data(data)), rx));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
