//! `hrm data show`: one example of a dataset as text (and optionally a PNG), with a prediction
//! and its verdict when a predictions file is given.
//!
//! The reference's counterpart is `puzzle_visualizer.html`, which loads a dataset's `.npy`
//! files in a browser and draws one puzzle at a time.

use std::path::{Path, PathBuf};

use crate::arc::tokens_to_grid;
use crate::error::{DataError, Result};
use crate::format::{read_identifiers, Dataset, Validation};
use crate::maze::{self, check_path};
use crate::npy::NpyArray;
use crate::render::{format_grid, render_example, TaskKind};
use crate::sudoku::{self, check_solution};

/// What to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowOptions {
    /// The split (`train` or `test`).
    pub split: String,
    /// The example, an index into the set's examples.
    pub index: usize,
    /// The set (default: the split's first).
    pub set: Option<String>,
    /// Also draw input, label (and prediction) into this PNG file.
    pub png: Option<PathBuf>,
    /// A `.npy` of predicted tokens `[N, seq_len]` aligned with the set's examples.
    pub predictions: Option<PathBuf>,
}

impl Default for ShowOptions {
    fn default() -> ShowOptions {
        ShowOptions {
            split: "train".into(),
            index: 0,
            set: None,
            png: None,
            predictions: None,
        }
    }
}

/// The text printed and the PNG written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowReport {
    /// The dataset summary, the example's grids and any verdict.
    pub text: String,
    /// The PNG written, if any.
    pub png: Option<PathBuf>,
}

/// Reads row `index` of a predictions file, checking its shape against the dataset.
fn prediction_row(path: &Path, index: usize, seq_len: usize) -> Result<Vec<i32>> {
    let a = NpyArray::open(path)?;
    if a.shape().len() != 2 || a.shape()[1] != seq_len {
        return Err(DataError::field(
            path,
            "predictions",
            format!("shape [N, {seq_len}] (seq_len)"),
            format!("{:?}", a.shape()),
        ));
    }
    if index >= a.shape()[0] {
        return Err(DataError::IndexOutOfRange {
            what: format!("prediction row of {}", path.display()),
            index,
            len: a.shape()[0],
        });
    }
    let mut row = vec![0i32; seq_len];
    a.copy_to_i32(index * seq_len, &mut row);
    Ok(row)
}

/// A one-line verdict on a prediction, by the task's rules.
fn verdict(
    kind: TaskKind,
    input: &[i32],
    label: &[i32],
    pred: &[i32],
    ignore: Option<i32>,
) -> String {
    let exact = label.len() == pred.len()
        && label
            .iter()
            .zip(pred)
            .all(|(l, p)| l == p || Some(*l) == ignore);
    let rules = match kind {
        TaskKind::Sudoku { size } => match (
            sudoku::decode_tokens(input, size),
            sudoku::decode_tokens(pred, size),
        ) {
            (Ok(p), Ok(s)) => {
                let v = check_solution(&p, &s);
                format!(
                    "rules {}, givens {}, complete {}",
                    yes(v.valid_rules),
                    yes(v.agrees_with_givens),
                    yes(v.complete)
                )
            }
            (_, Err(e)) => format!("not a board: {e}"),
            (Err(e), _) => format!("input is not a board: {e}"),
        },
        TaskKind::Maze { side } => match (
            maze::decode_tokens(input, side, side),
            maze::decode_tokens(pred, side, side),
        ) {
            (Ok(m), Ok(p)) => {
                let v = check_path(&m, &p);
                let length = v.length.map_or("-".to_string(), |l| l.to_string());
                let optimal = v.optimal_length.map_or("-".to_string(), |l| l.to_string());
                format!(
                    "valid path {}, shortest {}, length {length} (optimal {optimal})",
                    yes(v.valid_path),
                    yes(v.shortest)
                )
            }
            (_, Err(e)) => format!("not a maze: {e}"),
            (Err(e), _) => format!("input is not a maze: {e}"),
        },
        TaskKind::Arc => match (tokens_to_grid(pred), tokens_to_grid(label)) {
            (Some(p), Some(l)) => format!(
                "grid {}x{} (label {}x{}), equal {}",
                p.height(),
                p.width(),
                l.height(),
                l.width(),
                yes(p == l)
            ),
            (None, _) => "no grid at the top-left corner".to_string(),
            (_, None) => "the label has no grid".to_string(),
        },
        TaskKind::Other { .. } => String::new(),
    };
    format!(
        "exact match (ignored label cells skipped): {}{}{}",
        yes(exact),
        if rules.is_empty() { "" } else { "; " },
        rules
    )
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// Describes example `opts.index` of `dir/opts.split` and optionally renders it to a PNG.
///
/// The dataset is opened with [`Validation::Structure`] (no scan of the token arrays), so this
/// is quick on large datasets.
///
/// # Errors
/// Opening errors as [`Dataset::open`]; [`DataError::UnknownSet`], [`DataError::IndexOutOfRange`]
/// for the example or the prediction row; [`DataError::Field`] for a predictions file of the
/// wrong shape; [`DataError::Io`] for the PNG.
pub fn show_example(dir: &Path, opts: &ShowOptions) -> Result<ShowReport> {
    let ds = Dataset::open_with(dir, &opts.split, Validation::Structure)?;
    let meta = ds.metadata();
    let kind = TaskKind::detect(meta);
    let set = match &opts.set {
        Some(name) => ds.set(name)?,
        None => &ds.sets()[0],
    };
    let (input, label) = set.example(opts.index)?;
    let puzzle = set.puzzle_of_example(opts.index)?;
    let group = set.group_indices().partition_point(|&g| g <= puzzle) - 1;
    let identifier = set.puzzle_identifiers()[puzzle];
    let names = read_identifiers(dir).ok();
    let name = names
        .as_ref()
        .and_then(|n| n.get(identifier as usize))
        .map(|n| format!(" {n:?}"))
        .unwrap_or_default();

    let mut text = format!(
        "{} split {}: {}, vocab_size {}, seq_len {}, {} puzzle identifiers\n",
        dir.display(),
        opts.split,
        kind.name(),
        meta.vocab_size,
        meta.seq_len,
        meta.num_puzzle_identifiers
    );
    for s in ds.sets() {
        text.push_str(&format!(
            "  set {}: {} examples, {} puzzles, {} groups\n",
            s.name(),
            s.num_examples(),
            s.num_puzzles(),
            s.num_groups()
        ));
    }
    text.push_str(&format!(
        "example {} of set {}: puzzle {puzzle} (identifier {identifier}{name}), group {group}\n\ninput:\n{}\nlabel:\n{}",
        opts.index,
        set.name(),
        format_grid(kind, &input),
        format_grid(kind, &label)
    ));
    let prediction = match &opts.predictions {
        Some(path) => {
            let row = prediction_row(path, opts.index, meta.seq_len)?;
            text.push_str(&format!(
                "\nprediction (row {} of {}):\n{}",
                opts.index,
                path.display(),
                format_grid(kind, &row)
            ));
            text.push_str(&format!(
                "{}\n",
                verdict(kind, &input, &label, &row, meta.ignore_label_id)
            ));
            Some(row)
        }
        None => None,
    };
    if let Some(path) = &opts.png {
        render_example(kind, &input, &label, prediction.as_deref()).save_png(path)?;
        text.push_str(&format!("\nwrote {}\n", path.display()));
    }
    Ok(ShowReport {
        text,
        png: opts.png.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sudoku::{build_sudoku, Difficulty, SudokuOptions};

    #[test]
    fn shows_sudoku_with_prediction_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SudokuOptions {
            train: 2,
            test: 2,
            aug: 1,
            size: 4,
            difficulty: Difficulty::Medium,
            ..SudokuOptions::new(dir.path().join("s"))
        };
        build_sudoku(&opts).unwrap();
        // Predictions: the labels, with one cell of example 1 wrong.
        let test = Dataset::open(&opts.out, "test").unwrap();
        let set = test.set("all").unwrap();
        let mut preds = Vec::new();
        for i in 0..2 {
            preds.extend(set.example(i).unwrap().1);
        }
        preds[16] = if preds[16] == 2 { 3 } else { 2 };
        let pred_path = dir.path().join("all__predictions.npy");
        crate::npy::write_i32(&pred_path, &[2, 16], &preds).unwrap();
        let png = dir.path().join("ex.png");
        let show = ShowOptions {
            split: "test".into(),
            index: 1,
            set: None,
            png: Some(png.clone()),
            predictions: Some(pred_path.clone()),
        };
        let report = show_example(&opts.out, &show).unwrap();
        assert!(report.text.contains("sudoku 4x4"), "{}", report.text);
        assert!(
            report.text.contains("identifier 0 \"<blank>\""),
            "{}",
            report.text
        );
        assert!(
            report
                .text
                .contains("exact match (ignored label cells skipped): no; rules no"),
            "{}",
            report.text
        );
        assert!(png.is_file());
        let ok = show_example(
            &opts.out,
            &ShowOptions {
                index: 0,
                ..show.clone()
            },
        )
        .unwrap();
        assert!(ok.text.contains("exact match (ignored label cells skipped): yes; rules yes, givens yes, complete yes"), "{}", ok.text);
        // Errors: a row past the end, a wrong-shaped file, an unknown set.
        assert!(matches!(
            show_example(
                &opts.out,
                &ShowOptions {
                    index: 2,
                    ..show.clone()
                }
            ),
            Err(DataError::IndexOutOfRange { .. })
        ));
        crate::npy::write_i32(&pred_path, &[2, 2], &[0; 4]).unwrap();
        assert!(matches!(
            show_example(&opts.out, &show),
            Err(DataError::Field { .. })
        ));
        assert!(matches!(
            show_example(
                &opts.out,
                &ShowOptions {
                    set: Some("x".into()),
                    ..ShowOptions::default()
                }
            ),
            Err(DataError::UnknownSet { .. })
        ));
    }
}
