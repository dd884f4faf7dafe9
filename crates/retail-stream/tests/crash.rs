//! Crash test: a large stream, the processor SIGKILLed several times at random points and
//! restarted, then the lake and the warehouse must hold exactly the valid input — same count,
//! same distinct ids, same revenue — with nothing lost and nothing twice.
//!
//! The processor runs as a real child process (`retail-stream-worker`), on the real embedded
//! bus, lake and warehouse. Kill times are wall-clock delays: the point is to land the kill
//! anywhere in real I/O, which an injected clock cannot do.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_points_loses_and_duplicates_nothing_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let (bus_url, lake_url, bus) = embedded_bus_and_lake(dir.path()).await;
    let n: usize = std::env::var("RETAIL_CRASH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(500_000);
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

/// Checkpoints of versions before the binary format (JSON, `NNN.json`) are resumed from, and
/// the stream continues exactly once across the upgrade.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_checkpoints_of_earlier_versions_are_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let (bus_url, lake_url, bus) = embedded_bus_and_lake(dir.path()).await;
    let (records, exp) = generate(20_000, 11, 3);
    let (first, second) = records.split_at(records.len() / 2);
    publish_all(&bus, first).await;
    let mut child = spawn_worker(&bus_url, &lake_url, "upgrade", &["--exit-when-idle"]);
    assert!(wait_with_deadline(&mut child, 300).success());

    // Rewrite every checkpoint as the JSON an earlier version wrote, under its old name.
    let state_dir = dir.path().join("lake/state/stream/upgrade");
    let mut converted = 0;
    for topic in std::fs::read_dir(&state_dir).unwrap() {
        for file in std::fs::read_dir(topic.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            if path.extension().is_some_and(|e| e == "state") {
                let snap = retail_stream::PartSnapshot::decode(&std::fs::read(&path).unwrap()).unwrap();
                std::fs::write(path.with_extension("json"), serde_json::to_vec(&snap).unwrap()).unwrap();
                std::fs::remove_file(&path).unwrap();
                converted += 1;
            }
        }
    }
    assert!(converted >= 3, "expected checkpoints of every sales and inventory partition, found {converted}");

    publish_all(&bus, second).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_retail-stream-worker"))
        .args(["--bus", &bus_url, "--lake", &lake_url, "--group", "upgrade", "--exit-when-idle"])
        .env("RETAIL_LOG", "info")
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "second run failed:\n{log}");
    let resumed = log.lines().filter(|l| l.contains("partition assigned") && l.contains("Some(")).count();
    assert!(resumed >= converted, "{resumed} partitions resumed from {converted} JSON checkpoints:\n{log}");
    verify(&lake_url, &exp, 3).await;
}

/// A crash after the checkpoints were written but before the offsets were committed, with
/// nothing new to read afterwards: the restart resumes from the checkpoints, commits their
/// positions, and an idle stop ends (it used to wait forever for a lag that never reached 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_commit_after_the_last_checkpoint_still_lets_an_idle_run_stop() {
    let dir = tempfile::tempdir().unwrap();
    let (bus_url, lake_url, bus) = embedded_bus_and_lake(dir.path()).await;
    let (records, exp) = generate(20_000, 13, 4);
    publish_all(&bus, &records).await;
    let mut child = spawn_worker(&bus_url, &lake_url, "lost-commit", &["--exit-when-idle"]);
    assert!(wait_with_deadline(&mut child, 300).success());

    // The commit is lost: the group's offsets go back to the start of every partition.
    let offsets = dir.path().join("bus/groups/lost-commit/offsets.json");
    let committed: serde_json::Value = serde_json::from_slice(&std::fs::read(&offsets).unwrap()).unwrap();
    let mut reset = committed.clone();
    for partitions in reset.as_object_mut().unwrap().values_mut() {
        for offset in partitions.as_object_mut().unwrap().values_mut() {
            *offset = serde_json::json!(0);
        }
    }
    std::fs::write(&offsets, serde_json::to_vec(&reset).unwrap()).unwrap();

    let mut child = spawn_worker(&bus_url, &lake_url, "lost-commit", &["--exit-when-idle"]);
    assert!(wait_with_deadline(&mut child, 60).success(), "the idle stop must end");
    let after: serde_json::Value = serde_json::from_slice(&std::fs::read(&offsets).unwrap()).unwrap();
    assert_eq!(after, committed, "the checkpoints' positions are committed again");
    verify(&lake_url, &exp, 4).await;
}

/// The dedup ids live in one object per event-time bucket, which a checkpoint writes only when
/// the bucket changed: a restart loads them (re-sends of records from before it are dropped),
/// a checkpoint that added no id rewrites none, and objects no state refers to are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dedup_buckets_are_checkpointed_incrementally_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (bus_url, lake_url, bus) = embedded_bus_and_lake(dir.path()).await;
    let (records, exp) = generate(20_000, 17, 5);
    publish_all(&bus, &records).await;
    let mut child = spawn_worker(&bus_url, &lake_url, "dedup", &["--exit-when-idle"]);
    assert!(wait_with_deadline(&mut child, 300).success());

    let group_dir = dir.path().join("lake/state/stream/dedup");
    // Every partition's state refers to its dedup objects (and holds no ids itself), and the
    // objects are exactly those.
    let objects = || {
        let mut found = std::collections::BTreeMap::new();
        for topic in std::fs::read_dir(&group_dir).unwrap() {
            for entry in std::fs::read_dir(topic.unwrap().path()).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "state") {
                    let snap = retail_stream::PartSnapshot::decode(&std::fs::read(&path).unwrap()).unwrap();
                    assert!(snap.dedup.is_empty(), "{}: ids held inline", path.display());
                    let dedup_dir = path.with_extension("dedup");
                    // A partition without events has no dedup objects, nor a folder for them.
                    let mut stored: Vec<String> =
                        std::fs::read_dir(&dedup_dir).map(|d| d.map(|e| e.unwrap().file_name().into_string().unwrap()).collect()).unwrap_or_default();
                    stored.sort();
                    let mut referenced: Vec<String> = snap.dedup_segments.iter().map(|(b, v)| format!("{b}-{v}.ids")).collect();
                    referenced.sort();
                    assert_eq!(stored, referenced, "{}", dedup_dir.display());
                    found.insert(path, stored);
                }
            }
        }
        found
    };
    let first = objects();
    assert!(first.values().filter(|o| !o.is_empty()).count() >= 3, "sales and inventory partitions: {first:?}");

    // A stray object (a checkpoint that crashed before writing its state) is cleaned up.
    let some_dedup_dir = first.iter().find(|(_, o)| !o.is_empty()).unwrap().0.with_extension("dedup");
    std::fs::write(some_dedup_dir.join("1-999.ids"), b"left over").unwrap();
    // Re-send the last 3,000 records: every valid one a duplicate of a record from before the restart.
    publish_all(&bus, &records[records.len() - 3_000..]).await;
    let mut child = spawn_worker(&bus_url, &lake_url, "dedup", &["--exit-when-idle"]);
    assert!(wait_with_deadline(&mut child, 300).success());
    verify(&lake_url, &exp, 5).await;
    // No bucket gained an id, so the checkpoints after the restart rewrote no dedup object.
    assert_eq!(objects(), first);
}

/// Stock state is checkpointed as a base and deltas of the keys changed since (a new base once
/// the chain outgrows the live keys): across restarts, every partition's chain read back in
/// order gives each store×SKU's latest level, and no object is left that no state refers to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stock_is_checkpointed_as_a_base_and_deltas_and_restored() {
    let dir = tempfile::tempdir().unwrap();
    let (bus_url, lake_url, bus) = embedded_bus_and_lake(dir.path()).await;
    let (records, _) = generate(30_000, 19, 6);
    let group_dir = dir.path().join("lake/state/stream/stock");
    let mut expected: std::collections::BTreeMap<(String, String), i64> = Default::default();
    let mut seen_ids = std::collections::HashSet::new();
    let mut longest_chain = 0;
    for part in records.chunks(10_000) {
        for (topic, _, payload) in part {
            if *topic != retail_core::topics::INVENTORY {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(payload).unwrap();
            // A re-sent record is a duplicate the stream drops.
            if seen_ids.insert(v["inventory_id"].as_str().unwrap().to_string()) {
                let key = (v["store_id"].as_str().unwrap().to_string(), v["product_id"].as_str().unwrap().to_string());
                expected.insert(key, v["new_quantity"].as_i64().unwrap());
            }
        }
        publish_all(&bus, part).await;
        let mut child = spawn_worker(&bus_url, &lake_url, "stock", &["--exit-when-idle"]);
        assert!(wait_with_deadline(&mut child, 300).success());

        let mut restored: std::collections::BTreeMap<(String, String), i64> = Default::default();
        for path in std::fs::read_dir(group_dir.join(retail_core::topics::INVENTORY)).unwrap().map(|e| e.unwrap().path()) {
            if path.extension().is_none_or(|e| e != "state") {
                continue;
            }
            let snap = retail_stream::PartSnapshot::decode(&std::fs::read(&path).unwrap()).unwrap();
            assert!(snap.stock.is_empty(), "{}: stock held inline", path.display());
            longest_chain = longest_chain.max(snap.stock_segments.len());
            let stock_dir = path.with_extension("stock");
            let mut stored: Vec<String> = std::fs::read_dir(&stock_dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            stored.sort();
            let mut referenced: Vec<String> = snap.stock_segments.iter().enumerate().map(|(i, v)| format!("{i}-{v}.stock")).collect();
            referenced.sort();
            assert_eq!(stored, referenced, "{}", stock_dir.display());
            for (i, v) in snap.stock_segments.iter().enumerate() {
                let bytes = std::fs::read(stock_dir.join(format!("{i}-{v}.stock"))).unwrap();
                for (store, product, state) in retail_stream::state::decode_stock(&bytes).unwrap() {
                    restored.insert((store, product), state.on_hand as i64);
                }
            }
        }
        assert_eq!(restored, expected, "each store×SKU's latest level, from the chains");
    }
    assert!(longest_chain >= 2, "deltas were written (longest chain {longest_chain})");

    // The restarted processor holds the restored levels: an update whose previous level
    // disagrees with one is flagged (an unknown level would not be checked).
    let ((store, sku), level) = expected.iter().next().map(|(k, v)| (k.clone(), *v)).unwrap();
    let update = inventory_in(6, 9_999_999, &store, &sku, level as i32 + 7, -1, "sale", at("05:00:00"));
    publish_all(&bus, &[(retail_core::topics::INVENTORY, store.clone(), update)]).await;
    let mut child = spawn_worker(&bus_url, &lake_url, "stock", &["--exit-when-idle"]);
    assert!(wait_with_deadline(&mut child, 300).success());
    let lake = retail_lake::Lake::open(&lake_url, &Default::default()).unwrap();
    let wh = retail_warehouse::open("embedded", &retail_warehouse::WarehouseOptions::default(), Some(lake)).await.unwrap();
    let q = wh.query(&format!("SELECT kind FROM rt_anomalies WHERE event_id = '{}'", uuid_in(6, 9_999_999))).await.unwrap();
    assert_eq!(q.rows, vec![vec![serde_json::json!("stock_mismatch")]], "the restored level of {store}/{sku} ({level}) was checked");
}
