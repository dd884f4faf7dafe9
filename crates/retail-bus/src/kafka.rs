//! The Kafka bus (`kafka://host:port[,host:port]`) through librdkafka.
//!
//! Producer: the seed's settings (acks=all, retries=3, batch.size=16384, linger.ms=10) plus
//! idempotence, and the `murmur2_random` partitioner (Java-client compatible, and what the
//! embedded log uses), so one store's events land on one partition whichever bus carries them.
//! `publish` enqueues a whole batch and waits for every delivery report once.
//!
//! Consumer: a `BaseConsumer` polled from a blocking thread, many messages per call; auto-commit
//! off (the processor commits what it has made durable); rebalances are recorded for
//! `take_rebalances`. `[kafka.properties]` go to every client after our defaults, so TLS/SASL
//! and tuning pass straight through.

use crate::{BusError, BusOptions, Consumer, EventBus, Message, OffsetReset, Rebalance, Record, TopicPartition};
use async_trait::async_trait;
use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bounds every blocking metadata/admin/commit call, so a lost broker gives an error, not a hang.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Seeks retried while the partition's fetcher is not up yet (50 ms apart).
const SEEK_STATE_RETRIES: u32 = 40;

/// `host:port[,host:port]` → librdkafka's `bootstrap.servers`.
pub(crate) fn parse_servers(rest: &str) -> Result<String, String> {
    let rest = rest.trim_end_matches('/');
    let mut out = Vec::new();
    for part in rest.split(',') {
        let part = part.trim();
        let (host, port) = part.rsplit_once(':').ok_or_else(|| format!("`{part}` has no port; expected host:port such as 127.0.0.1:9092"))?;
        if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
            return Err(format!("`{part}` is not host:port (such as kafka1:9092)"));
        }
        out.push(part.to_string());
    }
    Ok(out.join(","))
}

fn code_of(e: &KafkaError) -> Option<RDKafkaErrorCode> {
    e.rdkafka_error_code()
}

/// Errors librdkafka reports while the cluster is unreachable or moving leaders: worth retrying.
fn is_transient(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode::*;
    matches!(
        code,
        MessageTimedOut
            | BrokerTransportFailure
            | AllBrokersDown
            | NetworkException
            | RequestTimedOut
            | OperationTimedOut
            | NotEnoughReplicas
            | NotEnoughReplicasAfterAppend
            | LeaderNotAvailable
            | NotLeaderForPartition
            | QueueFull
            | CoordinatorNotAvailable
            | NotCoordinator
            | CoordinatorLoadInProgress
            | RebalanceInProgress
            | IllegalGeneration
            | UnknownMemberId
            | Resolve
            | TimedOutQueue
    )
}

fn map_err(e: &KafkaError, what: &str) -> BusError {
    match code_of(e) {
        Some(RDKafkaErrorCode::UnknownTopicOrPartition) | Some(RDKafkaErrorCode::UnknownTopic) => BusError::UnknownTopic(what.to_string()),
        Some(c) if is_transient(c) => BusError::Unavailable(format!("{what}: {e}")),
        _ => BusError::Other(format!("{what}: {e}")),
    }
}

/// Tracks one `publish` call's outstanding deliveries.
struct Batch {
    pending: AtomicUsize,
    failed: Mutex<Option<(KafkaError, String)>>,
    done: tokio::sync::Notify,
}

impl Batch {
    fn settle(&self, n: usize) {
        if n > 0 && self.pending.fetch_sub(n, Ordering::AcqRel) == n {
            self.done.notify_one();
        }
    }
}

struct DeliveryContext;
impl ClientContext for DeliveryContext {}
impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Arc<Batch>;
    fn delivery(&self, result: &DeliveryResult<'_>, batch: Arc<Batch>) {
        if let Err((e, msg)) = result {
            batch.failed.lock().unwrap().get_or_insert_with(|| (e.clone(), msg.topic().to_string()));
        }
        batch.settle(1);
    }
}

/// Which librdkafka clients a `[kafka.properties]` entry applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    Both,
    Producer,
    Consumer,
}

/// librdkafka's consumer-only and producer-only properties (its CONFIGURATION.md, "C/P" column);
/// anything else (TLS, SASL, timeouts, debug, …) goes to every client.
fn property_scope(key: &str) -> Scope {
    const CONSUMER: &[&str] = &[
        "group.id",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
        "partition.assignment.strategy",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "group.protocol.type",
        "coordinator.query.interval.ms",
        "max.poll.interval.ms",
        "enable.auto.commit",
        "auto.commit.interval.ms",
        "enable.auto.offset.store",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.wait.max.ms",
        "fetch.queue.backoff.ms",
        "fetch.message.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.max.bytes",
        "fetch.min.bytes",
        "fetch.error.backoff.ms",
        "offset.store.method",
        "isolation.level",
        "enable.partition.eof",
        "check.crcs",
        "auto.offset.reset",
        "consume.callback.max.messages",
    ];
    const PRODUCER: &[&str] = &[
        "transactional.id",
        "transaction.timeout.ms",
        "enable.idempotence",
        "enable.gapless.guarantee",
        "queue.buffering.max.messages",
        "queue.buffering.max.kbytes",
        "queue.buffering.max.ms",
        "linger.ms",
        "message.send.max.retries",
        "retries",
        "retry.backoff.ms",
        "retry.backoff.max.ms",
        "queue.buffering.backpressure.threshold",
        "compression.codec",
        "compression.type",
        "batch.num.messages",
        "batch.size",
        "delivery.report.only.error",
        "sticky.partitioning.linger.ms",
        "request.required.acks",
        "acks",
        "request.timeout.ms",
        "message.timeout.ms",
        "delivery.timeout.ms",
        "partitioner",
        "compression.level",
        "max.in.flight.requests.per.connection",
        "max.in.flight",
    ];
    if CONSUMER.contains(&key) {
        Scope::Consumer
    } else if PRODUCER.contains(&key) {
        Scope::Producer
    } else {
        Scope::Both
    }
}

pub(crate) struct KafkaBus {
    servers: String,
    config: ClientConfig,
    properties: std::collections::BTreeMap<String, String>,
    reset: OffsetReset,
    replication: i32,
    producer: Arc<ThreadedProducer<DeliveryContext>>,
    admin: Arc<AdminClient<DefaultClientContext>>,
    /// One group-less-member client per group for `lag` (OffsetFetch needs a group.id).
    lag_clients: Mutex<HashMap<String, Arc<BaseConsumer>>>,
}

impl KafkaBus {
    pub(crate) async fn connect(url: &str, servers: &str, options: &BusOptions) -> Result<KafkaBus, BusError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", servers).set("client.id", "retail");
        // Each client gets the common properties plus those of its side: consumers add theirs in
        // `consumer_config`, the producer below (librdkafka warns about every property of the
        // other side; the admin client is a producer-type handle that needs neither).
        for (k, v) in options.kafka.properties.iter().filter(|(k, _)| property_scope(k) == Scope::Both) {
            config.set(k, v);
        }
        let mut pconf = ClientConfig::new();
        pconf
            .set("bootstrap.servers", servers)
            .set("client.id", "retail")
            .set("acks", "all")
            .set("retries", "3")
            .set("batch.size", "16384")
            .set("linger.ms", "10")
            .set("enable.idempotence", "true")
            .set("partitioner", "murmur2_random")
            // A batch that cannot be delivered fails within this, instead of librdkafka's 5 minutes.
            .set("message.timeout.ms", "30000")
            .set("queue.buffering.max.messages", "1000000");
        for (k, v) in options.kafka.properties.iter().filter(|(k, _)| property_scope(k) != Scope::Consumer) {
            pconf.set(k, v);
        }
        let bad_config = |e: KafkaError| BusError::Other(format!("invalid Kafka client settings (check [kafka.properties]): {e}"));
        let producer: ThreadedProducer<DeliveryContext> = pconf.create_with_context(DeliveryContext).map_err(bad_config)?;
        let admin: AdminClient<DefaultClientContext> = config.create().map_err(bad_config)?;
        let producer = Arc::new(producer);
        // librdkafka connects lazily and retries forever; ask for metadata with a deadline so a
        // wrong address or a broker that is down is one clear error now.
        let timeout = options.kafka.connect_timeout;
        let p = producer.clone();
        let probe =
            tokio::task::spawn_blocking(move || p.client().fetch_metadata(None, timeout).map(|_| ())).await.map_err(|e| BusError::Other(e.to_string()))?;
        if let Err(e) = probe {
            let hint = if options.kafka.properties.keys().any(|k| k.starts_with("security.") || k.starts_with("ssl.") || k.starts_with("sasl.")) {
                "the TLS/SASL settings in [kafka.properties]"
            } else {
                "whether it needs TLS/SASL ([kafka.properties])"
            };
            return Err(BusError::Unavailable(format!(
                "no Kafka broker answered at {servers} (from {url}) within {timeout:?}: {e}; check that the broker is running and reachable at that host:port, and {hint}"
            )));
        }
        Ok(KafkaBus {
            servers: servers.to_string(),
            config,
            properties: options.kafka.properties.clone(),
            reset: options.auto_offset_reset,
            replication: options.kafka.replication_factor,
            producer,
            admin: Arc::new(admin),
            lag_clients: Mutex::new(HashMap::new()),
        })
    }

    fn consumer_config(&self, group: &str) -> ClientConfig {
        let mut c = self.config.clone();
        c.set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", self.reset.as_str())
            .set("enable.partition.eof", "false")
            // Fetches of at least 256 KiB, waited for at most 10 ms (librdkafka: 1 byte, 500 ms).
            // A broker answers as soon as 256 KiB are there, so the wait only matters at a
            // trickle: it bounds the added latency at 10 ms for ≈ 100 idle fetches/s per broker.
            // tansu 0.6 waits the full time on every fetch and caps a response at 5 MiB, so
            // there the wait sets the ceiling: `retail bench stream` went from 44 k events/s
            // (defaults) to 165 k (50 ms) and 230–270 k (10 ms).
            .set("fetch.min.bytes", "262144")
            .set("fetch.wait.max.ms", "10")
            // librdkafka pauses a partition's fetching this long once its prefetch queue is
            // full (default 1 s): a processor that briefly lags then idles for a second. With
            // 20 ms the backlog bench went from 150–280 k (bimodal) to a steady 245–270 k.
            .set("fetch.queue.backoff.ms", "20");
        // User properties win over the defaults above too.
        for (k, v) in self.properties.iter().filter(|(k, _)| property_scope(k) != Scope::Producer) {
            c.set(k, v);
        }
        c
    }

    /// Partition count of each topic, or `UnknownTopic`.
    fn partitions_of(client: &rdkafka::client::Client<impl ClientContext>, topic: &str) -> Result<i32, BusError> {
        let md = client.fetch_metadata(Some(topic), CALL_TIMEOUT).map_err(|e| map_err(&e, &format!("metadata of {topic}")))?;
        match md.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
            _ => Err(BusError::UnknownTopic(topic.to_string())),
        }
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn ensure_topics(&self) -> Result<(), BusError> {
        self.create_topics(&retail_core::topics::ALL).await
    }

    async fn create_topics(&self, topics: &[(&str, i32)]) -> Result<(), BusError> {
        let retention = retail_core::topics::RETENTION_MS.to_string();
        let new: Vec<NewTopic<'_>> =
            topics.iter().map(|&(name, n)| NewTopic::new(name, n, TopicReplication::Fixed(self.replication)).set("retention.ms", &retention)).collect();
        let opts = AdminOptions::new().operation_timeout(Some(CALL_TIMEOUT)).request_timeout(Some(CALL_TIMEOUT));
        let results = self.admin.create_topics(new.iter(), &opts).await.map_err(|e| map_err(&e, "create topics"))?;
        for r in results {
            match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(map_err(&KafkaError::AdminOp(code), &format!("create topic {name}"))),
            }
        }
        // Creation propagates asynchronously; wait until every topic is usable.
        let admin = self.admin.clone();
        let wanted: Vec<(String, i32)> = topics.iter().map(|&(n, p)| (n.to_string(), p)).collect();
        tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + CALL_TIMEOUT;
            for (name, n) in wanted {
                loop {
                    match Self::partitions_of(admin.inner(), &name) {
                        Ok(have) => {
                            if have != n {
                                tracing::warn!(topic = %name, existing = have, requested = n, "topic exists with another partition count; keeping it");
                            }
                            break;
                        }
                        Err(e) if Instant::now() >= deadline => return Err(e),
                        Err(_) => std::thread::sleep(Duration::from_millis(100)),
                    }
                }
            }
            Ok(())
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))?
    }

    async fn publish(&self, records: &[Record<'_>]) -> Result<(), BusError> {
        if records.is_empty() {
            return Ok(());
        }
        // One guard count held until every record is handed over, so the batch cannot complete
        // while we are still sending.
        let batch = Arc::new(Batch { pending: AtomicUsize::new(records.len() + 1), failed: Mutex::new(None), done: tokio::sync::Notify::new() });
        let mut sent = 0usize;
        let mut error = None;
        'records: for r in records {
            let mut rec = BaseRecord::with_opaque_to(r.topic, batch.clone()).key(r.key).payload(r.payload);
            loop {
                match self.producer.send(rec) {
                    Ok(()) => {
                        sent += 1;
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: let deliveries drain it.
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => {
                        error = Some(map_err(&e, &format!("publish to {}", r.topic)));
                        break 'records;
                    }
                }
            }
        }
        batch.settle(records.len() - sent + 1);
        if batch.pending.load(Ordering::Acquire) > 0 {
            batch.done.notified().await;
        }
        if let Some(e) = error {
            return Err(e);
        }
        let failed = batch.failed.lock().unwrap().take();
        match failed {
            None => Ok(()),
            Some((e, topic)) => Err(match code_of(&e) {
                Some(RDKafkaErrorCode::UnknownTopicOrPartition) | Some(RDKafkaErrorCode::UnknownTopic) => BusError::UnknownTopic(topic),
                _ => map_err(&e, &format!("delivery to {topic} via {}", self.servers)),
            }),
        }
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        if topics.is_empty() {
            return Err(BusError::Other("subscribe needs at least one topic".into()));
        }
        let ctx = GroupContext { events: Mutex::new(Vec::new()) };
        let consumer: BaseConsumer<GroupContext> = self
            .consumer_config(group)
            .create_with_context(ctx)
            .map_err(|e| BusError::Other(format!("invalid Kafka consumer settings (check [kafka.properties]): {e}")))?;
        let consumer = Arc::new(consumer);
        // Fail early and clearly on a missing topic (librdkafka would just never assign it).
        let c = consumer.clone();
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            for t in &names {
                Self::partitions_of(c.client(), t)?;
            }
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            c.subscribe(&refs).map_err(|e| map_err(&e, "subscribe"))
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))??;
        Ok(Box::new(KafkaConsumer { consumer: Some(consumer), inflight: None, stash: Default::default() }))
    }

    async fn lag(&self, group: &str, topics: &[&str]) -> Result<Vec<(TopicPartition, i64)>, BusError> {
        let client = {
            let mut clients = self.lag_clients.lock().unwrap();
            match clients.get(group) {
                Some(c) => c.clone(),
                None => {
                    let c: BaseConsumer = self
                        .consumer_config(group)
                        .create()
                        .map_err(|e| BusError::Other(format!("invalid Kafka consumer settings (check [kafka.properties]): {e}")))?;
                    clients.entry(group.to_string()).or_insert(Arc::new(c)).clone()
                }
            }
        };
        let names: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let reset = self.reset;
        tokio::task::spawn_blocking(move || {
            let mut tpl = TopicPartitionList::new();
            for t in &names {
                for p in 0..Self::partitions_of(client.client(), t)? {
                    tpl.add_partition(t, p);
                }
            }
            let committed = client.committed_offsets(tpl, CALL_TIMEOUT).map_err(|e| map_err(&e, "committed offsets"))?;
            let mut out = Vec::new();
            for e in committed.elements() {
                let (low, high) = client.fetch_watermarks(e.topic(), e.partition(), CALL_TIMEOUT).map_err(|err| map_err(&err, "watermarks"))?;
                let lag = match e.offset() {
                    Offset::Offset(c) => (high - c).max(0),
                    _ if reset == OffsetReset::Earliest => high - low,
                    _ => 0,
                };
                out.push((TopicPartition { topic: e.topic().to_string(), partition: e.partition() }, lag));
            }
            Ok(out)
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))?
    }

    fn describe(&self) -> String {
        format!("kafka://{}", self.servers)
    }
}

struct GroupContext {
    events: Mutex<Vec<Rebalance>>,
}

fn to_list(tpl: &TopicPartitionList) -> Vec<TopicPartition> {
    tpl.elements().iter().map(|e| TopicPartition { topic: e.topic().to_string(), partition: e.partition() }).collect()
}

impl ClientContext for GroupContext {}
impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        if let rdkafka::consumer::Rebalance::Revoke(tpl) = rebalance {
            self.events.lock().unwrap().push(Rebalance::Revoked(to_list(tpl)));
        }
    }
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        match rebalance {
            rdkafka::consumer::Rebalance::Assign(tpl) => self.events.lock().unwrap().push(Rebalance::Assigned(to_list(tpl))),
            rdkafka::consumer::Rebalance::Error(e) => tracing::warn!("consumer group rebalance error: {e}"),
            _ => {}
        }
    }
}

/// Up to `max` messages: block (up to `timeout`) for the first, then take what is already fetched.
fn poll_many(c: &BaseConsumer<GroupContext>, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::with_capacity(max.min(16_384));
    // Messages of a topic share one name instead of one allocation each.
    let mut names: Vec<Arc<str>> = Vec::new();
    loop {
        // Block for the first message only; then take what is already fetched.
        let wait = if out.is_empty() { deadline.saturating_duration_since(Instant::now()) } else { Duration::ZERO };
        match c.poll(wait) {
            Some(Ok(m)) => {
                let topic = match names.iter().find(|n| ***n == *m.topic()) {
                    Some(n) => n.clone(),
                    None => {
                        names.push(Arc::from(m.topic()));
                        names[names.len() - 1].clone()
                    }
                };
                out.push(Message {
                    topic,
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(Bytes::copy_from_slice),
                    payload: m.payload().map(Bytes::copy_from_slice).unwrap_or_default(),
                    timestamp_ms: m.timestamp().to_millis().unwrap_or(0),
                });
                if out.len() >= max {
                    break;
                }
            }
            Some(Err(e)) => {
                if out.is_empty() {
                    return Err(map_err(&e, "poll"));
                }
                tracing::warn!("kafka poll: {e}");
                break;
            }
            // A rebalance or commit event was served: keep waiting if time is left.
            None if out.is_empty() && Instant::now() < deadline => {}
            None => break,
        }
    }
    Ok(out)
}

pub(crate) struct KafkaConsumer {
    /// `Option` only so `Drop` can hand it to a blocking thread (closing leaves the group, which
    /// waits for the broker).
    consumer: Option<Arc<BaseConsumer<GroupContext>>>,
    /// A poll whose caller stopped waiting (its future was dropped): the next call collects it,
    /// so cancelling `poll_batch` loses no message and keeps per-partition order.
    inflight: Option<tokio::task::JoinHandle<Result<Vec<Message>, BusError>>>,
    /// Messages fetched but not yet returned (a poll returned more than the next caller's `max`).
    stash: std::collections::VecDeque<Message>,
}

impl KafkaConsumer {
    fn c(&self) -> &Arc<BaseConsumer<GroupContext>> {
        self.consumer.as_ref().expect("consumer present until drop")
    }
}

impl Drop for KafkaConsumer {
    fn drop(&mut self) {
        if let Some(c) = self.consumer.take() {
            match tokio::runtime::Handle::try_current() {
                Ok(h) => drop(h.spawn_blocking(move || drop(c))),
                Err(_) => drop(c),
            }
        }
    }
}

#[async_trait]
impl Consumer for KafkaConsumer {
    async fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError> {
        let max = max.max(1);
        if self.stash.is_empty() && self.inflight.is_none() {
            let c = self.c().clone();
            self.inflight = Some(tokio::task::spawn_blocking(move || poll_many(&c, max, timeout)));
        }
        if let Some(handle) = self.inflight.as_mut() {
            let result = handle.await;
            self.inflight = None;
            self.stash.extend(result.map_err(|e| BusError::Other(e.to_string()))??);
        }
        let n = max.min(self.stash.len());
        Ok(self.stash.drain(..n).collect())
    }

    fn take_rebalances(&mut self) -> Vec<Rebalance> {
        std::mem::take(&mut *self.c().context().events.lock().unwrap())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.c().assignment().map(|t| to_list(&t)).unwrap_or_default()
    }

    /// Offsets of partitions no longer assigned (revoked by a rebalance) are dropped: their new
    /// owner's progress must not be overwritten by a stale member.
    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BusError> {
        let owned = self.assignment();
        let mut tpl = TopicPartitionList::new();
        for (tp, off) in offsets {
            if owned.contains(tp) {
                tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(*off)).map_err(|e| map_err(&e, "commit"))?;
            } else {
                tracing::debug!(topic = %tp.topic, partition = tp.partition, "not committing a partition this member no longer owns");
            }
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        let c = self.c().clone();
        tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync).map_err(|e| map_err(&e, "commit")))
            .await
            .map_err(|e| BusError::Other(e.to_string()))?
    }

    async fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BusError> {
        // Fetched-but-unreturned messages of this partition are from before the seek.
        self.stash.retain(|m| m.partition != tp.partition || *m.topic != *tp.topic);
        let c = self.c().clone();
        let tp = tp.clone();
        tokio::task::spawn_blocking(move || {
            // Right after an assignment librdkafka may not fetch the partition yet, and a seek
            // then fails with "erroneous state" (`__STATE`); it succeeds once the fetcher is up.
            let mut attempts = 0;
            loop {
                match c.seek(&tp.topic, tp.partition, Offset::Offset(offset), CALL_TIMEOUT) {
                    Err(e) if code_of(&e) == Some(RDKafkaErrorCode::State) && attempts < SEEK_STATE_RETRIES => {
                        attempts += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    r => return r.map_err(|e| map_err(&e, &format!("seek {}/{} to {offset}", tp.topic, tp.partition))),
                }
            }
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))?
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn properties_go_only_to_the_clients_that_understand_them() {
        assert_eq!(property_scope("session.timeout.ms"), Scope::Consumer);
        assert_eq!(property_scope("auto.offset.reset"), Scope::Consumer);
        assert_eq!(property_scope("linger.ms"), Scope::Producer);
        assert_eq!(property_scope("acks"), Scope::Producer);
        for common in ["security.protocol", "sasl.mechanisms", "ssl.ca.location", "socket.timeout.ms", "debug", "client.id"] {
            assert_eq!(property_scope(common), Scope::Both, "{common}");
        }
    }

    use super::{parse_servers, property_scope, Scope};

    #[test]
    fn servers_parse() {
        assert_eq!(parse_servers("a:9092,b:9093").unwrap(), "a:9092,b:9093");
        assert_eq!(parse_servers("127.0.0.1:9092/").unwrap(), "127.0.0.1:9092");
        assert!(parse_servers("kafka").unwrap_err().contains("no port"));
        assert!(parse_servers("a:x").is_err());
        assert!(parse_servers("").is_err());
    }
}
