//! Atomic file writes: the one temp-then-rename helper of the workspace.
//!
//! A file is written to a hidden temporary sibling (`.NAME.tmp-PID`, same directory, so the
//! same file system), flushed to disk, renamed over the destination, and the directory entry
//! is flushed too. A reader sees either the old file or the whole new one, never a half-written
//! one, and a crash leaves at most a stale temporary file, never a torn destination.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// `dir/.NAME.tmp-<pid>`: the temporary sibling [`write_atomic`] writes before renaming.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically.
///
/// # Errors
/// The I/O error of the write, flush or rename; the temporary file is removed then.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)
    })
}

/// Lets `write` create the file at a temporary path, then flushes it and renames it to `path`
/// atomically. For writers that want a path rather than bytes (libtorch's safetensors writer).
///
/// # Errors
/// The error of `write`, or the I/O error of the flush or rename, converted into `E`; the
/// temporary file is removed then.
pub fn write_atomic_with<E: From<std::io::Error>>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = temporary_sibling(path);
    let result = write(&tmp).and_then(|()| persist(&tmp, path).map_err(E::from));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Flushes the finished file `tmp` to disk, renames it to `path` and flushes the directory.
///
/// # Errors
/// The I/O error of any of the three.
pub fn persist(tmp: &Path, path: &Path) -> std::io::Result<()> {
    File::open(tmp)?.sync_all()?;
    std::fs::rename(tmp, path)?;
    sync_dir(path.parent())
}

/// Flushes a directory's entries (a rename is durable only once its directory is). A no-op
/// where directories cannot be opened as files.
///
/// # Errors
/// The I/O error of the flush.
pub fn sync_dir(dir: Option<&Path>) -> std::io::Result<()> {
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match File::open(dir) {
        Ok(f) => f.sync_all().or(Ok(())),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_replace_whole_files_and_failures_leave_the_old_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("rewrite");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let err = write_atomic_with(&path, |tmp| -> std::io::Result<()> {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        })
        .expect_err("fails");
        assert_eq!(err.to_string(), "disk full");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(left.len(), 1, "the temporary file is gone");
    }
}
