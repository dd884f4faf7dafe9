//! Consumer of the embedded log: the group's single member reads every partition of its topics
//! straight from the segment files (so it also follows a writer in another process), and commits
//! offsets to a small file replaced atomically.

use super::segment::{self, Decoded};
use super::{io_err, FsyncPolicy, Inner, Topic};
use crate::{BusError, Consumer, Message, OffsetReset, Rebalance, TopicPartition};
use async_trait::async_trait;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// topic → partition → offset of the next message to read.
pub(crate) type Committed = BTreeMap<String, BTreeMap<i32, i64>>;

const OFFSETS: &str = "offsets.json";
const READ_CHUNK: usize = 512 << 10;
/// How often an idle consumer looks at the files for data appended by another process
/// (appends by this process wake it at once).
const TAIL_INTERVAL: Duration = Duration::from_millis(20);

pub(crate) fn read_committed(group_dir: &Path) -> Result<Committed, BusError> {
    let path = group_dir.join(OFFSETS);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| BusError::Other(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Committed::new()),
        Err(e) => Err(io_err("cannot read", &path, e)),
    }
}

/// Replace the offsets file atomically: write a temporary file, sync it, rename it over.
fn write_committed(group_dir: &Path, committed: &Committed, fsync: FsyncPolicy) -> std::io::Result<()> {
    let tmp = group_dir.join("offsets.json.tmp");
    let bytes = serde_json::to_vec(committed).map_err(std::io::Error::other)?;
    {
        let mut f = File::create(&tmp)?;
        std::io::Write::write_all(&mut f, &bytes)?;
        if fsync != FsyncPolicy::Never {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, group_dir.join(OFFSETS))?;
    if fsync != FsyncPolicy::Never {
        File::open(group_dir)?.sync_all()?;
    }
    Ok(())
}

/// Holds the group: in this process (a set in the shared instance) and across processes (flock).
struct Membership {
    inner: Arc<Inner>,
    group: String,
    _lock: Option<File>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.inner.groups_in_use.lock().unwrap().remove(&self.group);
    }
}

struct OpenSegment {
    base: i64,
    file: File,
    /// File position of the end of the buffered bytes.
    pos: u64,
    /// Offset after the last record parsed in this segment: the base of the next segment.
    scanned: i64,
}

struct PartReader {
    tp: TopicPartition,
    /// The topic name every message of this reader shares.
    name: Arc<str>,
    topic: Arc<Topic>,
    index: usize,
    dir: PathBuf,
    /// Next offset to deliver.
    next: i64,
    seg: Option<OpenSegment>,
    /// Bytes read from the segment and not yet decoded start at `head`. Messages are slices
    /// of it (no copy); each fill reads into a fresh buffer, so the slices handed out stay valid.
    buf: Bytes,
    head: usize,
    warned: bool,
}

impl PartReader {
    /// Read from `offset` (clamped into the retained range).
    fn position(&mut self, inner: &Inner, offset: i64) -> Result<(), BusError> {
        self.seg = None;
        self.buf = Bytes::new();
        self.head = 0;
        let (start, end) = inner.bounds(&self.topic.partitions[self.index])?;
        let offset = if offset < start {
            tracing::warn!(topic = %self.tp.topic, partition = self.tp.partition, offset, start, "offset already deleted by retention; continuing at the log start");
            start
        } else if offset > end {
            tracing::warn!(topic = %self.tp.topic, partition = self.tp.partition, offset, end, "offset beyond the log end (lost unsynced tail?); continuing at the end");
            end
        } else {
            offset
        };
        self.next = offset;
        let bases = segment::list_segments(&self.dir).map_err(|e| io_err("cannot list", &self.dir, e))?;
        let Some(&base) = bases.iter().rev().find(|&&b| b <= offset).or(bases.first()) else { return Ok(()) };
        let index = segment::read_index(&segment::idx_path(&self.dir, base));
        let (scanned, pos) = segment::seek_entry(&index, offset).unwrap_or((base, 0));
        match File::open(segment::log_path(&self.dir, base)) {
            Ok(file) => self.seg = Some(OpenSegment { base, file, pos, scanned }),
            // Deleted by retention between listing and opening: the next poll lists again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("cannot open", &segment::log_path(&self.dir, base), e)),
        }
        Ok(())
    }

    fn fill(&mut self) -> Result<usize, BusError> {
        let seg = self.seg.as_mut().expect("open segment");
        // Nothing new (the common case of an idle tail): no buffer to allocate.
        let len = seg.file.metadata().map_err(|e| io_err("cannot stat", &self.dir, e))?.len();
        if len <= seg.pos {
            return Ok(0);
        }
        // The undecoded rest (a partial frame) moves to the front of the new buffer; a frame
        // longer than a chunk gets a buffer twice its size.
        let rest = &self.buf[self.head..];
        let size = READ_CHUNK.max(rest.len() * 2).min(rest.len() + (len - seg.pos) as usize);
        let mut next = Vec::with_capacity(size);
        next.extend_from_slice(rest);
        // `read_to_end` reads into the vector's spare capacity as it is: no zeroing pass first.
        let read = (&seg.file).seek(SeekFrom::Start(seg.pos)).and_then(|_| (&seg.file).take((size - rest.len()) as u64).read_to_end(&mut next));
        let n = read.map_err(|e| io_err("cannot read", &self.dir, e))?;
        seg.pos += n as u64;
        self.buf = Bytes::from(next);
        self.head = 0;
        Ok(n)
    }

    /// Append up to `max` messages to `out`; stops at the end of the data written so far.
    fn read_into(&mut self, inner: &Inner, max: usize, out: &mut Vec<Message>) -> Result<(), BusError> {
        let mut delivered = 0;
        let mut repositioned = false;
        loop {
            if self.seg.is_none() {
                if repositioned {
                    return Ok(());
                }
                repositioned = true;
                self.position(inner, self.next)?;
                if self.seg.is_none() {
                    return Ok(());
                }
            }
            while delivered < max {
                let seg = self.seg.as_mut().unwrap();
                match segment::decode(&self.buf[self.head..]) {
                    Decoded::Frame(f) => {
                        seg.scanned = f.offset + 1;
                        self.head += f.len;
                        if f.offset >= self.next {
                            out.push(Message {
                                topic: self.name.clone(),
                                partition: self.tp.partition,
                                offset: f.offset,
                                key: Some(self.buf.slice_ref(f.key)),
                                payload: self.buf.slice_ref(f.payload),
                                timestamp_ms: f.timestamp_ms,
                            });
                            self.next = f.offset + 1;
                            delivered += 1;
                        }
                    }
                    Decoded::Incomplete => break,
                    Decoded::Corrupt(why) => {
                        let at = seg.pos - (self.buf.len() - self.head) as u64;
                        let path = segment::log_path(&self.dir, seg.base);
                        if segment::log_path(&self.dir, seg.scanned).exists() {
                            return Err(BusError::Other(format!("corrupt record in {} at byte {at}: {why}", path.display())));
                        }
                        // The tail of the segment being written: a crash left it torn and the
                        // writer has not reopened it yet (it truncates on open). Wait for that.
                        if !self.warned {
                            self.warned = true;
                            tracing::warn!(segment = %path.display(), at, "{why} at the tail; waiting for the writer to recover it");
                        }
                        return Ok(());
                    }
                }
            }
            if delivered >= max {
                return Ok(());
            }
            if self.fill()? > 0 {
                continue;
            }
            // End of this segment's data so far. The writer creates the next segment only after
            // its last write to this one, so: look for the next segment, then read once more.
            let (base, scanned) = self.seg.as_ref().map(|s| (s.base, s.scanned)).unwrap();
            // An empty segment (scanned == base) has no successor yet.
            if scanned == base || !segment::log_path(&self.dir, scanned).exists() {
                if !segment::log_path(&self.dir, base).exists() {
                    // Retention deleted the segment under us; find where the log starts now.
                    self.seg = None;
                    continue;
                }
                return Ok(());
            }
            if self.fill()? > 0 {
                continue;
            }
            if self.buf.len() > self.head {
                let path = segment::log_path(&self.dir, base);
                return Err(BusError::Other(format!("{} ends with a partial record although a newer segment exists", path.display())));
            }
            let path = segment::log_path(&self.dir, scanned);
            let file = File::open(&path).map_err(|e| io_err("cannot open", &path, e))?;
            self.seg = Some(OpenSegment { base: scanned, file, pos: 0, scanned });
            self.buf = Bytes::new();
            self.head = 0;
        }
    }
}

/// The partitions' readers and the rotation over them: what a read-ahead takes along.
struct Reading {
    readers: Vec<PartReader>,
    rr: usize,
    /// How many records the previous poll returned: a poll after a full one sizes its vector
    /// for a full batch at once (growing it by doubling copies it and touches fresh memory),
    /// while polls at an idle tail stay small.
    last_polled: usize,
}

impl Reading {
    fn read_available(&mut self, inner: &Inner, max: usize) -> Result<Vec<Message>, BusError> {
        let mut out = Vec::with_capacity(if self.last_polled >= max { max } else { max.min(16_384) });
        let n = self.readers.len();
        let start = self.rr;
        // Rotate the starting partition so a busy partition cannot starve the others.
        self.rr = (self.rr + 1) % n;
        for k in 0..n {
            let reader = &mut self.readers[(start + k) % n];
            reader.read_into(inner, max - out.len(), &mut out)?;
            if out.len() >= max {
                break;
            }
        }
        self.last_polled = out.len();
        Ok(out)
    }
}

/// A read-ahead in flight: it hands the readers back with what it read.
type ReadAhead = tokio::task::JoinHandle<(Reading, Result<Vec<Message>, BusError>)>;

pub(crate) struct EmbeddedConsumer {
    inner: Arc<Inner>,
    group_dir: PathBuf,
    /// `None` only while `read_ahead` holds the readers.
    reading: Option<Reading>,
    /// After a full batch (a backlog), the next one is read on another thread while the caller
    /// processes this one: reading and framing records was 15 % of the stream processor's own
    /// thread in `retail bench stream`. Partial batches (a live tail) read on demand as before.
    read_ahead: Option<ReadAhead>,
    /// Records read ahead and not returned yet, in order (or the error reading them met).
    ready: Option<Result<Vec<Message>, BusError>>,
    assignment: Vec<TopicPartition>,
    committed: Committed,
    announced: bool,
    _member: Membership,
}

impl EmbeddedConsumer {
    pub(crate) fn new(inner: Arc<Inner>, group: &str, topics: &[&str]) -> Result<EmbeddedConsumer, BusError> {
        if topics.is_empty() {
            return Err(BusError::Other("subscribe needs at least one topic".into()));
        }
        let group_dir = inner.group_dir(group)?;
        std::fs::create_dir_all(&group_dir).map_err(|e| io_err("cannot create", &group_dir, e))?;
        if !inner.groups_in_use.lock().unwrap().insert(group.to_string()) {
            return Err(BusError::Other(format!(
                "consumer group `{group}` already has a member in this process; the embedded log allows one member per group (drop the other consumer first, or use kafka:// to share a group)"
            )));
        }
        let mut member = Membership { inner: inner.clone(), group: group.to_string(), _lock: None };
        let lock_path = group_dir.join(".member.lock");
        let lock = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|e| io_err("cannot open", &lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => member._lock = Some(lock),
            Err(TryLockError::WouldBlock) => {
                return Err(BusError::Other(format!(
                    "consumer group `{group}` is in use by another process ({} is locked); the embedded log allows one member per group — stop the other consumer, or use kafka:// to share a group",
                    lock_path.display()
                )))
            }
            Err(TryLockError::Error(e)) => return Err(io_err("cannot lock", &lock_path, e)),
        }
        let committed = read_committed(&group_dir)?;
        let mut readers = Vec::new();
        for &name in topics {
            let topic = inner.topic(name)?;
            for (index, part) in topic.partitions.iter().enumerate() {
                let (start, end) = inner.bounds(part)?;
                let from = match committed.get(name).and_then(|m| m.get(&part.id)) {
                    Some(&c) => c,
                    None if inner.reset == OffsetReset::Earliest => start,
                    None => end,
                };
                let mut reader = PartReader {
                    tp: TopicPartition { topic: name.to_string(), partition: part.id },
                    name: Arc::from(name),
                    topic: topic.clone(),
                    index,
                    dir: part.dir.clone(),
                    next: from,
                    seg: None,
                    buf: Bytes::new(),
                    head: 0,
                    warned: false,
                };
                reader.position(&inner, from)?;
                readers.push(reader);
            }
        }
        let assignment = readers.iter().map(|r| r.tp.clone()).collect();
        let reading = Some(Reading { readers, rr: 0, last_polled: 0 });
        Ok(EmbeddedConsumer { inner, group_dir, reading, read_ahead: None, ready: None, assignment, committed, announced: false, _member: member })
    }

    /// The readers, back from a read-ahead if one ran (its records wait in `ready`).
    /// Cancel-safe: the read-ahead stays in place until it has finished.
    async fn reading(&mut self) -> Result<&mut Reading, BusError> {
        if let Some(task) = &mut self.read_ahead {
            let done = task.await;
            self.read_ahead = None;
            match done {
                Ok((reading, read)) => {
                    self.reading = Some(reading);
                    self.ready = Some(read);
                }
                // A panic while reading is a bug: surface it where it would have happened.
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => return Err(BusError::Other(format!("reading ahead was cancelled: {e}"))),
            }
        }
        Ok(self.reading.as_mut().expect("readers are home when no read-ahead runs"))
    }

    /// After a full batch, read the next one in the background (see `read_ahead`).
    fn start_read_ahead(&mut self, max: usize, returned: usize) {
        if returned < max || self.ready.is_some() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let Some(mut reading) = self.reading.take() else { return };
        let inner = self.inner.clone();
        self.read_ahead = Some(tokio::spawn(async move {
            let read = reading.read_available(&inner, max);
            (reading, read)
        }));
    }

    /// Records read ahead, at most `max` (the rest stay ready for the next poll).
    fn take_ready(&mut self, max: usize) -> Option<Result<Vec<Message>, BusError>> {
        match self.ready.take()? {
            Ok(mut msgs) if msgs.len() > max => {
                let rest = msgs.split_off(max);
                self.ready = Some(Ok(rest));
                Some(Ok(msgs))
            }
            Ok(msgs) if msgs.is_empty() => None,
            other => Some(other),
        }
    }

    fn check_assigned(&self, tp: &TopicPartition) -> Result<(), BusError> {
        match self.assignment.contains(tp) {
            true => Ok(()),
            false => Err(BusError::Other(format!("{}/{} is not assigned to this consumer", tp.topic, tp.partition))),
        }
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    async fn poll_batch(&mut self, max: usize, timeout: Duration) -> Result<Vec<Message>, BusError> {
        let max = max.max(1);
        let deadline = Instant::now() + timeout;
        let inner = self.inner.clone();
        self.reading().await?;
        if let Some(read) = self.take_ready(max) {
            let out = read?;
            self.start_read_ahead(max, out.len());
            return Ok(out);
        }
        loop {
            // Register for the wake-up before looking, so a publish in between is not missed.
            let notified = inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let out = self.reading().await?.read_available(&inner, max)?;
            let now = Instant::now();
            if !out.is_empty() || now >= deadline {
                self.start_read_ahead(max, out.len());
                return Ok(out);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep((deadline - now).min(TAIL_INTERVAL)) => {}
            }
        }
    }

    fn take_rebalances(&mut self) -> Vec<Rebalance> {
        // Announce the (fixed) assignment once, so callers can treat both buses alike.
        if std::mem::replace(&mut self.announced, true) {
            Vec::new()
        } else {
            vec![Rebalance::Assigned(self.assignment())]
        }
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.clone()
    }

    async fn commit(&mut self, offsets: &[(TopicPartition, i64)]) -> Result<(), BusError> {
        for (tp, offset) in offsets {
            self.check_assigned(tp)?;
            self.committed.entry(tp.topic.clone()).or_default().insert(tp.partition, *offset);
        }
        write_committed(&self.group_dir, &self.committed, self.inner.options.fsync).map_err(|e| io_err("cannot write committed offsets in", &self.group_dir, e))
    }

    async fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), BusError> {
        self.check_assigned(tp)?;
        let inner = self.inner.clone();
        let reading = self.reading().await?;
        let reader = reading.readers.iter_mut().find(|r| r.tp == *tp).expect("an assigned partition has a reader");
        reader.position(&inner, offset)?;
        // Records of this partition read ahead are from before the seek: drop them; the other
        // partitions' stay (their readers are past them).
        if let Some(Ok(msgs)) = &mut self.ready {
            msgs.retain(|m| !(m.partition == tp.partition && *m.topic == *tp.topic));
        }
        Ok(())
    }

    fn may_rebalance(&self) -> bool {
        false
    }
}
