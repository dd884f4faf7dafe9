//! The Kafka bus against a real Kafka-protocol broker (tansu in CI: `.ci/services/kafka.sh`).
//! Set RETAIL_TEST_KAFKA=host:port and run with `-- --ignored`.
#![cfg(feature = "kafka")]

mod common;

use common::*;
use retail_bus::{open, partition_for_key, BusError, BusOptions, EventBus, KafkaOptions, Message, Rebalance, Record};
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn broker() -> String {
    std::env::var("RETAIL_TEST_KAFKA").expect("RETAIL_TEST_KAFKA=host:port must name the broker for this ignored test (bash .ci/services/kafka.sh starts one)")
}

async fn kafka() -> Arc<dyn EventBus> {
    let url = format!("kafka://{}", broker());
    open(&url, &BusOptions::default()).await.unwrap_or_else(|e| panic!("{url}: {e}"))
}

fn python(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_client.py");
    let out = std::process::Command::new("python3").arg(script).args(args).output().expect("run python3");
    assert!(out.status.success(), "kafka_client.py {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Not ignored: needs no broker. A port nobody listens on gives one clear, retryable error fast.
#[tokio::test]
async fn unreachable_broker_is_a_clear_retryable_error_within_seconds() {
    let opts = BusOptions { kafka: KafkaOptions { connect_timeout: Duration::from_secs(2), ..Default::default() }, ..Default::default() };
    let t = Instant::now();
    let err = open("kafka://127.0.0.1:1", &opts).await.err().expect("nothing listens on port 1");
    assert!(t.elapsed() < Duration::from_secs(8), "took {:?}", t.elapsed());
    assert!(err.is_retryable(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1:1") && msg.contains("check") && !msg.contains('\n'), "{msg}");
    let err = open("kafka://no-port-here", &opts).await.err().unwrap();
    assert!(matches!(err, BusError::BadUrl { .. }), "{err}");
}

#[tokio::test]
#[ignore = "needs a Kafka-protocol broker: run by .ci/run"]
async fn shared_semantics_publish_consume_commit_restart() {
    // Exact end offsets only against a real Kafka: see `publish_consume_commit_restart`.
    let exact = std::env::var("RETAIL_TEST_KAFKA_EXACT_OFFSETS").is_ok_and(|v| v == "1");
    publish_consume_commit_restart(kafka, exact).await;
}

#[tokio::test]
#[ignore = "needs a Kafka-protocol broker: run by .ci/run"]
async fn shared_semantics_unknown_topic_and_seed_topics() {
    let bus = kafka().await;
    seed_topics_exist(bus.clone()).await;
    let topic = unique("t-missing");
    let err = bus.subscribe("g", &[&topic]).await.err().expect("subscribe to a missing topic fails");
    assert!(matches!(err, BusError::UnknownTopic(_)), "{err}");
}

/// Events fed by an independent client (confluent-kafka) are read by our consumer, on the
/// partitions our murmur2 predicts; and what we publish, an independent consumer reads.
#[tokio::test]
#[ignore = "needs a Kafka-protocol broker: run by .ci/run"]
async fn independent_client_interoperates() {
    let bus = kafka().await;
    let topic = unique("t-interop");
    bus.create_topics(&[(&topic, 3)]).await.unwrap();
    let b = broker();
    python(&["produce", &b, &topic, "500", "7"]);
    let mut c = bus.subscribe(&unique("g"), &[&topic]).await.unwrap();
    let msgs = read_n(&mut *c, 500, Duration::from_secs(60)).await;
    check_order_and_placement(&msgs, 3);
    assert_eq!(msgs.iter().map(|m| &m.payload).collect::<HashSet<_>>().len(), 500);

    let topic2 = unique("t-interop-back");
    bus.create_topics(&[(&topic2, 3)]).await.unwrap();
    publish(&*bus, &topic2, &make_events(9, 300, 0)).await;
    let lines = python(&["consume", &b, &topic2, "300"]);
    let mut seen = HashSet::new();
    for line in lines.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = v["key"].as_str().unwrap();
        assert_eq!(v["partition"].as_i64().unwrap() as i32, partition_for_key(key.as_bytes(), 3), "{line}");
        assert!(v["payload"].as_str().unwrap().starts_with(key));
        seen.insert(v["payload"].as_str().unwrap().to_string());
    }
    assert_eq!(seen.len(), 300);
}

/// Poll `c` briefly, commit what it read, and record it.
async fn step(c: &mut dyn retail_bus::Consumer, log: &mut Vec<Message>) {
    let got = c.poll_batch(1000, Duration::from_millis(100)).await.expect("poll");
    if !got.is_empty() {
        c.commit(&next_offsets(&got)).await.expect("commit");
        log.extend(got);
    }
}

/// Two members of one group share the partitions; together they read every message; after one
/// leaves, the other takes over its partitions from the committed offsets.
#[tokio::test]
#[ignore = "needs a Kafka-protocol broker: run by .ci/run"]
async fn two_members_share_partitions_and_one_takes_over() {
    let bus = kafka().await;
    let topic = unique("t-group");
    let group = unique("g-group");
    bus.create_topics(&[(&topic, 4)]).await.unwrap();
    let mut a = bus.subscribe(&group, &[&topic]).await.unwrap();
    let mut b = bus.subscribe(&group, &[&topic]).await.unwrap();
    let (mut la, mut lb) = (Vec::new(), Vec::new());
    // Wait for the group to settle with both members owning partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        step(&mut *a, &mut la).await;
        step(&mut *b, &mut lb).await;
        let (sa, sb) = (a.assignment(), b.assignment());
        if !sa.is_empty() && !sb.is_empty() && sa.len() + sb.len() == 4 {
            assert!(sa.iter().all(|tp| !sb.contains(tp)), "disjoint: {sa:?} {sb:?}");
            break;
        }
        assert!(Instant::now() < deadline, "group never split the partitions: {sa:?} / {sb:?}");
    }
    assert!(la.is_empty() && lb.is_empty());
    let ra = a.take_rebalances();
    assert!(ra.iter().any(|r| matches!(r, Rebalance::Assigned(p) if !p.is_empty())), "{ra:?}");
    let owned_a: BTreeSet<i32> = a.assignment().iter().map(|tp| tp.partition).collect();

    let first = make_events(40, 2000, 0);
    publish(&*bus, &topic, &first).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while la.len() + lb.len() < 2000 {
        assert!(Instant::now() < deadline, "read {} + {} of 2000", la.len(), lb.len());
        step(&mut *a, &mut la).await;
        step(&mut *b, &mut lb).await;
    }
    assert!(!la.is_empty() && !lb.is_empty(), "both members read: {} / {}", la.len(), lb.len());
    assert!(la.iter().all(|m| owned_a.contains(&m.partition)) && lb.iter().all(|m| !owned_a.contains(&m.partition)));
    let all: HashSet<_> = la.iter().chain(&lb).map(|m| m.payload.clone()).collect();
    assert_eq!(all.len(), 2000, "together they read every message exactly once");

    // More events arrive; `a` leaves before reading them. `b` must take over a's partitions from
    // a's committed offsets: exactly the new events, none of the first 2000 again.
    let second = make_events(40, 400, 100);
    publish(&*bus, &topic, &second).await;
    drop(a);
    let mut more = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while more.len() < 400 {
        assert!(Instant::now() < deadline, "b read {} of 400 after a left; assignment {:?}", more.len(), b.assignment());
        step(&mut *b, &mut more).await;
    }
    assert_eq!(b.assignment().len(), 4, "b owns every partition now");
    assert_quiet(&mut *b, Duration::from_secs(1)).await;
    let want: HashSet<Vec<u8>> = second.iter().map(|(_, p)| p.as_bytes().to_vec()).collect();
    let got: HashSet<Vec<u8>> = more.iter().map(|m| m.payload.to_vec()).collect();
    assert_eq!(got, want);
    assert!(more.iter().any(|m| owned_a.contains(&m.partition)), "took over a's partitions");
    assert!(b.take_rebalances().iter().any(|r| matches!(r, Rebalance::Assigned(p) if p.len() == 4)));
}

/// Publish and poll throughput through the broker (printed with --nocapture). Extra librdkafka
/// properties to try: RETAIL_BENCH_KAFKA_PROPS="batch.size=1048576,linger.ms=20".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Kafka-protocol broker: run by .ci/run"]
async fn throughput_publish_and_poll() {
    let mut opts = BusOptions::default();
    for kv in std::env::var("RETAIL_BENCH_KAFKA_PROPS").unwrap_or_default().split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("key=value");
        opts.kafka.properties.insert(k.to_string(), v.to_string());
    }
    let bus = open(&format!("kafka://{}", broker()), &opts).await.unwrap();
    let topic = unique("t-tput");
    bus.create_topics(&[(&topic, 3)]).await.unwrap();
    let n = 200_000usize;
    let keys: Vec<String> = (0..200).map(|i| format!("store_{i:03}")).collect();
    let payload = vec![b'x'; 200];
    let records: Vec<Record<'_>> = (0..10_000).map(|i| Record { topic: &topic, key: keys[i % keys.len()].as_bytes(), payload: &payload }).collect();
    let t = Instant::now();
    for _ in 0..n / records.len() {
        bus.publish(&records).await.unwrap();
    }
    let publish_rate = n as f64 / t.elapsed().as_secs_f64();
    let mut c = bus.subscribe(&unique("g"), &[&topic]).await.unwrap();
    let first = read_n(&mut *c, 1, Duration::from_secs(30)).await.len();
    let t = Instant::now();
    let mut got = first;
    while got < n {
        got += c.poll_batch(10_000, Duration::from_secs(5)).await.unwrap().len();
    }
    let poll_rate = (n - first) as f64 / t.elapsed().as_secs_f64();
    println!(
        "kafka ({}, extra {:?}): publish {publish_rate:.0} events/s, poll {poll_rate:.0} events/s (200-byte payloads, batches of 10k)",
        broker(),
        opts.kafka.properties
    );
    assert_eq!(got, n, "every published record is read back once");
}

#[tokio::test]
#[ignore = "needs a Kafka-protocol broker: run by .ci/run"]
async fn shared_semantics_cancelled_poll_loses_nothing() {
    cancelled_poll_loses_nothing(kafka().await).await;
}
