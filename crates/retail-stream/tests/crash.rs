//! Crash test: a large stream, the processor SIGKILLed several times at random points and
//! restarted, then the lake and the warehouse must hold exactly the valid input — same count,
//! same distinct ids, same revenue — with nothing lost and nothing twice.
//!
//! The processor runs as a real child process (`retail-stream-worker`), on the real embedded
//! bus, lake and warehouse. Kill times are wall-clock delays: the point is to land the kill
//! anywhere in real I/O, which an injected clock cannot do.

mod common;

use common::*;
use retail_bus::BusOptions;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let bus_url = format!("file://{}/bus", dir.path().display());
    let lake_url = format!("file://{}/lake", dir.path().display());
    let bus = retail_bus::open(&bus_url, &BusOptions::default()).await.unwrap();
    bus.ensure_topics().await.unwrap();
    let n: usize = std::env::var("RETAIL_CRASH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(300_000);
    let (records, exp) = generate(n, 7, 1);
    publish_all(&bus, &records).await;

    let mut rng = Lcg(42);
    for round in 0..5 {
        let mut child = spawn_worker(&bus_url, &lake_url, "crash-test", &[]);
        let delay = 300 + rng.below(1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        child.kill().unwrap(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        eprintln!("round {round}: killed after {delay} ms ({status})");
    }
    let mut child = spawn_worker(&bus_url, &lake_url, "crash-test", &["--exit-when-idle"]);
    let status = wait_with_deadline(&mut child, 600);
    assert!(status.success(), "final run failed: {status}");
    verify(&lake_url, &exp, 1).await;
}
