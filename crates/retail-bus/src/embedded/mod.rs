//! The embedded bus (`file://DIR`): a durable append-only log on local disk with Kafka's
//! semantics as far as the stream processor relies on them — topics of N partitions, key →
//! partition by Kafka's murmur2, per-partition offsets, committed consumer-group offsets,
//! retention by whole segments.
//!
//! Layout under DIR:
//!
//! ```text
//! bus.json                                format marker
//! topics/<topic>/topic.json               {"partitions": N}
//! topics/<topic>/<p>/<base>.log|.idx      segments (see segment.rs)
//! topics/<topic>/<p>/.writer.lock         flock held by the one process appending to <p>
//! groups/<group>/offsets.json             committed offsets, replaced atomically
//! groups/<group>/.member.lock             flock held by the group's one member
//! ```
//!
//! Concurrency: within a process every `open` of the same DIR shares one instance. Across
//! processes, each partition has one writing process at a time (e.g. `retail simulate` writes the
//! event topics while `retail stream` writes alerts and dead letters) and any number of readers,
//! which tail the files; a second writer gets a clear error instead of corrupting offsets.

mod consumer;
pub(crate) mod segment;

use crate::{BusError, BusOptions, Consumer, EmbeddedOptions, EventBus, OffsetReset, Record, TopicPartition};
use async_trait::async_trait;
use segment::ActiveSegment;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When the embedded log forces appended data to disk.
///
/// `publish` always hands the whole batch to the OS before returning (one `write` per partition),
/// so a process crash loses nothing; the policy decides what a *machine* crash may lose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// `fdatasync` each touched partition before `publish` returns: nothing acknowledged is lost,
    /// at the price of a disk flush per batch.
    Always,
    /// A background thread syncs written partitions this often (the default, 1 s — like Redis'
    /// `appendfsync everysec`; Kafka itself never fsyncs and relies on replicas).
    Interval(Duration),
    /// Leave it to the OS.
    Never,
}

impl Default for FsyncPolicy {
    fn default() -> Self {
        FsyncPolicy::Interval(Duration::from_secs(1))
    }
}

const FORMAT: &str = "{\"format\":\"retail-bus-log\",\"version\":1}\n";

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn io_err(what: impl std::fmt::Display, path: &Path, e: std::io::Error) -> BusError {
    BusError::Io(std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())))
}

pub(crate) struct Partition {
    id: i32,
    dir: PathBuf,
    /// `None` until this process first appends here (then it holds the partition's writer lock).
    writer: Mutex<Option<Writer>>,
}

pub(crate) struct Topic {
    name: Arc<str>,
    partitions: Vec<Partition>,
}

struct Writer {
    _lock: File,
    seg: ActiveSegment,
    /// Closed segments, oldest first: (base offset, newest timestamp).
    sealed: VecDeque<(i64, i64)>,
    next_offset: i64,
    frames: Vec<u8>,
    index: Vec<u8>,
    dirty: bool,
}

pub(crate) struct Inner {
    root: PathBuf,
    options: EmbeddedOptions,
    reset: OffsetReset,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Woken on every publish, so consumers in this process do not wait out their poll interval.
    notify: tokio::sync::Notify,
    groups_in_use: Mutex<HashSet<String>>,
}

/// Every `open` of one directory in a process shares one instance: partition writer locks and
/// group member locks are per process, and sharing makes in-process consumers wake on publish.
static REGISTRY: Mutex<Vec<(PathBuf, Weak<Inner>)>> = Mutex::new(Vec::new());

pub(crate) struct EmbeddedBus {
    inner: Arc<Inner>,
}

impl EmbeddedBus {
    pub(crate) fn open(dir: &Path, options: &BusOptions) -> Result<EmbeddedBus, BusError> {
        std::fs::create_dir_all(dir.join("topics")).map_err(|e| io_err("cannot create the bus directory", dir, e))?;
        std::fs::create_dir_all(dir.join("groups")).map_err(|e| io_err("cannot create the bus directory", dir, e))?;
        let root = dir.canonicalize().map_err(|e| io_err("cannot resolve", dir, e))?;
        let mut registry = REGISTRY.lock().unwrap();
        registry.retain(|(_, w)| w.strong_count() > 0);
        if let Some(inner) = registry.iter().find(|(p, _)| *p == root).and_then(|(_, w)| w.upgrade()) {
            return Ok(EmbeddedBus { inner });
        }
        let inner = Self::open_unshared(&root, options)?.inner;
        registry.push((root, Arc::downgrade(&inner)));
        Ok(EmbeddedBus { inner })
    }

    /// A separate instance even if this process already has one for `dir` — behaves like another
    /// process (own locks, no shared wake-ups). For tests of cross-process behaviour.
    #[doc(hidden)]
    pub fn open_unshared(dir: &Path, options: &BusOptions) -> Result<EmbeddedBus, BusError> {
        std::fs::create_dir_all(dir.join("topics")).map_err(|e| io_err("cannot create the bus directory", dir, e))?;
        std::fs::create_dir_all(dir.join("groups")).map_err(|e| io_err("cannot create the bus directory", dir, e))?;
        let marker = dir.join("bus.json");
        match std::fs::read_to_string(&marker) {
            Ok(text) if text == FORMAT => {}
            Ok(other) => {
                return Err(BusError::Other(format!(
                    "{} is not a retail-bus log of this version (found {}); point the bus elsewhere",
                    dir.display(),
                    other.trim()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::write(&marker, FORMAT).map_err(|e| io_err("cannot write", &marker, e))?,
            Err(e) => return Err(io_err("cannot read", &marker, e)),
        }
        let inner = Arc::new(Inner {
            root: dir.to_path_buf(),
            options: options.embedded.clone(),
            reset: options.auto_offset_reset,
            topics: RwLock::new(HashMap::new()),
            notify: tokio::sync::Notify::new(),
            groups_in_use: Mutex::new(HashSet::new()),
        });
        if let FsyncPolicy::Interval(every) = inner.options.fsync {
            let weak = Arc::downgrade(&inner);
            std::thread::Builder::new().name("retail-bus-fsync".into()).spawn(move || flusher(weak, every)).map_err(BusError::Io)?;
        }
        Ok(EmbeddedBus { inner })
    }
}

/// Sync partitions written since the last round; exits when the bus is dropped.
fn flusher(weak: Weak<Inner>, every: Duration) {
    loop {
        std::thread::sleep(every);
        let Some(inner) = weak.upgrade() else { return };
        inner.sync_dirty();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.options.fsync != FsyncPolicy::Never {
            self.sync_dirty();
        }
    }
}

impl Inner {
    fn sync_dirty(&self) {
        let topics: Vec<Arc<Topic>> = self.topics.read().unwrap().values().cloned().collect();
        for t in topics {
            for p in &t.partitions {
                // Take a duplicate handle under the lock, sync outside it so publishers don't wait.
                let file = {
                    let mut w = p.writer.lock().unwrap();
                    match w.as_mut() {
                        Some(w) if w.dirty => {
                            w.dirty = false;
                            w.seg.log.try_clone().ok()
                        }
                        _ => None,
                    }
                };
                if let Some(f) = file {
                    if let Err(e) = f.sync_data() {
                        tracing::error!(topic = %t.name, partition = p.id, "fsync failed: {e}");
                    }
                }
            }
        }
    }

    fn topic_dir(&self, name: &str) -> PathBuf {
        self.root.join("topics").join(name)
    }

    /// The topic, loading it from disk if another process (or an earlier run) created it.
    pub(crate) fn topic(&self, name: &str) -> Result<Arc<Topic>, BusError> {
        if let Some(t) = self.topics.read().unwrap().get(name) {
            return Ok(t.clone());
        }
        let meta = self.topic_dir(name).join("topic.json");
        let text = match std::fs::read_to_string(&meta) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(BusError::UnknownTopic(name.to_string())),
            Err(e) => return Err(io_err("cannot read", &meta, e)),
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| BusError::Other(format!("{}: {e}", meta.display())))?;
        let n =
            v["partitions"].as_i64().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| BusError::Other(format!("{}: bad `partitions`", meta.display())))?;
        let partitions = (0..n as i32).map(|id| Partition { id, dir: self.topic_dir(name).join(id.to_string()), writer: Mutex::new(None) }).collect();
        let topic = Arc::new(Topic { name: name.into(), partitions });
        Ok(self.topics.write().unwrap().entry(name.to_string()).or_insert(topic).clone())
    }

    fn create_topic(&self, name: &str, partitions: i32) -> Result<(), BusError> {
        let legal = !name.is_empty()
            && name.len() <= 249
            && name != "."
            && name != ".."
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if !legal {
            return Err(BusError::Other(format!("topic name `{name}`: use 1–249 of [A-Za-z0-9._-] (as Kafka)")));
        }
        if partitions < 1 {
            return Err(BusError::Other(format!("topic `{name}`: partitions must be ≥ 1, got {partitions}")));
        }
        match self.topic(name) {
            Ok(t) => {
                if t.partitions.len() != partitions as usize {
                    tracing::warn!(
                        topic = name,
                        existing = t.partitions.len(),
                        requested = partitions,
                        "topic exists with another partition count; keeping it"
                    );
                }
                return Ok(());
            }
            Err(BusError::UnknownTopic(_)) => {}
            Err(e) => return Err(e),
        }
        // Build the topic in a private directory and rename it into place, so a concurrent
        // process sees either no topic or a complete one.
        let tmp = self.root.join("topics").join(format!(".{name}.tmp-{}-{}", std::process::id(), now_ms()));
        let build = || -> std::io::Result<()> {
            for p in 0..partitions {
                std::fs::create_dir_all(tmp.join(p.to_string()))?;
            }
            std::fs::write(tmp.join("topic.json"), format!("{{\"partitions\":{partitions}}}\n"))?;
            std::fs::rename(&tmp, self.topic_dir(name))
        };
        if let Err(e) = build() {
            let _ = std::fs::remove_dir_all(&tmp);
            if !self.topic_dir(name).join("topic.json").exists() {
                return Err(io_err("cannot create topic directory", &self.topic_dir(name), e));
            }
        }
        self.topic(name).map(|_| ())
    }

    fn writer_for(&self, topic: &Topic, part: &Partition) -> Result<Writer, BusError> {
        let lock_path = part.dir.join(".writer.lock");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| io_err("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(BusError::Other(format!(
                    "partition {}/{} in {} is being written by another process; the embedded log allows one writing process per partition (stop the other, or use kafka:// to share)",
                    topic.name,
                    part.id,
                    self.root.display()
                )))
            }
            Err(TryLockError::Error(e)) => return Err(io_err("cannot lock", &lock_path, e)),
        }
        let dir = &part.dir;
        let bases = segment::list_segments(dir).map_err(|e| io_err("cannot list", dir, e))?;
        let (seg, next_offset, sealed) = match bases.split_last() {
            None => (ActiveSegment::create(dir, 0).map_err(|e| io_err("cannot create segment in", dir, e))?, 0, VecDeque::new()),
            Some((&last, older)) => {
                let mut sealed = VecDeque::new();
                for &b in older {
                    sealed.push_back((b, segment::last_record_ts(dir, b).map_err(|e| io_err("cannot read segment in", dir, e))?));
                }
                let (seg, next) = ActiveSegment::recover(dir, last).map_err(|e| io_err("cannot recover segment in", dir, e))?;
                (seg, next, sealed)
            }
        };
        let mut w = Writer { _lock: lock, seg, sealed, next_offset, frames: Vec::new(), index: Vec::new(), dirty: false };
        self.apply_retention(dir, &mut w);
        Ok(w)
    }

    /// Delete closed segments whose newest record is older than the retention.
    fn apply_retention(&self, dir: &Path, w: &mut Writer) {
        let horizon = now_ms() - self.options.retention.as_millis() as i64;
        while let Some(&(base, newest)) = w.sealed.front() {
            if newest >= horizon {
                break;
            }
            // The index first: a reader never finds a log without its data.
            let _ = std::fs::remove_file(segment::idx_path(dir, base));
            if let Err(e) = std::fs::remove_file(segment::log_path(dir, base)) {
                tracing::warn!(dir = %dir.display(), base, "retention: cannot delete segment: {e}");
                break;
            }
            tracing::debug!(dir = %dir.display(), base, "retention: deleted segment");
            w.sealed.pop_front();
        }
    }

    /// Append records (all of this one partition, in order) with one write.
    fn append(&self, topic: &Topic, part: &Partition, records: &[Record<'_>], which: &[u32], now: i64) -> Result<(), BusError> {
        let mut guard = part.writer.lock().unwrap();
        if guard.is_none() {
            *guard = Some(self.writer_for(topic, part)?);
        }
        let w = guard.as_mut().unwrap();
        if w.seg.size >= self.options.segment_bytes {
            if let Err(e) = self.roll(part, w) {
                *guard = None;
                return Err(e);
            }
        }
        w.frames.clear();
        w.index.clear();
        let mut next = w.next_offset;
        let mut last_indexed = w.seg.last_indexed;
        for &i in which {
            let r = &records[i as usize];
            if r.key.len() + r.payload.len() > segment::MAX_RECORD {
                return Err(BusError::Other(format!(
                    "record of {} bytes on {} exceeds the {} byte limit",
                    r.key.len() + r.payload.len(),
                    topic.name,
                    segment::MAX_RECORD
                )));
            }
            let at = w.seg.size + w.frames.len() as u64;
            if at >= last_indexed + segment::INDEX_INTERVAL {
                segment::encode_index_entry(&mut w.index, next, at);
                last_indexed = at;
            }
            segment::encode(&mut w.frames, next, now, r.key, r.payload);
            next += 1;
        }
        let written = w.seg.append(&w.frames, &w.index).and_then(|()| match self.options.fsync {
            FsyncPolicy::Always => w.seg.log.sync_data(),
            _ => Ok(()),
        });
        if let Err(e) = written {
            // A partial write may be on disk: drop the writer so the next append recovers
            // (truncates) the tail before writing again.
            *guard = None;
            return Err(io_err("cannot append to", &part.dir, e));
        }
        w.next_offset = next;
        w.seg.last_indexed = last_indexed;
        w.seg.max_timestamp_ms = w.seg.max_timestamp_ms.max(now);
        w.dirty = true;
        Ok(())
    }

    fn roll(&self, part: &Partition, w: &mut Writer) -> Result<(), BusError> {
        if self.options.fsync != FsyncPolicy::Never {
            w.seg.log.sync_data().map_err(|e| io_err("cannot sync segment in", &part.dir, e))?;
        }
        let new = ActiveSegment::create(&part.dir, w.next_offset).map_err(|e| io_err("cannot create segment in", &part.dir, e))?;
        if self.options.fsync == FsyncPolicy::Always {
            File::open(&part.dir).and_then(|d| d.sync_all()).map_err(|e| io_err("cannot sync directory", &part.dir, e))?;
        }
        let old = std::mem::replace(&mut w.seg, new);
        w.sealed.push_back((old.base, old.max_timestamp_ms));
        self.apply_retention(&part.dir, w);
        Ok(())
    }

    /// (log start, log end) of a partition.
    pub(crate) fn bounds(&self, part: &Partition) -> Result<(i64, i64), BusError> {
        let start = segment::list_segments(&part.dir).map_err(|e| io_err("cannot list", &part.dir, e))?.first().copied().unwrap_or(0);
        let end = match part.writer.lock().unwrap().as_ref() {
            Some(w) => w.next_offset,
            None => segment::end_offset_on_disk(&part.dir).map_err(|e| io_err("cannot read", &part.dir, e))?,
        };
        Ok((start, end.max(start)))
    }

    pub(crate) fn group_dir(&self, group: &str) -> Result<PathBuf, BusError> {
        if group.is_empty() {
            return Err(BusError::Other("consumer group name is empty".into()));
        }
        // Group names are free text in Kafka; keep the directory name portable.
        let mut name = String::with_capacity(group.len());
        for b in group.bytes() {
            if b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-' {
                name.push(b as char);
            } else {
                name.push_str(&format!("%{b:02X}"));
            }
        }
        if name == "." || name == ".." {
            name = name.replace('.', "%2E");
        }
        Ok(self.root.join("groups").join(name))
    }
}

#[async_trait]
impl EventBus for EmbeddedBus {
    async fn ensure_topics(&self) -> Result<(), BusError> {
        self.create_topics(&retail_core::topics::ALL).await
    }

    async fn create_topics(&self, topics: &[(&str, i32)]) -> Result<(), BusError> {
        for &(name, partitions) in topics {
            self.inner.create_topic(name, partitions)?;
        }
        Ok(())
    }

    async fn publish(&self, records: &[Record<'_>]) -> Result<(), BusError> {
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        // Route: records of one partition keep their relative order. Slots are per topic seen
        // in this call; `groups[base[slot] + partition]` lists record indices.
        let mut slots: Vec<Arc<Topic>> = Vec::new();
        let mut base: Vec<usize> = Vec::new();
        let mut groups: Vec<Vec<u32>> = Vec::new();
        let mut last: Option<usize> = None;
        for (i, r) in records.iter().enumerate() {
            let slot = match last {
                Some(s) if *slots[s].name == *r.topic => s,
                _ => match slots.iter().position(|t| *t.name == *r.topic) {
                    Some(s) => s,
                    None => {
                        let t = self.inner.topic(r.topic)?;
                        base.push(groups.len());
                        groups.resize_with(groups.len() + t.partitions.len(), Vec::new);
                        slots.push(t);
                        slots.len() - 1
                    }
                },
            };
            last = Some(slot);
            let p = crate::partition_for_key(r.key, slots[slot].partitions.len() as i32);
            groups[base[slot] + p as usize].push(i as u32);
        }
        let mut result = Ok(());
        for (s, topic) in slots.iter().enumerate() {
            for part in &topic.partitions {
                let which = &groups[base[s] + part.id as usize];
                if which.is_empty() {
                    continue;
                }
                if let Err(e) = self.inner.append(topic, part, records, which, now) {
                    result = Err(e);
                    break;
                }
            }
        }
        self.inner.notify.notify_waiters();
        result
    }

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Box<dyn Consumer>, BusError> {
        Ok(Box::new(consumer::EmbeddedConsumer::new(self.inner.clone(), group, topics)?))
    }

    async fn lag(&self, group: &str, topics: &[&str]) -> Result<Vec<(TopicPartition, i64)>, BusError> {
        let committed = consumer::read_committed(&self.inner.group_dir(group)?)?;
        let mut out = Vec::new();
        for &name in topics {
            let topic = self.inner.topic(name)?;
            for part in &topic.partitions {
                let (start, end) = self.inner.bounds(part)?;
                let lag = match committed.get(name).and_then(|m| m.get(&part.id)) {
                    Some(&c) => (end - c).max(0),
                    None if self.inner.reset == OffsetReset::Earliest => end - start,
                    None => 0,
                };
                out.push((TopicPartition { topic: name.to_string(), partition: part.id }, lag));
            }
        }
        Ok(out)
    }

    fn describe(&self) -> String {
        format!("file://{}", self.inner.root.display())
    }
}
