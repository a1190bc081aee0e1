//! The ARC dataset builder.
//!
//! Mirrors `convert_dataset`, `load_puzzles_arcagi` and `convert_single_arc_puzzle` of the
//! reference's `dataset/build_arc_dataset.py` (TRM's version, which reads the Kaggle files):
//!
//! - Sets: `arc1` = ARC-AGI-1 `training` + `evaluation` + ConceptARC `concept`, `arc2` =
//!   ARC-AGI-2 `training2` + `evaluation2`, read as `arc-agi_<subset>_challenges.json` (with
//!   `..._solutions.json`) from the ARC directory. The evaluation subset is the test set: its
//!   tasks' demonstration pairs go to `train` and their test pairs to `test`; every other task
//!   puts all its pairs in `train`. `--from PATH` tasks are all treated as test-set tasks.
//! - Augmentation: each task becomes a group: the original puzzle plus up to `aug` augmented
//!   ones (random dihedral transform x random permutation of colours 1-9), drawing at most
//!   `5 * aug` times and rejecting any whose whole augmented puzzle (all pairs of both splits,
//!   as an unordered collection) equals one already kept, as the reference compares hashes.
//! - Encoding: 30x30 canvas, PAD 0, EOS 1, colour + 2. In `train`, every example but one random
//!   example per puzzle is translated to a random offset where both grids fit; `test` is not
//!   translated.
//! - Identifiers: one per puzzle, `<task>` for the original and `<task>|||t<id>|||<map>` for an
//!   augmentation, numbered from 1 in order of appearance (0 is `<blank>`); a test-set puzzle
//!   shares the identifier of its `train` counterpart. `identifiers.json` lists the names;
//!   `test_puzzles.json` holds the test-set tasks as given (with solutions) for the evaluator.
//!
//! What differs: tasks are taken in id order instead of a NumPy shuffle (the reference's
//! shuffle only reorders rows); each task draws from its own seeded stream, so tasks are
//! augmented in parallel and the output is the same byte for byte for a seed; rows are
//! streamed to disk, so ARC-AGI-1 with 1000 augmentations (about 8 GB) needs little memory.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use rayon::prelude::*;

use super::load::{check_unique_ids, load_challenges, load_tasks, ArcTask};
use super::{
    grid_to_tokens_at, Augmentation, Grid, ARC_MAX_GRID_SIZE, ARC_SEQ_LEN, ARC_VOCAB_SIZE,
};
use crate::error::{DataError, Result};
use crate::format::{split_metadata, DatasetWriter, SetStats, BLANK_IDENTIFIER};
use crate::limits::{
    check_not_empty, wide, BuildEstimate, Bytes, MachineLimits, INDEX_BYTES, SET_OVERHEAD_BYTES,
};
use crate::rng::{self, domain, DataRng};
use crate::summary::{stale_note, BuildSummary, SplitSummary};

/// Draws per wanted augmentation before a task settles for fewer (the reference's
/// `ARCAugmentRetriesFactor`).
const RETRIES_FACTOR: usize = 5;

/// The most augmentations a task can have: 8 dihedral transforms times the 9! permutations of
/// colours 1-9, less the original. Asking for more can only draw duplicates.
pub const MAX_ARC_AUGMENTATIONS: usize = 8 * 362_880 - 1;

/// Tasks augmented in parallel, their rows held in memory together.
const TASK_CHUNK: usize = 16;

/// Which ARC collection to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArcSets {
    /// ARC-AGI-1 training and evaluation, plus ConceptARC; evaluation is the test set.
    Arc1,
    /// ARC-AGI-2 training and evaluation; evaluation is the test set.
    Arc2,
}

impl ArcSets {
    /// The subsets, as in `arc-agi_<subset>_challenges.json`.
    pub fn subsets(self) -> &'static [&'static str] {
        match self {
            ArcSets::Arc1 => &["training", "evaluation", "concept"],
            ArcSets::Arc2 => &["training2", "evaluation2"],
        }
    }

    /// The subset whose test pairs form the test split.
    pub fn test_subset(self) -> &'static str {
        match self {
            ArcSets::Arc1 => "evaluation",
            ArcSets::Arc2 => "evaluation2",
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ArcSets::Arc1 => "arc1",
            ArcSets::Arc2 => "arc2",
        }
    }
}

impl std::str::FromStr for ArcSets {
    type Err = DataError;

    fn from_str(s: &str) -> Result<ArcSets> {
        match s.to_ascii_lowercase().as_str() {
            "arc1" => Ok(ArcSets::Arc1),
            "arc2" => Ok(ArcSets::Arc2),
            _ => Err(DataError::option(
                "sets",
                format!("{s:?} is not arc1 or arc2"),
            )),
        }
    }
}

impl std::fmt::Display for ArcSets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The ARC data directory: `$HRM_ARC_DIR`, else `../shared/data/arc`.
pub fn default_arc_dir() -> PathBuf {
    std::env::var_os("HRM_ARC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data/arc"))
}

/// Options of [`build_arc`] (the flags of `hrm data build arc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcOptions {
    /// Output directory.
    pub out: PathBuf,
    /// The collection to build from `arc_dir` (ignored with `from`).
    pub sets: ArcSets,
    /// Where the `arc-agi_*_challenges.json` files are.
    pub arc_dir: PathBuf,
    /// Build from this combined challenges file (solutions beside it) or directory of task files
    /// instead; its tasks are all test-set tasks.
    pub from: Option<PathBuf>,
    /// Augmented puzzles per task (the reference's `num_aug`), at most
    /// [`MAX_ARC_AUGMENTATIONS`].
    pub aug: usize,
    /// Seed of everything random.
    pub seed: u64,
    /// Build even if a split comes out empty (no tasks, or no test-set task); otherwise that
    /// is refused.
    pub allow_empty: bool,
}

impl ArcOptions {
    /// The defaults of `hrm data build arc`: arc1 from [`default_arc_dir`], 1000
    /// augmentations, seed 42, empty splits refused.
    pub fn new(out: impl Into<PathBuf>) -> ArcOptions {
        ArcOptions {
            out: out.into(),
            sets: ArcSets::Arc1,
            arc_dir: default_arc_dir(),
            from: None,
            aug: 1000,
            seed: 42,
            allow_empty: false,
        }
    }
}

/// A task's role in the split protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// All pairs to `train`.
    Training,
    /// Demonstrations to `train`, test pairs to `test`.
    Test,
}

/// One task's encoded rows for both splits.
struct TaskRows {
    names: Vec<String>,
    train: (Vec<u8>, Vec<u8>, Vec<usize>),
    test: (Vec<u8>, Vec<u8>, Vec<usize>),
}

type Pairs = Vec<(Grid, Grid)>;

/// The canonical bytes of a puzzle (its pairs of both splits, in any order).
fn puzzle_key(parts: &[&Pairs]) -> Vec<u8> {
    let mut examples: Vec<Vec<u8>> = parts
        .iter()
        .flat_map(|p| p.iter())
        .map(|(i, o)| {
            let mut k = Vec::with_capacity(4 + i.cells().len() + o.cells().len());
            i.append_key(&mut k);
            o.append_key(&mut k);
            k
        })
        .collect();
    examples.sort_unstable();
    examples.concat()
}

/// Encodes the pairs of one puzzle; in `train`, all but one random pair are translated.
fn encode_puzzle(
    rng: &mut DataRng,
    pairs: &Pairs,
    translate: bool,
    out: &mut (Vec<u8>, Vec<u8>, Vec<usize>),
) {
    let keep = rng::below(rng, pairs.len());
    for (k, (input, output)) in pairs.iter().enumerate() {
        let (r, c) = if translate && k != keep {
            let h = input.height().max(output.height());
            let w = input.width().max(output.width());
            (
                rng::below(rng, ARC_MAX_GRID_SIZE - h + 1),
                rng::below(rng, ARC_MAX_GRID_SIZE - w + 1),
            )
        } else {
            (0, 0)
        };
        out.0.extend(grid_to_tokens_at(input, r, c));
        out.1.extend(grid_to_tokens_at(output, r, c));
    }
    out.2.push(pairs.len());
}

fn process_task(task: &ArcTask, role: Role, aug: usize, rng: &mut DataRng) -> Result<TaskRows> {
    let err = |reason: &str| DataError::task(&task.source, &task.id, reason);
    let dummy = Grid::from_parts(1, 1, vec![0]);
    let mut train: Pairs = task
        .train
        .iter()
        .map(|p| {
            (
                p.input.clone(),
                p.output.clone().expect("demonstrations have outputs"),
            )
        })
        .collect();
    let mut test: Pairs = Vec::new();
    match role {
        Role::Training => {
            for (i, p) in task.test.iter().enumerate() {
                let out = p.output.clone().ok_or_else(|| {
                    err(&format!(
                        "test pair {} of a training task has no solution",
                        i + 1
                    ))
                })?;
                train.push((p.input.clone(), out));
            }
            if train.is_empty() {
                return Err(err("the task has no pairs"));
            }
        }
        Role::Test => {
            if train.is_empty() {
                return Err(err("a test-set task needs demonstration (train) pairs"));
            }
            if task.test.is_empty() {
                return Err(err("a test-set task needs test pairs"));
            }
            test = task
                .test
                .iter()
                .map(|p| {
                    (
                        p.input.clone(),
                        p.output.clone().unwrap_or_else(|| dummy.clone()),
                    )
                })
                .collect();
        }
    }
    let mut puzzles: Vec<(Augmentation, Pairs, Pairs)> =
        vec![(Augmentation::identity(), train, test)];
    if aug > 0 {
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        seen.insert(puzzle_key(&[&puzzles[0].1, &puzzles[0].2]));
        for _ in 0..RETRIES_FACTOR * aug {
            let a = Augmentation::random(rng);
            let map = |pairs: &Pairs| -> Pairs {
                pairs
                    .iter()
                    .map(|(i, o)| (a.apply(i), a.apply(o)))
                    .collect()
            };
            let (tr, te) = (map(&puzzles[0].1), map(&puzzles[0].2));
            if seen.insert(puzzle_key(&[&tr, &te])) {
                puzzles.push((a, tr, te));
                if puzzles.len() > aug {
                    break;
                }
            }
        }
    }
    let mut rows = TaskRows {
        names: Vec::with_capacity(puzzles.len()),
        train: Default::default(),
        test: Default::default(),
    };
    for (a, tr, te) in &puzzles {
        rows.names.push(if a.is_identity() {
            task.id.clone()
        } else {
            a.identifier(&task.id)
        });
        encode_puzzle(rng, tr, true, &mut rows.train);
        if role == Role::Test {
            encode_puzzle(rng, te, false, &mut rows.test);
        }
    }
    Ok(rows)
}

/// What building `tasks` with `aug` augmentations each holds in memory and writes (an upper
/// estimate: a task with fewer distinct augmentations writes less), before anything is
/// allocated.
fn estimate(tasks: &[(ArcTask, Role)], aug: usize, source: &str) -> BuildEstimate {
    let puzzles_per_task = Bytes::of(wide(aug)).plus(Bytes::of(1u8));
    let seq = wide(ARC_SEQ_LEN);
    let (mut train_examples, mut test_examples, mut names, mut test_json) = (
        Bytes::default(),
        Bytes::default(),
        Bytes::default(),
        Bytes::default(),
    );
    // Memory of each task's augmented puzzles while they are encoded: the encoded rows (inputs
    // and labels), the augmented grids and their duplicate-check key.
    let mut task_memory: Vec<Bytes> = Vec::with_capacity(tasks.len());
    for (task, role) in tasks {
        let (train_pairs, test_pairs) = match role {
            Role::Training => (task.train.len() + task.test.len(), 0),
            Role::Test => (task.train.len(), task.test.len()),
        };
        let pairs = wide(train_pairs + test_pairs);
        let cells: usize = task
            .train
            .iter()
            .chain(&task.test)
            .map(|p| p.input.cells().len() + p.output.as_ref().map_or(1, |o| o.cells().len()))
            .sum();
        if *role == Role::Test {
            // `test_puzzles.json`: up to 4 characters per cell (`9, `), brackets and keys.
            test_json = test_json.plus(Bytes::of(4 * wide(cells) + 160 * pairs + 64));
        }
        train_examples = train_examples.plus(puzzles_per_task.times(wide(train_pairs)));
        test_examples = test_examples.plus(puzzles_per_task.times(wide(test_pairs)));
        // `<task>|||t<k>|||<9 colours>` and the String around it.
        names = names.plus(puzzles_per_task.times(wide(task.id.len()) + 48));
        task_memory.push(
            puzzles_per_task.times(pairs.saturating_mul(2 * seq + 8 + 4 * 48) + 3 * wide(cells)),
        );
    }
    task_memory.sort_unstable_by(|a, b| b.cmp(a));
    let chunk = task_memory
        .iter()
        .take(TASK_CHUNK)
        .fold(Bytes::default(), |sum, &m| sum.plus(m));
    let examples = train_examples.plus(test_examples);
    let puzzles = puzzles_per_task.times(wide(tasks.len()));
    // Disk: a byte per token of inputs and labels, an index per example, an identifier and an
    // index per puzzle in both splits, the identifiers' names, the test tasks' JSON, headers.
    let disk = examples
        .times(2 * seq + 4)
        .plus(puzzles.times(16u8))
        .plus(names)
        .plus(test_json)
        .plus(Bytes::of(2 * SET_OVERHEAD_BYTES));
    // Memory: the identifiers' names of every puzzle, both sets' index arrays, one chunk of
    // tasks being augmented.
    let memory = names.plus(puzzles.times(2 * INDEX_BYTES)).plus(chunk);
    BuildEstimate {
        option: "aug",
        what: format!(
            "{} ARC tasks {source} with 1 + {aug} augmentations each",
            tasks.len()
        ),
        memory: memory.get(),
        disk: disk.get(),
        largest_set: train_examples.max(test_examples).get(),
    }
}

/// Builds an ARC dataset in the reference's layout at `opts.out` (atomically).
///
/// After the tasks are read and before anything is augmented or written, the build's memory
/// and disk needs are estimated and checked against the machine ([`MachineLimits::probe`]);
/// hidden temporary directories of earlier interrupted builds of `opts.out` are removed
/// ([`BuildSummary::stale_removed`]).
///
/// # Errors
/// [`DataError::Option`] for `aug` above [`MAX_ARC_AUGMENTATIONS`] or an empty split without
/// `allow_empty`; [`DataError::TooLarge`] stating the estimate and the limit when the build
/// would not fit; [`DataError::Io`]/[`DataError::Json`]/[`DataError::Task`] for unreadable or
/// invalid tasks (naming the file and task); [`DataError::Task`] for a test-set task without
/// demonstration or test pairs, or a training task with an unsolved test pair. On any error
/// nothing is left at `opts.out`.
pub fn build_arc(opts: &ArcOptions) -> Result<BuildSummary> {
    let start = Instant::now();
    if opts.aug > MAX_ARC_AUGMENTATIONS {
        return Err(DataError::option(
            "aug",
            format!(
                "{} augmentations per task cannot be distinct: a task has at most \
                 {MAX_ARC_AUGMENTATIONS} (8 dihedral transforms x 9! colour permutations, less \
                 the original)",
                opts.aug
            ),
        ));
    }
    let mut tasks: Vec<(ArcTask, Role)> = Vec::new();
    let task_name;
    if let Some(from) = &opts.from {
        task_name = format!("arc from {} ({} augmentations)", from.display(), opts.aug);
        tasks.extend(load_tasks(from)?.into_iter().map(|t| (t, Role::Test)));
    } else {
        task_name = format!(
            "arc {} ({}; {} augmentations)",
            opts.sets,
            opts.sets.subsets().join(" + "),
            opts.aug
        );
        for subset in opts.sets.subsets() {
            let path = opts
                .arc_dir
                .join(format!("arc-agi_{subset}_challenges.json"));
            let role = if *subset == opts.sets.test_subset() {
                Role::Test
            } else {
                Role::Training
            };
            tasks.extend(load_challenges(&path)?.into_iter().map(|t| (t, role)));
        }
        check_unique_ids(tasks.iter().map(|(t, _)| t))?;
    }
    let unsolved = tasks
        .iter()
        .filter(|(t, r)| *r == Role::Test && t.test.iter().any(|p| p.output.is_none()))
        .count();
    let source = match &opts.from {
        Some(from) => format!("from {}", from.display()),
        None => format!("of {} in {}", opts.sets, opts.arc_dir.display()),
    };
    let option = if opts.from.is_some() {
        "from"
    } else {
        "arc-dir"
    };
    check_not_empty(
        option,
        &format!("with no tasks {source}, the train split"),
        tasks.len(),
        opts.allow_empty,
    )?;
    check_not_empty(
        option,
        &format!("with no test-set task {source}, the test split"),
        tasks.iter().filter(|(_, r)| *r == Role::Test).count(),
        opts.allow_empty,
    )?;

    let writer = DatasetWriter::create(&opts.out)?;
    estimate(&tasks, opts.aug, &source).check(&MachineLimits::probe(writer.root()))?;
    let mut train = writer.set_writer("train", "all", ARC_SEQ_LEN)?;
    let mut test = writer.set_writer("test", "all", ARC_SEQ_LEN)?;
    let mut names = vec![BLANK_IDENTIFIER.to_string()];
    let mut shortfalls: Vec<(usize, String)> = Vec::new();
    for (c, chunk) in tasks.chunks(TASK_CHUNK).enumerate() {
        let rows: Vec<TaskRows> = chunk
            .par_iter()
            .enumerate()
            .map(|(k, (task, role))| {
                let mut rng = rng::stream(opts.seed, domain::ARC_TASK, (c * TASK_CHUNK + k) as u64);
                process_task(task, *role, opts.aug, &mut rng)
            })
            .collect::<Result<_>>()?;
        for ((task, _), r) in chunk.iter().zip(rows) {
            if r.names.len() < opts.aug + 1 {
                shortfalls.push((r.names.len() - 1, task.id.clone()));
            }
            let base = names.len() as i32;
            for (split, (inputs, labels, sizes)) in [(&mut train, &r.train), (&mut test, &r.test)] {
                let mut offset = 0;
                for (j, &n) in sizes.iter().enumerate() {
                    let bytes = offset..offset + n * ARC_SEQ_LEN;
                    split.push_puzzle(base + j as i32, &inputs[bytes.clone()], &labels[bytes])?;
                    offset += n * ARC_SEQ_LEN;
                }
                split.end_group();
            }
            names.extend(r.names);
        }
    }
    let stats: Vec<(&str, SetStats)> = vec![("train", train.finish()?), ("test", test.finish()?)];
    let mut splits = Vec::new();
    for (split, s) in stats {
        writer.write_metadata(
            split,
            &split_metadata(
                std::slice::from_ref(&s),
                ARC_VOCAB_SIZE,
                ARC_SEQ_LEN,
                names.len(),
            ),
        )?;
        splits.push(SplitSummary {
            split: split.to_string(),
            sets: vec![s],
        });
    }
    writer.write_identifiers(&names)?;
    let test_puzzles: BTreeMap<&str, _> = tasks
        .iter()
        .filter(|(_, r)| *r == Role::Test)
        .map(|(t, _)| (t.id.as_str(), t.to_json_value()))
        .collect();
    writer.write_json("test_puzzles.json", &test_puzzles)?;
    let stale_removed = writer.stale_removed().to_vec();
    let out = writer.commit()?;

    let mut notes = vec![format!(
        "{} tasks ({} in the test set)",
        tasks.len(),
        tasks.iter().filter(|(_, r)| *r == Role::Test).count()
    )];
    if !shortfalls.is_empty() {
        shortfalls.sort();
        let shown: Vec<String> = shortfalls
            .iter()
            .take(5)
            .map(|(n, id)| format!("{id} ({n})"))
            .collect();
        notes.push(format!(
            "{} tasks have fewer than {} distinct augmentations: {}{}",
            shortfalls.len(),
            opts.aug,
            shown.join(", "),
            if shortfalls.len() > 5 { ", ..." } else { "" }
        ));
    }
    if unsolved > 0 {
        notes.push(format!("{unsolved} test-set tasks have no solutions: their test labels are the dummy grid [[0]]"));
    }
    notes.extend(stale_note(&stale_removed));
    Ok(BuildSummary {
        out,
        task: task_name,
        splits,
        seq_len: ARC_SEQ_LEN,
        vocab_size: ARC_VOCAB_SIZE,
        num_puzzle_identifiers: names.len(),
        elapsed: start.elapsed(),
        notes,
        stale_removed,
    })
}

/// Tasks of `path` for tests in other modules.
#[cfg(test)]
pub(crate) fn small_task_dir(dir: &std::path::Path) -> PathBuf {
    let tasks = [
        (
            "aaa",
            r#"{"train": [{"input": [[1, 0], [0, 2]], "output": [[2, 0], [0, 1]]}, {"input": [[3]], "output": [[3]]}], "test": [{"input": [[4, 0, 5]], "output": [[5, 0, 4]]}]}"#,
        ),
        (
            "bbb",
            r#"{"train": [{"input": [[0, 0, 1]], "output": [[1], [0], [0]]}], "test": [{"input": [[6, 7]], "output": [[7], [6]]}, {"input": [[0]], "output": [[0]]}]}"#,
        ),
    ];
    let d = dir.join("tasks");
    std::fs::create_dir_all(&d).unwrap();
    for (id, text) in tasks {
        std::fs::write(d.join(format!("{id}.json")), text).unwrap();
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arc::{parse_identifier, tokens_to_grid, ARC_SEQ_LEN};
    use crate::format::{read_identifiers, Dataset};

    #[test]
    fn builds_groups_identifiers_and_test_puzzles() {
        let dir = tempfile::tempdir().unwrap();
        let from = small_task_dir(dir.path());
        let opts = ArcOptions {
            from: Some(from),
            aug: 5,
            seed: 1,
            ..ArcOptions::new(dir.path().join("arc"))
        };
        let summary = build_arc(&opts).unwrap();
        let names = read_identifiers(&opts.out).unwrap();
        assert_eq!(names.len(), 1 + 2 * 6);
        assert_eq!(names[1], "aaa");
        assert_eq!(names[7], "bbb");
        let train = Dataset::open(&opts.out, "train").unwrap();
        let test = Dataset::open(&opts.out, "test").unwrap();
        let (tr, te) = (train.set("all").unwrap(), test.set("all").unwrap());
        assert_eq!(
            (tr.num_groups(), tr.num_puzzles(), tr.num_examples()),
            (2, 12, 6 * 2 + 6)
        );
        assert_eq!(
            (te.num_groups(), te.num_puzzles(), te.num_examples()),
            (2, 12, 6 + 6 * 2)
        );
        assert_eq!(summary.examples("test"), 18);
        // Test puzzles share identifiers with their train counterparts, and each test example
        // is the augmented task's test pair, untranslated.
        let tasks = crate::arc::read_test_puzzles(&opts.out).unwrap();
        assert_eq!(tasks.len(), 2);
        for e in 0..te.num_examples() {
            let ident = te.puzzle_identifier_of_example(e).unwrap();
            let (task, a) = parse_identifier(&names[ident as usize]).unwrap();
            let (inp, lab) = te.example(e).unwrap();
            let input = a.invert(&tokens_to_grid(&inp).unwrap());
            let output = a.invert(&tokens_to_grid(&lab).unwrap());
            assert!(
                tasks[&task]
                    .test
                    .iter()
                    .any(|p| p.input == input && p.output.as_ref() == Some(&output)),
                "example {e}"
            );
        }
        // Every train example decodes (after untranslating) to a pair of its task.
        let n = 30;
        for e in 0..tr.num_examples() {
            let ident = tr.puzzle_identifier_of_example(e).unwrap();
            let (task, a) = parse_identifier(&names[ident as usize]).unwrap();
            let (inp, _) = tr.example(e).unwrap();
            let first = inp.iter().position(|&t| t >= 2).unwrap();
            let (r0, c0) = (first / n, first % n);
            let mut shifted = vec![0; ARC_SEQ_LEN];
            for r in r0..n {
                for c in c0..n {
                    shifted[(r - r0) * n + (c - c0)] = inp[r * n + c];
                }
            }
            let g = a.invert(&tokens_to_grid(&shifted).unwrap());
            assert!(
                tasks[&task].train.iter().any(|p| p.input == g),
                "train example {e} of {task}"
            );
        }
    }

    #[test]
    fn duplicates_are_rejected_and_shortfalls_reported() {
        // A one-colour 1x1 task has only 9 distinct augmentations (colour 1 mapped to 1-9).
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("t");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("dot.json"), r#"{"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}"#).unwrap();
        let opts = ArcOptions {
            from: Some(d),
            aug: 20,
            seed: 0,
            ..ArcOptions::new(dir.path().join("arc"))
        };
        let summary = build_arc(&opts).unwrap();
        let names = read_identifiers(&opts.out).unwrap();
        assert_eq!(names.len(), 1 + 9);
        let mut colours: Vec<u8> = names[1..]
            .iter()
            .map(|n| parse_identifier(n).unwrap().1.colour_map[1])
            .collect();
        colours.sort_unstable();
        assert_eq!(colours, (1..=9).collect::<Vec<u8>>());
        assert!(
            summary
                .notes
                .iter()
                .any(|n| n.contains("fewer than 20 distinct augmentations: dot (8)")),
            "{:?}",
            summary.notes
        );
    }

    #[test]
    fn failure_midway_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let from = small_task_dir(dir.path());
        // A test-set task without demonstrations fails while the others are being written.
        std::fs::write(
            from.join("zzz.json"),
            r#"{"train": [], "test": [{"input": [[1]], "output": [[1]]}]}"#,
        )
        .unwrap();
        let out = dir.path().join("arc");
        let err = build_arc(&ArcOptions {
            from: Some(from),
            aug: 2,
            ..ArcOptions::new(&out)
        })
        .unwrap_err();
        assert!(
            matches!(&err, DataError::Task { task, .. } if task == "zzz"),
            "{err}"
        );
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "only the task directory remains"
        );
    }
}
