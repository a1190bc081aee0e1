//! What the machine can hold, and the check of a build's estimated size against it before
//! anything is allocated or written.
//!
//! The limits are the memory available now (`MemAvailable` in `/proc/meminfo`) for what a
//! build holds in memory, and the free space of the output's file system (`statvfs`) for what
//! it writes; where either cannot be read, a fixed cap stands in, so an absurd option is
//! refused everywhere. No reference counterpart: the reference's builders allocate whatever
//! their options ask for and fail (or swap) when it does not fit.

use std::path::Path;

use crate::error::{DataError, Result};

/// The memory limit used when `/proc/meminfo` cannot be read (1 TiB).
pub const FALLBACK_MEMORY_LIMIT: u64 = 1 << 40;
/// The disk limit used when the output's file system cannot be asked (16 TiB).
pub const FALLBACK_DISK_LIMIT: u64 = 16 << 40;
/// The most examples one set can hold: its `puzzle_indices` are `i32`, as the reference writes.
pub const MAX_SET_EXAMPLES: u64 = i32::MAX as u64;

/// What a build needs that the machine may not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resource {
    /// Bytes held in memory at the build's peak.
    Memory,
    /// Bytes written to the output directory.
    Disk,
}

impl std::fmt::Display for Resource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Resource::Memory => "memory",
            Resource::Disk => "disk space",
        })
    }
}

/// One limit: how many bytes, and where the figure comes from (for the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// The bytes the machine can give.
    pub bytes: u64,
    /// Where the figure comes from, e.g. `available now (MemAvailable in /proc/meminfo)`.
    pub source: String,
}

/// The memory and disk limits a build is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineLimits {
    /// Memory available now.
    pub memory: Limit,
    /// Free space on the output's file system.
    pub disk: Limit,
}

impl MachineLimits {
    /// Reads the limits now: `MemAvailable` and the free space of the file system holding
    /// `out_dir` (or its nearest existing ancestor), each replaced by its fixed cap
    /// ([`FALLBACK_MEMORY_LIMIT`], [`FALLBACK_DISK_LIMIT`]) when it cannot be read.
    pub fn probe(out_dir: &Path) -> MachineLimits {
        let memory = match available_memory() {
            Some(bytes) => Limit {
                bytes,
                source: "available now (MemAvailable in /proc/meminfo)".into(),
            },
            None => Limit {
                bytes: FALLBACK_MEMORY_LIMIT,
                source: "fixed cap (the available memory could not be read)".into(),
            },
        };
        let existing = out_dir.ancestors().find(|p| p.is_dir());
        let disk = match existing.and_then(|d| free_disk_space(d).map(|b| (d, b))) {
            Some((dir, bytes)) => Limit {
                bytes,
                source: format!("free on the file system of {}", dir.display()),
            },
            None => Limit {
                bytes: FALLBACK_DISK_LIMIT,
                source: "fixed cap (the free disk space could not be read)".into(),
            },
        };
        MachineLimits { memory, disk }
    }
}

/// The memory available now, from `MemAvailable` in `/proc/meminfo`; `None` where that file
/// does not exist (not Linux) or has no such line.
pub fn available_memory() -> Option<u64> {
    parse_meminfo(&std::fs::read_to_string("/proc/meminfo").ok()?)
}

/// `MemAvailable` in bytes from the text of `/proc/meminfo` (`MemAvailable:  123456 kB`).
fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut parts = line["MemAvailable:".len()..].split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    let scale = match parts.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    value.checked_mul(scale)
}

/// Free bytes for an unprivileged user on the file system holding `path` (`statvfs`'s
/// `f_bavail * f_frsize`); `None` if it cannot be asked.
#[cfg(unix)]
#[allow(unsafe_code, clippy::unnecessary_cast)] // the statvfs field types differ between platforms
pub fn free_disk_space(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statvfs` only writes into the struct we pass, which lives on our stack and is
    // plain old data (all-zero is a valid value); the path is a NUL-terminated C string that
    // outlives the call.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    (stat.f_bavail as u64).checked_mul(stat.f_frsize as u64)
}

/// Free bytes on the file system holding `path`: not available on this platform.
#[cfg(not(unix))]
pub fn free_disk_space(_path: &Path) -> Option<u64> {
    None
}

/// A build's size, estimated from its options before anything is allocated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildEstimate {
    /// The option most responsible for the size, as on the command line (`aug`, `train`).
    pub option: &'static str,
    /// What is asked for, in words, e.g. `sudoku 9x9 with 1000 train puzzles x (1 + 1000
    /// augmentations) and 1000 test puzzles`.
    pub what: String,
    /// Bytes held in memory at the peak (an upper estimate).
    pub memory: u64,
    /// Bytes written to the output directory (an upper estimate).
    pub disk: u64,
    /// Examples of the largest set.
    pub largest_set: u64,
}

impl BuildEstimate {
    /// Checks the estimate against `limits`, memory first, then disk, then the format's
    /// `i32` indices.
    ///
    /// # Errors
    /// [`DataError::TooLarge`] stating the estimate and the limit; [`DataError::Option`] for a
    /// set of more than [`MAX_SET_EXAMPLES`] examples.
    pub fn check(&self, limits: &MachineLimits) -> Result<()> {
        for (resource, needed, limit) in [
            (Resource::Memory, self.memory, &limits.memory),
            (Resource::Disk, self.disk, &limits.disk),
        ] {
            if needed > limit.bytes {
                return Err(DataError::TooLarge {
                    option: self.option,
                    what: self.what.clone(),
                    resource,
                    needed,
                    limit: limit.bytes,
                    limit_source: limit.source.clone(),
                });
            }
        }
        if self.largest_set > MAX_SET_EXAMPLES {
            return Err(DataError::option(
                self.option,
                format!(
                    "{} makes {} examples in one set, more than the {MAX_SET_EXAMPLES} that the \
                     format's i32 indices can number",
                    self.what, self.largest_set
                ),
            ));
        }
        Ok(())
    }
}

/// Refuses an empty split unless `allow_empty`: `what` says which and why, e.g. `with 0 train
/// puzzles, the train split`.
///
/// # Errors
/// [`DataError::Option`] naming `option` when `count` is 0 and empty splits are not allowed.
pub(crate) fn check_not_empty(
    option: &'static str,
    what: &str,
    count: usize,
    allow_empty: bool,
) -> Result<()> {
    if count == 0 && !allow_empty {
        return Err(DataError::option(
            option,
            format!("{what} would be empty (set `allow_empty` to build it anyway)"),
        ));
    }
    Ok(())
}

/// Saturating byte arithmetic for estimates: absurd options must give a huge number, never an
/// overflow panic or a wrapped small one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Bytes(u128);

impl Bytes {
    /// `n` bytes (or items).
    pub fn of(n: impl Into<u128>) -> Bytes {
        Bytes(n.into())
    }

    /// `self * n`, saturating.
    pub fn times(self, n: impl Into<u128>) -> Bytes {
        Bytes(self.0.saturating_mul(n.into()))
    }

    /// `self + other`, saturating.
    pub fn plus(self, other: Bytes) -> Bytes {
        Bytes(self.0.saturating_add(other.0))
    }

    /// The value as `u64`, saturating.
    pub fn get(self) -> u64 {
        u64::try_from(self.0).unwrap_or(u64::MAX)
    }
}

/// `usize` to `u128` (lossless on every platform Rust supports).
pub(crate) fn wide(n: usize) -> u128 {
    n as u128
}

/// Bytes for a message: `35.2 TiB (38700000000000 bytes)`; `u64::MAX` reads as "more than".
pub fn bytes_text(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes == u64::MAX {
        return "more than 16 EiB".into();
    }
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {} ({bytes} bytes)", UNITS[unit])
    }
}

/// Per-set overhead on disk: five `.npy` files and `dataset.json`, each up to a 4 KiB file
/// system block beyond its bytes (headers, rounding).
pub(crate) const SET_OVERHEAD_BYTES: u64 = 6 * 4096;

/// Memory of one entry of a fingerprint set (`HashSet<u64>`): 8 bytes plus a control byte per
/// bucket, and up to 16/7 buckets per entry (7/8 load, rounded up to a power of two).
pub(crate) const FINGERPRINT_BYTES: u64 = 21;

/// Memory per puzzle of a set's index arrays while the set is being written: identifier and
/// first-example `i32`s, plus their byte copy when `finish` writes them.
pub(crate) const INDEX_BYTES: u64 = 12;

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(memory: u64, disk: u64) -> MachineLimits {
        MachineLimits {
            memory: Limit {
                bytes: memory,
                source: "available now (test)".into(),
            },
            disk: Limit {
                bytes: disk,
                source: "free on the file system of /test".into(),
            },
        }
    }

    fn estimate(memory: u64, disk: u64, largest_set: u64) -> BuildEstimate {
        BuildEstimate {
            option: "aug",
            what: "a test build".into(),
            memory,
            disk,
            largest_set,
        }
    }

    #[test]
    fn meminfo_is_read_in_bytes() {
        let text =
            "MemTotal:       32000000 kB\nMemFree:         1000 kB\nMemAvailable:   20971520 kB\n";
        assert_eq!(parse_meminfo(text), Some(20 << 30));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: lots kB\n"), None);
        assert_eq!(parse_meminfo("MemAvailable: 99999999999999999 kB\n"), None);
    }

    #[test]
    fn the_machine_answers_on_linux() {
        let dir = tempfile::tempdir().unwrap();
        let l = MachineLimits::probe(&dir.path().join("not/yet/made"));
        if std::path::Path::new("/proc/meminfo").exists() {
            assert!(l.memory.source.contains("MemAvailable"), "{l:?}");
            assert!(l.memory.bytes > 0);
        }
        #[cfg(unix)]
        {
            assert!(
                l.disk.source.contains("free on the file system of"),
                "{l:?}"
            );
            // The nearest existing ancestor is asked.
            assert!(l.disk.source.ends_with(&dir.path().display().to_string()));
        }
    }

    #[test]
    fn memory_then_disk_then_indices() {
        let l = limits(1000, 5000);
        estimate(1000, 5000, 10).check(&l).unwrap();
        let err = estimate(1001, 9999, 10).check(&l).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TooLarge {
                    resource: Resource::Memory,
                    needed: 1001,
                    limit: 1000,
                    ..
                }
            ),
            "{err}"
        );
        let err = estimate(10, 2 << 30, 10).check(&l).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::TooLarge {
                    resource: Resource::Disk,
                    limit: 5000,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "option `aug`: a test build would need about 2.0 GiB (2147483648 bytes) of disk \
             space, more than the 4.9 KiB (5000 bytes) free on the file system of /test; ask \
             for less"
        );
        let err = estimate(10, 10, MAX_SET_EXAMPLES + 1)
            .check(&l)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("2147483648 examples in one set, more than the 2147483647"),
            "{err}"
        );
    }

    #[test]
    fn byte_arithmetic_saturates() {
        let huge = Bytes::of(u64::MAX).times(u64::MAX).times(u64::MAX);
        assert_eq!(huge.get(), u64::MAX);
        assert_eq!(bytes_text(huge.get()), "more than 16 EiB");
        assert_eq!(Bytes::of(3u8).times(4u8).plus(Bytes::of(1u8)).get(), 13);
        assert_eq!(bytes_text(512), "512 bytes");
        assert_eq!(bytes_text(3 << 20), "3.0 MiB (3145728 bytes)");
    }
}
