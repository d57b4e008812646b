//! Snapshot file format of the keyspace.
//!
//! ```text
//! magic    8 bytes  "SESHATKV"
//! version  u32 LE   2
//! clock_ms u64 LE   the store's apply clock
//! count    u64 LE   number of entries
//! entries  count ×  [type u8][has_expire u8][expire_at u64 LE if has_expire]
//!                   [key_len u32 LE][key][value_len u32 LE][value]
//! counter  u64 LE   WATCH stamps: writes stamped so far         (version 2)
//! written  u32 LE   number of stamp slots ever written         (version 2)
//! stamps   written × [slot u32 LE][stamp u64 LE], ascending slots (version 2)
//! crc32    u32 LE   CRC-32 (IEEE) of every byte above
//! ```
//!
//! Version 1 (no stamps) is still read; its stamps start from the entries
//! loaded, which only matters to a `WATCH` that spans the upgrade.
//!
//! Entries are written in ascending key order, so two stores with the same
//! contents write the same bytes whatever their hash seeds: replicas can compare
//! snapshot checksums. Reading verifies magic, version, strictly ascending keys,
//! the checksum and the absence of trailing bytes; lengths are never trusted for
//! allocation (buffers grow only as data actually arrives).

use std::io::{self, BufReader, BufWriter, Read, Write};

use super::entry::{Entry, ValueRef, ValueType};
use super::watch::{WatchStamps, SLOTS};
use super::Store;

const MAGIC: &[u8; 8] = b"SESHATKV";
const VERSION: u32 = 2;
/// The version before WATCH stamps were added.
const VERSION_WITHOUT_STAMPS: u32 = 1;
const TYPE_STRING: u8 = 0;
/// Lengths up to this are allocated up front when reading.
const TRUSTED_LEN: usize = 1 << 20;

/// Why a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Reading failed (a truncated file shows up as `UnexpectedEof`).
    #[error("snapshot read failed: {0}")]
    Io(#[from] io::Error),
    /// Not a Seshat snapshot.
    #[error("not a seshat snapshot (bad magic)")]
    BadMagic,
    /// Written by an incompatible version.
    #[error("unsupported snapshot version {0}")]
    UnsupportedVersion(u32),
    /// The checksum does not match the contents.
    #[error("snapshot checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// Checksum in the file.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// Structurally invalid contents.
    #[error("corrupt snapshot: {0}")]
    Corrupt(&'static str),
}

/// Writes through to `inner` while computing the CRC of everything written.
struct CrcWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads from `inner` while computing the CRC of everything read.
struct CrcReader<R> {
    inner: R,
    crc: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: Read> CrcReader<R> {
    fn u8(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self) -> io::Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a u32-length-prefixed byte string into `out`.
    fn blob(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let len = self.u32()? as usize;
        out.clear();
        if len <= TRUSTED_LEN {
            out.resize(len, 0);
            return self.read_exact(out);
        }
        // A larger length may be corrupt: let the buffer grow only with data
        // actually read, so a bogus 4 GiB length costs nothing.
        let read = (&mut *self).take(len as u64).read_to_end(out)?;
        if read != len {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

fn blob<W: Write>(w: &mut W, data: &[u8]) -> io::Result<()> {
    let len = u32::try_from(data.len()).map_err(|_| io::Error::other("entry longer than 4 GiB"))?;
    w.write_all(&len.to_le_bytes())?;
    w.write_all(data)
}

impl Store {
    /// Writes the whole keyspace (see the module docs for the format).
    ///
    /// Cost: sorting the keys, O(n log n), plus one pass; memory: one pointer
    /// per key for the sorted order.
    pub fn write_snapshot<W: Write>(&self, w: W) -> io::Result<()> {
        // Keys are decoded once here rather than in every comparison of the sort.
        let mut entries: Vec<(&[u8], &Entry)> =
            self.shards.iter().flat_map(|s| s.iter()).map(|e| (e.key(), e)).collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut w = CrcWriter { inner: BufWriter::with_capacity(256 * 1024, w), crc: crc32fast::Hasher::new() };
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(&self.clock_ms.to_le_bytes())?;
        w.write_all(&(entries.len() as u64).to_le_bytes())?;
        for (_, entry) in entries {
            let ValueRef::String(value) = entry.value();
            w.write_all(&[TYPE_STRING])?;
            match entry.expire_at() {
                Some(at) => {
                    w.write_all(&[1])?;
                    w.write_all(&at.to_le_bytes())?;
                }
                None => w.write_all(&[0])?,
            }
            blob(&mut w, entry.key())?;
            blob(&mut w, value)?;
        }
        let (counter, written) = self.watch.parts();
        w.write_all(&counter.to_le_bytes())?;
        w.write_all(&(written.len() as u32).to_le_bytes())?;
        for (slot, stamp) in written {
            w.write_all(&slot.to_le_bytes())?;
            w.write_all(&stamp.to_le_bytes())?;
        }
        let crc = w.crc.clone().finalize();
        let mut inner = w.inner;
        inner.write_all(&crc.to_le_bytes())?;
        inner.flush()
    }

    /// Reads a snapshot written by [`Store::write_snapshot`], rejecting bad
    /// magic, unknown versions, corrupt structure and checksum mismatches.
    pub fn read_snapshot<R: Read>(r: R) -> Result<Store, SnapshotError> {
        let mut r = CrcReader { inner: BufReader::with_capacity(256 * 1024, r), crc: crc32fast::Hasher::new() };
        let mut magic = [0u8; 8];
        r.read_exact(&mut magic)?;
        if &magic != MAGIC {
            return Err(SnapshotError::BadMagic);
        }
        let version = r.u32()?;
        if version != VERSION && version != VERSION_WITHOUT_STAMPS {
            return Err(SnapshotError::UnsupportedVersion(version));
        }
        let mut store = Store::new();
        store.clock_ms = r.u64()?;
        let count = r.u64()?;
        let (mut key, mut value, mut previous) = (Vec::new(), Vec::new(), None::<Vec<u8>>);
        for _ in 0..count {
            let value_type = match r.u8()? {
                TYPE_STRING => ValueType::String,
                _ => return Err(SnapshotError::Corrupt("unknown value type")),
            };
            let expire_at = match r.u8()? {
                0 => None,
                1 => Some(r.u64()?),
                _ => return Err(SnapshotError::Corrupt("bad expire flag")),
            };
            r.blob(&mut key)?;
            r.blob(&mut value)?;
            if previous.as_ref().is_some_and(|p| *p >= key) {
                return Err(SnapshotError::Corrupt("keys out of order"));
            }
            let entry = match value_type {
                ValueType::String => Entry::string(&key, &value, expire_at),
            };
            store.put(store.hash(&key), entry);
            // Keep this key for the order check; reuse the older buffer for the next.
            match &mut previous {
                Some(previous) => std::mem::swap(previous, &mut key),
                None => previous = Some(std::mem::take(&mut key)),
            }
        }
        if version == VERSION {
            let counter = r.u64()?;
            let count = r.u32()? as usize;
            if count > SLOTS {
                return Err(SnapshotError::Corrupt("more watch stamps than slots"));
            }
            let written = (0..count).map(|_| Ok((r.u32()?, r.u64()?))).collect::<io::Result<Vec<_>>>()?;
            store.watch =
                WatchStamps::from_parts(counter, &written).ok_or(SnapshotError::Corrupt("bad watch stamps"))?;
        }
        let computed = r.crc.clone().finalize();
        let mut stored = [0u8; 4];
        r.inner.read_exact(&mut stored)?;
        let stored = u32::from_le_bytes(stored);
        if stored != computed {
            return Err(SnapshotError::Checksum { stored, computed });
        }
        if r.inner.read(&mut [0u8; 1])? != 0 {
            return Err(SnapshotError::Corrupt("trailing bytes after checksum"));
        }
        Ok(store)
    }
}
