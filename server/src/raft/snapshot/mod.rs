//! Snapshot files.
//!
//! Layout: `| "SESHSNAP" | version: u32 | meta_len: u32 | meta (bincode) | store |`
//! where `store` is [`Store::write_snapshot`]'s own checksummed format.
//!
//! A snapshot is built into a temporary file, fsynced, renamed to
//! `snapshot-<index, 20 digits>.snap`, and the directory fsynced; only then
//! are older snapshots deleted. A crash at any point leaves the previous
//! snapshot intact.
//!
//! [`Store::write_snapshot`]: crate::store::Store::write_snapshot

pub mod forked;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::codec::{decode, encode, invalid_data};
use super::log_store::fsync_dir;
use super::SnapshotMeta;
use crate::store::Store;

const MAGIC: &[u8; 8] = b"SESHSNAP";
const VERSION: u32 = 1;

/// A snapshot file on local disk, opened for reading.
///
/// Holding the open file keeps its data readable even if a newer snapshot
/// replaces (unlinks) it while a follower is still being sent this one.
#[derive(Debug)]
pub struct SnapshotFile {
    /// Where the file is (or was, when since replaced).
    pub path: PathBuf,
    /// Open handle, positioned at the start.
    pub file: File,
}

impl SnapshotFile {
    /// Opens an existing snapshot file.
    pub fn open(path: PathBuf) -> io::Result<Self> {
        let file = File::open(&path)?;
        Ok(SnapshotFile { path, file })
    }

    /// Size in bytes.
    pub fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// True when the file is empty (never the case for a valid snapshot).
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// The directory that holds this node's snapshots.
#[derive(Debug)]
pub struct SnapshotDir {
    dir: PathBuf,
    seq: AtomicU64,
}

impl SnapshotDir {
    /// Opens (creating) the directory and removes leftovers of interrupted builds or transfers.
    pub fn open(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        for entry in fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "tmp") {
                fs::remove_file(&path)?;
            }
        }
        Ok(SnapshotDir { dir: dir.to_path_buf(), seq: AtomicU64::new(0) })
    }

    /// A fresh temporary path for a snapshot being built or received.
    pub fn temp_path(&self) -> PathBuf {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        self.dir.join(format!("incoming-{}-{n}.tmp", std::process::id()))
    }

    /// The newest complete snapshot, if any.
    pub fn latest(&self) -> io::Result<Option<PathBuf>> {
        let mut best: Option<PathBuf> = None;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let is_snap = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("snapshot-") && n.ends_with(".snap"));
            if is_snap && best.as_ref().is_none_or(|b| path > *b) {
                best = Some(path);
            }
        }
        Ok(best)
    }

    /// Writes `store` with `meta` to `tmp` (a [`SnapshotDir::temp_path`]),
    /// not yet durable: the part of building a snapshot that needs the state
    /// held still (see [`forked`]). Then [`SnapshotDir::finish`] makes it
    /// durable and the latest.
    pub fn write(&self, tmp: &Path, meta: &SnapshotMeta, store: &Store) -> io::Result<()> {
        let f = OpenOptions::new().create_new(true).write(true).open(tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        write_header(&mut w, meta)?;
        store.write_snapshot(&mut w)?;
        w.flush()
    }

    /// Fsyncs the file written by [`SnapshotDir::write`] and makes it the
    /// latest snapshot.
    pub fn finish(&self, tmp: &Path, meta: &SnapshotMeta) -> io::Result<PathBuf> {
        File::open(tmp)?.sync_all()?;
        self.promote(tmp, meta)
    }

    /// Moves a complete, fsynced temporary snapshot into place and deletes older ones.
    pub fn promote(&self, tmp: &Path, meta: &SnapshotMeta) -> io::Result<PathBuf> {
        let index = meta.last_log_id.map_or(0, |l| l.index);
        let final_path = self.dir.join(format!("snapshot-{index:020}.snap"));
        fs::rename(tmp, &final_path)?;
        fsync_dir(&self.dir)?;
        for entry in fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.starts_with("snapshot-") && name.ends_with(".snap") && path != final_path {
                fs::remove_file(&path)?;
            }
        }
        Ok(final_path)
    }
}

fn write_header(w: &mut impl Write, meta: &SnapshotMeta) -> io::Result<()> {
    let meta_bytes = encode(meta).map_err(invalid_data)?;
    w.write_all(MAGIC)?;
    w.write_all(&VERSION.to_le_bytes())?;
    w.write_all(&(meta_bytes.len() as u32).to_le_bytes())?;
    w.write_all(&meta_bytes)
}

/// Reads only the metadata of a snapshot file.
pub fn read_meta(path: &Path) -> io::Result<SnapshotMeta> {
    let mut r = BufReader::new(File::open(path)?);
    read_header(&mut r)
}

fn read_header(r: &mut impl Read) -> io::Result<SnapshotMeta> {
    let mut magic = [0u8; 8];
    r.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(invalid_data("not a Seshat snapshot (bad magic)"));
    }
    let mut word = [0u8; 4];
    r.read_exact(&mut word)?;
    let version = u32::from_le_bytes(word);
    if version != VERSION {
        return Err(invalid_data(format!("unsupported snapshot version {version}")));
    }
    r.read_exact(&mut word)?;
    let len = u32::from_le_bytes(word) as usize;
    if len > 64 << 20 {
        return Err(invalid_data(format!("snapshot metadata of {len} bytes is implausible")));
    }
    let mut meta = vec![0u8; len];
    r.read_exact(&mut meta)?;
    decode(&meta).map_err(invalid_data)
}

/// Reads a whole snapshot file: its metadata and the store it holds.
pub fn read_snapshot(path: &Path) -> io::Result<(SnapshotMeta, Store)> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let meta = read_header(&mut r)?;
    let store = Store::read_snapshot(&mut r).map_err(invalid_data)?;
    Ok((meta, store))
}
