//! The event bus: a durable, partitioned log with consumer groups.
//!
//! Two implementations behind one trait, chosen by URL:
//! - `file://DIR`: embedded durable append-only log (the default);
//! - `kafka://host:port[,host:port]`: Apache Kafka (or any Kafka-protocol broker) through librdkafka.
//!
//! Messages are keyed by `store_id`, so one store's events stay ordered in one partition and
//! its state lives in one processor.

use async_trait::async_trait;
use std::time::Duration;

/// A topic and partition.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

/// A message read from the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
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
    async fn lag(&self, group: &str, topics: &[&str]) -> Result<Vec<(TopicPartition, i64)>, BusError>;
}

#[async_trait]
pub trait Consumer: Send {
    /// Up to `max` messages, waiting at most `timeout` for the first one. Empty on timeout.
    async fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError>;

    /// Rebalances since the last call (Kafka). The embedded log assigns every partition at subscribe.
    fn take_rebalances(&mut self) -> Vec<Rebalance>;

    /// Partitions currently owned.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// Commit, for each partition, the offset of the *next* message to read.
    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BusError>;

    /// Restart reading a partition at `offset` (after restoring a checkpoint).
    async fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BusError>;
}
