//! The event bus: a durable, partitioned log with consumer groups.
//!
//! Two implementations behind one trait, chosen by URL:
//! - `file://DIR`: embedded durable append-only log (the default);
//! - `kafka://host:port[,host:port]`: Apache Kafka (or any Kafka-protocol broker) through librdkafka.
//!
//! Messages are keyed by `store_id`, so one store's events stay ordered in one partition and
//! its state lives in one processor.

use async_trait::async_trait;
pub use bytes::Bytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod embedded;
#[cfg(feature = "kafka")]
mod kafka;
mod partitioner;

pub use embedded::FsyncPolicy;
pub use partitioner::{murmur2, partition_for_key};

/// A topic and partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// A message read from the log. Topic, key and payload are shared, not copied, buffers: a
/// poll of tens of thousands of records then costs no allocation per record (the embedded log
/// hands out slices of the chunk it read; all messages of a topic share one name).
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub topic: Arc<str>,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Bytes>,
    pub payload: Bytes,
    /// Broker/log append time (or producer time), milliseconds since the epoch.
    pub timestamp_ms: i64,
}

/// A message to publish. The partition is chosen from the key (same key → same partition).
#[derive(Clone, Debug, PartialEq)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: &'a [u8],
    pub payload: &'a [u8],
}

/// A change of the partitions this consumer owns (Kafka group rebalance).
#[derive(Clone, Debug, PartialEq)]
pub enum Rebalance {
    Assigned(Vec<TopicPartition>),
    Revoked(Vec<TopicPartition>),
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("bus URL `{url}` not understood: {reason}")]
    BadUrl { url: String, reason: String },
    /// The broker or disk could not be reached; trying again later may succeed.
    #[error("bus unavailable (retryable): {0}")]
    Unavailable(String),
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("bus I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("bus error: {0}")]
    Other(String),
}

impl BusError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, BusError::Unavailable(_))
    }
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// Create the seed's topics (see `retail_core::topics::ALL`) with their partition counts and
    /// 7-day retention, where missing. Idempotent.
    async fn ensure_topics(&self) -> Result<(), BusError>;

    /// Publish records; returns once they are durable (Kafka: acks=all; file: written and flushed).
    async fn publish(&self, records: &[Record<'_>]) -> Result<(), BusError>;

    /// Join consumer group `group` reading `topics`. A group with no committed offset starts from
    /// the earliest retained message (or the latest, per configuration).
    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError>;

    /// Messages not yet consumed by `group` (end offset − committed offset), per topic-partition.
    /// A partition without a committed offset counts from the earliest retained message (reset
    /// `earliest`) or counts 0 (reset `latest`), i.e. what the group would still read.
    async fn lag(&self, group: &str, topics: &[&str]) -> Result<Vec<(TopicPartition, i64)>, BusError>;

    /// Create the given topics (name, partitions) with 7-day retention where missing. Idempotent;
    /// an existing topic keeps its partition count. `ensure_topics` is this with
    /// `retail_core::topics::ALL`. (Default for other implementations: unsupported.)
    async fn create_topics(&self, topics: &[(&str, i32)]) -> Result<(), BusError> {
        let _ = topics;
        Err(BusError::Other("create_topics is not supported by this bus".into()))
    }

    /// Where this bus points, for logs (`file:///…` or `kafka://…`, never credentials).
    fn describe(&self) -> String {
        "event bus".into()
    }
}

/// Where a consumer group without a committed offset starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OffsetReset {
    /// The earliest retained message: nothing produced before the first start is lost.
    #[default]
    Earliest,
    /// Only messages published after the group first joins.
    Latest,
}

impl std::str::FromStr for OffsetReset {
    type Err = BusError;
    fn from_str(s: &str) -> Result<Self, BusError> {
        match s {
            "earliest" => Ok(OffsetReset::Earliest),
            "latest" => Ok(OffsetReset::Latest),
            other => Err(BusError::Other(format!("auto_offset_reset `{other}`: expected `earliest` or `latest`"))),
        }
    }
}

impl OffsetReset {
    pub fn as_str(self) -> &'static str {
        match self {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }
}

/// Settings of both implementations; `open` uses the half its URL selects.
#[derive(Clone, Debug, Default)]
pub struct BusOptions {
    /// Where a group without a committed offset starts (both implementations). Config:
    /// `kafka.auto_offset_reset`.
    pub auto_offset_reset: OffsetReset,
    pub kafka: KafkaOptions,
    pub embedded: EmbeddedOptions,
}

#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// Passed verbatim to librdkafka after our defaults, so they can override them (TLS/SASL:
    /// `security.protocol`, `sasl.mechanisms`, `sasl.username`, `ssl.ca.location`, …).
    /// Config: `[kafka.properties]`.
    pub properties: BTreeMap<String, String>,
    /// How long `open` waits for the cluster to answer before `Unavailable`.
    pub connect_timeout: Duration,
    /// Replication factor of topics created by `ensure_topics` (the seed: 1, development).
    pub replication_factor: i32,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions { properties: BTreeMap::new(), connect_timeout: Duration::from_secs(5), replication_factor: 1 }
    }
}

#[derive(Clone, Debug)]
pub struct EmbeddedOptions {
    /// When appended data is forced to disk (see [`FsyncPolicy`]).
    pub fsync: FsyncPolicy,
    /// A partition's active segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Whole segments whose newest message is older than this are deleted (7 days, as Kafka).
    pub retention: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions { fsync: FsyncPolicy::default(), segment_bytes: 64 << 20, retention: Duration::from_millis(retail_core::topics::RETENTION_MS as u64) }
    }
}

/// A second, independent embedded instance on `dir` in this process — it behaves like another
/// process (own file locks, no shared wake-ups). Only for tests of cross-process behaviour.
#[doc(hidden)]
pub fn open_unshared_for_tests(dir: &std::path::Path, options: &BusOptions) -> Result<Arc<dyn EventBus>, BusError> {
    Ok(Arc::new(embedded::EmbeddedBus::open_unshared(dir, options)?))
}

/// Open the bus a URL names: `file://DIR` (embedded log in DIR, created if missing) or
/// `kafka://host:port[,host:port]` (checked reachable within `kafka.connect_timeout`, else
/// `BusError::Unavailable` naming what was tried).
pub async fn open(url: &str, options: &BusOptions) -> Result<Arc<dyn EventBus>, BusError> {
    let bad = |reason: &str| BusError::BadUrl { url: url.to_string(), reason: reason.to_string() };
    let (scheme, rest) =
        url.split_once("://").ok_or_else(|| bad("expected file://DIR or kafka://host:port[,host:port] (RETAIL_BUS or `bus` in the config)"))?;
    match scheme {
        "file" => {
            if rest.is_empty() {
                return Err(bad("file:// needs a directory, e.g. file:///var/lib/retail/bus or file://./retail-data/bus"));
            }
            Ok(Arc::new(embedded::EmbeddedBus::open(std::path::Path::new(rest), options)?))
        }
        #[cfg(feature = "kafka")]
        "kafka" => {
            let servers = kafka::parse_servers(rest).map_err(|r| bad(&r))?;
            Ok(Arc::new(kafka::KafkaBus::connect(url, &servers, options).await?))
        }
        #[cfg(not(feature = "kafka"))]
        "kafka" => Err(bad("this build has no Kafka support (retail-bus feature `kafka` is off)")),
        _ => Err(bad("unknown scheme; expected file://DIR or kafka://host:port[,host:port]")),
    }
}

#[async_trait]
pub trait Consumer: Send + Sync {
    /// Up to `max` messages, waiting at most `timeout` for the first one. Empty on timeout.
    /// Cancel-safe (both implementations): if the future is dropped, no message is lost.
    async fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError>;

    /// Rebalances since the last call (Kafka). The embedded log assigns every partition at subscribe.
    fn take_rebalances(&mut self) -> Vec<Rebalance>;

    /// Partitions currently owned.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Commit, for each partition, the offset of the *next* message to read.
    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BusError>;

    /// Restart reading a partition at `offset` (after restoring a checkpoint).
    async fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BusError>;

    /// Can a poll change the assignment (a group rebalance)? The embedded log's assignment is
    /// fixed at subscribe, so a caller may poll while writes of earlier records are in flight.
    fn may_rebalance(&self) -> bool {
        true
    }
}
