//! The embedded log (`file://`), through the public API.

mod common;

use common::*;
use retail_bus::{open, BusError, BusOptions, EmbeddedOptions, EventBus, FsyncPolicy, OffsetReset, Record, TopicPartition};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[tokio::test]
async fn shared_semantics_publish_consume_commit_restart() {
    let dir = tempfile::tempdir().unwrap();
    let u = url(dir.path());
    publish_consume_commit_restart(
        || {
            let u = u.clone();
            async move { open(&u, &BusOptions::default()).await.unwrap() }
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn shared_semantics_unknown_topic_and_seed_topics() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&url(dir.path()), &BusOptions::default()).await.unwrap();
    unknown_topic_is_an_error(bus.clone()).await;
    seed_topics_exist(bus).await;
}

#[tokio::test]
async fn bad_urls_are_one_clear_error() {
    for u in ["", "/tmp/x", "amqp://x", "file://"] {
        let err = open(u, &BusOptions::default()).await.err().expect(u);
        assert!(matches!(err, BusError::BadUrl { .. }), "{u}: {err}");
        assert!(err.to_string().contains("file://"), "says what is expected: {err}");
    }
}

#[tokio::test]
async fn a_group_has_one_member_and_the_next_takes_over_from_committed() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&url(dir.path()), &BusOptions::default()).await.unwrap();
    bus.create_topics(&[("t", 2)]).await.unwrap();
    publish(&*bus, "t", &make_events(5, 100, 0)).await;
    let mut a = bus.subscribe("g", &["t"]).await.unwrap();
    // Same process, same group: refused while `a` lives.
    let err = bus.subscribe("g", &["t"]).await.err().expect("second member refused");
    assert!(err.to_string().contains("one member per group"), "{err}");
    // Another process (a separate instance has its own file locks): refused too, naming the lock.
    let other = retail_bus::open_unshared_for_tests(dir.path(), &BusOptions::default()).unwrap();
    let err = other.subscribe("g", &["t"]).await.err().expect("member in another process refused");
    assert!(err.to_string().contains("another process") && err.to_string().contains(".member.lock"), "{err}");
    // A different group is independent.
    let mut b = bus.subscribe("h", &["t"]).await.unwrap();
    assert_eq!(read_n(&mut *b, 100, Duration::from_secs(5)).await.len(), 100);

    let msgs = read_n(&mut *a, 100, Duration::from_secs(5)).await;
    assert_eq!(a.take_rebalances().len(), 1, "the fixed assignment is announced once");
    assert!(a.take_rebalances().is_empty());
    a.commit(&next_offsets(&msgs[..40])).await.unwrap();
    drop(a);
    // The other "process" can now take the group over, from the committed offsets.
    let mut c = other.subscribe("g", &["t"]).await.unwrap();
    let rest = read_n(&mut *c, 60, Duration::from_secs(5)).await;
    assert_quiet(&mut *c, Duration::from_millis(200)).await;
    let committed = next_offsets(&msgs[..40]);
    for (tp, from) in committed {
        assert_eq!(rest.iter().filter(|m| m.partition == tp.partition).map(|m| m.offset).min(), Some(from));
    }
}

#[tokio::test]
async fn a_reader_in_another_process_follows_the_writer_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BusOptions { embedded: EmbeddedOptions { segment_bytes: 4096, ..Default::default() }, ..Default::default() };
    let writer = open(&url(dir.path()), &opts).await.unwrap();
    writer.create_topics(&[("t", 1)]).await.unwrap();
    let reader = retail_bus::open_unshared_for_tests(dir.path(), &opts).unwrap();
    let mut c = reader.subscribe("g", &["t"]).await.unwrap();
    // A second writer of the same partition is refused rather than corrupting offsets.
    writer.publish(&[Record { topic: "t", key: b"k", payload: b"x" }]).await.unwrap();
    let err = reader.publish(&[Record { topic: "t", key: b"k", payload: b"y" }]).await.unwrap_err();
    assert!(err.to_string().contains("written by another process"), "{err}");
    let mut seen = read_n(&mut *c, 1, Duration::from_secs(5)).await;
    // Many small batches: the 4 KiB segments roll dozens of times while the reader tails.
    let events = make_events(3, 3000, 1);
    let feed = {
        let writer = writer.clone();
        let events = events.clone();
        tokio::spawn(async move {
            for chunk in events.chunks(50) {
                publish(&*writer, "t", chunk).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    seen.extend(read_n(&mut *c, 3000, Duration::from_secs(30)).await);
    feed.await.unwrap();
    assert_eq!(seen.iter().map(|m| m.offset).collect::<Vec<_>>(), (0..3001).collect::<Vec<_>>());
    let segments =
        std::fs::read_dir(dir.path().join("topics/t/0")).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log")).count();
    assert!(segments > 20, "segments rolled: {segments}");
}

#[tokio::test]
async fn retention_deletes_whole_old_segments_and_readers_skip_to_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let short = BusOptions {
        embedded: EmbeddedOptions { segment_bytes: 2048, retention: Duration::from_millis(300), fsync: FsyncPolicy::Never },
        ..Default::default()
    };
    let bus = open(&url(dir.path()), &short).await.unwrap();
    bus.create_topics(&[("t", 1)]).await.unwrap();
    publish(&*bus, "t", &make_events(1, 200, 0)).await; // one batch → one big segment
    for chunk in make_events(1, 40, 200).chunks(20) {
        publish(&*bus, "t", chunk).await; // rolls: the big segment is closed
    }
    let before = bus.lag("g", &["t"]).await.unwrap()[0].1;
    assert_eq!(before, 240);
    tokio::time::sleep(Duration::from_millis(400)).await;
    publish(&*bus, "t", &make_events(1, 10, 240)).await; // a roll applies retention
    publish(&*bus, "t", &make_events(1, 10, 250)).await;
    let left = bus.lag("g", &["t"]).await.unwrap()[0].1;
    assert!((20..250).contains(&left), "old segments deleted, recent kept: {left}");
    assert!(!dir.path().join("topics/t/0/00000000000000000000.log").exists());
    // A group with no commit starts at the new log start; its first offset is a segment base.
    let mut c = bus.subscribe("g", &["t"]).await.unwrap();
    let msgs = read_n(&mut *c, left as usize, Duration::from_secs(5)).await;
    assert_eq!(msgs.last().unwrap().offset, 259);
    assert!(msgs[0].offset > 0);
}

#[tokio::test]
async fn latest_reset_skips_history_and_survives_reopen_with_fsync_always() {
    let dir = tempfile::tempdir().unwrap();
    let opts = BusOptions {
        auto_offset_reset: OffsetReset::Latest,
        embedded: EmbeddedOptions { fsync: FsyncPolicy::Always, ..Default::default() },
        ..Default::default()
    };
    let bus = open(&url(dir.path()), &opts).await.unwrap();
    bus.create_topics(&[("t", 2)]).await.unwrap();
    publish(&*bus, "t", &make_events(4, 50, 0)).await;
    let mut c = bus.subscribe("g", &["t"]).await.unwrap();
    assert_quiet(&mut *c, Duration::from_millis(200)).await;
    publish(&*bus, "t", &make_events(4, 8, 100)).await;
    let got = read_n(&mut *c, 8, Duration::from_secs(5)).await;
    assert!(got.iter().all(|m| String::from_utf8_lossy(&m.payload).ends_with(|c: char| c.is_ascii_digit()) && m.offset >= 20));
    drop(c);
    drop(bus);
    // Reopened from disk: offsets continue.
    let bus: Arc<dyn EventBus> = open(&url(dir.path()), &opts).await.unwrap();
    bus.publish(&[Record { topic: "t", key: b"store_000", payload: b"store_000:00000999" }]).await.unwrap();
    let lag = bus.lag("other", &["t"]).await.unwrap();
    assert_eq!(lag.iter().map(|(_, l)| l).sum::<i64>(), 0, "latest: a new group owes nothing");
    let tp = TopicPartition { topic: "t".into(), partition: retail_bus::partition_for_key(b"store_000", 2) };
    let mut c = bus.subscribe("z", &["t"]).await.unwrap();
    c.seek(&tp, 0).await.unwrap();
    // The partition holds store_000's and maybe other stores' events; read it to the end.
    let in_p =
        make_events(4, 50, 0).iter().chain(&make_events(4, 8, 100)).filter(|(k, _)| retail_bus::partition_for_key(k.as_bytes(), 2) == tp.partition).count();
    let all = read_n(&mut *c, in_p + 1, Duration::from_secs(5)).await;
    assert_eq!(all.first().unwrap().offset, 0, "seek rewound to the start");
    assert_eq!(&all.last().unwrap().payload[..], b"store_000:00000999");
    assert_quiet(&mut *c, Duration::from_millis(200)).await;
}

/// A million records through the log, every one read back. A measurement, not a timed test
/// (speed targets belong to benchmarks): run with --ignored --nocapture to see the rates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: cargo test --release -p retail-bus --test embedded -- --ignored --nocapture throughput"]
async fn throughput_publish_and_poll() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&url(dir.path()), &BusOptions::default()).await.unwrap();
    bus.create_topics(&[("t", 3)]).await.unwrap();
    let n = 1_000_000usize;
    let keys: Vec<String> = (0..200).map(|i| format!("store_{i:03}")).collect();
    let payload = vec![b'x'; 200];
    let records: Vec<Record<'_>> = (0..10_000).map(|i| Record { topic: "t", key: keys[i % keys.len()].as_bytes(), payload: &payload }).collect();
    let t = Instant::now();
    for _ in 0..n / records.len() {
        bus.publish(&records).await.unwrap();
    }
    let publish_rate = n as f64 / t.elapsed().as_secs_f64();
    let mut c = bus.subscribe("g", &["t"]).await.unwrap();
    let t = Instant::now();
    let mut got = 0;
    while got < n {
        got += c.poll_batch(10_000, Duration::from_secs(1)).await.unwrap().len();
    }
    let poll_rate = n as f64 / t.elapsed().as_secs_f64();
    println!("embedded: publish {publish_rate:.0} events/s, poll {poll_rate:.0} events/s (200-byte payloads, batches of 10k)");
    assert_eq!(got, n, "every published record is read back once");
}

#[tokio::test]
async fn shared_semantics_cancelled_poll_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    cancelled_poll_loses_nothing(open(&url(dir.path()), &BusOptions::default()).await.unwrap()).await;
}

/// A backlog is read ahead (after each full batch the next is read in the background): records
/// still come in order, once each, a smaller `max` is honoured, a seek drops what was read ahead
/// of its partition, and a poll cancelled while the read-ahead runs loses nothing.
// One thread: a read-ahead runs only when the test yields, so the cancelled poll below surely
// finds it still running.
#[tokio::test]
async fn read_ahead_keeps_order_honours_max_seeks_and_cancellation() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(&url(dir.path()), &BusOptions::default()).await.unwrap();
    bus.create_topics(&[("t", 3)]).await.unwrap();
    publish(&*bus, "t", &make_events(30, 30_000, 0)).await;
    let mut c = bus.subscribe("g", &["t"]).await.unwrap();
    let mut got = Vec::new();
    // Full batches: each one starts a read-ahead.
    for _ in 0..3 {
        let batch = c.poll_batch(1_000, Duration::from_secs(1)).await.unwrap();
        assert_eq!(batch.len(), 1_000, "a backlog fills every batch");
        got.extend(batch);
    }
    // A poll dropped while it waits for the read-ahead the last full batch started loses nothing.
    let cut_short = tokio::select! {
        biased;
        batch = c.poll_batch(1_000, Duration::from_secs(1)) => {
            got.extend(batch.unwrap());
            false
        }
        _ = std::future::ready(()) => true,
    };
    assert!(cut_short, "the poll was dropped at its first wait");
    // A smaller batch than the one read ahead: at most `max`, the rest comes next.
    let small = c.poll_batch(10, Duration::from_secs(1)).await.unwrap();
    assert_eq!(small.len(), 10);
    got.extend(small);
    got.extend(c.poll_batch(1_000, Duration::from_secs(1)).await.unwrap());
    // Seek every partition back to offset 5 (a batch of this backlog holds one partition's
    // records, whichever the read-ahead holds): what was read ahead of it is dropped.
    for p in 0..3 {
        c.seek(&TopicPartition { topic: "t".into(), partition: p }, 5).await.unwrap();
    }
    got.retain(|m| m.offset < 5);
    loop {
        let batch = c.poll_batch(1_000, Duration::from_millis(100)).await.unwrap();
        if batch.is_empty() {
            break;
        }
        got.extend(batch);
    }
    assert_eq!(got.len(), 30_000, "every record once (after the seeks, again from offset 5)");
    check_order_and_placement(&got, 3);
    for p in 0..3 {
        let offsets: Vec<i64> = got.iter().filter(|m| m.partition == p).map(|m| m.offset).collect();
        assert_eq!(offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "partition {p}: every offset once, in order");
    }
}
