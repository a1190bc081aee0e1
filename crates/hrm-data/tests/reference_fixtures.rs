//! Datasets written by the reference's own Python builders (see `fixtures/README.md`) are read
//! without conversion, and their tokens, identifiers and augmentations mean what hrm-data says
//! they mean.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hrm_data::arc::{parse_identifier, read_test_puzzles, tokens_to_grid, Grid, ARC_SEQ_LEN};
use hrm_data::maze::{self, check_path};
use hrm_data::sudoku::{self, check_solution};
use hrm_data::{read_identifiers, Dataset, Dihedral, EvalSampler, TrainSampler, IGNORE_LABEL_ID};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The first row of the `train.csv` the Sudoku fixture was built from.
const FIRST_PUZZLE: &str =
    "....7..83....189.5.5.........9........715....86..3....7..69.5....67....4.12..4..7";
const FIRST_SOLUTION: &str =
    "291576483473218965658943271149867352327159846865432719734691528986725134512384697";

#[test]
fn reference_sudoku_is_read_with_the_same_meaning() {
    let dir = fixture("reference-sudoku");
    let train = Dataset::open(&dir, "train").unwrap();
    let m = train.metadata();
    assert_eq!(
        (
            m.vocab_size,
            m.seq_len,
            m.num_puzzle_identifiers,
            m.total_groups
        ),
        (11, 81, 1, 5)
    );
    assert_eq!(
        (m.pad_id, m.ignore_label_id, m.blank_identifier_id),
        (0, Some(0), 0)
    );
    assert_eq!(
        m.total_puzzles, None,
        "HRM's builder writes no total_puzzles"
    );
    assert_eq!(m.sets, vec!["all"]);
    let set = train.set("all").unwrap();
    assert_eq!(
        (set.num_examples(), set.num_puzzles(), set.num_groups()),
        (20, 20, 5)
    );
    // The reference's augmentation maps digits through an int64 table, so its augmented train
    // split is int64 while its test split stays uint8: both read the same.
    assert_eq!(set.inputs().dtype(), hrm_data::npy::Dtype::I64);
    assert_eq!(read_identifiers(&dir).unwrap(), vec!["<blank>"]);
    // The first example is the CSV's first row, encoded as blank 1, digit d -> d + 1.
    let (inp, lab) = set.example(0).unwrap();
    assert_eq!(
        sudoku::decode_tokens(&inp, 9).unwrap(),
        sudoku::parse_puzzle(FIRST_PUZZLE).unwrap()
    );
    assert_eq!(
        sudoku::decode_tokens(&lab, 9).unwrap(),
        sudoku::parse_puzzle(FIRST_SOLUTION).unwrap()
    );
    assert_eq!(
        inp,
        sudoku::encode_board(&sudoku::parse_puzzle(FIRST_PUZZLE).unwrap())
    );
    // Every example, augmented ones included, is a unique puzzle whose solution is its label.
    for i in 0..set.num_examples() {
        let (inp, lab) = set.example(i).unwrap();
        let p = sudoku::decode_tokens(&inp, 9).unwrap();
        let s = sudoku::decode_tokens(&lab, 9).unwrap();
        assert!(check_solution(&p, &s).solved(), "example {i}");
        assert_eq!(p.unique_solution().unwrap(), s, "example {i}");
    }
    // The samplers work on it: 5 groups give one batch of 4 per epoch.
    let batches: Vec<_> = TrainSampler::new(&train, 4, 0).unwrap().take(3).collect();
    assert!(batches.iter().all(|b| b.inputs.dim() == (4, 81)));
    let test = Dataset::open(&dir, "test").unwrap();
    assert_eq!(
        test.set("all").unwrap().inputs().dtype(),
        hrm_data::npy::Dtype::U8
    );
    let eval: Vec<_> = EvalSampler::new(&test, 2).unwrap().collect();
    assert_eq!(
        eval.iter()
            .map(|b| b.effective_batch_size)
            .collect::<Vec<_>>(),
        vec![2, 1]
    );
}

#[test]
fn reference_maze_tokens_and_dihedral_ids_match() {
    let dir = fixture("reference-maze-trm");
    let train = Dataset::open(&dir, "train").unwrap();
    let m = train.metadata();
    assert_eq!((m.vocab_size, m.seq_len, m.total_groups), (6, 900, 5));
    assert_eq!(
        m.total_puzzles,
        Some(5),
        "TRM writes the number of groups here"
    );
    let set = train.set("all").unwrap();
    assert_eq!((set.num_examples(), set.num_groups()), (40, 5));
    for g in 0..5 {
        // The reference's group is the 8 dihedral transforms in id order: ours must agree.
        let (first_in, first_lab) = set.example(g * 8).unwrap();
        let maze0 = maze::decode_tokens(&first_in, 30, 30).unwrap();
        let sol0 = maze::decode_tokens(&first_lab, 30, 30).unwrap();
        for t in Dihedral::ALL {
            let (inp, lab) = set.example(g * 8 + t.id() as usize).unwrap();
            let mz = maze::decode_tokens(&inp, 30, 30).unwrap();
            assert_eq!(mz, maze0.transform(t), "group {g} transform {t:?}");
            assert_eq!(
                maze::decode_tokens(&lab, 30, 30).unwrap(),
                sol0.transform(t)
            );
            let v = check_path(&mz, &maze::decode_tokens(&lab, 30, 30).unwrap());
            assert!(v.valid_path && v.shortest && v.length.unwrap() >= 110);
        }
    }
    Dataset::open(&dir, "test").unwrap();
}

/// Shifts a translated ARC canvas back to the top-left corner.
fn untranslate(tokens: &[i32]) -> Vec<i32> {
    let n = 30;
    let first = tokens.iter().position(|&t| t >= 2).expect("a grid");
    let (r0, c0) = (first / n, first % n);
    let mut out = vec![0; ARC_SEQ_LEN];
    for r in r0..n {
        for c in c0..n {
            out[(r - r0) * n + (c - c0)] = tokens[r * n + c];
        }
    }
    out
}

/// Checks an ARC fixture: every example, un-augmented through its identifier, is the same pair
/// as the original puzzle's example at the same position; returns the originals' test pairs.
fn check_arc(dir: &Path) -> BTreeMap<String, Vec<(Grid, Grid)>> {
    let names = read_identifiers(dir).unwrap();
    assert_eq!(names.len(), 13);
    assert_eq!(names[0], "<blank>");
    let mut test_pairs = BTreeMap::new();
    for split in ["train", "test"] {
        let ds = Dataset::open(dir, split).unwrap();
        let m = ds.metadata();
        assert_eq!(
            (m.vocab_size, m.seq_len, m.num_puzzle_identifiers),
            (12, 900, 13)
        );
        let set = ds.set("all").unwrap();
        let gi = set.group_indices().to_vec();
        let pi = set.puzzle_indices().to_vec();
        for g in 0..set.num_groups() {
            let original = gi[g];
            let (task, aug) =
                parse_identifier(&names[set.puzzle_identifiers()[original] as usize]).unwrap();
            assert!(
                aug.is_identity(),
                "the first puzzle of a group is the original"
            );
            let decode = |e: usize| {
                let (i, l) = set.example(e).unwrap();
                let (i, l) = if split == "train" {
                    (untranslate(&i), untranslate(&l))
                } else {
                    (i, l)
                };
                (tokens_to_grid(&i).unwrap(), tokens_to_grid(&l).unwrap())
            };
            let originals: Vec<(Grid, Grid)> =
                (pi[original]..pi[original + 1]).map(decode).collect();
            for p in gi[g]..gi[g + 1] {
                let (t, a) =
                    parse_identifier(&names[set.puzzle_identifiers()[p] as usize]).unwrap();
                assert_eq!(t, task);
                assert_eq!(a.colour_map[0], 0);
                let examples: Vec<(Grid, Grid)> = (pi[p]..pi[p + 1])
                    .map(decode)
                    .map(|(i, o)| (a.invert(&i), a.invert(&o)))
                    .collect();
                // Translation may move whole examples but never reorders them.
                assert_eq!(
                    examples,
                    originals,
                    "{split} puzzle {p} ({})",
                    names[set.puzzle_identifiers()[p] as usize]
                );
            }
            if split == "test" {
                test_pairs.insert(task, originals);
            }
        }
        // Labels keep PAD as the ignore label: the samplers map it to -100.
        let batch = EvalSampler::new(&ds, 2).unwrap().next().unwrap();
        assert!(batch.labels.iter().any(|&l| l == IGNORE_LABEL_ID));
    }
    test_pairs
}

#[test]
fn reference_arc_trm_identifiers_and_augmentations_match() {
    let dir = fixture("reference-arc-trm");
    let test_pairs = check_arc(&dir);
    let tasks = read_test_puzzles(&dir).unwrap();
    assert_eq!(tasks.keys().collect::<Vec<_>>(), vec!["66e6c45b"]);
    let expected: Vec<(Grid, Grid)> = tasks["66e6c45b"]
        .test
        .iter()
        .map(|p| (p.input.clone(), p.output.clone().unwrap()))
        .collect();
    assert_eq!(test_pairs["66e6c45b"], expected);
    let names = read_identifiers(&dir).unwrap();
    assert!(names.iter().skip(1).all(|n| parse_identifier(n).is_some()));
    assert!(names.iter().any(|n| n.contains("|||t")));
    let train = Dataset::open(&dir, "train").unwrap();
    assert_eq!(train.metadata().total_puzzles, Some(12));
}

#[test]
fn reference_arc_hrm_legacy_identifiers_parse() {
    let dir = fixture("reference-arc-hrm");
    check_arc(&dir);
    let names = read_identifiers(&dir).unwrap();
    assert!(names.iter().any(|n| n.contains("_t")));
    assert_eq!(
        Dataset::open(&dir, "test")
            .unwrap()
            .metadata()
            .total_puzzles,
        None
    );
}
