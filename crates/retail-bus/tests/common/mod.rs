//! Test bodies shared by the embedded and the Kafka bus: the semantics the stream processor relies
//! on must hold identically on both.
#![allow(dead_code)]

use retail_bus::{partition_for_key, Consumer, EventBus, Message, Record, TopicPartition};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A name unique to this run (Kafka topics outlive a test run on the broker).
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// `count` payloads for `stores` keys; payload = "key:seq" with seq per key, starting at `from`.
pub fn make_events(stores: usize, count: usize, from: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let key = format!("store_{:03}", i % stores);
            let seq = from + i / stores;
            let payload = format!("{key}:{seq:08}");
            (key, payload)
        })
        .collect()
}

pub async fn publish(bus: &dyn EventBus, topic: &str, events: &[(String, String)]) {
    let records: Vec<Record<'_>> = events.iter().map(|(k, p)| Record { topic, key: k.as_bytes(), payload: p.as_bytes() }).collect();
    for chunk in records.chunks(1000) {
        bus.publish(chunk).await.expect("publish");
    }
}

/// Poll until `want` messages arrived (or fail after `limit`). Commits nothing.
pub async fn read_n(consumer: &mut dyn Consumer, want: usize, limit: Duration) -> Vec<Message> {
    let deadline = Instant::now() + limit;
    let mut got: Vec<Message> = Vec::new();
    while got.len() < want {
        if Instant::now() >= deadline {
            let mut per: BTreeMap<i32, (i64, i64, usize)> = BTreeMap::new();
            for m in &got {
                let e = per.entry(m.partition).or_insert((i64::MAX, -1, 0));
                *e = (e.0.min(m.offset), e.1.max(m.offset), e.2 + 1);
            }
            panic!("timed out: read {} of {want} messages; per partition (min, max, count): {per:?}", got.len());
        }
        got.extend(consumer.poll_batch(want - got.len(), Duration::from_millis(200)).await.expect("poll"));
    }
    got
}

/// Poll for `quiet` and assert nothing (more) arrives.
pub async fn assert_quiet(consumer: &mut dyn Consumer, quiet: Duration) {
    let deadline = Instant::now() + quiet;
    while Instant::now() < deadline {
        let extra = consumer.poll_batch(100, Duration::from_millis(100)).await.expect("poll");
        assert!(extra.is_empty(), "unexpected extra messages: {:?}", extra.iter().map(|m| (m.partition, m.offset)).collect::<Vec<_>>());
    }
}

/// The offset after the last message of each partition in `msgs`.
pub fn next_offsets(msgs: &[Message]) -> Vec<(TopicPartition, i64)> {
    let mut next: BTreeMap<TopicPartition, i64> = BTreeMap::new();
    for m in msgs {
        let tp = TopicPartition { topic: m.topic.to_string(), partition: m.partition };
        let e = next.entry(tp).or_insert(0);
        *e = (*e).max(m.offset + 1);
    }
    next.into_iter().collect()
}

/// Every message is on its key's murmur2 partition, offsets per partition are consecutive, and
/// each key's sequence numbers arrive in order.
pub fn check_order_and_placement(msgs: &[Message], partitions: i32) {
    let mut last_offset: HashMap<i32, i64> = HashMap::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    for m in msgs {
        let key = String::from_utf8(m.key.clone().expect("key").to_vec()).unwrap();
        assert_eq!(m.partition, partition_for_key(key.as_bytes(), partitions), "key {key} on the wrong partition");
        if let Some(prev) = last_offset.insert(m.partition, m.offset) {
            assert_eq!(m.offset, prev + 1, "partition {} offsets not consecutive", m.partition);
        }
        let payload = String::from_utf8(m.payload.to_vec()).unwrap();
        let (pk, seq) = payload.split_once(':').unwrap();
        assert_eq!(pk, key, "payload belongs to its key");
        let seq: u64 = seq.parse().unwrap();
        if let Some(prev) = last_seq.insert(key.clone(), seq) {
            assert!(seq > prev, "{key}: seq {seq} after {prev}: out of order");
        }
        assert!(m.timestamp_ms > 1_600_000_000_000, "timestamp set");
    }
}

/// Publish, consume everything, check placement and per-key order; commit part of the way;
/// drop the consumer (and the bus, via `reopen`), publish more, and check a new member of the
/// group resumes exactly at the committed offsets; check `lag` and `seek` on the way.
///
/// `exact_end_offsets`: whether the log reports true end offsets. tansu 0.6 (memory storage)
/// answers ListOffsets(latest) with the last *batch's* base offset + 1 — confluent-kafka's
/// `get_watermark_offsets` sees the same — so against it lag can only be checked as a bound.
pub async fn publish_consume_commit_restart<F, Fut>(reopen: F, exact_end_offsets: bool)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn EventBus>>,
{
    let topic = unique("t-pccr");
    let group = unique("g-pccr");
    let bus = reopen().await;
    bus.create_topics(&[(&topic, 3)]).await.expect("create topic");
    bus.create_topics(&[(&topic, 3)]).await.expect("create is idempotent");
    let first = make_events(20, 600, 0);
    // Two publishes: the processor below commits exactly the first one. (The boundary between
    // publishes is also a batch boundary; tansu 0.6 cannot fetch from inside a record batch.)
    publish(&*bus, &topic, &first[..100]).await;
    publish(&*bus, &topic, &first[100..]).await;

    // No committed offset yet: lag counts everything retained (reset earliest).
    let lag: i64 = bus.lag(&group, &[&topic]).await.expect("lag").iter().map(|(_, l)| l).sum();
    check_lag(lag, 600, exact_end_offsets);

    let mut c = bus.subscribe(&group, &[&topic]).await.expect("subscribe");
    let msgs = read_n(&mut *c, 600, Duration::from_secs(30)).await;
    assert_eq!(msgs.len(), 600);
    check_order_and_placement(&msgs, 3);
    let mut assigned = c.assignment();
    assigned.sort();
    assert_eq!(assigned.len(), 3, "one member owns all partitions: {assigned:?}");

    // The processor made the first 100 events durable: commit just those.
    let early: std::collections::HashSet<&[u8]> = first[..100].iter().map(|(_, p)| p.as_bytes()).collect();
    let durable: Vec<Message> = msgs.iter().filter(|m| early.contains(&m.payload[..])).cloned().collect();
    assert_eq!(durable.len(), 100);
    let committed = next_offsets(&durable);
    c.commit(&committed).await.expect("commit");
    let lag: i64 = bus.lag(&group, &[&topic]).await.expect("lag").iter().map(|(_, l)| l).sum();
    let done: i64 = committed.iter().map(|(_, o)| o).sum();
    check_lag(lag, 600 - done, exact_end_offsets);

    // seek: rewind one partition to its start and read it again.
    let tp = TopicPartition { topic: topic.clone(), partition: msgs[0].partition };
    let in_p = msgs.iter().filter(|m| m.partition == tp.partition).count();
    c.seek(&tp, 0).await.expect("seek");
    let again = read_n(&mut *c, in_p, Duration::from_secs(30)).await;
    assert!(again.iter().all(|m| m.partition == tp.partition), "only the rewound partition has data");
    assert_eq!(again.iter().map(|m| m.offset).collect::<Vec<_>>(), (0..in_p as i64).collect::<Vec<_>>());

    drop(c);
    drop(bus);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let bus = reopen().await;
    let second = make_events(20, 300, 30);
    publish(&*bus, &topic, &second).await;
    let mut c = bus.subscribe(&group, &[&topic]).await.expect("re-subscribe");
    let want = 600 - done as usize + 300;
    let msgs2 = read_n(&mut *c, want, Duration::from_secs(30)).await;
    for (tp, from) in &committed {
        let first_seen = msgs2.iter().filter(|m| m.partition == tp.partition).map(|m| m.offset).min();
        assert_eq!(first_seen, Some(*from), "partition {} resumes at its committed offset", tp.partition);
    }
    check_order_and_placement(&msgs2, 3);
    assert_quiet(&mut *c, Duration::from_millis(500)).await;
    // The uncommitted 500 and the 300 new ones, each once.
    let payloads: std::collections::HashSet<_> = msgs2.iter().map(|m| m.payload.clone()).collect();
    assert_eq!(payloads.len(), want);
    for (_, p) in &second {
        assert!(payloads.contains(p.as_bytes()), "new event {p} read after restart");
    }
    c.commit(&next_offsets(&msgs2)).await.expect("commit all");
    let lag = bus.lag(&group, &[&topic]).await.expect("lag");
    assert!(lag.iter().all(|(_, l)| *l == 0), "nothing left: {lag:?}");
}

fn check_lag(lag: i64, want: i64, exact: bool) {
    if exact {
        assert_eq!(lag, want, "lag = end − committed");
    } else {
        assert!(lag > 0 && lag <= want, "lag {lag} within (0, {want}]");
    }
}

/// Publishing to a topic that was never created fails with `UnknownTopic`, not silently.
pub async fn unknown_topic_is_an_error(bus: Arc<dyn EventBus>) {
    let topic = unique("t-missing");
    let err = bus.publish(&[Record { topic: &topic, key: b"k", payload: b"v" }]).await.unwrap_err();
    assert!(matches!(err, retail_bus::BusError::UnknownTopic(_)), "{err}");
    let err = bus.subscribe("g", &[&topic]).await.err().expect("subscribe to a missing topic fails");
    assert!(matches!(err, retail_bus::BusError::UnknownTopic(_)), "{err}");
}

/// ensure_topics creates the seed's topics with their partition counts (checked by placement).
pub async fn seed_topics_exist(bus: Arc<dyn EventBus>) {
    bus.ensure_topics().await.expect("ensure_topics");
    bus.ensure_topics().await.expect("ensure_topics is idempotent");
    let group = unique("g-seed");
    for (topic, partitions) in retail_core::topics::ALL {
        let lag = bus.lag(&group, &[topic]).await.expect("lag on a seed topic");
        assert_eq!(lag.len(), partitions as usize, "{topic} has {partitions} partitions");
    }
}

/// A `poll_batch` abandoned mid-wait (e.g. losing a `select!`) loses no message.
pub async fn cancelled_poll_loses_nothing(bus: Arc<dyn EventBus>) {
    let topic = unique("t-cancel");
    bus.create_topics(&[(&topic, 2)]).await.expect("create topic");
    let mut c = bus.subscribe(&unique("g-cancel"), &[&topic]).await.expect("subscribe");
    let events = make_events(6, 200, 0);
    let feed = {
        let (bus, topic, events) = (bus.clone(), topic.clone(), events.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            publish(&*bus, &topic, &events).await;
        })
    };
    // Give up on polls repeatedly while the events arrive (a poll that finishes in time delivers).
    let mut got = Vec::new();
    let mut cancelled = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !feed.is_finished() {
        match tokio::time::timeout(Duration::from_millis(20), c.poll_batch(1, Duration::from_secs(10))).await {
            Ok(r) => got.extend(r.expect("poll")),
            Err(_) => cancelled += 1,
        }
    }
    feed.await.unwrap();
    assert!(cancelled > 5, "polls were abandoned while waiting: {cancelled}");
    // Everything must still arrive, in order, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 200 {
        assert!(Instant::now() < deadline, "only {} of 200 after cancelled polls", got.len());
        got.extend(c.poll_batch(1000, Duration::from_millis(200)).await.expect("poll"));
    }
    check_order_and_placement(&got, 2);
    assert_eq!(got.iter().map(|m| &m.payload).collect::<std::collections::HashSet<_>>().len(), 200);
}
