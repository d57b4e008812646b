//! Small durable files: write to a temporary name, fsync, rename over the old
//! one, fsync the directory. A reader therefore sees either the old or the new
//! contents, never a mix, and after `write_atomic` returns the new contents
//! survive a crash.
//!
//! Every file carries a CRC32 of its payload so that a damaged file is detected
//! instead of being read as a valid but wrong vote.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Writes `payload` (prefixed with its CRC32) to `path` atomically and durably.
/// (The commit-index hint, which need not be durable, has its own cheaper file:
/// see `hint.rs`.)
pub fn write_atomic(path: &Path, payload: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = OpenOptions::new().create(true).write(true).truncate(true).open(&tmp)?;
        f.write_all(&crc32fast::hash(payload).to_le_bytes())?;
        f.write_all(payload)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    fsync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// Reads a file written by [`write_atomic`]. `Ok(None)` when it does not exist;
/// `InvalidData` when its checksum does not match.
pub fn read_checked(path: &Path) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() < 4 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: file too short ({} bytes)", path.display(), bytes.len()),
        ));
    }
    let (crc, payload) = bytes.split_at(4);
    let expected = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    if crc32fast::hash(payload) != expected {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{}: checksum mismatch", path.display())));
    }
    Ok(Some(payload.to_vec()))
}

/// Fsyncs a directory so that renames, creations and deletions in it are durable.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// True when `e` means the disk (or quota) is full: such errors are retried
/// once space returns instead of being treated as fatal.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(code) if code == 28 /* ENOSPC */ || code == 122 /* EDQUOT */)
}
