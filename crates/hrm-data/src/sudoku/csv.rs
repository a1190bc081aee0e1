//! The import of the reference's Sudoku CSV layout (`source,question,answer,rating`, `.` for
//! blanks), every row checked, with the seeded subsampling of `train` / `test` rows.
//!
//! Mirrors the reading half of `dataset/build_sudoku_dataset.py` (`preprocess_data` reads the
//! hub CSVs with `csv.reader`, `subsample_size` keeps a random subset). What differs: a row
//! with the wrong length or characters, a puzzle with no or several solutions, or an answer
//! that is not the puzzle's solution is an error naming the file and line.

use std::path::Path;

use rayon::prelude::*;

use super::Board;
use crate::csv::CsvReader;
use crate::error::{DataError, Result};
use crate::rng;

/// One row of a reference Sudoku CSV, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudokuCsvRow {
    /// 1-based line in the file.
    pub line: usize,
    /// The `source` column.
    pub source: String,
    /// The puzzle (`question`).
    pub puzzle: Board,
    /// Its solution (`answer`).
    pub solution: Board,
    /// The `rating` column, as written.
    pub rating: String,
}

/// Checks the format of one record: field count, lengths, characters, and that the question
/// repeats no digit in a unit. The solver checks come later ([`check_rows`]).
fn parse_row(path: &Path, line: usize, fields: Vec<String>, size: usize) -> Result<SudokuCsvRow> {
    let err = |reason: String| DataError::line(path, line, reason);
    let [source, question, answer, rating] = crate::csv::columns(path, line, fields)?;
    let cells = size * size;
    for (name, text, blanks) in [("question", &question, true), ("answer", &answer, false)] {
        let n = text.chars().count();
        if n != cells {
            return Err(err(format!(
                "{name} has {n} characters, expected {cells} (a {size}x{size} board)"
            )));
        }
        if let Some((i, c)) = text.chars().enumerate().find(|&(_, c)| {
            let digit = c.is_ascii_digit() && c != '0' && (c as u8 - b'0') as usize <= size;
            !(digit || (blanks && c == '.'))
        }) {
            let allowed = if blanks {
                format!("1-{size} or .")
            } else {
                format!("1-{size}")
            };
            return Err(err(format!(
                "{name} character {} is {c:?}, expected {allowed}",
                i + 1
            )));
        }
    }
    let to_cells = |s: &str| -> Vec<u8> {
        s.bytes()
            .map(|b| if b == b'.' { 0 } else { b - b'0' })
            .collect()
    };
    let puzzle = Board::from_cells_unchecked(size, to_cells(&question));
    let solution = Board::from_cells_unchecked(size, to_cells(&answer));
    if let Some((digit, unit)) = puzzle.first_conflict() {
        return Err(err(format!(
            "puzzle has no solution: digit {digit} appears twice in {unit}"
        )));
    }
    Ok(SudokuCsvRow {
        line,
        source,
        puzzle,
        solution,
        rating,
    })
}

/// Solves each row's puzzle (in parallel): it must have exactly one solution, and it must be
/// the row's answer. The error names the first bad row in file order.
fn check_rows(path: &Path, rows: &[SudokuCsvRow]) -> Result<()> {
    let bad = rows
        .par_iter()
        .filter_map(|r| {
            let result = r.puzzle.solve(2);
            let reason = match (result.solutions, result.solution) {
                (0, _) => "puzzle has no solution".to_string(),
                (1, Some(s)) if s == r.solution.cells() => return None,
                (1, Some(s)) => match r.solution.first_conflict() {
                    Some((digit, unit)) => format!("answer breaks the rules: digit {digit} appears twice in {unit}"),
                    None => {
                        let i = (0..s.len()).find(|&i| s[i] != r.solution.cells()[i]).unwrap_or(0);
                        let n = r.puzzle.size();
                        format!(
                            "answer is not the puzzle's solution: cell {} (row {}, column {}) is {} in the answer, {} in the solution",
                            i + 1,
                            i / n + 1,
                            i % n + 1,
                            r.solution.cells()[i],
                            s[i]
                        )
                    }
                },
                _ => "puzzle is ambiguous: it has more than one solution".to_string(),
            };
            Some((r.line, reason))
        })
        .min_by_key(|(line, _)| *line);
    match bad {
        None => Ok(()),
        Some((line, reason)) => Err(DataError::line(path, line, reason)),
    }
}

/// Reads and checks a whole CSV in the reference's layout (`source,question,answer,rating`,
/// `.` for blanks), 9x9, 6x6 or 4x4: the first row's question decides (16 characters 4x4, 36
/// characters 6x6, anything else 9x9, whose length check then names the 81 expected).
///
/// # Errors
/// [`DataError::Line`] naming the file and line of a row with the wrong number of fields, a
/// question or answer of the wrong length, a character outside the alphabet, a puzzle with no
/// or several solutions, or an answer that is not the puzzle's solution;
/// [`DataError::Io`] if the file cannot be read.
pub fn read_sudoku_csv(path: &Path) -> Result<Vec<SudokuCsvRow>> {
    let mut reader = CsvReader::open(path)?;
    reader.expect_header()?;
    let mut rows = Vec::new();
    let mut size = None;
    while let Some(rec) = reader.next_record()? {
        let side =
            *size.get_or_insert_with(|| match rec.fields.get(1).map(|q| q.chars().count()) {
                Some(16) => 4,
                Some(36) => 6,
                _ => 9,
            });
        rows.push(parse_row(path, rec.line, rec.fields, side)?);
    }
    check_rows(path, &rows)?;
    Ok(rows)
}

/// Reads `keep` rows of `path` (0 = all), chosen at random with `rng` when the file has more,
/// in draw order. Every row's format is checked; uniqueness only for the rows kept.
pub(super) fn load_csv(
    path: &Path,
    keep: usize,
    size: usize,
    rng: &mut rng::DataRng,
) -> Result<Vec<SudokuCsvRow>> {
    let mut reader = CsvReader::open(path)?;
    reader.expect_header()?;
    let mut rows = Vec::new();
    let mut count = 0;
    while let Some(rec) = reader.next_record()? {
        let row = parse_row(path, rec.line, rec.fields, size)?;
        count += 1;
        if keep == 0 || count <= keep {
            rows.push(row);
        } else if !rows.is_empty() {
            rows = Vec::new();
        }
    }
    if keep != 0 && count > keep {
        // Second pass: keep a random subset, like the reference's np.random.choice.
        let chosen = rng::sample_without_replacement(rng, count, keep);
        let mut slot = vec![usize::MAX; count];
        for (pos, &i) in chosen.iter().enumerate() {
            slot[i] = pos;
        }
        let mut picked: Vec<Option<SudokuCsvRow>> = vec![None; keep];
        let mut reader = CsvReader::open(path)?;
        reader.expect_header()?;
        let mut i = 0;
        while let Some(rec) = reader.next_record()? {
            if slot[i] != usize::MAX {
                picked[slot[i]] = Some(parse_row(path, rec.line, rec.fields, size)?);
            }
            i += 1;
        }
        rows = picked
            .into_iter()
            .map(|r| r.expect("every chosen row read"))
            .collect();
    }
    check_rows(path, &rows)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sudoku::fixtures::{write_csv, PUZZLE, SOLUTION};
    use crate::sudoku::SudokuAugmentation;

    #[test]
    fn csv_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("train.csv");
        let good = format!("a,{PUZZLE},{SOLUTION},3");
        // Row 1 needs a 9 in its only blank (column 9), which sees the 9 below it: no solution,
        // although no digit repeats.
        let dead = format!("12345678.........9{}", ".".repeat(63));
        let cases: Vec<(String, &str)> = vec![
            (
                format!("a,{},{SOLUTION},3", &PUZZLE[1..]),
                "question has 80 characters, expected 81",
            ),
            (
                format!("a,{PUZZLE},{},3", &SOLUTION[1..]),
                "answer has 80 characters",
            ),
            (
                format!("a,{}x{},{SOLUTION},3", &PUZZLE[..4], &PUZZLE[5..]),
                "question character 5 is 'x'",
            ),
            (
                format!("a,{PUZZLE},{}.,3", &SOLUTION[..80]),
                "answer character 81 is '.'",
            ),
            (format!("a,{PUZZLE},{SOLUTION}"), "expected 4 fields"),
            (
                format!("a,55{},{SOLUTION},3", &PUZZLE[2..]),
                "puzzle has no solution: digit 5 appears twice in row 1",
            ),
            (format!("a,{dead},{SOLUTION},3"), "puzzle has no solution"),
            (
                format!("a,{}{},{SOLUTION},3", ".".repeat(20), &PUZZLE[20..]),
                "ambiguous",
            ),
            (
                format!("a,{PUZZLE},{}8,3", &SOLUTION[..80]),
                "answer breaks the rules: digit 8 appears twice in row 9",
            ),
            (
                format!(
                    "a,{PUZZLE},{},3",
                    SudokuAugmentation::random(&mut rng::stream(0, 0, 0), 9)
                        .apply(&crate::sudoku::parse_puzzle(SOLUTION).unwrap())
                        .to_line()
                ),
                "answer is not the puzzle's solution",
            ),
        ];
        for (row, expected) in cases {
            write_csv(dir.path(), "train.csv", &[good.clone(), good.clone(), row]);
            let err = read_sudoku_csv(&path).unwrap_err();
            match &err {
                DataError::Line {
                    path: p,
                    line,
                    reason,
                } => {
                    assert_eq!(p, &path);
                    assert_eq!(*line, 4, "{reason}");
                    assert!(
                        reason.contains(expected),
                        "{reason:?} should contain {expected:?}"
                    );
                }
                other => panic!("expected a Line error, got {other}"),
            }
        }
        write_csv(dir.path(), "train.csv", &[good.clone(), good]);
        assert_eq!(read_sudoku_csv(&path).unwrap().len(), 2);
    }
}
