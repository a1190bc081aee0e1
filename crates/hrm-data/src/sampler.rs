//! Batches for training and evaluation, and a background prefetcher.
//!
//! Mirrors the reference's `puzzle_dataset.py`: [`TrainSampler`] is `PuzzleDataset._iter_train`
//! with `_sample_batch` (per epoch and set a seeded shuffle of the groups; from each group one
//! random puzzle; from that puzzle random examples without replacement until the batch is full;
//! the last partial batch of a set dropped), [`EvalSampler`] is `_iter_test` (every example in
//! order, the last batch padded), and both collate like `_collate_batch` (tokens to `i32`, the
//! ignore label to -100, padding rows with `pad_id`, -100 and `blank_identifier_id`).
//! [`total_train_steps`] is the step count of `pretrain.py`'s `init_train_state`.
//!
//! What differs: one seeded ChaCha stream per (epoch, set) replaces the reference's Philox
//! generator plus NumPy's global generator, so a [`SamplerState`] (epoch, set, batches done)
//! is enough to restore a sampler exactly. The reference's `epochs_per_iter` (several
//! permutations concatenated before batching) is always 1 here: the sampler is infinite and
//! the trainer decides when to evaluate. There is a single replica (no `rank` slicing).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::format::{Dataset, DatasetMetadata, PuzzleSet};
use crate::rng::{self, DataRng};

/// The label value that carries no loss, as PyTorch's `ignore_index` (the reference's
/// `IGNORE_LABEL_ID` in `models/losses.py`).
pub const IGNORE_LABEL_ID: i32 = -100;

/// One batch, ready for the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The set the rows come from.
    pub set: String,
    /// Input tokens, `[B, seq_len]`.
    pub inputs: Array2<i32>,
    /// Label tokens, `[B, seq_len]`; the dataset's ignore label and padding rows are
    /// [`IGNORE_LABEL_ID`].
    pub labels: Array2<i32>,
    /// Puzzle identifier of each row, `[B]`; padding rows have `blank_identifier_id`.
    pub puzzle_identifiers: Array1<i32>,
    /// Rows that are real examples (the rest, at the end, are padding).
    pub effective_batch_size: usize,
    /// For each row, the index of its example in its set; `None` for padding rows.
    pub example_indices: Vec<Option<usize>>,
}

impl Batch {
    /// Rows in the batch, padding included.
    pub fn len(&self) -> usize {
        self.puzzle_identifiers.len()
    }

    /// Whether the batch has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows `rows` of the batch, as a batch of their own: one rank's share of a global batch in
    /// data-parallel training (the reference's `[rank * B / W, (rank + 1) * B / W)`).
    /// `effective_batch_size` counts the real examples among those rows.
    ///
    /// # Errors
    /// [`DataError::IndexOutOfRange`] when the range is not inside the batch.
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Result<Batch> {
        if rows.start > rows.end || rows.end > self.len() {
            return Err(DataError::IndexOutOfRange {
                what: format!("batch row (rows {}..{})", rows.start, rows.end),
                index: rows.end,
                len: self.len(),
            });
        }
        let example_indices = self.example_indices[rows.clone()].to_vec();
        Ok(Batch {
            set: self.set.clone(),
            inputs: self.inputs.slice(ndarray::s![rows.clone(), ..]).to_owned(),
            labels: self.labels.slice(ndarray::s![rows.clone(), ..]).to_owned(),
            puzzle_identifiers: self.puzzle_identifiers.slice(ndarray::s![rows]).to_owned(),
            effective_batch_size: example_indices.iter().filter(|e| e.is_some()).count(),
            example_indices,
        })
    }
}

/// Builds a batch of `rows` examples of `set`, padded to `batch_size` rows.
fn collate(
    meta: &DatasetMetadata,
    set: &PuzzleSet,
    rows: &[(usize, usize)],
    batch_size: usize,
) -> Batch {
    let seq = meta.seq_len;
    let mut inputs = Array2::from_elem((batch_size, seq), meta.pad_id);
    let mut labels = Array2::from_elem((batch_size, seq), IGNORE_LABEL_ID);
    let mut identifiers = Array1::from_elem(batch_size, meta.blank_identifier_id);
    let mut example_indices = vec![None; batch_size];
    for (row, &(example, puzzle)) in rows.iter().enumerate() {
        let mut inp = inputs.row_mut(row);
        let mut lab = labels.row_mut(row);
        set.copy_example(
            example,
            inp.as_slice_mut().expect("standard layout"),
            lab.as_slice_mut().expect("standard layout"),
        );
        if let Some(ignore) = meta.ignore_label_id {
            lab.mapv_inplace(|v| if v == ignore { IGNORE_LABEL_ID } else { v });
        }
        identifiers[row] = set.puzzle_identifiers()[puzzle];
        example_indices[row] = Some(example);
    }
    Batch {
        set: set.name().to_string(),
        inputs,
        labels,
        puzzle_identifiers: identifiers,
        effective_batch_size: rows.len(),
        example_indices,
    }
}

/// Where a [`TrainSampler`] stands; serialise it into a checkpoint and pass it to
/// [`TrainSampler::restore`] to continue with exactly the batches an uninterrupted run gets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SamplerState {
    /// The sampler's seed.
    pub seed: u64,
    /// Rows per batch (checked on restore).
    pub global_batch_size: usize,
    /// Epoch of the next batch (0-based).
    pub epoch: u64,
    /// Set (index into `metadata.sets`) of the next batch.
    pub set_index: usize,
    /// Batches already yielded from this set in this epoch.
    pub position: u64,
}

/// The training iterator: infinite over epochs, seeded, restorable.
#[derive(Debug)]
pub struct TrainSampler {
    dataset: Dataset,
    global_batch_size: usize,
    seed: u64,
    epoch: u64,
    set_index: usize,
    position: u64,
    rng: DataRng,
    group_order: Vec<usize>,
    cursor: usize,
}

impl TrainSampler {
    /// A sampler at the start of epoch 0.
    ///
    /// # Errors
    /// [`DataError::Option`] if `global_batch_size` is 0, or so large that no set can fill
    /// one batch in an epoch (the sum over groups of the smallest puzzle is below it).
    pub fn new(dataset: &Dataset, global_batch_size: usize, seed: u64) -> Result<TrainSampler> {
        if global_batch_size == 0 {
            return Err(DataError::option("global_batch_size", "must be at least 1"));
        }
        let fillable = dataset.sets().iter().any(|s| {
            let gi = s.group_indices();
            let pi = s.puzzle_indices();
            let least: usize = gi
                .windows(2)
                .map(|g| (g[0]..g[1]).map(|p| pi[p + 1] - pi[p]).min().unwrap_or(0))
                .sum();
            least >= global_batch_size
        });
        if !fillable {
            return Err(DataError::option(
                "global_batch_size",
                format!(
                    "{global_batch_size} is more than one epoch of split `{}` in {} can always fill ({} examples in all)",
                    dataset.split(),
                    dataset.dir().display(),
                    dataset.num_examples()
                ),
            ));
        }
        let mut s = TrainSampler {
            dataset: dataset.clone(),
            global_batch_size,
            seed,
            epoch: 0,
            set_index: 0,
            position: 0,
            rng: rng::stream(seed, rng::domain::SAMPLER, 0),
            group_order: Vec::new(),
            cursor: 0,
        };
        s.start_set();
        Ok(s)
    }

    /// A sampler that continues from `state`.
    ///
    /// # Errors
    /// As [`TrainSampler::new`], and [`DataError::Option`] if `state.set_index` is past the sets
    /// or `state.position` past the full batches the set yields in an epoch.
    pub fn restore(dataset: &Dataset, state: &SamplerState) -> Result<TrainSampler> {
        let mut s = TrainSampler::new(dataset, state.global_batch_size, state.seed)?;
        if state.set_index >= dataset.sets().len() {
            return Err(DataError::option(
                "sampler_state.set_index",
                format!(
                    "{} but the split has {} sets",
                    state.set_index,
                    dataset.sets().len()
                ),
            ));
        }
        s.epoch = state.epoch;
        s.set_index = state.set_index;
        s.start_set();
        for done in 0..state.position {
            // Replays the draws of the batches already yielded; they were all full. A set runs
            // out of groups after at most one batch per group, so a corrupted position ends
            // here instead of replaying for ever.
            if s.draw().len() < s.global_batch_size {
                return Err(DataError::option(
                    "sampler_state.position",
                    format!(
                        "{} but set `{}` yields only {done} full batches of {} per epoch",
                        state.position,
                        dataset.metadata().sets[state.set_index],
                        s.global_batch_size
                    ),
                ));
            }
        }
        s.position = state.position;
        Ok(s)
    }

    /// The state to save for [`TrainSampler::restore`].
    pub fn state(&self) -> SamplerState {
        SamplerState {
            seed: self.seed,
            global_batch_size: self.global_batch_size,
            epoch: self.epoch,
            set_index: self.set_index,
            position: self.position,
        }
    }

    /// The epoch of the next batch (0-based).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn start_set(&mut self) {
        let num_sets = self.dataset.sets().len() as u64;
        // One stream per (epoch, set), as the reference seeds Philox(seed + iteration).
        self.rng = rng::stream(
            self.seed,
            rng::domain::SAMPLER,
            // Wrapping: the same stream ids as plain arithmetic for every reachable epoch, and
            // no overflow panic for an absurd one restored from a corrupted state.
            self.epoch
                .wrapping_mul(num_sets)
                .wrapping_add(self.set_index as u64),
        );
        let groups = self.dataset.sets()[self.set_index].num_groups();
        self.group_order = rng::permutation(&mut self.rng, groups);
        self.cursor = 0;
        self.position = 0;
    }

    /// Draws the next batch's `(example, puzzle)` rows of the current set; fewer than a batch
    /// when the set's groups run out.
    fn draw(&mut self) -> Vec<(usize, usize)> {
        let set = &self.dataset.sets()[self.set_index];
        let (gi, pi) = (set.group_indices(), set.puzzle_indices());
        let mut rows = Vec::with_capacity(self.global_batch_size);
        while self.cursor < self.group_order.len() && rows.len() < self.global_batch_size {
            let g = self.group_order[self.cursor];
            self.cursor += 1;
            let puzzle = gi[g] + rng::below(&mut self.rng, gi[g + 1] - gi[g]);
            let start = pi[puzzle];
            let size = pi[puzzle + 1] - start;
            let take = size.min(self.global_batch_size - rows.len());
            for k in rng::sample_without_replacement(&mut self.rng, size, take) {
                rows.push((start + k, puzzle));
            }
        }
        rows
    }
}

impl Iterator for TrainSampler {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        loop {
            let rows = self.draw();
            if rows.len() == self.global_batch_size {
                self.position += 1;
                let set = &self.dataset.sets()[self.set_index];
                return Some(collate(
                    self.dataset.metadata(),
                    set,
                    &rows,
                    self.global_batch_size,
                ));
            }
            // Drop the last partial batch; move to the next set, or the next epoch.
            self.set_index += 1;
            if self.set_index == self.dataset.sets().len() {
                self.set_index = 0;
                self.epoch = self.epoch.wrapping_add(1);
            }
            self.start_set();
        }
    }
}

/// The evaluation iterator: every example of every set once, in order; the last batch of
/// each set padded.
#[derive(Debug)]
pub struct EvalSampler {
    dataset: Dataset,
    global_batch_size: usize,
    set_index: usize,
    start: usize,
}

impl EvalSampler {
    /// An iterator over the whole split.
    ///
    /// # Errors
    /// [`DataError::Option`] if `global_batch_size` is 0.
    pub fn new(dataset: &Dataset, global_batch_size: usize) -> Result<EvalSampler> {
        if global_batch_size == 0 {
            return Err(DataError::option("global_batch_size", "must be at least 1"));
        }
        Ok(EvalSampler {
            dataset: dataset.clone(),
            global_batch_size,
            set_index: 0,
            start: 0,
        })
    }

    /// Number of batches the iterator yields in all.
    pub fn num_batches(&self) -> usize {
        self.dataset
            .sets()
            .iter()
            .map(|s| s.num_examples().div_ceil(self.global_batch_size))
            .sum()
    }
}

impl Iterator for EvalSampler {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        loop {
            let set = self.dataset.sets().get(self.set_index)?;
            let n = set.num_examples();
            if self.start >= n {
                self.set_index += 1;
                self.start = 0;
                continue;
            }
            let end = n.min(self.start + self.global_batch_size);
            let pi = set.puzzle_indices();
            let mut puzzle = pi.partition_point(|&s| s <= self.start) - 1;
            let rows: Vec<(usize, usize)> = (self.start..end)
                .map(|i| {
                    while pi[puzzle + 1] <= i {
                        puzzle += 1;
                    }
                    (i, puzzle)
                })
                .collect();
            self.start = end;
            return Some(collate(
                self.dataset.metadata(),
                set,
                &rows,
                self.global_batch_size,
            ));
        }
    }
}

/// The number of optimiser steps of a run, as `pretrain.py` computes it:
/// `int(epochs * total_groups * mean_puzzle_examples / global_batch_size)` (truncated).
///
/// ```
/// # use hrm_data::{total_train_steps, DatasetMetadata};
/// let meta = DatasetMetadata {
///     pad_id: 0, ignore_label_id: Some(0), blank_identifier_id: 0, vocab_size: 11, seq_len: 81,
///     num_puzzle_identifiers: 1, total_groups: 1000, mean_puzzle_examples: 1.0,
///     total_puzzles: Some(1_001_000), sets: vec!["all".into()],
/// };
/// assert_eq!(total_train_steps(&meta, 20_000, 384), 52_083);
/// ```
pub fn total_train_steps(metadata: &DatasetMetadata, epochs: u64, global_batch_size: usize) -> u64 {
    let total = (epochs as f64) * (metadata.total_groups as f64) * metadata.mean_puzzle_examples
        / global_batch_size as f64;
    total as u64
}

/// Runs an iterator on a background thread and keeps up to `depth` items ready (a bounded
/// channel), so the consumer does not wait on data. Dropping it stops the thread.
pub struct Prefetch<T: Send + 'static> {
    rx: Option<Receiver<T>>,
    handle: Option<JoinHandle<()>>,
    stop: Arc<AtomicBool>,
}

impl<T: Send + 'static> Prefetch<T> {
    /// Starts the background thread. `depth` is the number of items kept ready (0 hands each
    /// item over directly).
    pub fn new<I>(iter: I, depth: usize) -> Prefetch<T>
    where
        I: Iterator<Item = T> + Send + 'static,
    {
        let (tx, rx) = sync_channel(depth);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("hrm-data-prefetch".into())
            .spawn(move || {
                for item in iter {
                    if stop_flag.load(Ordering::Relaxed) || tx.send(item).is_err() {
                        break;
                    }
                }
            })
            .expect("spawn the prefetch thread");
        Prefetch {
            rx: Some(rx),
            handle: Some(handle),
            stop,
        }
    }
}

impl<T: Send + 'static> Iterator for Prefetch<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match self.rx.as_ref()?.recv() {
            Ok(item) => Some(item),
            Err(_) => {
                // The producer finished or panicked: re-raise a panic here.
                self.rx = None;
                if let Some(handle) = self.handle.take() {
                    if let Err(panic) = handle.join() {
                        std::panic::resume_unwind(panic);
                    }
                }
                None
            }
        }
    }
}

impl<T: Send + 'static> Drop for Prefetch<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver makes a blocked `send` fail, so the thread ends.
        drop(self.rx.take());
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{split_metadata, DatasetWriter};

    /// Set "a": groups of puzzles with 1-3 examples; set "b": 5 one-example puzzles.
    /// Example e of set s has inputs [e, e, 1] and labels [0, e % 3, 2] (0 = ignore).
    fn dataset() -> (tempfile::TempDir, Dataset) {
        let dir = tempfile::tempdir().unwrap();
        let w = DatasetWriter::create(&dir.path().join("ds")).unwrap();
        let mut stats = Vec::new();
        let layout: [(&str, Vec<Vec<usize>>); 2] = [
            (
                "a",
                vec![vec![1, 3], vec![2], vec![3, 1, 2], vec![1], vec![2, 2]],
            ),
            ("b", vec![vec![1], vec![1], vec![1], vec![1], vec![1]]),
        ];
        for (name, groups) in layout {
            let mut s = w.set_writer("train", name, 3).unwrap();
            let mut e = 0u8;
            let mut ident = 1;
            for g in groups {
                for size in g {
                    let (mut inp, mut lab) = (Vec::new(), Vec::new());
                    for _ in 0..size {
                        inp.extend([e, e, 1]);
                        lab.extend([0, e % 3, 2]);
                        e += 1;
                    }
                    s.push_puzzle(ident, &inp, &lab).unwrap();
                    ident += 1;
                }
                s.end_group();
            }
            stats.push(s.finish().unwrap());
        }
        w.write_metadata("train", &split_metadata(&stats, 64, 3, 20))
            .unwrap();
        let path = w.commit().unwrap();
        let ds = Dataset::open(&path, "train").unwrap();
        (dir, ds)
    }

    #[test]
    fn train_batches_are_full_and_mapped() {
        let (_d, ds) = dataset();
        let sampler = TrainSampler::new(&ds, 4, 0).unwrap();
        for batch in sampler.take(20) {
            assert_eq!(batch.inputs.dim(), (4, 3));
            assert_eq!(batch.labels.dim(), (4, 3));
            assert_eq!(batch.puzzle_identifiers.len(), 4);
            assert_eq!(batch.effective_batch_size, 4);
            let set = ds.set(&batch.set).unwrap();
            for (row, ex) in batch.example_indices.iter().enumerate() {
                let ex = ex.expect("train rows are real");
                assert_eq!(batch.inputs[[row, 0]], ex as i32);
                assert_eq!(
                    batch.labels[[row, 0]],
                    IGNORE_LABEL_ID,
                    "ignore label 0 maps to -100"
                );
                let l1 = (ex % 3) as i32;
                assert_eq!(
                    batch.labels[[row, 1]],
                    if l1 == 0 { IGNORE_LABEL_ID } else { l1 }
                );
                assert_eq!(
                    batch.puzzle_identifiers[row],
                    set.puzzle_identifier_of_example(ex).unwrap()
                );
            }
            // Within a batch, no example repeats (without replacement inside a puzzle, one
            // puzzle per group per epoch).
            let mut seen: Vec<_> = batch.example_indices.iter().collect();
            seen.sort();
            seen.dedup();
            assert_eq!(seen.len(), 4);
        }
    }

    #[test]
    fn epochs_drop_the_partial_batch() {
        let (_d, ds) = dataset();
        // Set b: 5 groups of one example; batch 2 gives 2 batches and drops 1 example per epoch.
        // Set a: 5 groups, at least 1 example each; batches of 2 use whole and partial puzzles.
        let mut s = TrainSampler::new(&ds, 2, 3).unwrap();
        let mut per_epoch_b = std::collections::BTreeMap::new();
        let mut last_epoch = 0;
        for _ in 0..60 {
            let epoch = s.epoch();
            assert!(epoch >= last_epoch);
            last_epoch = epoch;
            let b = s.next().unwrap();
            if b.set == "b" {
                *per_epoch_b.entry(epoch).or_insert(0) += 1;
            }
        }
        assert!(last_epoch >= 3);
        for (epoch, n) in per_epoch_b.iter().filter(|(e, _)| **e < last_epoch) {
            assert_eq!(*n, 2, "epoch {epoch}: set b gives floor(5 / 2) batches");
        }
    }

    #[test]
    fn same_seed_same_batches_other_seed_differs() {
        let (_d, ds) = dataset();
        let a: Vec<Batch> = TrainSampler::new(&ds, 3, 11).unwrap().take(15).collect();
        let b: Vec<Batch> = TrainSampler::new(&ds, 3, 11).unwrap().take(15).collect();
        let c: Vec<Batch> = TrainSampler::new(&ds, 3, 12).unwrap().take(15).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn restore_continues_exactly() {
        let (_d, ds) = dataset();
        let straight: Vec<Batch> = TrainSampler::new(&ds, 3, 5).unwrap().take(40).collect();
        for cut in [0, 1, 7, 13, 39] {
            let mut s = TrainSampler::new(&ds, 3, 5).unwrap();
            let first: Vec<Batch> = s.by_ref().take(cut).collect();
            let json = serde_json::to_string(&s.state()).unwrap();
            let state: SamplerState = serde_json::from_str(&json).unwrap();
            let rest: Vec<Batch> = TrainSampler::restore(&ds, &state)
                .unwrap()
                .take(40 - cut)
                .collect();
            assert_eq!(first.len() + rest.len(), 40);
            assert_eq!(&straight[..cut], &first[..]);
            assert_eq!(&straight[cut..], &rest[..], "restored at batch {cut}");
        }
        // The state also round-trips through bincode (for binary checkpoints).
        let state = TrainSampler::new(&ds, 3, 5).unwrap().state();
        let bytes = bincode::serde::encode_to_vec(&state, bincode::config::standard()).unwrap();
        let (back, _): (SamplerState, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard()).unwrap();
        assert_eq!(back, state);
    }

    /// Fuzzing regression: a corrupted checkpoint's sampler state must not replay for ever
    /// (a huge `position`) nor overflow (a huge `epoch`).
    #[test]
    fn corrupted_states_are_refused_or_survive() {
        let (_d, ds) = dataset();
        let state = |epoch, set_index, position| SamplerState {
            seed: 5,
            global_batch_size: 3,
            epoch,
            set_index,
            position,
        };
        let err = TrainSampler::restore(&ds, &state(0, 1, u64::MAX)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "option `sampler_state.position`: 18446744073709551615 but set `b` yields only 1 \
             full batches of 3 per epoch"
        );
        // The last full batch of set b (5 one-example groups: one batch of 3) restores.
        TrainSampler::restore(&ds, &state(0, 1, 1)).unwrap();
        let err = TrainSampler::restore(&ds, &state(0, 7, 0)).unwrap_err();
        assert!(
            err.to_string().contains("7 but the split has 2 sets"),
            "{err}"
        );
        // The last epoch there is: batches still come, past the end of the epoch too.
        let batches: Vec<Batch> = TrainSampler::restore(&ds, &state(u64::MAX, 1, 0))
            .unwrap()
            .take(4)
            .collect();
        assert_eq!(batches.len(), 4);
    }

    #[test]
    fn eval_walks_every_example_once_and_pads() {
        let (_d, ds) = dataset();
        let sampler = EvalSampler::new(&ds, 4).unwrap();
        // Set a holds 17 examples (5 batches), set b 5 (2 batches).
        assert_eq!(sampler.num_batches(), 5 + 2);
        let batches: Vec<Batch> = sampler.collect();
        assert_eq!(batches.len(), 7);
        let mut seen: Vec<(String, usize)> = Vec::new();
        for b in &batches {
            assert_eq!(b.inputs.dim(), (4, 3));
            let set = ds.set(&b.set).unwrap();
            for (row, ex) in b.example_indices.iter().enumerate() {
                match ex {
                    Some(ex) => {
                        assert!(row < b.effective_batch_size);
                        assert_eq!(b.inputs[[row, 0]], *ex as i32);
                        assert_eq!(
                            b.puzzle_identifiers[row],
                            set.puzzle_identifier_of_example(*ex).unwrap()
                        );
                        seen.push((b.set.clone(), *ex));
                    }
                    None => {
                        assert!(row >= b.effective_batch_size);
                        assert!(b.inputs.row(row).iter().all(|&v| v == 0), "pad_id");
                        assert!(b.labels.row(row).iter().all(|&v| v == IGNORE_LABEL_ID));
                        assert_eq!(b.puzzle_identifiers[row], 0, "blank identifier");
                    }
                }
            }
        }
        let expected: Vec<(String, usize)> = (0..17)
            .map(|e| ("a".to_string(), e))
            .chain((0..5).map(|e| ("b".to_string(), e)))
            .collect();
        assert_eq!(seen, expected);
        let effective: Vec<usize> = batches.iter().map(|b| b.effective_batch_size).collect();
        assert_eq!(effective, vec![4, 4, 4, 4, 1, 4, 1]);
    }

    #[test]
    fn bad_batch_sizes_are_errors() {
        let (_d, ds) = dataset();
        assert!(matches!(
            TrainSampler::new(&ds, 0, 0),
            Err(DataError::Option { .. })
        ));
        // Set a's groups hold at least 1+2+1+1+2 = 7 examples per epoch; 8 can never be filled.
        assert!(matches!(
            TrainSampler::new(&ds, 8, 0),
            Err(DataError::Option { .. })
        ));
        TrainSampler::new(&ds, 7, 0).unwrap();
        assert!(matches!(
            EvalSampler::new(&ds, 0),
            Err(DataError::Option { .. })
        ));
    }

    #[test]
    fn prefetch_matches_and_stops_on_drop() {
        let (_d, ds) = dataset();
        let direct: Vec<Batch> = TrainSampler::new(&ds, 2, 1).unwrap().take(10).collect();
        let fetched: Vec<Batch> = Prefetch::new(TrainSampler::new(&ds, 2, 1).unwrap(), 3)
            .take(10)
            .collect();
        assert_eq!(direct, fetched);
        // An infinite producer stops when the consumer goes away.
        let mut p = Prefetch::new(0u64.., 2);
        assert_eq!(p.next(), Some(0));
        drop(p);
        // A finite producer ends the iteration.
        let all: Vec<u8> = Prefetch::new(0u8..5, 1).collect();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn total_steps_truncates_like_python() {
        let mut meta = split_metadata(&[], 12, 900, 10);
        meta.total_groups = 960;
        meta.mean_puzzle_examples = 4.37;
        // int(100000 * 960 * 4.37 / 768) = 546250 (exactly 546250.0 after float rounding?).
        let expected = (100_000f64 * 960.0 * 4.37 / 768.0) as u64;
        assert_eq!(total_train_steps(&meta, 100_000, 768), expected);
        meta.total_groups = 7;
        meta.mean_puzzle_examples = 1.0;
        assert_eq!(total_train_steps(&meta, 3, 4), 5);
    }
}
