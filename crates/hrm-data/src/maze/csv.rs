//! The import of the reference's maze CSV layout (`source,question,answer,rating`, one row per
//! maze, the grid flattened to one line of `# SGo`), every row checked.
//!
//! Mirrors the reading half of `dataset/build_maze_dataset.py` (`convert_subset`). What
//! differs: the reference trusts its rows; here a row with the wrong characters, not exactly
//! one S and G, or an answer that is not the question plus a valid path is an error naming the
//! file and line.

use std::path::Path;

use super::{check_path, Maze, CHARSET, GOAL, OPEN, PATH, START};
use crate::csv::CsvReader;
use crate::error::{DataError, Result};

/// One row of a reference maze CSV, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MazeCsvRow {
    /// 1-based line in the file.
    pub line: usize,
    /// The `source` column.
    pub source: String,
    /// The maze (`question`).
    pub maze: Maze,
    /// The maze with its path (`answer`).
    pub solution: Maze,
    /// The `rating` column, as written.
    pub rating: String,
}

fn parse_maze_row(path: &Path, line: usize, fields: Vec<String>) -> Result<MazeCsvRow> {
    let err = |reason: String| DataError::line(path, line, reason);
    let [source, question, answer, rating] = crate::csv::columns(path, line, fields)?;
    let len = question.len();
    let side = (len as f64).sqrt().round() as usize;
    if side * side != len || len == 0 {
        return Err(err(format!(
            "question has {len} characters, not a square grid"
        )));
    }
    if answer.len() != len {
        return Err(err(format!(
            "answer has {} characters, expected {len} (as the question)",
            answer.len()
        )));
    }
    for (name, text) in [("question", &question), ("answer", &answer)] {
        if let Some((i, c)) = text
            .chars()
            .enumerate()
            .find(|(_, c)| !CHARSET.contains(*c))
        {
            return Err(err(format!(
                "{name} character {} is {c:?}, not one of {CHARSET:?}",
                i + 1
            )));
        }
    }
    let maze = Maze {
        height: side,
        width: side,
        cells: question.into_bytes(),
    };
    let solution = Maze {
        height: side,
        width: side,
        cells: answer.into_bytes(),
    };
    for (c, name) in [(START, "S"), (GOAL, "G")] {
        let k = maze.cells.iter().filter(|&&x| x == c).count();
        if k != 1 {
            return Err(err(format!("question has {k} {name}, expected 1")));
        }
    }
    if let Some(i) = (0..len).find(|&i| {
        solution.cells[i] != maze.cells[i] && !(solution.cells[i] == PATH && maze.cells[i] == OPEN)
    }) {
        return Err(err(format!(
            "answer differs from the question at row {}, column {} ({:?} vs {:?}) other than by a path mark on an open square",
            i / side + 1,
            i % side + 1,
            char::from(solution.cells[i]),
            char::from(maze.cells[i])
        )));
    }
    if !check_path(&maze, &solution).valid_path {
        return Err(err(
            "answer's `o` squares do not form a path from S to G".into()
        ));
    }
    Ok(MazeCsvRow {
        line,
        source,
        maze,
        solution,
        rating,
    })
}

/// Reads and checks a whole maze CSV in the reference's layout.
///
/// # Errors
/// [`DataError::Line`] naming the file and line of a bad row (field count, non-square or
/// mismatched lengths, characters outside `# SGo`, not exactly one S and G, an answer that is
/// not the question plus a valid path); [`DataError::Io`].
pub fn read_maze_csv(path: &Path) -> Result<Vec<MazeCsvRow>> {
    let mut reader = CsvReader::open(path)?;
    reader.expect_header()?;
    let mut rows: Vec<MazeCsvRow> = Vec::new();
    while let Some(rec) = reader.next_record()? {
        let row = parse_maze_row(path, rec.line, rec.fields)?;
        if let Some(first) = rows.first() {
            if first.maze.height != row.maze.height {
                return Err(DataError::line(
                    path,
                    row.line,
                    format!(
                        "{0}x{0} maze, but line {1} has {2}x{2}",
                        row.maze.height, first.line, first.maze.height
                    ),
                ));
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Dataset;
    use crate::maze::{build_maze, decode_tokens, parse_maze, MazeOptions};

    const SMALL: &str = "#####\n#S  #\n# # #\n#  G#\n#####\n";

    #[test]
    fn csv_import_checks_rows() {
        let dir = tempfile::tempdir().unwrap();
        let m = parse_maze(SMALL, Path::new("m")).unwrap();
        let s = m.solved().unwrap();
        let good = format!("x,{},{},4", m.to_line(), s.to_line());
        let cases = [
            (
                format!("x,{},{},4", &m.to_line()[1..], &s.to_line()[1..]),
                "not a square grid",
            ),
            (
                format!("x,{},{},4", m.to_line().replace('#', "X"), s.to_line()),
                "question character 1 is 'X'",
            ),
            (
                format!("x,{},{},4", m.to_line().replace('G', " "), s.to_line()),
                "0 G",
            ),
            (
                format!("x,{},{},4", m.to_line(), m.to_line()),
                "do not form a path",
            ),
            (
                format!("x,{},{},4", m.to_line(), s.to_line().replacen('#', "o", 1)),
                "differs from the question at row 1, column 1",
            ),
        ];
        for (row, expected) in cases {
            std::fs::write(
                dir.path().join("train.csv"),
                format!("source,question,answer,rating\n{good}\n{row}\n"),
            )
            .unwrap();
            let err = read_maze_csv(&dir.path().join("train.csv")).unwrap_err();
            assert!(matches!(&err, DataError::Line { line: 3, .. }), "{err}");
            assert!(
                err.to_string().contains(expected),
                "{err} should contain {expected}"
            );
        }
        std::fs::write(
            dir.path().join("train.csv"),
            format!("source,question,answer,rating\n{good}\n{good}\n"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("test.csv"),
            format!("source,question,answer,rating\n{good}\n"),
        )
        .unwrap();
        let opts = MazeOptions {
            train: 0,
            test: 0,
            aug: true,
            csv_dir: Some(dir.path().to_path_buf()),
            ..MazeOptions::new(dir.path().join("out"))
        };
        let summary = build_maze(&opts).unwrap();
        assert_eq!(summary.seq_len, 25);
        assert_eq!(summary.examples("train"), 16);
        let ds = Dataset::open(&opts.out, "train").unwrap();
        let (inp, lab) = ds.example("all", 9).unwrap();
        let v = check_path(
            &decode_tokens(&inp, 5, 5).unwrap(),
            &decode_tokens(&lab, 5, 5).unwrap(),
        );
        assert!(v.shortest);
    }
}
