//! Writing a dataset atomically: [`DatasetWriter`] fills a hidden temporary sibling of the
//! destination and renames it into place; [`SetWriter`] streams one set's token rows to disk.
//!
//! Mirrors the `np.save` / `json.dump` code at the end of each reference
//! `dataset/build_*_dataset.py`. What differs: nothing appears at the destination until every
//! file is written, and an older dataset there is replaced only then.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::{to_python_json, DatasetMetadata};
use crate::error::{DataError, Result};
use crate::npy::{self, Dtype, NpyWriter};

/// Counts of one written set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetStats {
    /// Set name.
    pub name: String,
    /// Examples written.
    pub examples: usize,
    /// Puzzles written.
    pub puzzles: usize,
    /// Groups written.
    pub groups: usize,
}

/// Streams one set's arrays: token rows go straight to disk, the small index arrays are kept
/// in memory and written by [`SetWriter::finish`].
pub struct SetWriter {
    dir: PathBuf,
    name: String,
    seq_len: usize,
    inputs: NpyWriter,
    labels: NpyWriter,
    puzzle_identifiers: Vec<i32>,
    puzzle_indices: Vec<i32>,
    group_indices: Vec<i32>,
    examples: usize,
}

impl SetWriter {
    /// Appends one puzzle: its identifier and its examples' tokens, `k * seq_len` bytes each
    /// for inputs and labels.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file; [`DataError::Option`] past `i32::MAX` examples.
    ///
    /// # Panics
    /// If the two slices differ in length or are not a whole number of examples.
    pub fn push_puzzle(&mut self, identifier: i32, inputs: &[u8], labels: &[u8]) -> Result<()> {
        assert_eq!(
            inputs.len(),
            labels.len(),
            "inputs and labels differ in length"
        );
        assert_eq!(
            inputs.len() % self.seq_len,
            0,
            "not a whole number of examples"
        );
        self.inputs.write_rows(inputs)?;
        self.labels.write_rows(labels)?;
        self.examples += inputs.len() / self.seq_len;
        let end = i32::try_from(self.examples).map_err(|_| {
            DataError::option(
                "examples",
                format!(
                    "set `{}` passed {} examples (i32 indices)",
                    self.name,
                    i32::MAX
                ),
            )
        })?;
        self.puzzle_indices.push(end);
        self.puzzle_identifiers.push(identifier);
        Ok(())
    }

    /// Closes the current group (the puzzles pushed since the last call). Does nothing if no
    /// puzzle was pushed since (groups are never empty).
    pub fn end_group(&mut self) {
        let puzzles = self.puzzle_identifiers.len() as i32;
        if *self.group_indices.last().expect("starts with 0") != puzzles {
            self.group_indices.push(puzzles);
        }
    }

    /// Examples written so far.
    pub fn examples(&self) -> usize {
        self.examples
    }

    /// Closes any open group and writes all five files.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file.
    pub fn finish(mut self) -> Result<SetStats> {
        self.end_group();
        self.inputs.finish()?;
        self.labels.finish()?;
        let path = |f: &str| self.dir.join(format!("{}__{f}.npy", self.name));
        npy::write_i32(
            &path("puzzle_identifiers"),
            &[self.puzzle_identifiers.len()],
            &self.puzzle_identifiers,
        )?;
        npy::write_i32(
            &path("puzzle_indices"),
            &[self.puzzle_indices.len()],
            &self.puzzle_indices,
        )?;
        npy::write_i32(
            &path("group_indices"),
            &[self.group_indices.len()],
            &self.group_indices,
        )?;
        Ok(SetStats {
            name: self.name,
            examples: self.examples,
            puzzles: self.puzzle_identifiers.len(),
            groups: self.group_indices.len() - 1,
        })
    }
}

/// The metadata of a split from its sets' counts and the task's constants (`pad_id` 0,
/// `ignore_label_id` 0 and `blank_identifier_id` 0, as in every reference builder).
pub fn split_metadata(
    stats: &[SetStats],
    vocab_size: usize,
    seq_len: usize,
    num_puzzle_identifiers: usize,
) -> DatasetMetadata {
    let examples: usize = stats.iter().map(|s| s.examples).sum();
    let puzzles: usize = stats.iter().map(|s| s.puzzles).sum();
    DatasetMetadata {
        pad_id: 0,
        ignore_label_id: Some(0),
        blank_identifier_id: 0,
        vocab_size,
        seq_len,
        num_puzzle_identifiers,
        total_groups: stats.iter().map(|s| s.groups).sum(),
        mean_puzzle_examples: if puzzles == 0 {
            0.0
        } else {
            examples as f64 / puzzles as f64
        },
        total_puzzles: Some(puzzles),
        sets: stats.iter().map(|s| s.name.clone()).collect(),
    }
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes a whole dataset atomically: everything goes into a hidden temporary sibling of the
/// destination, which [`DatasetWriter::commit`] renames into place. Dropping the writer
/// without committing removes the temporary directory, so a failed build leaves nothing at
/// the destination (and an older dataset there untouched).
#[derive(Debug)]
pub struct DatasetWriter {
    dest: PathBuf,
    tmp: PathBuf,
    committed: bool,
    stale_removed: Vec<PathBuf>,
}

impl DatasetWriter {
    /// Prepares to write a dataset at `dest`. Hidden temporary directories that earlier builds
    /// of the same destination left behind when they were killed (`.NAME.tmp-PID-...` of a
    /// process that no longer runs, and `.NAME.old-PID-...` once `dest` exists again) are
    /// removed first; [`DatasetWriter::stale_removed`] lists them.
    ///
    /// # Errors
    /// [`DataError::DestinationNotDataset`] if `dest` exists and is neither empty nor a
    /// dataset (so `--out ~` cannot wipe a home directory); [`DataError::Io`] if the temporary
    /// directory cannot be made.
    pub fn create(dest: &Path) -> Result<DatasetWriter> {
        if dest.exists() && !is_replaceable(dest) {
            return Err(DataError::DestinationNotDataset {
                path: dest.to_path_buf(),
            });
        }
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent).map_err(|e| DataError::io(&parent, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "dataset".into());
        let unique = format!(
            "{}-{}-{}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        );
        let stale_removed = remove_stale_temporaries(&parent, &name, dest.is_dir());
        let tmp = parent.join(format!(".{name}.tmp-{unique}"));
        std::fs::create_dir(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(DatasetWriter {
            dest: dest.to_path_buf(),
            tmp,
            committed: false,
            stale_removed,
        })
    }

    /// The temporary directories of earlier, interrupted builds that [`DatasetWriter::create`]
    /// removed.
    pub fn stale_removed(&self) -> &[PathBuf] {
        &self.stale_removed
    }

    /// The final destination.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// The temporary directory being filled (for extra files).
    pub fn root(&self) -> &Path {
        &self.tmp
    }

    /// Starts writing `split/set`.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the directory or file.
    pub fn set_writer(&self, split: &str, set: &str, seq_len: usize) -> Result<SetWriter> {
        let dir = self.tmp.join(split);
        std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
        let inputs = NpyWriter::create(
            &dir.join(format!("{set}__inputs.npy")),
            Dtype::U8,
            &[seq_len],
        )?;
        let labels = NpyWriter::create(
            &dir.join(format!("{set}__labels.npy")),
            Dtype::U8,
            &[seq_len],
        )?;
        Ok(SetWriter {
            dir,
            name: set.to_string(),
            seq_len,
            inputs,
            labels,
            puzzle_identifiers: Vec::new(),
            puzzle_indices: vec![0],
            group_indices: vec![0],
            examples: 0,
        })
    }

    /// Writes `split/dataset.json`.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file.
    pub fn write_metadata(&self, split: &str, metadata: &DatasetMetadata) -> Result<()> {
        self.write_json(&format!("{split}/dataset.json"), metadata)
    }

    /// Writes `identifiers.json`.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file.
    pub fn write_identifiers(&self, names: &[String]) -> Result<()> {
        self.write_json("identifiers.json", names)
    }

    /// Writes any JSON file at `relative` inside the dataset, in the reference's JSON style.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file.
    pub fn write_json<T: Serialize + ?Sized>(&self, relative: &str, value: &T) -> Result<()> {
        let path = self.tmp.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
        }
        let bytes = to_python_json(value)?;
        std::fs::write(&path, bytes).map_err(|e| DataError::io(&path, e))
    }

    /// Moves the finished dataset into place, replacing an older dataset at the destination.
    ///
    /// # Errors
    /// [`DataError::Io`] if a rename fails (the temporary directory is then removed and an
    /// older dataset is put back).
    pub fn commit(mut self) -> Result<PathBuf> {
        let dest = self.dest.clone();
        if dest.exists() {
            let old = self.tmp.with_file_name(
                self.tmp
                    .file_name()
                    .expect("named")
                    .to_string_lossy()
                    .replacen(".tmp-", ".old-", 1),
            );
            std::fs::rename(&dest, &old).map_err(|e| DataError::io(&dest, e))?;
            if let Err(e) = std::fs::rename(&self.tmp, &dest) {
                let _ = std::fs::rename(&old, &dest);
                return Err(DataError::io(&dest, e));
            }
            self.committed = true;
            std::fs::remove_dir_all(&old).map_err(|e| DataError::io(&old, e))?;
        } else {
            std::fs::rename(&self.tmp, &dest).map_err(|e| DataError::io(&dest, e))?;
            self.committed = true;
        }
        Ok(dest)
    }
}

impl Drop for DatasetWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Removes `parent/.NAME.tmp-PID-*` directories whose process is gone (a build killed before
/// it could clean up), and `parent/.NAME.old-PID-*` ones as well when the destination exists
/// (a commit killed after the new dataset was in place; while the destination is missing, the
/// `.old-` directory may be the only copy of the previous dataset and is kept). Directories of
/// this process or of a running one are another build's work in progress and are kept; so is
/// everything where it cannot be told whether the process runs. Best effort: a directory that
/// cannot be removed stays. Returns what was removed.
fn remove_stale_temporaries(parent: &Path, name: &str, dest_exists: bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut prefixes = vec![format!(".{name}.tmp-")];
    if dest_exists {
        prefixes.push(format!(".{name}.old-"));
    }
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = prefixes
            .iter()
            .find_map(|p| file_name.strip_prefix(p.as_str()))
        else {
            continue;
        };
        // Our temporary names are `PID-COUNTER-NANOS`; anything else is not ours.
        let Some(pid) = stale_pid(rest) else {
            continue;
        };
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && pid != std::process::id() && process_gone(pid) {
            let path = entry.path();
            if std::fs::remove_dir_all(&path).is_ok() {
                removed.push(path);
            }
        }
    }
    removed.sort();
    removed
}

/// The process id of a temporary name's `PID-COUNTER-NANOS` tail.
fn stale_pid(rest: &str) -> Option<u32> {
    let parts: Vec<&str> = rest.split('-').collect();
    match parts[..] {
        [pid, counter, nanos] if counter.parse::<u64>().is_ok() && nanos.parse::<u64>().is_ok() => {
            pid.parse().ok()
        }
        _ => None,
    }
}

/// Whether process `pid` has certainly ended: `/proc` is there and has no entry for it.
fn process_gone(pid: u32) -> bool {
    Path::new("/proc/self").exists() && !Path::new("/proc").join(pid.to_string()).exists()
}

/// An existing destination may be replaced if it is an empty directory or holds a dataset.
fn is_replaceable(dest: &Path) -> bool {
    if !dest.is_dir() {
        return false;
    }
    let empty = std::fs::read_dir(dest)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    empty
        || dest.join("identifiers.json").is_file()
        || dest.join("train/dataset.json").is_file()
        || dest.join("test/dataset.json").is_file()
}
