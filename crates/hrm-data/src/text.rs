//! Terminal views of examples: Sudoku with box separators, mazes in `# SGo`, ARC grids as
//! digits; and [`TaskKind`], which tells from a dataset's metadata what its tokens mean.
//!
//! No reference counterpart beyond `puzzle_visualizer.html`, which guesses the task the same
//! way (from the sequence length and vocabulary). Plain text, so it is built without the
//! `render` feature; `render` (when enabled) re-exports both items.

use crate::arc::{tokens_to_grid, ARC_SEQ_LEN, ARC_VOCAB_SIZE};
use crate::format::DatasetMetadata;
use crate::maze::{CHARSET, MAZE_VOCAB_SIZE};
use crate::sudoku::{box_dims, grid_text, SUDOKU_VOCAB_SIZE};

/// What a dataset's token sequences encode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Sudoku of side `size` (4, 6 or 9).
    Sudoku {
        /// Board side.
        size: usize,
    },
    /// A maze of `side x side` squares.
    Maze {
        /// Grid side.
        side: usize,
    },
    /// ARC (30x30 canvas).
    Arc,
    /// Unknown: tokens are shown as numbers.
    Other {
        /// Tokens per example.
        seq_len: usize,
    },
}

impl TaskKind {
    /// Guesses the task from `vocab_size` and `seq_len` ([`TaskKind::from_sizes`]).
    pub fn detect(meta: &DatasetMetadata) -> TaskKind {
        TaskKind::from_sizes(meta.vocab_size, meta.seq_len)
    }

    /// The task of sequences of `seq_len` tokens below `vocab_size`: 11 and 81, 36 or 16 are
    /// Sudoku 9x9, 6x6 or 4x4; 6 and a square a maze; 12 and 900 ARC; anything else
    /// [`TaskKind::Other`].
    ///
    /// ```
    /// use hrm_data::TaskKind;
    /// assert_eq!(TaskKind::from_sizes(11, 36), TaskKind::Sudoku { size: 6 });
    /// assert_eq!(TaskKind::from_sizes(6, 36), TaskKind::Maze { side: 6 });
    /// ```
    pub fn from_sizes(vocab_size: usize, seq_len: usize) -> TaskKind {
        let side = (seq_len as f64).sqrt().round() as usize;
        match vocab_size {
            SUDOKU_VOCAB_SIZE if side * side == seq_len && box_dims(side).is_some() => {
                TaskKind::Sudoku { size: side }
            }
            MAZE_VOCAB_SIZE if side * side == seq_len => TaskKind::Maze { side },
            ARC_VOCAB_SIZE if seq_len == ARC_SEQ_LEN => TaskKind::Arc,
            _ => TaskKind::Other { seq_len },
        }
    }

    /// A short name (`sudoku 9x9`, `maze 30x30`, `arc`, `tokens`).
    pub fn name(&self) -> String {
        match self {
            TaskKind::Sudoku { size } => format!("sudoku {size}x{size}"),
            TaskKind::Maze { side } => format!("maze {side}x{side}"),
            TaskKind::Arc => "arc".into(),
            TaskKind::Other { seq_len } => format!("{seq_len} tokens"),
        }
    }
}

/// The character of a Sudoku token: `.` blank, digits, `_` PAD, `?` anything else.
fn sudoku_char(t: i32, size: usize) -> char {
    match t {
        0 => '_',
        1 => '.',
        t if t >= 2 && t <= size as i32 + 1 => char::from(b'0' + (t - 1) as u8),
        _ => '?',
    }
}

/// One example's tokens as text for a terminal. Tokens that are not part of the task's
/// vocabulary show as `?` (PAD as `_` in Sudoku and mazes); an ARC canvas that does not crop
/// to a grid is shown whole (`.` PAD, `|` EOS, digits for colours).
///
/// ```
/// use hrm_data::text::{format_grid, TaskKind};
/// let tokens = [2, 1, 1, 5, 1, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2];
/// assert_eq!(format_grid(TaskKind::Sudoku { size: 4 }, &tokens), "1 . | . 4\n. . | 1 .\n----+----\n. 1 | . .\n. . | . 1\n");
/// ```
pub fn format_grid(kind: TaskKind, tokens: &[i32]) -> String {
    match kind {
        TaskKind::Sudoku { size } if tokens.len() == size * size && box_dims(size).is_some() => {
            grid_text(size, |r, c| sudoku_char(tokens[r * size + c], size))
        }
        TaskKind::Maze { side } if tokens.len() == side * side => {
            let set = CHARSET.as_bytes();
            let mut out = String::with_capacity(tokens.len() + side);
            for row in tokens.chunks(side) {
                out.extend(row.iter().map(|&t| match t {
                    1..=5 => char::from(set[t as usize - 1]),
                    0 => '_',
                    _ => '?',
                }));
                out.push('\n');
            }
            out
        }
        TaskKind::Arc if tokens.len() == ARC_SEQ_LEN => match tokens_to_grid(tokens) {
            Some(g) => format!("{}x{} grid\n{}", g.height(), g.width(), g.to_text()),
            None => {
                let mut out = String::from("no grid at the top-left corner; the whole canvas:\n");
                for row in tokens.chunks(30) {
                    out.extend(row.iter().map(|&t| match t {
                        0 => '.',
                        1 => '|',
                        2..=11 => char::from(b'0' + (t - 2) as u8),
                        _ => '?',
                    }));
                    out.push('\n');
                }
                out
            }
        },
        _ => {
            let side = (tokens.len() as f64).sqrt().round() as usize;
            let width = if side * side == tokens.len() && side > 0 {
                side
            } else {
                tokens.len().max(1)
            };
            let mut out = String::new();
            for row in tokens.chunks(width) {
                let line: Vec<String> = row.iter().map(|t| format!("{t:>3}")).collect();
                out.push_str(&line.join(""));
                out.push('\n');
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arc::{grid_to_tokens, Grid};
    use crate::format::split_metadata;

    #[test]
    fn detects_the_three_tasks() {
        let meta = |vocab, seq| split_metadata(&[], vocab, seq, 1);
        assert_eq!(
            TaskKind::detect(&meta(11, 81)),
            TaskKind::Sudoku { size: 9 }
        );
        assert_eq!(
            TaskKind::detect(&meta(11, 16)),
            TaskKind::Sudoku { size: 4 }
        );
        assert_eq!(
            TaskKind::detect(&meta(11, 36)),
            TaskKind::Sudoku { size: 6 }
        );
        // A 6x6 maze has as many tokens as a 6x6 Sudoku; the vocabulary tells them apart.
        assert_eq!(TaskKind::detect(&meta(6, 36)), TaskKind::Maze { side: 6 });
        // Square, but no Sudoku of that side.
        assert_eq!(
            TaskKind::detect(&meta(11, 25)),
            TaskKind::Other { seq_len: 25 }
        );
        assert_eq!(TaskKind::detect(&meta(6, 900)), TaskKind::Maze { side: 30 });
        assert_eq!(TaskKind::detect(&meta(12, 900)), TaskKind::Arc);
        assert_eq!(
            TaskKind::detect(&meta(7, 10)),
            TaskKind::Other { seq_len: 10 }
        );
    }

    #[test]
    fn formats_six_by_six_sudoku() {
        let mut tokens = vec![1; 36];
        tokens[0] = 2; // digit 1
        tokens[5] = 7; // digit 6
        tokens[35] = 8; // not a 6x6 digit
        tokens[30] = 0; // PAD
        assert_eq!(
            format_grid(TaskKind::Sudoku { size: 6 }, &tokens),
            "1 . . | . . 6\n. . . | . . .\n------+------\n. . . | . . .\n. . . | . . .\n\
             ------+------\n. . . | . . .\n_ . . | . . ?\n"
        );
    }

    #[test]
    fn formats_mazes_and_arc() {
        assert_eq!(
            format_grid(TaskKind::Maze { side: 2 }, &[1, 3, 4, 0]),
            "#S\nG_\n"
        );
        let g = Grid::new(2, 3, vec![0, 1, 2, 3, 4, 5]).unwrap();
        assert_eq!(
            format_grid(TaskKind::Arc, &grid_to_tokens(&g)),
            "2x3 grid\n0 1 2\n3 4 5\n"
        );
        let raw = format_grid(TaskKind::Arc, &[0; 900]);
        assert!(raw.starts_with("no grid"));
        assert_eq!(
            format_grid(TaskKind::Other { seq_len: 4 }, &[1, 2, 3, 4]),
            "  1  2\n  3  4\n"
        );
    }
}
