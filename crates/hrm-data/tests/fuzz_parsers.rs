//! Fuzzing on stable: property tests that feed every hrm-data parser of outside input random
//! bytes and structured mutations of valid inputs. Each must answer `Ok` or a typed
//! [`DataError`] whose message prints: never a panic, an abort, a hang or a huge allocation.
//!
//! Targets: the `.npy` reader (random files and mutated headers, read and memory-mapped),
//! `dataset.json` and the arrays of a split (through `Dataset::open` and the samplers),
//! `identifiers.json` and its names, a sampler state from a checkpoint, ARC task JSON (single
//! tasks, combined challenges with solutions, `test_puzzles.json`), Sudoku and maze text, and
//! the Sudoku and maze CSV files.
//!
//! Each target runs `HRM_FUZZ_CASES` cases (default 256, about a second for all); set it
//! to hundreds of thousands for a real fuzzing run. A global allocator records the largest
//! single allocation of each case: more than [`ALLOCATION_CAP`] for inputs of a few kilobytes
//! fails the case (and more than [`HARD_LIMIT`] aborts at once, as it would on a real machine).

#![allow(unsafe_code)] // the allocation-tracking global allocator below

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use hrm_data::arc::{load_challenges, parse_identifier, parse_task, read_test_puzzles};
use hrm_data::maze::{check_path, encode_maze, parse_maze, read_maze_csv};
use hrm_data::npy::{write_npy, Dtype, NpyArray};
use hrm_data::sudoku::{parse_puzzle, read_sudoku_csv};
use hrm_data::{
    read_identifiers, read_metadata, DataError, Dataset, DatasetWriter, Dihedral, EvalSampler,
    SamplerState, TrainSampler, Validation,
};

// ---------------------------------------------------------------------------------------------
// Allocation tracking.

/// The largest single allocation a case may make (its inputs are at most a few kilobytes).
const ALLOCATION_CAP: usize = 64 << 20;
/// Above this an allocation fails at once (the process aborts), so a claimed size in a header
/// cannot make the test machine swap.
const HARD_LIMIT: usize = 4 << 30;

thread_local! {
    /// The largest allocation of this thread since the last [`take_largest`].
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    // `try_with`: never panic inside the allocator, even during thread teardown.
    let _ = LARGEST.try_with(|l| {
        if size > l.get() {
            l.set(size);
        }
    });
}

fn take_largest() -> usize {
    LARGEST.with(|l| l.replace(0))
}

struct Tracking;

// SAFETY: every call is forwarded unchanged to the system allocator, except requests above
// HARD_LIMIT, which fail with a null pointer as the allocator contract allows. The bookkeeping
// touches only a const-initialised thread-local `Cell<usize>`, which does not allocate.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        if new_size > HARD_LIMIT {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

// ---------------------------------------------------------------------------------------------
// Harness.

/// Cases per target: `HRM_FUZZ_CASES`, default 256.
fn config() -> Config {
    let cases = std::env::var("HRM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// Where the cases' files go: `HRM_FUZZ_DIR`, else `/dev/shm` where it exists (file system
/// calls there cost a tenth of a millisecond, not several), else the system's temporary
/// directory.
fn scratch_base() -> PathBuf {
    if let Some(dir) = std::env::var_os("HRM_FUZZ_DIR") {
        return PathBuf::from(dir);
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir() && tempfile::tempdir_in(shm).is_ok() {
        return shm.to_path_buf();
    }
    std::env::temp_dir()
}

/// One target's scratch directory (removed when the target ends) and case counter.
struct Scratch {
    dir: tempfile::TempDir,
    cases: AtomicU64,
}

impl Scratch {
    fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("hrm-fuzz-")
                .tempdir_in(scratch_base())
                .expect("scratch directory"),
            cases: AtomicU64::new(0),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path named `name` in a new case directory.
    fn fresh(&self, name: &str) -> PathBuf {
        let n = self.cases.fetch_add(1, Ordering::Relaxed);
        let dir = self.path().join(format!("case-{n}"));
        std::fs::create_dir(&dir).expect("case directory");
        dir.join(name)
    }
}

/// Runs `test` on `HRM_FUZZ_CASES` values of `strategy`; a failure (shrunk to a minimal
/// input by proptest) fails the test with that input.
fn fuzz<S: Strategy>(strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let mut runner = TestRunner::new(config());
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

/// Runs one case: any result is fine, an error must print, and no single allocation may pass
/// the cap.
fn run_case<T>(what: &str, f: impl FnOnce() -> Result<T, DataError>) -> Result<(), TestCaseError> {
    take_largest();
    if let Err(e) = f() {
        let text = e.to_string();
        prop_assert!(!text.is_empty(), "{what}: empty error message");
    }
    let largest = take_largest();
    prop_assert!(
        largest <= ALLOCATION_CAP,
        "{what}: one allocation of {largest} bytes for a tiny input"
    );
    Ok(())
}

/// Removes a case's directory (cases share the scratch directory).
fn cleanup(path: &Path) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// One edit of a byte string, as a mutation fuzzer makes them.
#[derive(Debug, Clone)]
enum Edit {
    /// Overwrite the byte at (position mod length).
    Set(usize, u8),
    /// Insert a byte.
    Insert(usize, u8),
    /// Remove up to `n` bytes.
    Remove(usize, usize),
    /// Cut the input at (position mod length).
    Truncate(usize),
    /// Insert a token that parsers treat specially.
    Token(usize, usize),
    /// Repeat a range (a second `S`, a duplicated key, a longer row).
    Duplicate(usize, usize),
}

/// Tokens that tend to matter to parsers: quotes, separators, brackets, extreme numbers.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    ",",
    ":",
    "[",
    "]",
    "{",
    "}",
    "(",
    ")",
    "\n",
    "\r\n",
    "\0",
    "\u{feff}",
    "\u{1F600}",
    "0",
    "-1",
    "9",
    "10",
    "255",
    "4294967296",
    "18446744073709551615",
    "1000000000000000",
    "1e400",
    "NaN",
    "null",
    "true",
    "False",
    ".",
    "#",
    "S",
    "G",
    "o",
    " ",
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Insert(p, b)),
        (any::<usize>(), 1..16usize).prop_map(|(p, n)| Edit::Remove(p, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 0..TOKENS.len()).prop_map(|(p, t)| Edit::Token(p, t)),
        (any::<usize>(), 1..40usize).prop_map(|(p, n)| Edit::Duplicate(p, n)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = bytes.len();
        let at = |p: usize| if len == 0 { 0 } else { p % (len + 1) };
        match *e {
            Edit::Set(p, b) if len > 0 => bytes[p % len] = b,
            Edit::Set(..) => {}
            Edit::Insert(p, b) => bytes.insert(at(p), b),
            Edit::Remove(p, n) => {
                let start = at(p).min(len);
                let end = (start + n).min(len);
                bytes.drain(start..end);
            }
            Edit::Truncate(p) => bytes.truncate(at(p)),
            Edit::Token(p, t) => {
                let pos = at(p);
                bytes.splice(pos..pos, TOKENS[t].bytes());
            }
            Edit::Duplicate(p, n) => {
                let start = at(p).min(len);
                let end = (start + n).min(len);
                let copy = bytes[start..end].to_vec();
                bytes.splice(end..end, copy);
            }
        }
    }
    bytes
}

/// A valid seed input (chosen by index) with 1 to 6 edits.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    (0..n, prop::collection::vec(edit(), 1..6))
        .prop_map(move |(i, edits)| apply(seeds[i].clone(), &edits))
}

fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..512)
}

// ---------------------------------------------------------------------------------------------
// .npy

/// Everything a reader of an array may do with it.
fn exercise_npy(a: &NpyArray) {
    let n = a.num_elements();
    assert_eq!(a.shape().iter().product::<usize>(), n);
    let all = a.to_vec_i64();
    assert_eq!(all.len(), n);
    let _ = a.min_max();
    let _ = a.first_outside(0, 5, Some(-1));
    if n > 0 {
        assert_eq!(a.get(n - 1), all[n - 1]);
        let mut out = vec![0i32; n.min(4096)];
        a.copy_to_i32(0, &mut out);
    }
}

fn npy_case(scratch: &Scratch, bytes: &[u8]) -> Result<(), TestCaseError> {
    let path = scratch.fresh("a.npy");
    std::fs::write(&path, bytes).expect("write case");
    run_case("NpyArray::read", || {
        NpyArray::read(&path).map(|a| exercise_npy(&a))
    })?;
    run_case("NpyArray::open", || {
        NpyArray::open(&path).map(|a| exercise_npy(&a))
    })?;
    cleanup(&path);
    Ok(())
}

const DTYPES: [Dtype; 8] = [
    Dtype::U8,
    Dtype::I8,
    Dtype::U16,
    Dtype::I16,
    Dtype::U32,
    Dtype::I32,
    Dtype::U64,
    Dtype::I64,
];

/// Valid `.npy` files of every dtype and a few shapes.
fn npy_seeds(scratch: &Scratch) -> Vec<Vec<u8>> {
    let dir = scratch.path().join("npy-seeds");
    std::fs::create_dir_all(&dir).expect("seed directory");
    let shapes: [&[usize]; 5] = [&[], &[0], &[3], &[2, 3], &[1, 2, 2]];
    let mut seeds = Vec::new();
    for (i, dtype) in DTYPES.into_iter().enumerate() {
        for (j, shape) in shapes.iter().enumerate() {
            let n: usize = shape.iter().product();
            let data: Vec<u8> = (0..n * dtype.size()).map(|k| (k * 37 + i) as u8).collect();
            let path = dir.join(format!("{i}-{j}.npy"));
            write_npy(&path, dtype, shape, &data).expect("seed");
            seeds.push(std::fs::read(&path).expect("seed"));
        }
    }
    seeds
}

/// A header dict from parts that may be anything a hand-edited or hostile file holds.
fn npy_header() -> impl Strategy<Value = String> {
    let descr = prop::sample::select(vec![
        "'<i4'",
        "'|u1'",
        "'<i8'",
        "'<u8'",
        "'>i4'",
        "'<f4'",
        "'|b1'",
        "'<i4",
        "''",
        "'u1'",
        "\"<i2\"",
        "[('a', '<i4')]",
        "'=i8'",
        "'<U3'",
    ]);
    let fortran = prop::sample::select(vec!["False", "True", "0", "maybe", ""]);
    let dim = prop_oneof![
        (0u64..6).prop_map(|d| d.to_string()),
        any::<u64>().prop_map(|d| d.to_string()),
        prop::sample::select(vec![
            "1000000000000000".to_string(),
            "18446744073709551615".into(),
            "18446744073709551616".into(),
            "4294967296".into(),
            "-1".into(),
            "3L".into(),
            "".into(),
            " ".into(),
            "1e3".into(),
            "(2,".into(),
        ]),
    ];
    let shape = prop::collection::vec(dim, 0..5).prop_map(|d| match d.len() {
        1 => format!("({},)", d[0]),
        _ => format!("({})", d.join(", ")),
    });
    (descr, fortran, shape, any::<bool>()).prop_map(|(d, f, s, reorder)| {
        if reorder {
            format!("{{'shape': {s}, 'descr': {d}, 'fortran_order': {f}}}")
        } else {
            format!("{{'descr': {d}, 'fortran_order': {f}, 'shape': {s}, }}")
        }
    })
}

/// A whole file: magic, version, a header length that may lie, the header, some data.
fn npy_structured() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![1u8, 2, 3, 0, 4, 255]),
        npy_header(),
        prop_oneof![
            Just(None),
            any::<u32>().prop_map(Some),
            Just(Some(u32::MAX)),
            Just(Some(u16::MAX as u32))
        ],
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(major, header, claimed, data)| {
            let mut text = header.into_bytes();
            text.push(b'\n');
            let mut out = b"\x93NUMPY".to_vec();
            out.extend([major, 0]);
            let len = claimed.unwrap_or(text.len() as u32);
            if major == 1 {
                out.extend((len as u16).to_le_bytes());
            } else {
                out.extend(len.to_le_bytes());
            }
            out.extend(text);
            out.extend(data);
            out
        })
}

#[test]
fn npy_random_bytes() {
    let scratch = Scratch::new();
    fuzz(random_bytes(), |bytes| npy_case(&scratch, &bytes));
}

#[test]
fn npy_mutated_files() {
    let scratch = Scratch::new();
    fuzz(mutated(npy_seeds(&scratch)), |bytes| {
        npy_case(&scratch, &bytes)
    });
}

#[test]
fn npy_structured_headers() {
    let scratch = Scratch::new();
    fuzz(npy_structured(), |bytes| npy_case(&scratch, &bytes));
}

// ---------------------------------------------------------------------------------------------
// A split: dataset.json, the arrays, identifiers.json, the samplers.

/// A valid two-set dataset in the scratch directory.
fn tiny_dataset(scratch: &Scratch) -> PathBuf {
    {
        let dest = scratch.path().join("tiny-dataset");
        let w = DatasetWriter::create(&dest).expect("writer");
        let mut stats = Vec::new();
        for (set, offset) in [("a", 0u8), ("b", 1)] {
            let mut s = w.set_writer("train", set, 4).expect("set");
            s.push_puzzle(1, &[1, 2, 3, offset, 2, 2, 2, 2], &[0, 1, 1, 1, 3, 3, 3, 3])
                .expect("push");
            s.push_puzzle(2, &[3, 3, 3, 3], &[1, 0, 0, 0])
                .expect("push");
            s.end_group();
            s.push_puzzle(1, &[0, 0, 0, 0], &[2, 2, 2, 2])
                .expect("push");
            stats.push(s.finish().expect("finish"));
        }
        w.write_metadata("train", &hrm_data::format::split_metadata(&stats, 4, 4, 3))
            .expect("metadata");
        w.write_identifiers(&["<blank>".into(), "x".into(), "y|||t3|||0712869453".into()])
            .expect("identifiers");
        w.commit().expect("commit")
    }
}

/// A copy of the tiny dataset `src` to mutate.
fn copy_dataset(scratch: &Scratch, src: &Path) -> PathBuf {
    let dest = scratch.fresh("ds");
    std::fs::create_dir_all(dest.join("train")).expect("copy");
    std::fs::copy(src.join("identifiers.json"), dest.join("identifiers.json")).expect("copy");
    for e in std::fs::read_dir(src.join("train")).expect("list") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dest.join("train").join(e.file_name())).expect("copy");
    }
    dest
}

/// Opens the split both ways and, when it opens, reads every example and draws batches.
fn open_and_sample(dir: &Path) -> Result<(), TestCaseError> {
    run_case("Dataset::open", || {
        Dataset::open_with(dir, "train", Validation::Structure)?;
        let ds = Dataset::open(dir, "train")?;
        for set in ds.sets() {
            for i in 0..set.num_examples().min(64) {
                set.example(i)?;
                set.puzzle_identifier_of_example(i)?;
            }
        }
        let _ = hrm_data::total_train_steps(ds.metadata(), 3, 2);
        for batch_size in 1..4 {
            let eval: Vec<_> = EvalSampler::new(&ds, batch_size)?.take(64).collect();
            assert!(!eval.is_empty() || ds.num_examples() == 0);
            if let Ok(train) = TrainSampler::new(&ds, batch_size, 7) {
                for b in train.take(3) {
                    assert_eq!(b.inputs.dim().0, batch_size);
                }
            }
        }
        Ok(())
    })
}

/// JSON values that break assumptions about a field.
fn odd_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(vec![
            json!(0),
            json!(1),
            json!(-1),
            json!(2),
            json!(3),
            json!(5),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(i32::MAX),
            json!(1e308),
            json!(0.5),
            json!(null),
            json!(true),
            json!("4"),
            json!([]),
            json!({}),
            json!(["a"]),
            json!(["a", "a"]),
            json!(["a", "b", "c"]),
            json!(["../a"]),
            json!([""]),
            json!([".a"]),
            json!(["a/b"]),
            json!(["b"]),
        ]),
        any::<i64>().prop_map(|v| json!(v)),
        any::<f64>().prop_map(|v| json!(v)),
    ]
}

const META_KEYS: [&str; 10] = [
    "pad_id",
    "ignore_label_id",
    "blank_identifier_id",
    "vocab_size",
    "seq_len",
    "num_puzzle_identifiers",
    "total_groups",
    "mean_puzzle_examples",
    "total_puzzles",
    "sets",
];

const ARRAYS: [&str; 10] = [
    "a__inputs.npy",
    "a__labels.npy",
    "a__puzzle_identifiers.npy",
    "a__puzzle_indices.npy",
    "a__group_indices.npy",
    "b__inputs.npy",
    "b__labels.npy",
    "b__puzzle_identifiers.npy",
    "b__puzzle_indices.npy",
    "b__group_indices.npy",
];

/// How a case damages the tiny dataset.
#[derive(Debug, Clone)]
enum DatasetDamage {
    /// `dataset.json` replaced by these bytes.
    MetadataBytes(Vec<u8>),
    /// Fields of `dataset.json` set to odd values (`None`: removed).
    MetadataFields(Vec<(usize, Option<Value>)>),
    /// An array replaced by a valid `.npy` of another dtype, shape and values.
    Array(usize, usize, Vec<usize>, Vec<i64>),
    /// An array's bytes edited.
    ArrayBytes(usize, Vec<Edit>),
}

fn dataset_damage() -> impl Strategy<Value = DatasetDamage> {
    prop_oneof![
        random_bytes().prop_map(DatasetDamage::MetadataBytes),
        prop::collection::vec(
            (0..META_KEYS.len(), prop::option::weighted(0.9, odd_json())),
            1..4
        )
        .prop_map(DatasetDamage::MetadataFields),
        (
            0..ARRAYS.len(),
            0..DTYPES.len(),
            prop::collection::vec(0..6usize, 0..3),
            prop::collection::vec(
                prop_oneof![-2i64..8, any::<i64>(), Just(i64::from(i32::MAX))],
                0..40
            )
        )
            .prop_map(|(a, d, s, v)| DatasetDamage::Array(a, d, s, v)),
        (0..ARRAYS.len(), prop::collection::vec(edit(), 1..5))
            .prop_map(|(a, e)| DatasetDamage::ArrayBytes(a, e)),
    ]
}

fn damage(dir: &Path, d: &DatasetDamage) {
    let meta = dir.join("train/dataset.json");
    match d {
        DatasetDamage::MetadataBytes(bytes) => std::fs::write(&meta, bytes).expect("write"),
        DatasetDamage::MetadataFields(fields) => {
            let mut v: Value =
                serde_json::from_slice(&std::fs::read(&meta).expect("read")).expect("json");
            for (k, value) in fields {
                let obj = v.as_object_mut().expect("object");
                match value {
                    Some(x) => obj.insert(META_KEYS[*k].to_string(), x.clone()),
                    None => obj.remove(META_KEYS[*k]),
                };
            }
            std::fs::write(&meta, v.to_string()).expect("write");
        }
        DatasetDamage::Array(a, dtype, shape, values) => {
            let dtype = DTYPES[*dtype];
            let n: usize = shape.iter().product();
            let mut data = Vec::with_capacity(n * dtype.size());
            for k in 0..n {
                let v = values.get(k).copied().unwrap_or(k as i64);
                data.extend_from_slice(&v.to_le_bytes()[..dtype.size()]);
            }
            write_npy(&dir.join("train").join(ARRAYS[*a]), dtype, shape, &data).expect("write");
        }
        DatasetDamage::ArrayBytes(a, edits) => {
            let path = dir.join("train").join(ARRAYS[*a]);
            let bytes = apply(std::fs::read(&path).expect("read"), edits);
            std::fs::write(&path, bytes).expect("write");
        }
    }
}

/// A sampler state as a corrupted checkpoint might hold it.
fn sampler_state() -> impl Strategy<Value = SamplerState> {
    let small_or_any = || prop_oneof![0u64..8, any::<u64>()];
    (
        any::<u64>(),
        prop_oneof![0usize..6, any::<usize>()],
        small_or_any(),
        prop_oneof![0usize..3, any::<usize>()],
        small_or_any(),
    )
        .prop_map(
            |(seed, global_batch_size, epoch, set_index, position)| SamplerState {
                seed,
                global_batch_size,
                epoch,
                set_index,
                position,
            },
        )
}

#[test]
fn dataset_damaged() {
    let scratch = Scratch::new();
    let tiny = tiny_dataset(&scratch);
    fuzz(dataset_damage(), |d| {
        let dir = copy_dataset(&scratch, &tiny);
        damage(&dir, &d);
        open_and_sample(&dir)?;
        cleanup(&dir);
        Ok(())
    });
}

#[test]
fn dataset_json_random_bytes() {
    let scratch = Scratch::new();
    fuzz(random_bytes(), |bytes| {
        let path = scratch.fresh("dataset.json");
        std::fs::write(&path, &bytes).expect("write");
        run_case("read_metadata", || read_metadata(&path))?;
        cleanup(&path);
        Ok(())
    });
}

#[test]
fn identifiers() {
    let scratch = Scratch::new();
    let seeds = vec![
        br#"["<blank>", "007bbfb7", "007bbfb7|||t3|||0712869453", "a_t1_0123456789"]"#.to_vec(),
    ];
    let names = ("\\PC{0,40}", "[t0-9|_]{0,30}");
    fuzz((mutated(seeds), names), |(bytes, (name, suffix))| {
        let dir = scratch.fresh("ids");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::write(dir.join("identifiers.json"), &bytes).expect("write");
        run_case("read_identifiers", || {
            for name in read_identifiers(&dir)? {
                let _ = parse_identifier(&name);
            }
            Ok(())
        })?;
        let _ = parse_identifier(&name);
        let _ = parse_identifier(&format!("{name}{suffix}"));
        cleanup(&dir);
        Ok(())
    });
}

#[test]
fn sampler_state_restore() {
    let scratch = Scratch::new();
    let ds = Dataset::open(&tiny_dataset(&scratch), "train").expect("tiny dataset");
    fuzz(sampler_state(), |state| {
        run_case("TrainSampler::restore", || {
            let sampler = TrainSampler::restore(&ds, &state)?;
            for b in sampler.take(3) {
                assert_eq!(b.inputs.dim().0, state.global_batch_size);
            }
            Ok(())
        })?;
        // Through JSON too, as a checkpoint stores it.
        let text = serde_json::to_string(&state).expect("serialise");
        let back: SamplerState = serde_json::from_str(&text).expect("parse");
        prop_assert_eq!(back, state);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// ARC task JSON.

const TASK: &str = r#"{"train": [{"input": [[1, 0], [0, 2]], "output": [[2, 0], [0, 1]]}, {"input": [[3]], "output": [[3]]}], "test": [{"input": [[4, 0, 5]], "output": [[5, 0, 4]]}]}"#;

/// A cell value: mostly colours, sometimes anything.
fn cell() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0i64..10).prop_map(|v| json!(v)),
        1 => prop::sample::select(vec![
            json!(-1), json!(10), json!(255), json!(1.5), json!("3"), json!(null), json!([]),
            json!(u64::MAX), json!(i64::MIN),
        ]),
    ]
}

/// A grid: mostly rectangular and small, sometimes ragged, empty, over 30x30 or not a list.
fn grid() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (1usize..6, 1usize..6, prop::collection::vec(cell(), 36)).prop_map(|(h, w, cells)| {
            Value::Array((0..h).map(|r| Value::Array(cells[r * 6..r * 6 + w].to_vec())).collect())
        }),
        1 => prop::collection::vec(prop::collection::vec(cell(), 0..4), 0..4)
            .prop_map(|rows| json!(rows)),
        1 => (29usize..33, 29usize..33).prop_map(|(h, w)| json!(vec![vec![1; w]; h])),
        1 => prop::sample::select(vec![json!(null), json!(3), json!("grid"), json!({}), json!([[]])]),
    ]
}

fn pair() -> impl Strategy<Value = Value> {
    (grid(), prop::option::weighted(0.8, grid()), any::<bool>()).prop_map(|(i, o, extra)| {
        let mut p = json!({ "input": i });
        if let Some(o) = o {
            p["output"] = o;
        }
        if extra {
            p["comment"] = json!("kept");
        }
        p
    })
}

fn task_value() -> impl Strategy<Value = Value> {
    (
        prop::collection::vec(pair(), 0..4),
        prop::collection::vec(pair(), 0..3),
        prop::option::weighted(0.2, "\\PC{0,12}"),
        0..6u8,
    )
        .prop_map(|(train, test, name, shape)| match shape {
            0 => json!({ "train": train }),
            1 => json!({ "test": test }),
            2 => json!([train, test]),
            3 => json!({ "train": {"0": 1}, "test": test }),
            _ => {
                let mut t = json!({ "train": train, "test": test });
                if let Some(n) = name {
                    t["name"] = json!(n);
                }
                t
            }
        })
}

fn parse_task_text(bytes: &[u8]) -> Result<(), TestCaseError> {
    let text = String::from_utf8_lossy(bytes);
    run_case("parse_task", || parse_task("t", &text, Path::new("t.json")))
}

#[test]
fn arc_task_random_bytes() {
    fuzz(random_bytes(), |bytes| parse_task_text(&bytes));
}

#[test]
fn arc_task_mutated() {
    fuzz(mutated(vec![TASK.as_bytes().to_vec()]), |bytes| {
        parse_task_text(&bytes)
    });
}

#[test]
fn arc_task_structured() {
    fuzz(task_value(), |task| {
        run_case("parse_task", || {
            let t = parse_task("t", &task.to_string(), Path::new("t.json"))?;
            for p in t.train.iter().chain(&t.test) {
                let _ = hrm_data::arc::grid_to_tokens(&p.input);
            }
            Ok(())
        })
    });
}

#[test]
fn arc_challenges_and_solutions() {
    let scratch = Scratch::new();
    let solutions = prop::collection::vec(
        prop_oneof![
            prop::collection::vec(grid(), 0..3).prop_map(Value::Array),
            Just(json!(null)),
            Just(json!({})),
        ],
        0..3,
    );
    let test_puzzles = mutated(vec![format!(r#"{{"a": {TASK}}}"#).into_bytes()]);
    let strategy = (
        prop::collection::vec(task_value(), 0..3),
        solutions,
        test_puzzles,
    );
    fuzz(strategy, |(tasks, solutions, test_puzzles)| {
        let challenges = scratch.fresh("x_evaluation_challenges.json");
        let obj: serde_json::Map<String, Value> = tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| (format!("t{i}"), t))
            .collect();
        std::fs::write(&challenges, Value::Object(obj).to_string()).expect("write");
        let sols: serde_json::Map<String, Value> = solutions
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("t{i}"), s))
            .collect();
        std::fs::write(
            challenges.with_file_name("x_evaluation_solutions.json"),
            Value::Object(sols).to_string(),
        )
        .expect("write");
        run_case("load_challenges", || load_challenges(&challenges))?;
        let dir = challenges.parent().expect("dir");
        std::fs::write(dir.join("test_puzzles.json"), &test_puzzles).expect("write");
        run_case("read_test_puzzles", || read_test_puzzles(dir))?;
        cleanup(&challenges);
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// Sudoku and maze text.

const PUZZLE: &str =
    "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79";
const SOLUTION: &str =
    "534678912672195348198342567859761423426853791713924856961537284287419635345286179";
const PUZZLE6: &str = "1.3....56......5.4.6...1.1.6.....3.2";
const SOLUTION6: &str = "123456456123231564564231312645645312";
const MAZE: &str = "#######\n#S    #\n# ### #\n#    G#\n#######\n";

/// Sudoku-like text: characters of the alphabet and a few others, about a board long.
fn sudoku_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9.]{16}",
        "[0-9.]{36}",
        "[1-4.]{16}",
        "[1-6.]{36}",
        "[1-9.]{81}",
        "[0-9. \n\tx]{0,90}",
        "\\PC{0,90}",
    ]
}

fn maze_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "([# SGo.]{1,9}\n){1,9}",
        "([# .]{7}\n){7}",
        "[# SGo.\n\r\tx]{0,90}",
        "\\PC{0,90}",
    ]
}

/// Everything `hrm solve` and the evaluator do with a parsed maze.
fn exercise_maze(text: &str) -> Result<(), DataError> {
    let m = parse_maze(text, Path::new("m.txt"))?;
    let _ = encode_maze(&m);
    let _ = m.shortest_path();
    if let Some(s) = m.solved() {
        let v = check_path(&m, &s);
        assert!(v.valid_path, "the solved maze must check: {m}");
    }
    let _ = check_path(&m, &m);
    for t in Dihedral::ALL {
        let _ = m.transform(t);
    }
    Ok(())
}

#[test]
fn sudoku_text_parses_or_errs() {
    fuzz(sudoku_text(), |text| {
        run_case("parse_puzzle", || parse_puzzle(&text).map(|b| b.solve(2)))
    });
}

#[test]
fn sudoku_text_mutated() {
    let seeds = vec![
        PUZZLE.as_bytes().to_vec(),
        PUZZLE6.as_bytes().to_vec(),
        b"1.3. ..1. .1.. ...1".to_vec(),
    ];
    fuzz(mutated(seeds), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        run_case("parse_puzzle", || parse_puzzle(&text).map(|b| b.solve(2)))
    });
}

#[test]
fn maze_text_parses_or_errs() {
    fuzz(maze_text(), |text| {
        run_case("parse_maze", || exercise_maze(&text))
    });
}

#[test]
fn maze_text_mutated() {
    fuzz(mutated(vec![MAZE.as_bytes().to_vec()]), |bytes| {
        let text = String::from_utf8_lossy(&bytes);
        run_case("parse_maze", || exercise_maze(&text))
    });
}

// ---------------------------------------------------------------------------------------------
// CSV files.

fn csv_file(rows: &[String]) -> Vec<u8> {
    let mut text = String::from("source,question,answer,rating\n");
    for r in rows {
        text.push_str(r);
        text.push('\n');
    }
    text.into_bytes()
}

fn sudoku_csv_seeds() -> Vec<Vec<u8>> {
    vec![
        csv_file(&[
            format!("a,{PUZZLE},{SOLUTION},3"),
            format!("\"b\",{PUZZLE},{SOLUTION},\"1\""),
        ]),
        csv_file(&[format!("x,{PUZZLE6},{SOLUTION6},0")]),
        csv_file(&[]),
    ]
}

fn maze_csv_seeds() -> Vec<Vec<u8>> {
    let m = parse_maze("#####\n#S  #\n# # #\n#  G#\n#####\n", Path::new("m")).expect("maze");
    let s = m.solved().expect("solvable");
    vec![csv_file(&[
        format!("x,{},{},4", m.to_line(), s.to_line()),
        format!("\"y\",\"{}\",\"{}\",\"\"", m.to_line(), s.to_line()),
    ])]
}

/// Rows assembled from fields that stress the reader: quotes, embedded commas and newlines.
fn csv_structured(alphabet: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let field = prop_oneof![
        alphabet,
        "\"[^\"]{0,10}\"",
        "\"[a-z,\n]{0,10}\"\"[a-z]{0,3}\"",
        "\"unterminated[a-z\n]{0,5}",
        "[a-z0-9 ]{0,8}",
    ];
    (
        prop::collection::vec(prop::collection::vec(field, 1..6), 0..5),
        any::<bool>(),
    )
        .prop_map(|(rows, crlf)| {
            let rows: Vec<String> = rows.iter().map(|r| r.join(",")).collect();
            let mut bytes = csv_file(&rows);
            if crlf {
                bytes = String::from_utf8(bytes)
                    .expect("utf-8")
                    .replace('\n', "\r\n")
                    .into_bytes();
            }
            bytes
        })
}

fn csv_case(
    scratch: &Scratch,
    bytes: &[u8],
    what: &str,
    read: impl FnOnce(&Path) -> Result<usize, DataError>,
) -> Result<(), TestCaseError> {
    let path = scratch.fresh("train.csv");
    std::fs::write(&path, bytes).expect("write");
    run_case(what, || read(&path))?;
    cleanup(&path);
    Ok(())
}

fn sudoku_csv(path: &Path) -> Result<usize, DataError> {
    read_sudoku_csv(path).map(|r| r.len())
}

fn maze_csv(path: &Path) -> Result<usize, DataError> {
    read_maze_csv(path).map(|r| r.len())
}

#[test]
fn sudoku_csv_random_bytes() {
    let scratch = Scratch::new();
    fuzz(random_bytes(), |b| {
        csv_case(&scratch, &b, "read_sudoku_csv", sudoku_csv)
    });
}

#[test]
fn sudoku_csv_mutated() {
    let scratch = Scratch::new();
    fuzz(mutated(sudoku_csv_seeds()), |b| {
        csv_case(&scratch, &b, "read_sudoku_csv", sudoku_csv)
    });
}

#[test]
fn sudoku_csv_structured() {
    let scratch = Scratch::new();
    fuzz(csv_structured("[1-9.]{16,81}"), |b| {
        csv_case(&scratch, &b, "read_sudoku_csv", sudoku_csv)
    });
}

#[test]
fn maze_csv_random_bytes() {
    let scratch = Scratch::new();
    fuzz(random_bytes(), |b| {
        csv_case(&scratch, &b, "read_maze_csv", maze_csv)
    });
}

#[test]
fn maze_csv_mutated() {
    let scratch = Scratch::new();
    fuzz(mutated(maze_csv_seeds()), |b| {
        csv_case(&scratch, &b, "read_maze_csv", maze_csv)
    });
}

#[test]
fn maze_csv_structured() {
    let scratch = Scratch::new();
    fuzz(csv_structured("[# SGo]{1,30}"), |b| {
        csv_case(&scratch, &b, "read_maze_csv", maze_csv)
    });
}
