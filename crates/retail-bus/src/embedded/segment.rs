//! On-disk format of one partition: segment files of framed records plus a sparse offset index.
//!
//! A partition directory holds segments named by the offset of their first record:
//! `00000000000000000000.log` with its index `00000000000000000000.idx`.
//!
//! A record in a `.log` file (little-endian):
//!
//! ```text
//! u32 body_len | u32 crc32(body) | body = i64 offset | i64 timestamp_ms | u32 key_len | key | payload
//! ```
//!
//! Why this and not a storage crate: the access pattern is "append a batch, read sequentially from
//! an offset, drop whole old files" — exactly what plain files do well. An embedded KV store
//! (sled, redb, rocksdb) would add a B-tree, a second write path and compaction to serve reads it
//! never needs. Length + CRC framing is what Kafka itself does; a torn tail after a crash shows up
//! as a short or bad-CRC last record and is truncated on the next open by the writer.
//!
//! The `.idx` file holds `(i64 offset, u64 byte position)` pairs, one every [`INDEX_INTERVAL`]
//! bytes of log. It is only a seek accelerator: entries past the valid log are dropped, missing
//! ones are rebuilt by scanning, so it is never fsynced.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(crate) const FRAME_HEADER: usize = 8;
const BODY_FIXED: usize = 20;
/// A record larger than this is refused (and a length field larger than this means corruption).
pub(crate) const MAX_RECORD: usize = 64 << 20;
/// Log bytes between two index entries: a seek scans at most this much.
pub(crate) const INDEX_INTERVAL: u64 = 4096;
const INDEX_ENTRY: usize = 16;

pub(crate) fn log_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log"))
}

pub(crate) fn idx_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.idx"))
}

/// Base offsets of the segments in `dir`, ascending.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".log") {
            if let Ok(base) = stem.parse::<i64>() {
                bases.push(base);
            }
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Append one framed record to `buf`.
#[inline]
pub(crate) fn encode(buf: &mut Vec<u8>, offset: i64, timestamp_ms: i64, key: &[u8], payload: &[u8]) {
    let body_len = BODY_FIXED + key.len() + payload.len();
    let start = buf.len();
    buf.reserve(FRAME_HEADER + body_len);
    buf.extend_from_slice(&(body_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]);
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&timestamp_ms.to_le_bytes());
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(payload);
    let crc = crc32fast::hash(&buf[start + FRAME_HEADER..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(crate) struct Frame<'a> {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: &'a [u8],
    pub payload: &'a [u8],
    /// Bytes the frame occupies, header included.
    pub len: usize,
}

pub(crate) enum Decoded<'a> {
    Frame(Frame<'a>),
    /// Not enough bytes yet (end of data, or a record still being written by another process).
    Incomplete,
    /// Length or CRC wrong: a torn tail after a crash, or damage.
    Corrupt(&'static str),
}

#[inline]
pub(crate) fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.len() < FRAME_HEADER {
        return Decoded::Incomplete;
    }
    let body_len = u32::from_le_bytes(buf[0..4].try_into().unwrap()) as usize;
    if !(BODY_FIXED..=MAX_RECORD + BODY_FIXED).contains(&body_len) {
        return Decoded::Corrupt("impossible record length");
    }
    if buf.len() < FRAME_HEADER + body_len {
        return Decoded::Incomplete;
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().unwrap());
    let body = &buf[FRAME_HEADER..FRAME_HEADER + body_len];
    if crc32fast::hash(body) != crc {
        return Decoded::Corrupt("CRC mismatch");
    }
    let offset = i64::from_le_bytes(body[0..8].try_into().unwrap());
    let timestamp_ms = i64::from_le_bytes(body[8..16].try_into().unwrap());
    let key_len = u32::from_le_bytes(body[16..20].try_into().unwrap()) as usize;
    if key_len > body_len - BODY_FIXED {
        return Decoded::Corrupt("key longer than record");
    }
    Decoded::Frame(Frame {
        offset,
        timestamp_ms,
        key: &body[BODY_FIXED..BODY_FIXED + key_len],
        payload: &body[BODY_FIXED + key_len..],
        len: FRAME_HEADER + body_len,
    })
}

/// Read the index of a segment; entries are `(offset, position)`, ascending.
pub(crate) fn read_index(path: &Path) -> Vec<(i64, u64)> {
    let Ok(bytes) = std::fs::read(path) else { return Vec::new() };
    bytes.chunks_exact(INDEX_ENTRY).map(|c| (i64::from_le_bytes(c[0..8].try_into().unwrap()), u64::from_le_bytes(c[8..16].try_into().unwrap()))).collect()
}

pub(crate) fn encode_index_entry(buf: &mut Vec<u8>, offset: i64, pos: u64) {
    buf.extend_from_slice(&offset.to_le_bytes());
    buf.extend_from_slice(&pos.to_le_bytes());
}

/// The index entry to start a search for `offset` from: the last one at or before it.
pub(crate) fn seek_entry(index: &[(i64, u64)], offset: i64) -> Option<(i64, u64)> {
    let i = index.partition_point(|&(o, _)| o <= offset);
    (i > 0).then(|| index[i - 1])
}

/// Result of scanning a segment from a known-good position.
pub(crate) struct Scan {
    /// End of the last valid record.
    pub valid_len: u64,
    /// Offset after the last valid record.
    pub next_offset: i64,
    pub max_timestamp_ms: i64,
    /// Index entries for the scanned range (every INDEX_INTERVAL bytes).
    pub index: Vec<(i64, u64)>,
    /// Why scanning stopped before the end of the file, if it did.
    pub stopped: Option<&'static str>,
    /// Position of the last index entry emitted (or the start position).
    pub last_indexed: u64,
}

/// Scan `file` from byte `pos` where the record with `offset` starts, validating every frame and
/// that offsets are consecutive. Reads in large chunks.
pub(crate) fn scan(file: &File, mut pos: u64, offset: i64, last_indexed: u64) -> io::Result<Scan> {
    let file_len = file.metadata()?.len();
    let mut out = Scan { valid_len: pos, next_offset: offset, max_timestamp_ms: i64::MIN, index: Vec::new(), stopped: None, last_indexed };
    let mut buf = vec![0u8; 1 << 20];
    let mut have = 0usize; // bytes in buf[0..have], starting at file position `pos`
    loop {
        let n = file.read_at(&mut buf[have..], pos + have as u64)?;
        have += n;
        let mut used = 0usize;
        loop {
            match decode(&buf[used..have]) {
                Decoded::Frame(f) => {
                    if f.offset != out.next_offset {
                        out.stopped = Some("offsets not consecutive");
                        return Ok(out);
                    }
                    let at = pos + used as u64;
                    if at >= out.last_indexed + INDEX_INTERVAL {
                        out.index.push((f.offset, at));
                        out.last_indexed = at;
                    }
                    out.max_timestamp_ms = out.max_timestamp_ms.max(f.timestamp_ms);
                    out.next_offset += 1;
                    used += f.len;
                    out.valid_len = pos + used as u64;
                }
                Decoded::Incomplete => break,
                Decoded::Corrupt(why) => {
                    out.stopped = Some(why);
                    return Ok(out);
                }
            }
        }
        buf.copy_within(used..have, 0);
        have -= used;
        pos += used as u64;
        if n == 0 {
            if have > 0 || out.valid_len < file_len {
                out.stopped = Some("truncated record at end");
            }
            return Ok(out);
        }
        if have == buf.len() {
            // A single frame larger than the buffer: grow (bounded by MAX_RECORD via decode).
            buf.resize(buf.len() * 2, 0);
        }
    }
}

/// The appendable tail segment of a partition, owned by the (single) writer process.
pub(crate) struct ActiveSegment {
    pub base: i64,
    pub log: File,
    pub idx: File,
    pub size: u64,
    pub max_timestamp_ms: i64,
    pub last_indexed: u64,
}

impl ActiveSegment {
    pub fn create(dir: &Path, base: i64) -> io::Result<ActiveSegment> {
        let log = OpenOptions::new().create(true).append(true).read(true).open(log_path(dir, base))?;
        let idx = OpenOptions::new().create(true).append(true).open(idx_path(dir, base))?;
        Ok(ActiveSegment { base, log, idx, size: 0, max_timestamp_ms: i64::MIN, last_indexed: 0 })
    }

    /// Open the last segment for appending after a restart: drop index entries beyond the valid
    /// data, scan the unindexed tail, truncate a torn tail. Returns the segment and next offset.
    pub fn recover(dir: &Path, base: i64) -> io::Result<(ActiveSegment, i64)> {
        let path = log_path(dir, base);
        let log = OpenOptions::new().read(true).write(true).open(&path)?;
        let len = log.metadata()?.len();
        let mut index = read_index(&idx_path(dir, base));
        index.retain(|&(o, p)| p < len && o >= base);
        // Entries must be strictly increasing; stop trusting at the first that is not.
        let good = index.windows(2).position(|w| w[1].0 <= w[0].0 || w[1].1 <= w[0].1).map_or(index.len(), |i| i + 1);
        index.truncate(good);
        let (start_off, start_pos) = index.last().copied().unwrap_or((base, 0));
        let mut scan = scan(&log, start_pos, start_off, start_pos)?;
        if scan.next_offset == start_off && start_pos > 0 {
            // The last index entry did not point at a valid record: rescan everything.
            index.clear();
            scan = self::scan(&log, 0, base, 0)?;
        }
        if let Some(why) = scan.stopped {
            tracing::warn!(segment = %path.display(), valid_bytes = scan.valid_len, file_bytes = len, "{why}: truncating the torn tail left by a crash");
            log.set_len(scan.valid_len)?;
            log.sync_all()?;
        }
        // Rewrite the index (small) so it matches the log exactly.
        index.extend(scan.index.iter().copied());
        index.dedup_by_key(|e| e.1);
        let mut bytes = Vec::with_capacity(index.len() * INDEX_ENTRY);
        for &(o, p) in &index {
            encode_index_entry(&mut bytes, o, p);
        }
        let tmp = idx_path(dir, base).with_extension("idx.tmp");
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, idx_path(dir, base))?;
        let idx = OpenOptions::new().append(true).open(idx_path(dir, base))?;
        drop(log);
        let log = OpenOptions::new().append(true).read(true).open(&path)?;
        let last_indexed = index.last().map_or(0, |e| e.1);
        let max_ts = if scan.max_timestamp_ms == i64::MIN { last_record_ts(dir, base)? } else { scan.max_timestamp_ms };
        let seg = ActiveSegment { base, log, idx, size: scan.valid_len, max_timestamp_ms: max_ts, last_indexed };
        Ok((seg, scan.next_offset))
    }

    /// Append encoded frames (one `write`), then their index entries.
    pub fn append(&mut self, frames: &[u8], index: &[u8]) -> io::Result<()> {
        (&self.log).write_all(frames)?;
        self.size += frames.len() as u64;
        if !index.is_empty() {
            (&self.idx).write_all(index)?;
        }
        Ok(())
    }
}

/// Newest timestamp in a closed segment (for retention), scanning from its last index entry.
pub(crate) fn last_record_ts(dir: &Path, base: i64) -> io::Result<i64> {
    let log = File::open(log_path(dir, base))?;
    let index = read_index(&idx_path(dir, base));
    let len = log.metadata()?.len();
    let (off, pos) = index.iter().rev().find(|&&(_, p)| p < len).copied().unwrap_or((base, 0));
    let mut s = scan(&log, pos, off, pos)?;
    if s.next_offset == off && pos > 0 {
        s = scan(&log, 0, base, 0)?;
    }
    if s.max_timestamp_ms == i64::MIN {
        // Empty segment: judge it by when it was last written.
        let mtime = log.metadata()?.modified()?;
        return Ok(mtime.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64));
    }
    Ok(s.max_timestamp_ms)
}

/// Offset after the last record of a partition, read from disk (for partitions this process
/// does not write).
pub(crate) fn end_offset_on_disk(dir: &Path) -> io::Result<i64> {
    let bases = list_segments(dir)?;
    let Some(&base) = bases.last() else { return Ok(0) };
    let log = match File::open(log_path(dir, base)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return end_offset_on_disk(dir),
        Err(e) => return Err(e),
    };
    let len = log.metadata()?.len();
    let index = read_index(&idx_path(dir, base));
    let (off, pos) = index.iter().rev().find(|&&(_, p)| p < len).copied().unwrap_or((base, 0));
    let s = scan(&log, pos, off, pos)?;
    if s.next_offset == off && pos > 0 {
        return Ok(scan(&log, 0, base, 0)?.next_offset);
    }
    Ok(s.next_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_detect_damage() {
        let mut buf = Vec::new();
        encode(&mut buf, 7, 1234, b"store_001", b"{\"a\":1}");
        encode(&mut buf, 8, 1235, b"", b"");
        let Decoded::Frame(f) = decode(&buf) else { panic!("first frame") };
        assert_eq!((f.offset, f.timestamp_ms, f.key, f.payload), (7, 1234, &b"store_001"[..], &b"{\"a\":1}"[..]));
        let Decoded::Frame(g) = decode(&buf[f.len..]) else { panic!("second frame") };
        assert_eq!((g.offset, g.key.len(), g.payload.len(), f.len + g.len), (8, 0, 0, buf.len()));
        assert!(matches!(decode(&buf[..f.len - 1]), Decoded::Incomplete));
        let mut bad = buf.clone();
        bad[f.len - 1] ^= 0xff;
        assert!(matches!(decode(&bad), Decoded::Corrupt(_)));
    }

    #[test]
    fn recover_truncates_a_torn_tail_and_rebuilds_the_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut seg = ActiveSegment::create(dir.path(), 100).unwrap();
        let mut frames = Vec::new();
        let payload = vec![b'x'; 1000];
        for i in 0..50 {
            encode(&mut frames, 100 + i, 5, b"k", &payload);
        }
        seg.append(&frames, &[]).unwrap(); // no index written at all
                                           // A crash in the middle of the next write leaves half a record.
        let mut torn = Vec::new();
        encode(&mut torn, 150, 5, b"k", &payload);
        seg.append(&torn[..torn.len() / 2], &[]).unwrap();
        drop(seg);
        let (seg, next) = ActiveSegment::recover(dir.path(), 100).unwrap();
        assert_eq!(next, 150);
        assert_eq!(seg.size, frames.len() as u64);
        assert_eq!(std::fs::metadata(log_path(dir.path(), 100)).unwrap().len(), frames.len() as u64);
        let index = read_index(&idx_path(dir.path(), 100));
        assert!(index.len() >= 10, "index rebuilt every {INDEX_INTERVAL} bytes: {index:?}");
        // Every entry points at the record it names.
        let log = std::fs::read(log_path(dir.path(), 100)).unwrap();
        for (o, p) in index {
            let Decoded::Frame(f) = decode(&log[p as usize..]) else { panic!("bad entry") };
            assert_eq!(f.offset, o);
        }
        assert_eq!(end_offset_on_disk(dir.path()).unwrap(), 150);
    }
}
