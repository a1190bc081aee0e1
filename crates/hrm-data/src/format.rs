//! The on-disk dataset format: `dataset.json`, `<set>__<field>.npy`, `identifiers.json`.
//!
//! Mirrors the reference's `PuzzleDatasetMetadata` (`dataset/common.py`), the loader in
//! `puzzle_dataset.py` (`PuzzleDataset._load_metadata`, `_lazy_load_dataset`) and the writing
//! code at the end of each `dataset/build_*_dataset.py`. The layout is
//!
//! ```text
//! DIR/identifiers.json                     ["<blank>", "007bbfb7", ...]
//! DIR/test_puzzles.json                    (ARC only) the test tasks with their solutions
//! DIR/{train,test}/dataset.json            DatasetMetadata
//! DIR/{train,test}/<set>__inputs.npy       [N, seq_len] tokens (u8 as written by the reference)
//! DIR/{train,test}/<set>__labels.npy       [N, seq_len] tokens, ignore_label_id where no loss
//! DIR/{train,test}/<set>__puzzle_identifiers.npy  [P] i32, the identifier of each puzzle
//! DIR/{train,test}/<set>__puzzle_indices.npy      [P + 1] i32, first example of each puzzle
//! DIR/{train,test}/<set>__group_indices.npy       [G + 1] i32, first puzzle of each group
//! ```
//!
//! What differs: the reference trusts its files; [`Dataset::open`] validates every array
//! against the metadata and names the file and field of any mismatch. [`DatasetWriter`] writes
//! into a temporary sibling directory and renames it into place only when everything is written,
//! so a failed build leaves nothing at the destination. The metadata gains TRM's `total_puzzles`
//! field (optional when reading), which the HRM loader ignores and the TRM loader requires.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::npy::{self, Dtype, NpyArray, NpyWriter};

/// The five arrays of a set, in the reference's naming (`<set>__<field>.npy`).
pub const FIELDS: [&str; 5] = [
    "inputs",
    "labels",
    "puzzle_identifiers",
    "puzzle_indices",
    "group_indices",
];

/// The name of identifier 0, the padding identifier, in `identifiers.json`.
pub const BLANK_IDENTIFIER: &str = "<blank>";

/// `dataset.json`: the reference's `PuzzleDatasetMetadata`, one per split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetMetadata {
    /// Token used to pad inputs (0 in every reference dataset).
    pub pad_id: i32,
    /// Label value that carries no loss; the samplers map it to -100. `None`: none.
    pub ignore_label_id: Option<i32>,
    /// Puzzle identifier of padding rows (0, named `<blank>` in `identifiers.json`).
    pub blank_identifier_id: i32,
    /// Number of distinct tokens; every input and label is below it.
    pub vocab_size: usize,
    /// Tokens per example.
    pub seq_len: usize,
    /// Number of puzzle identifiers, including the blank one.
    pub num_puzzle_identifiers: usize,
    /// Groups summed over the split's sets.
    pub total_groups: usize,
    /// Examples per puzzle, averaged over the split's puzzles.
    pub mean_puzzle_examples: f64,
    /// Puzzles summed over the split's sets (TRM's addition; absent in HRM datasets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_puzzles: Option<usize>,
    /// Set names; each has the five `<set>__<field>.npy` files.
    pub sets: Vec<String>,
}

/// How much [`Dataset::open_with`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Shapes, indices and identifiers, plus every input and label token against the
    /// vocabulary (a parallel scan of the token arrays).
    Full,
    /// Everything except the scan of the token arrays (for very large datasets already checked).
    Structure,
}

/// One set of a split: memory-mapped token arrays plus the index arrays in memory (as the
/// reference keeps them).
#[derive(Debug)]
pub struct PuzzleSet {
    name: String,
    inputs: NpyArray,
    labels: NpyArray,
    puzzle_identifiers: Vec<i32>,
    puzzle_indices: Vec<usize>,
    group_indices: Vec<usize>,
    seq_len: usize,
}

impl PuzzleSet {
    /// The set name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of examples (rows of `inputs`).
    pub fn num_examples(&self) -> usize {
        self.puzzle_indices.last().copied().unwrap_or(0)
    }

    /// Number of puzzles.
    pub fn num_puzzles(&self) -> usize {
        self.puzzle_identifiers.len()
    }

    /// Number of groups.
    pub fn num_groups(&self) -> usize {
        self.group_indices.len().saturating_sub(1)
    }

    /// The memory-mapped inputs `[N, seq_len]`.
    pub fn inputs(&self) -> &NpyArray {
        &self.inputs
    }

    /// The memory-mapped labels `[N, seq_len]`.
    pub fn labels(&self) -> &NpyArray {
        &self.labels
    }

    /// Identifier of each puzzle, `[P]`.
    pub fn puzzle_identifiers(&self) -> &[i32] {
        &self.puzzle_identifiers
    }

    /// First example of each puzzle, `[P + 1]` (the last entry is `N`).
    pub fn puzzle_indices(&self) -> &[usize] {
        &self.puzzle_indices
    }

    /// First puzzle of each group, `[G + 1]` (the last entry is `P`).
    pub fn group_indices(&self) -> &[usize] {
        &self.group_indices
    }

    /// Copies example `i`'s tokens (as stored, ignore label not mapped) into the two slices.
    ///
    /// # Panics
    /// If `i >= num_examples()` or a slice is not `seq_len` long.
    pub fn copy_example(&self, i: usize, inputs: &mut [i32], labels: &mut [i32]) {
        assert!(
            i < self.num_examples(),
            "example {i} of set {} out of range",
            self.name
        );
        self.inputs.copy_to_i32(i * self.seq_len, inputs);
        self.labels.copy_to_i32(i * self.seq_len, labels);
    }

    /// Example `i`'s `(inputs, labels)` tokens, as stored.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] past the last example.
    pub fn example(&self, i: usize) -> Result<(Vec<i32>, Vec<i32>)> {
        self.check_example(i)?;
        let mut inputs = vec![0; self.seq_len];
        let mut labels = vec![0; self.seq_len];
        self.copy_example(i, &mut inputs, &mut labels);
        Ok((inputs, labels))
    }

    fn check_example(&self, i: usize) -> Result<()> {
        if i >= self.num_examples() {
            return Err(DataError::IndexOutOfRange {
                what: format!("example of set `{}`", self.name),
                index: i,
                len: self.num_examples(),
            });
        }
        Ok(())
    }

    /// The puzzle that example `i` belongs to.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] past the last example.
    pub fn puzzle_of_example(&self, i: usize) -> Result<usize> {
        self.check_example(i)?;
        // The last puzzle whose first example is <= i (the reference's searchsorted(side="right") - 1).
        Ok(self.puzzle_indices.partition_point(|&start| start <= i) - 1)
    }

    /// The puzzle identifier of example `i`.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] past the last example.
    pub fn puzzle_identifier_of_example(&self, i: usize) -> Result<i32> {
        Ok(self.puzzle_identifiers[self.puzzle_of_example(i)?])
    }
}

struct DatasetInner {
    dir: PathBuf,
    split: String,
    metadata: DatasetMetadata,
    sets: Vec<PuzzleSet>,
}

/// One split of a dataset on disk, validated and memory-mapped. Cloning is cheap (shared).
#[derive(Clone)]
pub struct Dataset {
    inner: Arc<DatasetInner>,
}

impl std::fmt::Debug for Dataset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataset")
            .field("dir", &self.inner.dir)
            .field("split", &self.inner.split)
            .field("metadata", &self.inner.metadata)
            .finish()
    }
}

impl Dataset {
    /// Opens `dir/split` with full validation ([`Validation::Full`]).
    ///
    /// # Errors
    /// [`DataError::Io`]/[`DataError::Json`]/[`DataError::Npy`] for unreadable files, and
    /// [`DataError::Field`] naming the file and field for every disagreement between the
    /// metadata and the arrays: shapes, index monotonicity and range, identifiers
    /// `>= num_puzzle_identifiers`, tokens `>= vocab_size`, `total_groups`,
    /// `mean_puzzle_examples`.
    pub fn open(dir: &Path, split: &str) -> Result<Dataset> {
        Dataset::open_with(dir, split, Validation::Full)
    }

    /// Opens `dir/split`, checking as much as `validation` says.
    ///
    /// # Errors
    /// As [`Dataset::open`].
    pub fn open_with(dir: &Path, split: &str, validation: Validation) -> Result<Dataset> {
        let split_dir = dir.join(split);
        let meta_path = split_dir.join("dataset.json");
        let metadata = read_metadata(&meta_path)?;
        check_metadata(&meta_path, &metadata)?;
        let mut sets = Vec::with_capacity(metadata.sets.len());
        for name in &metadata.sets {
            sets.push(open_set(&split_dir, name, &metadata, validation)?);
        }
        // Totals over sets.
        let groups: usize = sets.iter().map(PuzzleSet::num_groups).sum();
        if groups != metadata.total_groups {
            return Err(DataError::field(
                &meta_path,
                "total_groups",
                format!("{groups} (groups in the arrays)"),
                metadata.total_groups.to_string(),
            ));
        }
        let puzzles: usize = sets.iter().map(PuzzleSet::num_puzzles).sum();
        let examples: usize = sets.iter().map(PuzzleSet::num_examples).sum();
        if let Some(total) = metadata.total_puzzles {
            // TRM's Sudoku and Maze builders write the number of groups here; accept both.
            if total != puzzles && total != groups {
                return Err(DataError::field(
                    &meta_path,
                    "total_puzzles",
                    format!("{puzzles} (puzzles in the arrays)"),
                    total.to_string(),
                ));
            }
        }
        if puzzles > 0 {
            let mean = examples as f64 / puzzles as f64;
            // The reference's Sudoku and Maze builders write 1 whatever the arrays hold, which is
            // also the true value there; anything else must match the arrays.
            if (mean - metadata.mean_puzzle_examples).abs() > 1e-6 * mean.max(1.0) {
                return Err(DataError::field(
                    &meta_path,
                    "mean_puzzle_examples",
                    format!("{mean} ({examples} examples / {puzzles} puzzles)"),
                    metadata.mean_puzzle_examples.to_string(),
                ));
            }
        }
        Ok(Dataset {
            inner: Arc::new(DatasetInner {
                dir: dir.to_path_buf(),
                split: split.to_string(),
                metadata,
                sets,
            }),
        })
    }

    /// The dataset directory (parent of the split directories).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The split name (`train` or `test`).
    pub fn split(&self) -> &str {
        &self.inner.split
    }

    /// The split's `dataset.json`.
    pub fn metadata(&self) -> &DatasetMetadata {
        &self.inner.metadata
    }

    /// The sets, in `metadata().sets` order.
    pub fn sets(&self) -> &[PuzzleSet] {
        &self.inner.sets
    }

    /// The set called `name`.
    ///
    /// # Errors
    /// [`DataError::UnknownSet`].
    pub fn set(&self, name: &str) -> Result<&PuzzleSet> {
        self.inner
            .sets
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| DataError::UnknownSet {
                dir: self.inner.dir.clone(),
                split: self.inner.split.clone(),
                set: name.to_string(),
                available: self.inner.metadata.sets.clone(),
            })
    }

    /// Example `i` of `set`: `(inputs, labels)` tokens as stored (ignore label not mapped).
    ///
    /// # Errors
    /// [`DataError::UnknownSet`], [`DataError::IndexOutOfRange`].
    pub fn example(&self, set: &str, i: usize) -> Result<(Vec<i32>, Vec<i32>)> {
        self.set(set)?.example(i)
    }

    /// The puzzle identifier of example `i` of `set`.
    ///
    /// # Errors
    /// [`DataError::UnknownSet`], [`DataError::IndexOutOfRange`].
    pub fn puzzle_identifier_of_example(&self, set: &str, i: usize) -> Result<i32> {
        self.set(set)?.puzzle_identifier_of_example(i)
    }

    /// Examples summed over sets.
    pub fn num_examples(&self) -> usize {
        self.inner.sets.iter().map(PuzzleSet::num_examples).sum()
    }
}

/// Reads a split's `dataset.json`.
///
/// # Errors
/// [`DataError::Io`], [`DataError::Json`] naming the file.
pub fn read_metadata(path: &Path) -> Result<DatasetMetadata> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::json(path, e))
}

fn check_metadata(path: &Path, m: &DatasetMetadata) -> Result<()> {
    let f = |field: &str, expected: &str, found: String| {
        Err(DataError::field(path, field, expected, found))
    };
    if m.vocab_size == 0 {
        return f("vocab_size", "at least 1", m.vocab_size.to_string());
    }
    if m.seq_len == 0 {
        return f("seq_len", "at least 1", m.seq_len.to_string());
    }
    if m.pad_id < 0 || m.pad_id as usize >= m.vocab_size {
        return f(
            "pad_id",
            &format!("in 0..{}", m.vocab_size),
            m.pad_id.to_string(),
        );
    }
    if m.blank_identifier_id < 0 || m.blank_identifier_id as usize >= m.num_puzzle_identifiers {
        return f(
            "blank_identifier_id",
            &format!(
                "in 0..{} (num_puzzle_identifiers)",
                m.num_puzzle_identifiers
            ),
            m.blank_identifier_id.to_string(),
        );
    }
    if m.sets.is_empty() {
        return f("sets", "at least one set", "[]".into());
    }
    for s in &m.sets {
        if s.is_empty() || s.contains(['/', '\\']) || s.starts_with('.') {
            return f("sets", "plain file-name parts", format!("{s:?}"));
        }
    }
    if !(m.mean_puzzle_examples.is_finite() && m.mean_puzzle_examples >= 0.0) {
        return f(
            "mean_puzzle_examples",
            "a finite number >= 0",
            m.mean_puzzle_examples.to_string(),
        );
    }
    Ok(())
}

/// Reads a 1-D index array whole.
fn read_index_array(path: &Path, field: &str) -> Result<Vec<i64>> {
    let a = NpyArray::read(path)?;
    if a.shape().len() != 1 {
        return Err(DataError::field(
            path,
            field,
            "a 1-D array",
            format!("shape {:?}", a.shape()),
        ));
    }
    Ok(a.to_vec_i64())
}

/// Checks an index array: starts at 0, never decreases (strictly increases if `strict`), ends at
/// `end`; returns it as `usize`.
fn check_indices(
    path: &Path,
    field: &str,
    values: &[i64],
    end: usize,
    strict: bool,
) -> Result<Vec<usize>> {
    if values.first() != Some(&0) {
        return Err(DataError::field(
            path,
            field,
            "first entry 0",
            format!("{:?}", values.first()),
        ));
    }
    for (i, w) in values.windows(2).enumerate() {
        if w[1] < w[0] || (strict && w[1] == w[0]) {
            let order = if strict {
                "strictly increasing (no empty group)"
            } else {
                "non-decreasing"
            };
            return Err(DataError::field(
                path,
                field,
                order,
                format!("entry {} = {} after {}", i + 1, w[1], w[0]),
            ));
        }
    }
    let last = *values.last().expect("non-empty");
    if last != end as i64 {
        return Err(DataError::field(
            path,
            field,
            format!("last entry {end}"),
            last.to_string(),
        ));
    }
    Ok(values.iter().map(|&v| v as usize).collect())
}

fn open_set(
    split_dir: &Path,
    name: &str,
    m: &DatasetMetadata,
    validation: Validation,
) -> Result<PuzzleSet> {
    let file = |field: &str| split_dir.join(format!("{name}__{field}.npy"));
    let (inputs_path, labels_path) = (file("inputs"), file("labels"));
    let inputs = NpyArray::open(&inputs_path)?;
    let labels = NpyArray::open(&labels_path)?;
    let shape_text = |s: &[usize]| format!("{s:?}");
    if inputs.shape().len() != 2 || inputs.shape()[1] != m.seq_len {
        return Err(DataError::field(
            &inputs_path,
            "inputs",
            format!("shape [N, {}] (seq_len)", m.seq_len),
            shape_text(inputs.shape()),
        ));
    }
    let n = inputs.shape()[0];
    if labels.shape() != inputs.shape() {
        return Err(DataError::field(
            &labels_path,
            "labels",
            format!("shape {:?} (as inputs)", inputs.shape()),
            shape_text(labels.shape()),
        ));
    }

    let ident_path = file("puzzle_identifiers");
    let identifiers = read_index_array(&ident_path, "puzzle_identifiers")?;
    let p = identifiers.len();
    if let Some((i, &v)) = identifiers
        .iter()
        .enumerate()
        .find(|(_, &v)| v < 0 || v >= m.num_puzzle_identifiers as i64)
    {
        return Err(DataError::field(
            &ident_path,
            "puzzle_identifiers",
            format!(
                "values in 0..{} (num_puzzle_identifiers)",
                m.num_puzzle_identifiers
            ),
            format!("{v} at puzzle {i}"),
        ));
    }

    let pidx_path = file("puzzle_indices");
    let pidx = read_index_array(&pidx_path, "puzzle_indices")?;
    if pidx.len() != p + 1 {
        return Err(DataError::field(
            &pidx_path,
            "puzzle_indices",
            format!("length {} (puzzles + 1)", p + 1),
            pidx.len().to_string(),
        ));
    }
    let puzzle_indices = check_indices(&pidx_path, "puzzle_indices", &pidx, n, false)?;

    let gidx_path = file("group_indices");
    let gidx = read_index_array(&gidx_path, "group_indices")?;
    if gidx.is_empty() {
        return Err(DataError::field(
            &gidx_path,
            "group_indices",
            "at least one entry",
            "none",
        ));
    }
    let group_indices = check_indices(&gidx_path, "group_indices", &gidx, p, true)?;

    if validation == Validation::Full {
        let hi = m.vocab_size as i64 - 1;
        if let Some((i, v)) = inputs.first_outside(0, hi, None) {
            return Err(DataError::field(
                &inputs_path,
                "inputs",
                format!("tokens in 0..{} (vocab_size)", m.vocab_size),
                format!(
                    "{v} at example {}, position {}",
                    i / m.seq_len,
                    i % m.seq_len
                ),
            ));
        }
        if let Some((i, v)) = labels.first_outside(0, hi, m.ignore_label_id.map(i64::from)) {
            return Err(DataError::field(
                &labels_path,
                "labels",
                format!(
                    "tokens in 0..{} (vocab_size) or ignore_label_id",
                    m.vocab_size
                ),
                format!(
                    "{v} at example {}, position {}",
                    i / m.seq_len,
                    i % m.seq_len
                ),
            ));
        }
    }

    Ok(PuzzleSet {
        name: name.to_string(),
        inputs,
        labels,
        puzzle_identifiers: identifiers.iter().map(|&v| v as i32).collect(),
        puzzle_indices,
        group_indices,
        seq_len: m.seq_len,
    })
}

/// Reads `DIR/identifiers.json`: the name of every puzzle identifier (`<blank>` first).
///
/// # Errors
/// [`DataError::Io`], [`DataError::Json`] naming the file.
pub fn read_identifiers(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join("identifiers.json");
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::json(&path, e))
}

/// Serialises like Python's `json.dump` (`", "` and `": "` separators), as the reference writes.
struct PythonJsonFormatter;

impl serde_json::ser::Formatter for PythonJsonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `value` as JSON in the reference's style (`json.dump` separators).
///
/// # Errors
/// [`DataError::JsonOther`] if `value` cannot be serialised.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJsonFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

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
}

impl DatasetWriter {
    /// Prepares to write a dataset at `dest`.
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
        let tmp = parent.join(format!(".{name}.tmp-{unique}"));
        std::fs::create_dir(&tmp).map_err(|e| DataError::io(&tmp, e))?;
        Ok(DatasetWriter {
            dest: dest.to_path_buf(),
            tmp,
            committed: false,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a tiny two-set dataset by hand.
    fn write_tiny(dest: &Path) -> PathBuf {
        let w = DatasetWriter::create(dest).unwrap();
        let mut stats = Vec::new();
        for (set, offset) in [("a", 0u8), ("b", 1)] {
            let mut s = w.set_writer("train", set, 4).unwrap();
            s.push_puzzle(1, &[1, 2, 3, offset, 2, 2, 2, 2], &[0, 1, 1, 1, 3, 3, 3, 3])
                .unwrap();
            s.push_puzzle(2, &[3, 3, 3, 3], &[1, 0, 0, 0]).unwrap();
            s.end_group();
            s.push_puzzle(1, &[0, 0, 0, 0], &[2, 2, 2, 2]).unwrap();
            stats.push(s.finish().unwrap());
        }
        w.write_metadata("train", &split_metadata(&stats, 4, 4, 3))
            .unwrap();
        w.write_identifiers(&["<blank>".into(), "x".into(), "y".into()])
            .unwrap();
        w.commit().unwrap()
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let dest = write_tiny(&dir.path().join("ds"));
        let ds = Dataset::open(&dest, "train").unwrap();
        let m = ds.metadata();
        assert_eq!(m.sets, vec!["a", "b"]);
        assert_eq!(m.total_groups, 4);
        assert_eq!(m.total_puzzles, Some(6));
        assert!((m.mean_puzzle_examples - 4.0 / 3.0).abs() < 1e-12);
        let b = ds.set("b").unwrap();
        assert_eq!(
            (b.num_examples(), b.num_puzzles(), b.num_groups()),
            (4, 3, 2)
        );
        assert_eq!(b.example(0).unwrap(), (vec![1, 2, 3, 1], vec![0, 1, 1, 1]));
        assert_eq!(ds.puzzle_identifier_of_example("b", 2).unwrap(), 2);
        assert_eq!(ds.puzzle_identifier_of_example("b", 3).unwrap(), 1);
        assert_eq!(b.group_indices(), &[0, 2, 3]);
        assert!(matches!(
            ds.example("b", 4),
            Err(DataError::IndexOutOfRange {
                index: 4,
                len: 4,
                ..
            })
        ));
        assert!(matches!(ds.set("c"), Err(DataError::UnknownSet { .. })));
        assert_eq!(read_identifiers(&dest).unwrap()[2], "y");
        // Python json.dump style.
        let text = std::fs::read_to_string(dest.join("train/dataset.json")).unwrap();
        assert!(text.starts_with("{\"pad_id\": 0, \"ignore_label_id\": 0, \"blank_identifier_id\": 0, \"vocab_size\": 4"), "{text}");
    }

    #[test]
    fn validation_names_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let dest = write_tiny(&dir.path().join("ds"));
        let meta_path = dest.join("train/dataset.json");
        let original = read_metadata(&meta_path).unwrap();
        let check = |edit: &dyn Fn(&mut DatasetMetadata), field: &str, file: &str| {
            let mut m = original.clone();
            edit(&mut m);
            std::fs::write(&meta_path, to_python_json(&m).unwrap()).unwrap();
            match Dataset::open(&dest, "train") {
                Err(DataError::Field { path, field: f, .. }) => {
                    assert_eq!(f, field);
                    assert!(path.ends_with(file), "{path:?} should end with {file}");
                }
                other => panic!("expected a Field error for {field}, got {other:?}"),
            }
        };
        check(&|m| m.vocab_size = 3, "inputs", "a__inputs.npy");
        check(&|m| m.seq_len = 5, "inputs", "a__inputs.npy");
        check(
            &|m| m.num_puzzle_identifiers = 2,
            "puzzle_identifiers",
            "a__puzzle_identifiers.npy",
        );
        check(&|m| m.total_groups = 5, "total_groups", "dataset.json");
        check(
            &|m| m.mean_puzzle_examples = 1.0,
            "mean_puzzle_examples",
            "dataset.json",
        );
        check(&|m| m.pad_id = 9, "pad_id", "dataset.json");
        std::fs::write(&meta_path, to_python_json(&original).unwrap()).unwrap();
        Dataset::open(&dest, "train").unwrap();

        // Labels outside the vocabulary (4 is not < vocab_size 4 and is not the ignore label).
        let labels = dest.join("train/b__labels.npy");
        npy::write_u8(
            &labels,
            &[4, 4],
            &[0, 1, 1, 1, 3, 3, 3, 3, 1, 0, 0, 4, 2, 2, 2, 2],
        )
        .unwrap();
        let err = Dataset::open(&dest, "train").unwrap_err();
        assert!(
            matches!(&err, DataError::Field { field, .. } if field == "labels"),
            "{err}"
        );
        assert!(
            err.to_string().contains("4 at example 2, position 3"),
            "{err}"
        );

        // Non-monotone puzzle indices.
        let pidx = dest.join("train/a__puzzle_indices.npy");
        npy::write_i32(&pidx, &[4], &[0, 3, 2, 4]).unwrap();
        let err = Dataset::open(&dest, "train").unwrap_err();
        assert!(
            matches!(&err, DataError::Field { field, path, .. } if field == "puzzle_indices" && path.ends_with("a__puzzle_indices.npy")),
            "{err}"
        );
    }

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("ds");
        {
            let w = DatasetWriter::create(&dest).unwrap();
            let mut s = w.set_writer("train", "all", 2).unwrap();
            s.push_puzzle(0, &[1, 1], &[1, 1]).unwrap();
            // Dropped without commit, as on an error midway.
        }
        assert!(!dest.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "temporary directory left behind"
        );
    }

    #[test]
    fn replaces_datasets_but_not_other_directories() {
        let dir = tempfile::tempdir().unwrap();
        let dest = write_tiny(&dir.path().join("ds"));
        write_tiny(&dest);
        Dataset::open(&dest, "train").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let other = dir.path().join("home");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("notes.txt"), "keep").unwrap();
        assert!(matches!(
            DatasetWriter::create(&other),
            Err(DataError::DestinationNotDataset { .. })
        ));
    }
}
