//! The write-ahead log on disk: a sequence of segment files, each a run of
//! checksummed records with consecutive indexes.
//!
//! Record layout (little endian):
//!
//! ```text
//! | payload_len: u32 | crc32(index ++ payload): u32 | index: u64 | payload |
//! ```
//!
//! Invariants:
//! - Records are contiguous: within and across segments, each index is the
//!   previous one plus one. Purging removes whole leading segments; truncation
//!   cuts the tail; neither ever leaves a hole.
//! - A segment is named after the index of its first record
//!   (`wal-<first index, 20 digits>.log`).
//! - Only the tail of the last segment may be torn (a crash during a write
//!   that was never acknowledged). Recovery cuts such a tail off. Damage
//!   anywhere else is reported as corruption and the node refuses to start,
//!   because those records may have been acknowledged to a leader.
//! - Zero bytes running to the end of a file are space reserved ahead of the
//!   writes, not damage. No record starts with a zero header: that would be
//!   an empty payload at index 0 with checksum 0, and the checksum of index 0
//!   is not 0 (and no entry encodes to an empty payload).
//!
//! Space is reserved in steps of [`RESERVE_STEP`] by writing zeros, so that
//! an append overwrites blocks that are already allocated *and written*. Its
//! `fdatasync` then only flushes data. Growing the file instead makes every
//! commit's `fdatasync` also write the inode (new size, new blocks); so does
//! `fallocate`, whose unwritten extents are converted on first write. The
//! zeros cost one extra flush of the step per step.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::files::fsync_dir;

const HEADER_LEN: usize = 16;
/// Space reserved at a time past the end of the last record. Small enough
/// that writing and flushing its zeros delays one commit by a millisecond or
/// two (measured here: ~1 ms to write, ~1 ms to flush).
pub const RESERVE_STEP: u64 = 1 << 20;

/// The source of reservation writes.
static ZEROS: [u8; 64 << 10] = [0; 64 << 10];

/// One segment file.
#[derive(Debug)]
struct Segment {
    first_index: u64,
    path: PathBuf,
    /// `(index, byte offset)` of every record in the file, in order.
    records: Vec<(u64, u64)>,
    /// End of the last record.
    len: u64,
    /// Length of the file: `len` plus reserved (zero) space.
    allocated: u64,
    /// No reservation is tried until the records end past this offset: set
    /// when a full disk refused one, so that a nearly full disk does not cost
    /// every append a failed write of zeros.
    reserve_after: u64,
}

impl Segment {
    fn last_index(&self) -> Option<u64> {
        self.records.last().map(|(i, _)| *i)
    }
}

/// What recovery found on disk.
#[derive(Debug, Default)]
pub struct Recovered {
    /// `(index, payload)` of every intact record with index > the purge point.
    pub records: Vec<(u64, Vec<u8>)>,
    /// Bytes cut off the tail of the last segment (a torn or damaged write).
    pub torn_tail_bytes: u64,
}

/// The segmented log. Not thread-safe: owned by the log writer thread.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    segments: Vec<Segment>,
    /// Open handle of the last segment.
    tail: Option<File>,
    segment_max_bytes: u64,
    scratch: Vec<u8>,
    /// Cleared when reserving space fails for another reason than a full
    /// disk; appends then grow the file as they go.
    reserve: bool,
}

/// Writes zeros over `from..to` of `file`, without moving its cursor.
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("wal-{first_index:020}.log"))
}

fn corruption(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir` and recovers its records.
    ///
    /// Records at or below `purged` are dropped from the result (they are
    /// covered by a snapshot); a torn tail of the last segment is cut off.
    pub fn open(dir: &Path, purged: Option<u64>, segment_max_bytes: u64) -> io::Result<(Self, Recovered)> {
        fs::create_dir_all(dir)?;
        let mut names: Vec<(u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(num) = name.strip_prefix("wal-").and_then(|s| s.strip_suffix(".log")) {
                let first: u64 = num.parse().map_err(|_| corruption(format!("unexpected WAL file name {name}")))?;
                names.push((first, entry.path()));
            }
        }
        names.sort();

        let mut recovered = Recovered::default();
        let mut segments = Vec::with_capacity(names.len());
        let mut prev_index: Option<u64> = None;
        let count = names.len();
        for (pos, (first_index, path)) in names.into_iter().enumerate() {
            let is_last = pos + 1 == count;
            let mut bytes = Vec::new();
            File::open(&path)?.read_to_end(&mut bytes)?;
            let mut seg = Segment {
                first_index,
                path,
                records: Vec::new(),
                len: 0,
                allocated: bytes.len() as u64,
                reserve_after: 0,
            };
            let mut offset = 0usize;
            let mut damage: Option<String> = None;
            while offset < bytes.len() {
                match parse_record(&bytes[offset..]) {
                    Ok((index, payload, used)) => {
                        let expected = match prev_index {
                            Some(p) => p + 1,
                            None => index,
                        };
                        if seg.records.is_empty() && index != first_index {
                            damage = Some(format!("first record has index {index}, file is named {first_index}"));
                            break;
                        }
                        if index != expected {
                            damage = Some(format!("index {index} follows {prev_index:?}: hole in the log"));
                            break;
                        }
                        seg.records.push((index, offset as u64));
                        if purged.is_none_or(|p| index > p) {
                            recovered.records.push((index, payload.to_vec()));
                        }
                        prev_index = Some(index);
                        offset += used;
                    }
                    Err(why) => {
                        damage = Some(why);
                        break;
                    }
                }
            }
            if damage.is_some() && bytes[offset..].iter().all(|b| *b == 0) {
                // Reserved space after the last record: a clean end.
                damage = None;
            }
            if let Some(why) = damage {
                if !is_last {
                    return Err(corruption(format!(
                        "WAL segment {} is damaged at offset {offset} ({why}) and is not the last segment; \
                         refusing to start rather than lose acknowledged entries",
                        seg.path.display()
                    )));
                }
                let cut = bytes.len() as u64 - offset as u64;
                tracing::error!(
                    segment = %seg.path.display(),
                    offset,
                    cut_bytes = cut,
                    reason = %why,
                    "WAL tail is torn or damaged; cutting it off (entries there were never acknowledged by this node's fsync)"
                );
                let f = OpenOptions::new().write(true).open(&seg.path)?;
                f.set_len(offset as u64)?;
                f.sync_all()?;
                seg.allocated = offset as u64;
                recovered.torn_tail_bytes = cut;
            }
            seg.len = offset as u64;
            segments.push(seg);
        }

        // Purging removes leading segments after the purge point was saved; a
        // crash in between leaves fully purged segments behind. Drop them now.
        let mut wal =
            Wal { dir: dir.to_path_buf(), segments, tail: None, segment_max_bytes, scratch: Vec::new(), reserve: true };
        if let Some(p) = purged {
            wal.purge_upto(p)?;
        }
        if let Some(last) = wal.segments.last() {
            let mut f = OpenOptions::new().read(true).write(true).open(&last.path)?;
            f.seek(SeekFrom::Start(last.len))?;
            wal.tail = Some(f);
        }
        Ok((wal, recovered))
    }

    /// Index of the last record on disk, if any.
    pub fn last_index(&self) -> Option<u64> {
        self.segments.iter().rev().find_map(Segment::last_index)
    }

    /// Writes records (not yet durable: call [`Wal::sync`]).
    ///
    /// On error the segment is rolled back to its previous length so that a
    /// retry (e.g. after the disk had no space) writes the batch again cleanly.
    pub fn append(&mut self, records: &[(u64, Vec<u8>)]) -> io::Result<()> {
        let Some((first, _)) = records.first() else { return Ok(()) };
        if let Some(last) = self.last_index() {
            if *first != last + 1 {
                return Err(io::Error::other(format!("append of {first} after {last} would leave a hole")));
            }
        }
        let need_new = match self.segments.last() {
            None => true,
            Some(s) => s.len >= self.segment_max_bytes,
        };
        if need_new {
            self.start_segment(*first)?;
        }
        self.scratch.clear();
        let seg = self.segments.last_mut().expect("a segment exists");
        let base = seg.len;
        let mut offsets = Vec::with_capacity(records.len());
        for (index, payload) in records {
            offsets.push((*index, base + self.scratch.len() as u64));
            let len = u32::try_from(payload.len()).map_err(|_| io::Error::other("log entry over 4 GiB"))?;
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&index.to_le_bytes());
            hasher.update(payload);
            self.scratch.extend_from_slice(&len.to_le_bytes());
            self.scratch.extend_from_slice(&hasher.finalize().to_le_bytes());
            self.scratch.extend_from_slice(&index.to_le_bytes());
            self.scratch.extend_from_slice(payload);
        }
        let end = base + self.scratch.len() as u64;
        if self.reserve && end > seg.allocated && end > seg.reserve_after {
            let tail = self.tail.as_ref().expect("tail is open");
            let target = end.div_ceil(RESERVE_STEP) * RESERVE_STEP;
            if let Err(e) = write_zeros(tail, seg.allocated, target) {
                // Give back what was zeroed; records end at or before `allocated`.
                let _ = tail.set_len(seg.allocated);
                // No room to reserve ahead: write what fits now (a full disk
                // shows up as the write's own error) and try again a step on.
                if e.kind() == io::ErrorKind::StorageFull {
                    seg.reserve_after = end + RESERVE_STEP;
                } else {
                    tracing::info!(error = %e, "cannot reserve WAL space ahead; appends will grow the file");
                    self.reserve = false;
                }
            } else {
                seg.allocated = target;
            }
        }
        let tail = self.tail.as_mut().expect("tail is open");
        if let Err(e) = tail.write_all(&self.scratch) {
            // Roll back a partial write; ignore a failure here, the original error matters.
            let _ = tail.set_len(base);
            let _ = tail.seek(SeekFrom::Start(base));
            seg.allocated = base;
            return Err(e);
        }
        seg.allocated = seg.allocated.max(end);
        seg.len = base + self.scratch.len() as u64;
        seg.records.extend(offsets);
        Ok(())
    }

    /// Makes every appended record durable.
    pub fn sync(&mut self) -> io::Result<()> {
        match &self.tail {
            Some(f) => f.sync_data(),
            None => Ok(()),
        }
    }

    /// Undoes appends after a failed [`Wal::sync`]: cuts the tail back so
    /// that records from `from_index` on are not on disk, then they can be
    /// written again.
    pub fn rollback_from(&mut self, from_index: u64) -> io::Result<()> {
        self.truncate_from(from_index)
    }

    /// Removes every record with index >= `index`, durably.
    pub fn truncate_from(&mut self, index: u64) -> io::Result<()> {
        while let Some(seg) = self.segments.last_mut() {
            if seg.first_index >= index {
                // The whole segment goes.
                self.tail = None;
                fs::remove_file(&seg.path)?;
                self.segments.pop();
                fsync_dir(&self.dir)?;
                continue;
            }
            if let Some(pos) = seg.records.iter().position(|(i, _)| *i >= index) {
                let offset = seg.records[pos].1;
                seg.records.truncate(pos);
                seg.len = offset;
                seg.allocated = offset;
                let f = OpenOptions::new().read(true).write(true).open(&seg.path)?;
                f.set_len(offset)?;
                f.sync_all()?;
            }
            break;
        }
        self.reopen_tail()
    }

    /// Deletes every leading segment whose records are all <= `upto`.
    pub fn purge_upto(&mut self, upto: u64) -> io::Result<()> {
        let mut removed = false;
        while let Some(seg) = self.segments.first() {
            let fully_purged = match seg.last_index() {
                Some(last) => last <= upto,
                None => seg.first_index <= upto,
            };
            if !fully_purged {
                break;
            }
            if self.segments.len() == 1 {
                self.tail = None;
            }
            fs::remove_file(&seg.path)?;
            self.segments.remove(0);
            removed = true;
        }
        if removed {
            fsync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Bytes on disk across all segments.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len).sum()
    }

    fn start_segment(&mut self, first_index: u64) -> io::Result<()> {
        if let (Some(f), Some(seg)) = (&self.tail, self.segments.last_mut()) {
            if seg.allocated > seg.len {
                // Give back the unused reservation of a finished segment.
                f.set_len(seg.len)?;
                seg.allocated = seg.len;
                f.sync_all()?;
            } else {
                f.sync_data()?;
            }
        }
        let path = segment_path(&self.dir, first_index);
        let f = OpenOptions::new().create(true).read(true).write(true).truncate(true).open(&path)?;
        fsync_dir(&self.dir)?;
        self.segments.push(Segment { first_index, path, records: Vec::new(), len: 0, allocated: 0, reserve_after: 0 });
        self.tail = Some(f);
        Ok(())
    }

    fn reopen_tail(&mut self) -> io::Result<()> {
        self.tail = match self.segments.last() {
            Some(seg) => {
                let mut f = OpenOptions::new().read(true).write(true).open(&seg.path)?;
                f.seek(SeekFrom::Start(seg.len))?;
                Some(f)
            }
            None => None,
        };
        Ok(())
    }
}

/// Parses one record at the start of `buf`: `(index, payload, bytes used)`.
fn parse_record(buf: &[u8]) -> Result<(u64, &[u8], usize), String> {
    if buf.len() < HEADER_LEN {
        return Err(format!("truncated header ({} bytes)", buf.len()));
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    let index_bytes = &buf[8..16];
    let index = u64::from_le_bytes(index_bytes.try_into().expect("8 bytes"));
    if buf.len() - HEADER_LEN < len {
        return Err(format!("truncated payload (want {len}, have {})", buf.len() - HEADER_LEN));
    }
    let payload = &buf[HEADER_LEN..HEADER_LEN + len];
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(index_bytes);
    hasher.update(payload);
    if hasher.finalize() != crc {
        return Err("checksum mismatch".to_string());
    }
    Ok((index, payload, HEADER_LEN + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(range: std::ops::RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
        range.map(|i| (i, format!("entry-{i}").into_bytes())).collect()
    }

    fn indexes(r: &Recovered) -> Vec<u64> {
        r.records.iter().map(|(i, _)| *i).collect()
    }

    /// End of the records in a segment file (before its reserved zeros).
    fn records_end(path: &Path) -> u64 {
        let bytes = fs::read(path).unwrap();
        bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p as u64 + 1)
    }

    #[test]
    fn append_reopen_truncate_purge() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, rec) = Wal::open(dir.path(), None, 64).unwrap();
        assert!(rec.records.is_empty());
        wal.append(&recs(1..=10)).unwrap();
        wal.sync().unwrap();
        wal.append(&recs(11..=20)).unwrap();
        wal.sync().unwrap();
        drop(wal);

        let (mut wal, rec) = Wal::open(dir.path(), None, 64).unwrap();
        assert_eq!(indexes(&rec), (1..=20).collect::<Vec<_>>());
        assert_eq!(rec.records[4].1, b"entry-5");
        wal.truncate_from(15).unwrap();
        wal.append(&recs(15..=16)).unwrap();
        wal.sync().unwrap();
        wal.purge_upto(10).unwrap();
        drop(wal);

        let (wal, rec) = Wal::open(dir.path(), Some(10), 64).unwrap();
        assert_eq!(indexes(&rec), (11..=16).collect::<Vec<_>>());
        assert_eq!(wal.last_index(), Some(16));
    }

    #[test]
    fn append_after_hole_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 1 << 20).unwrap();
        wal.append(&recs(1..=3)).unwrap();
        assert!(wal.append(&recs(5..=6)).is_err());
    }

    #[test]
    fn torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 1 << 20).unwrap();
        wal.append(&recs(1..=5)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let seg = segment_path(dir.path(), 1);
        let len = records_end(&seg);
        OpenOptions::new().write(true).open(&seg).unwrap().set_len(len - 3).unwrap();

        let (mut wal, rec) = Wal::open(dir.path(), None, 1 << 20).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2, 3, 4]);
        assert!(rec.torn_tail_bytes > 0);
        // The log continues cleanly after the cut.
        wal.append(&recs(5..=6)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), None, 1 << 20).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn flipped_byte_in_tail_record_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 1 << 20).unwrap();
        wal.append(&recs(1..=3)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let seg = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&seg).unwrap();
        let n = records_end(&seg) as usize;
        bytes[n - 2] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let (_, rec) = Wal::open(dir.path(), None, 1 << 20).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2]);
    }

    #[test]
    fn damage_in_an_older_segment_refuses_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 32).unwrap();
        for i in 1..=6 {
            wal.append(&recs(i..=i)).unwrap();
        }
        wal.sync().unwrap();
        drop(wal);
        let first = segment_path(dir.path(), 1);
        let mut bytes = fs::read(&first).unwrap();
        bytes[HEADER_LEN] ^= 0xff;
        fs::write(&first, bytes).unwrap();
        let err = Wal::open(dir.path(), None, 32).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn reserved_space_is_a_clean_end_and_is_written_over() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 1 << 30).unwrap();
        wal.append(&recs(1..=3)).unwrap();
        wal.sync().unwrap();
        let seg = segment_path(dir.path(), 1);
        let file_len = fs::metadata(&seg).unwrap().len();
        let end = records_end(&seg);
        // The file is longer than its records: the rest is reserved zeros.
        assert_eq!(file_len, RESERVE_STEP, "file {file_len} records {end}");
        drop(wal);

        let (mut wal, rec) = Wal::open(dir.path(), None, 1 << 30).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2, 3]);
        assert_eq!(rec.torn_tail_bytes, 0, "reserved zeros are not a torn tail");
        wal.append(&recs(4..=5)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), None, 1 << 30).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn damage_followed_by_reserved_zeros_is_still_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 1 << 30).unwrap();
        wal.append(&recs(1..=3)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let seg = segment_path(dir.path(), 1);
        let end = records_end(&seg) as usize;
        let mut bytes = fs::read(&seg).unwrap();
        bytes[end - 1] ^= 0xff;
        fs::write(&seg, bytes).unwrap();
        let (_, rec) = Wal::open(dir.path(), None, 1 << 30).unwrap();
        assert_eq!(indexes(&rec), vec![1, 2]);
        assert!(rec.torn_tail_bytes > 0);
    }

    #[test]
    fn a_finished_segment_gives_back_its_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 64).unwrap();
        for i in 1..=6 {
            wal.append(&recs(i..=i)).unwrap();
        }
        wal.sync().unwrap();
        let first = segment_path(dir.path(), 1);
        assert_eq!(fs::metadata(&first).unwrap().len(), records_end(&first));
    }

    #[test]
    fn purge_of_everything_then_append_at_a_later_index() {
        let dir = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(dir.path(), None, 1 << 20).unwrap();
        wal.append(&recs(1..=3)).unwrap();
        wal.sync().unwrap();
        // A snapshot install on a follower purges past everything it has.
        wal.purge_upto(100).unwrap();
        wal.append(&recs(101..=102)).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, rec) = Wal::open(dir.path(), Some(100), 1 << 20).unwrap();
        assert_eq!(indexes(&rec), vec![101, 102]);
    }
}
