//! The dashboard snapshot: every number the live page shows, computed in one pass.

use crate::StatusSource;
use retail_warehouse::{QueryResult, Warehouse};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The SQL the page issues, from the portable set both warehouse backends run
/// (`retail_warehouse::queries`). Times are relative to `now`.
#[derive(Clone, Debug)]
pub struct DashboardQueries {
    /// How far back the live chart of 5-minute windows reaches.
    pub window_history: chrono::Duration,
    /// How far back anomaly flags are counted.
    pub anomaly_history: chrono::Duration,
    pub risk_rows: u32,
    pub alert_rows: u32,
}

impl Default for DashboardQueries {
    fn default() -> Self {
        DashboardQueries { window_history: chrono::Duration::hours(4), anomaly_history: chrono::Duration::hours(24), risk_rows: 20, alert_rows: 50 }
    }
}

impl DashboardQueries {
    fn sql(&self, now: chrono::DateTime<chrono::Utc>) -> [(&'static str, String); 5] {
        use retail_warehouse::queries as q;
        let all_time = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
        [
            ("totals", q::kpis(all_time, now.date_naive())),
            ("sales_windows", q::latest_windows(now - self.window_history)),
            ("riskiest", q::riskiest_stock(self.risk_rows)),
            ("open_alerts", q::open_alerts(self.alert_rows)),
            ("anomalies", q::anomalies_by_kind(now - self.anomaly_history)),
        ]
    }
}

/// What the page shows. Each part is a list of row objects (column → value).
#[derive(Serialize, Debug, Default)]
pub struct Snapshot {
    /// 0 until the first refresh completes; then increases by one per refresh.
    pub generation: u64,
    pub computed_at: String,
    pub backend: String,
    /// Time the whole snapshot took, milliseconds.
    pub refresh_ms: f64,
    pub live: serde_json::Value,
    pub totals: serde_json::Value,
    pub sales_windows: serde_json::Value,
    pub riskiest: serde_json::Value,
    pub open_alerts: serde_json::Value,
    /// Anomaly flags per kind over the last day.
    pub anomalies: serde_json::Value,
    /// Query failures of this refresh, by part; the other parts are still shown.
    pub errors: Vec<String>,
}

impl Snapshot {
    /// Metrics about the dashboard itself, appended to `/metrics`.
    pub fn metrics_text(&self) -> String {
        format!(
            "# TYPE retail_dashboard_refresh_seconds gauge\nretail_dashboard_refresh_seconds {}\n\
             # TYPE retail_dashboard_refresh_errors gauge\nretail_dashboard_refresh_errors {}\n\
             # TYPE retail_dashboard_generation counter\nretail_dashboard_generation_total {}\n",
            self.refresh_ms / 1000.0,
            self.errors.len(),
            self.generation
        )
    }
}

/// Rows as JSON objects, the shape a browser table or chart wants.
pub fn rows_as_objects(result: &QueryResult) -> serde_json::Value {
    let rows = result
        .rows
        .iter()
        .map(|row| {
            let object = result.columns.iter().cloned().zip(row.iter().cloned()).collect::<serde_json::Map<_, _>>();
            serde_json::Value::Object(object)
        })
        .collect();
    serde_json::Value::Array(rows)
}

pub async fn compute(warehouse: &dyn Warehouse, status: &dyn StatusSource, queries: &DashboardQueries, generation: u64) -> Snapshot {
    let started = Instant::now();
    let mut errors = Vec::new();
    let mut run = async |name: &str, sql: &str| match warehouse.query(sql).await {
        Ok(result) => rows_as_objects(&result),
        Err(e) => {
            errors.push(format!("{name}: {e}"));
            serde_json::Value::Array(vec![])
        }
    };
    let [totals, sales_windows, riskiest, open_alerts, anomalies] = queries.sql(chrono::Utc::now());
    let totals = run(totals.0, &totals.1).await;
    let sales_windows = run(sales_windows.0, &sales_windows.1).await;
    let riskiest = run(riskiest.0, &riskiest.1).await;
    let open_alerts = run(open_alerts.0, &open_alerts.1).await;
    let anomalies = run(anomalies.0, &anomalies.1).await;
    Snapshot {
        generation,
        computed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        backend: warehouse.backend().to_string(),
        refresh_ms: started.elapsed().as_secs_f64() * 1000.0,
        live: status.live_counters(),
        totals,
        sales_windows,
        riskiest,
        open_alerts,
        anomalies,
        errors,
    }
}

pub async fn refresh_loop(
    warehouse: Arc<dyn Warehouse>,
    status: Arc<dyn StatusSource>,
    queries: DashboardQueries,
    every: Duration,
    tx: watch::Sender<Arc<Snapshot>>,
    cancel: CancellationToken,
) {
    let mut generation = 0;
    loop {
        generation += 1;
        let started = Instant::now();
        let snapshot = compute(warehouse.as_ref(), status.as_ref(), &queries, generation).await;
        for e in &snapshot.errors {
            tracing::warn!(error = %e, "dashboard query failed");
        }
        if tx.send(Arc::new(snapshot)).is_err() {
            return;
        }
        // A slow warehouse (e.g. busy with a backfill) gets at least as much rest as the
        // snapshot took, so the page never takes more than half of it.
        let rest = every.max(started.elapsed());
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(rest) => {}
        }
    }
}
