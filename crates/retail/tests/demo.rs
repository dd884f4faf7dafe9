//! End to end: `retail demo` on embedded defaults, observed only from outside (HTTP API and CLI),
//! as a user would. Then a restart on the same data dir must hold no duplicated history.

use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn retail() -> Command {
    Command::new(env!("CARGO_BIN_EXE_retail"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Demo {
    child: Child,
    base: String,
    http: reqwest::Client,
}

/// Environment that points the demo at real services (empty: embedded defaults).
type Services = Vec<(String, String)>;

impl Demo {
    fn start(data_dir: &Path, log: &Path) -> Demo {
        Demo::start_with(data_dir, log, &Services::new())
    }

    fn start_with(data_dir: &Path, log: &Path, services: &Services) -> Demo {
        let port = free_port();
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = retail()
            .args(["demo", "--stores", "4", "--products", "150", "--backfill-days", "3", "--seed", "7"])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RETAIL_HTTP_LISTEN", format!("127.0.0.1:{port}"))
            .env("RETAIL_LOG", "info")
            .env_remove("RETAIL_BUS")
            .env_remove("RETAIL_LAKE")
            .env_remove("RETAIL_WAREHOUSE")
            .envs(services.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn retail demo");
        Demo { child, base: format!("http://127.0.0.1:{port}"), http: reqwest::Client::new() }
    }

    async fn get(&self, path: &str) -> Option<reqwest::Response> {
        self.http.get(format!("{}{}", self.base, path)).send().await.ok()
    }

    async fn snapshot(&self) -> Option<Value> {
        let response = self.get("/api/snapshot").await?;
        response.json::<Value>().await.ok()
    }

    /// Polls the snapshot until `ready` holds, the process dies, or `limit` passes.
    async fn wait_for(&mut self, what: &str, limit: Duration, ready: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        let mut last = Value::Null;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("demo exited ({status}) while waiting for {what}; last snapshot: {last}");
            }
            if let Some(s) = self.snapshot().await {
                if ready(&s) {
                    return s;
                }
                last = s;
            }
            assert!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}; last snapshot: {last}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// SIGINT, as Ctrl-C would; the demo must exit by itself, successfully.
    async fn interrupt_and_wait(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "demo did not stop within 60 s of SIGINT");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn num(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(0.0),
        Value::String(s) => s.parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

fn total(s: &Value, field: &str) -> f64 {
    num(&s["totals"][0][field])
}

/// `retail query` against the demo's data dir, as CSV; returns the data rows.
fn query(data_dir: &Path, sql: &str) -> Vec<Vec<String>> {
    query_with(data_dir, sql, &Services::new())
}

fn query_with(data_dir: &Path, sql: &str, services: &Services) -> Vec<Vec<String>> {
    let out = retail()
        .args(["query", "--format", "csv", sql])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RETAIL_WAREHOUSE")
        .env_remove("RETAIL_LAKE")
        .envs(services.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("run retail query");
    assert!(out.status.success(), "retail query failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().skip(1).map(|l| l.split(',').map(|c| c.trim_matches('"').to_string()).collect()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_end_to_end_and_restarts_without_duplicating_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("demo.log");
    let show_log = || std::fs::read_to_string(&log).unwrap_or_default();

    // First run: history is backfilled through bus → stream → warehouse, then live events flow.
    let mut demo = Demo::start(&data, &log);
    let first = demo
        .wait_for("backfilled sales in the warehouse", Duration::from_secs(300), |s| {
            total(s, "sale_lines") > 0.0 && s["sales_windows"].as_array().is_some_and(|w| !w.is_empty())
        })
        .await;
    assert!(first["errors"].as_array().unwrap().is_empty(), "dashboard query errors: {}", first["errors"]);
    assert!(total(&first, "total_revenue") > 0.0, "revenue must be positive: {first}");
    let risk = first["riskiest"].as_array().expect("riskiest is a list");
    assert!(!risk.is_empty(), "stock levels must be present: {first}");
    for row in risk {
        let r = num(&row["stockout_risk"]);
        assert!((0.0..=1.0).contains(&r), "risk out of [0,1]: {row}");
    }

    // Real time: events keep arriving after the backfill.
    let events_then = num(&first["live"]["events_in"]);
    let later = demo.wait_for("live events after the backfill", Duration::from_secs(60), |s| num(&s["live"]["events_in"]) > events_then).await;
    assert!(total(&later, "sale_lines") >= total(&first, "sale_lines"));

    // The page and its assets are served; /metrics speaks Prometheus.
    let page = demo.get("/").await.expect("GET /").text().await.unwrap();
    assert!(page.contains("<canvas") && page.contains("/api/stream"), "index page lacks the chart/SSE wiring");
    let js = demo.get("/assets/chart.umd.min.js").await.expect("GET chart.js");
    assert!(js.status().is_success());
    let metrics = demo.get("/metrics").await.expect("GET /metrics").text().await.unwrap();
    assert!(metrics.contains("# TYPE"), "metrics exposition expected, got: {metrics:.300}");

    let status = demo.interrupt_and_wait().await;
    assert!(status.success(), "demo exited with {status}; log:\n{}", show_log());

    let counts = |data: &Path| {
        let rows = query(data, "SELECT count(*) AS n, count(DISTINCT sale_id) AS d FROM fact_sales");
        (rows[0][0].parse::<u64>().unwrap(), rows[0][1].parse::<u64>().unwrap())
    };
    let (n1, d1) = counts(&data);
    assert!(n1 > 0);
    assert_eq!(n1, d1, "duplicate sale ids after the first run");

    // Second run on the same data dir: continues, duplicates nothing.
    let mut demo = Demo::start(&data, &log);
    demo.wait_for("the restarted demo to serve", Duration::from_secs(300), |s| total(s, "sale_lines") >= n1 as f64).await;
    let status = demo.interrupt_and_wait().await;
    assert!(status.success(), "restarted demo exited with {status}; log:\n{}", show_log());
    let (n2, d2) = counts(&data);
    assert_eq!(n2, d2, "duplicate sale ids after a restart");
    assert!(n2 >= n1, "history shrank across a restart: {n1} → {n2}");
}

/// The same demo on real services chosen by configuration only: Kafka (tansu), ClickHouse and
/// an S3 server, as started by `.ci/services/*.sh`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Kafka, ClickHouse and S3 (RETAIL_TEST_KAFKA, RETAIL_TEST_CLICKHOUSE, RETAIL_TEST_S3_*): run by .ci/run"]
async fn demo_runs_on_kafka_clickhouse_and_s3() {
    let var = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} must be set (see .ci/services)"));
    let run = format!("{}", std::process::id());
    let services: Services = vec![
        ("RETAIL_BUS".into(), format!("kafka://{}", var("RETAIL_TEST_KAFKA"))),
        ("RETAIL_KAFKA_GROUP_ID".into(), format!("demo-e2e-{run}")),
        ("RETAIL_WAREHOUSE".into(), var("RETAIL_TEST_CLICKHOUSE")),
        ("RETAIL_CLICKHOUSE_DATABASE".into(), format!("retail_e2e_{run}")),
        ("RETAIL_LAKE".into(), format!("s3://{}/demo-e2e-{run}", var("RETAIL_TEST_S3_BUCKET"))),
        ("RETAIL_S3_ENDPOINT".into(), var("RETAIL_TEST_S3_ENDPOINT")),
        ("RETAIL_S3_ACCESS_KEY_ID".into(), var("RETAIL_TEST_S3_ACCESS_KEY")),
        ("RETAIL_S3_SECRET_ACCESS_KEY".into(), var("RETAIL_TEST_S3_SECRET_KEY")),
    ];
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("demo.log");
    let mut demo = Demo::start_with(&data, &log, &services);
    let s = demo
        .wait_for("sales in ClickHouse through Kafka", Duration::from_secs(300), |s| {
            total(s, "sale_lines") > 0.0 && s["backend"] == "clickhouse" && s["riskiest"].as_array().is_some_and(|r| !r.is_empty())
        })
        .await;
    assert!(s["errors"].as_array().unwrap().is_empty(), "dashboard query errors: {}", s["errors"]);
    for row in s["riskiest"].as_array().unwrap() {
        assert!((0.0..=1.0).contains(&num(&row["stockout_risk"])), "risk out of [0,1]: {row}");
    }
    let status = demo.interrupt_and_wait().await;
    assert!(status.success(), "demo exited with {status}; log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
    let rows = query_with(&data, "SELECT count(*) AS n, count(DISTINCT sale_id) AS d FROM fact_sales", &services);
    let (n, d) = (rows[0][0].parse::<u64>().unwrap(), rows[0][1].parse::<u64>().unwrap());
    assert!(n > 0);
    assert_eq!(n, d, "duplicate sale ids in ClickHouse");
}
