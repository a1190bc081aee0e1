//! Reading a split: `dataset.json`, `identifiers.json` and the five arrays of each set, every
//! array validated against the metadata.
//!
//! Mirrors `PuzzleDataset._load_metadata` and `_lazy_load_dataset` of the reference's
//! `puzzle_dataset.py` (token arrays memory-mapped, index arrays in memory). What differs: the
//! reference trusts its files; [`Dataset::open`] names the file and field of any disagreement.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::DatasetMetadata;
use crate::error::{DataError, Result};
use crate::npy::NpyArray;

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
