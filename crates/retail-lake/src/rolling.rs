//! A buffering raw writer: real-time ingestion hands it small batches; it writes a file only
//! when enough events or enough time has accumulated, so the lake does not fill with tiny files.
//!
//! Use: `append` what was consumed, `flush_if_due` on a timer; after a flush returns, the
//! consumer may commit its offsets (events before the commit are durable in the lake). After a
//! crash the un-flushed events are re-consumed and re-buffered; if the replay cuts files at the
//! same events, the file names (derived from the content) are the same and are overwritten; if
//! not, readers and compaction drop the duplicate event ids.

use crate::layout::fnv1a;
use crate::{Lake, LakeError};
use retail_core::Event;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct RollPolicy {
    /// Write a file once this many events are buffered.
    pub max_events: usize,
    /// … or once the oldest buffered event has waited this long.
    pub max_age: Duration,
}

impl Default for RollPolicy {
    /// ~50k events is a 1–3 MB Parquet file; a minute bounds what a crash must replay.
    fn default() -> Self {
        RollPolicy { max_events: 50_000, max_age: Duration::from_secs(60) }
    }
}

pub struct RollingWriter {
    lake: Lake,
    policy: RollPolicy,
    /// Distinguishes writers that share a lake (e.g. the partition they consume).
    name: String,
    buf: Vec<Event>,
    oldest: Option<Instant>,
}

impl RollingWriter {
    pub fn new(lake: Lake, name: &str, policy: RollPolicy) -> Self {
        RollingWriter { lake, policy, name: name.to_string(), buf: Vec::new(), oldest: None }
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Buffer events; writes a file (and returns its batch id) when the size limit is reached.
    pub async fn append(&mut self, events: impl IntoIterator<Item = Event>) -> Result<Option<String>, LakeError> {
        let before = self.buf.len();
        self.buf.extend(events);
        if before == 0 && !self.buf.is_empty() {
            self.oldest = Some(Instant::now());
        }
        if self.buf.len() >= self.policy.max_events {
            return self.flush().await;
        }
        Ok(None)
    }

    /// Whether the age limit has passed (call `flush_if_due` from a timer).
    pub fn is_due(&self) -> bool {
        self.oldest.is_some_and(|t| t.elapsed() >= self.policy.max_age)
    }

    pub async fn flush_if_due(&mut self) -> Result<Option<String>, LakeError> {
        if self.is_due() {
            self.flush().await
        } else {
            Ok(None)
        }
    }

    /// Write everything buffered now. On error the buffer is kept, so the caller can retry.
    pub async fn flush(&mut self) -> Result<Option<String>, LakeError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let batch_id = content_batch_id(&self.name, &self.buf);
        self.lake.write_raw(&batch_id, &self.buf).await?;
        self.buf.clear();
        self.oldest = None;
        Ok(Some(batch_id))
    }
}

/// `<name>-<count>-<hash of the event ids in order>`: the same events give the same id.
pub fn content_batch_id(name: &str, events: &[Event]) -> String {
    let mut bytes = Vec::with_capacity(events.len() * 37);
    for e in events {
        bytes.extend_from_slice(e.event_id().as_bytes());
        bytes.push(0);
    }
    format!("{name}-{}-{:016x}", events.len(), fnv1a(&bytes))
}
