//! `retail stream` as a service: Prometheus metrics on `--metrics-listen`, and a clean stop on
//! SIGTERM (what systemd and Kubernetes send) with its work checkpointed and committed.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn retail(data_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_retail"));
    c.arg("--data-dir").arg(data_dir);
    for var in ["RETAIL_BUS", "RETAIL_LAKE", "RETAIL_WAREHOUSE", "RETAIL_CONFIG", "RETAIL_STREAM_METRICS_LISTEN"] {
        c.env_remove(var);
    }
    c
}

/// The value of an unlabelled sample in Prometheus text (`name value`).
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Sum of a metric's samples over all label sets (`name{…} value`).
fn sum_labelled(text: &str, name: &str) -> f64 {
    text.lines().filter(|l| l.starts_with(&format!("{name}{{"))).filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok()).sum()
}

#[tokio::test]
async fn stream_serves_metrics_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let bus = format!("file://{}", dir.path().join("bus").display());
    let sim = retail(dir.path())
        .args(["simulate", "--stores", "3", "--products", "60", "--backfill-days", "1", "--seed", "5", "--out", &bus])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    assert!(sim.status.success(), "retail simulate failed");
    // Its last log line: "simulation finished events=N".
    let log = String::from_utf8_lossy(&sim.stderr);
    let published: f64 = log.lines().rev().find_map(|l| l.split("simulation finished events=").nth(1)?.trim().parse().ok()).expect("event count in the log");

    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = std::fs::File::create(dir.path().join("stream.log")).unwrap();
    let mut child = retail(dir.path())
        .args(["stream", "--metrics-listen", &format!("127.0.0.1:{port}")])
        .env("RETAIL_BUS", &bus)
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();

    // Scrape until every published event was read (a backlog of some 18 k events).
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let started = Instant::now();
    let text = loop {
        if let Ok(r) = http.get(&url).send().await {
            assert_eq!(r.status(), 200);
            let text = r.text().await.unwrap();
            if sum_labelled(&text, "retail_stream_events_in_total") == published {
                break text;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "retail stream exited early; see {}", dir.path().join("stream.log").display());
        assert!(started.elapsed() < Duration::from_secs(120), "the stream processor did not catch up within 2 minutes");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // The process's own health, in Prometheus' standard names.
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|v| v > 1e6), "{text}");
    assert!(sample(&text, "process_cpu_seconds_total").is_some_and(|v| v > 0.0), "{text}");
    assert!(sample(&text, "process_open_fds").is_some_and(|v| v >= 3.0), "{text}");
    let health = http.get(format!("http://127.0.0.1:{port}/healthz")).send().await.unwrap();
    assert_eq!(health.text().await.unwrap(), "ok");

    // SIGTERM: the processor finishes, checkpoints, commits and exits 0 with its summary.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "retail stream did not stop within 60 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "exit status {exit:?}; see {}", dir.path().join("stream.log").display());
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut out).unwrap();
    let consumed = sum_labelled(&text, "retail_stream_events_in_total") as u64;
    assert!(out.contains(&format!("processed {consumed} records")), "summary: {out:?} (consumed {consumed})");
    // The metrics endpoint went with it.
    assert!(http.get(&url).send().await.is_err(), "metrics still served after exit");
}
