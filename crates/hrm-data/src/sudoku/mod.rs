//! Sudoku: boards, the model's token encoding, parsing and checking, and (in submodules) the
//! solver, the generator, the augmentation and the dataset builder.
//!
//! Mirrors the reference's `dataset/build_sudoku_dataset.py`: tokens are `0` PAD, `1` blank,
//! `d + 1` for digit `d` (the reference stores `digit + 1` after mapping `.` to 0), the
//! vocabulary has 11 tokens, the sequence is the row-major board (81 cells). Boards of side 4
//! (16 cells, 2x2 boxes, digits 1-4) and side 6 (36 cells, boxes of 2 rows x 3 columns, digits
//! 1-6), with the same token meanings and vocabulary, are an addition for CPU experiments.

mod augment;
mod build;
mod csv;
mod generate;
mod solver;

pub use augment::{canonical_form, SudokuAugmentation};
pub use build::{build_sudoku, SudokuOptions};
pub use csv::{read_sudoku_csv, SudokuCsvRow};
pub use generate::{
    extreme_min_guesses, generate_puzzle, Difficulty, GeneratedPuzzle, Rating, EXTREME_MIN_GUESSES,
    EXTREME_MIN_GUESSES_6X6,
};
pub use solver::{Deductions, SearchStats, SolveResult};

use crate::error::{DataError, Result};

/// Vocabulary size of Sudoku datasets: PAD, blank, digits 1-9.
pub const SUDOKU_VOCAB_SIZE: usize = 11;
/// Token of a blank cell.
pub const BLANK_TOKEN: i32 = 1;
/// The board sides supported everywhere (solver, generator, augmentation, import, rendering).
pub const SUDOKU_SIDES: [usize; 3] = [4, 6, 9];

/// The box shape `(rows, columns)` of a board of side `size`: `(2, 2)` for 4, `(2, 3)` for 6
/// (two rows by three columns, so 3 bands of 2 rows and 2 stacks of 3 columns), `(3, 3)` for 9;
/// `None` for any other side.
///
/// ```
/// assert_eq!(hrm_data::sudoku::box_dims(6), Some((2, 3)));
/// assert_eq!(hrm_data::sudoku::box_dims(5), None);
/// ```
pub fn box_dims(size: usize) -> Option<(usize, usize)> {
    match size {
        4 => Some((2, 2)),
        6 => Some((2, 3)),
        9 => Some((3, 3)),
        _ => None,
    }
}

/// The accepted sides, for messages: `4, 6 or 9`.
fn sides_text() -> String {
    let s: Vec<String> = SUDOKU_SIDES.iter().map(|n| n.to_string()).collect();
    format!("{} or {}", s[..s.len() - 1].join(", "), s[s.len() - 1])
}

/// The box shape of side `size`, or [`DataError::Option`] naming the accepted sides.
pub(crate) fn check_side(size: usize) -> Result<(usize, usize)> {
    box_dims(size).ok_or_else(|| {
        DataError::option(
            "size",
            format!("Sudoku side must be {}, not {size}", sides_text()),
        )
    })
}

/// A board of side `size` as text with box separators, one character per cell from `cell`:
///
/// ```text
/// 1 . 3 | . 5 6
/// ------+------
/// ```
pub(crate) fn grid_text(size: usize, cell: impl Fn(usize, usize) -> char) -> String {
    let (br, bc) = box_dims(size).unwrap_or((size.max(1), size.max(1)));
    let stacks = size / bc;
    let mut out = String::new();
    for r in 0..size {
        if r > 0 && r % br == 0 {
            out.push_str(&vec!["-".repeat(2 * bc - 1); stacks].join("-+-"));
            out.push('\n');
        }
        for c in 0..size {
            if c > 0 {
                out.push_str(if c % bc == 0 { " | " } else { " " });
            }
            out.push(cell(r, c));
        }
        out.push('\n');
    }
    out
}

/// A Sudoku board of side 4, 6 or 9, row-major, `0` for a blank.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Board {
    size: usize,
    cells: Vec<u8>,
}

impl Board {
    /// A board from row-major cells (`0` blank, `1..=size` digits).
    ///
    /// # Errors
    /// [`DataError::Option`] for a side other than 4, 6 or 9; [`DataError::PuzzleLength`] if
    /// `cells` is not `size * size` long; [`DataError::PuzzleChar`] for a digit above `size`.
    pub fn new(size: usize, cells: Vec<u8>) -> Result<Board> {
        check_side(size)?;
        if cells.len() != size * size {
            return Err(DataError::PuzzleLength {
                expected: format!("{}", size * size),
                found: cells.len(),
            });
        }
        if let Some(i) = cells.iter().position(|&d| usize::from(d) > size) {
            return Err(DataError::PuzzleChar {
                position: i + 1,
                found: char::from_digit(u32::from(cells[i]), 36).unwrap_or('?'),
                alphabet: alphabet(size),
            });
        }
        Ok(Board { size, cells })
    }

    /// An empty board of side `size` (4, 6 or 9).
    ///
    /// # Panics
    /// For another side.
    pub fn empty(size: usize) -> Board {
        Board::new(size, vec![0; size * size]).expect("side 4, 6 or 9")
    }

    pub(crate) fn from_cells_unchecked(size: usize, cells: Vec<u8>) -> Board {
        debug_assert_eq!(cells.len(), size * size);
        Board { size, cells }
    }

    /// Side (4, 6 or 9).
    pub fn size(&self) -> usize {
        self.size
    }

    /// The box shape `(rows, columns)`: `(2, 2)`, `(2, 3)` or `(3, 3)` (see [`box_dims`]).
    pub fn box_dims(&self) -> (usize, usize) {
        box_dims(self.size).expect("a board has a supported side")
    }

    /// Row-major cells, `0` for a blank.
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }

    /// The digit at `(row, col)`, `0` if blank.
    pub fn get(&self, row: usize, col: usize) -> u8 {
        self.cells[row * self.size + col]
    }

    /// Number of filled cells.
    pub fn givens(&self) -> usize {
        self.cells.iter().filter(|&&d| d != 0).count()
    }

    /// Whether no cell is blank.
    pub fn is_complete(&self) -> bool {
        self.cells.iter().all(|&d| d != 0)
    }

    /// The first digit that appears twice in a unit, with the unit (`row 3`, `column 1`,
    /// `box 5`, all 1-based; boxes are numbered row-major, so on a 6x6 board box 2 is rows 1-2,
    /// columns 4-6).
    pub fn first_conflict(&self) -> Option<(u8, String)> {
        let g = solver::geometry(self.size);
        for (k, unit) in g.units.iter().enumerate() {
            let mut seen = 0u16;
            for &c in unit {
                let d = self.cells[c as usize];
                if d == 0 {
                    continue;
                }
                let bit = 1u16 << (d - 1);
                if seen & bit != 0 {
                    let kind = ["row", "column", "box"][k / self.size];
                    return Some((d, format!("{kind} {}", k % self.size + 1)));
                }
                seen |= bit;
            }
        }
        None
    }

    /// One line, `.` for blanks (the reference CSV's `question` format).
    pub fn to_line(&self) -> String {
        self.cells
            .iter()
            .map(|&d| if d == 0 { '.' } else { char::from(b'0' + d) })
            .collect()
    }

    /// The board as text with box separators, `.` for blanks:
    ///
    /// ```text
    /// 5 3 . | . 7 . | . . .
    /// ```
    ///
    /// A 6x6 board has a separator line every 2 rows and a bar every 3 columns.
    pub fn to_grid_string(&self) -> String {
        grid_text(self.size, |r, c| match self.get(r, c) {
            0 => '.',
            d => char::from(b'0' + d),
        })
    }

    /// Solves the board, counting up to `limit` solutions.
    pub fn solve(&self, limit: usize) -> SolveResult {
        solver::solve_cells(
            self.size,
            &self.cells,
            limit,
            Deductions::Singles,
            None,
            None,
        )
    }

    /// The unique solution.
    ///
    /// # Errors
    /// [`DataError::PuzzleConflict`] if the givens break a rule, [`DataError::NotUnique`] with
    /// 0 or 2 solutions.
    pub fn unique_solution(&self) -> Result<Board> {
        if let Some((digit, unit)) = self.first_conflict() {
            return Err(DataError::PuzzleConflict { digit, unit });
        }
        let r = self.solve(2);
        match (r.solutions, r.solution) {
            (1, Some(s)) => Ok(Board::from_cells_unchecked(self.size, s)),
            (n, _) => Err(DataError::NotUnique { solutions: n }),
        }
    }

    /// The search counters of a full uniqueness proof with singles (see [`Rating`]).
    pub fn rate(&self) -> Rating {
        let r = self.solve(2);
        Rating {
            givens: self.givens(),
            guesses: r.stats.guesses,
            backtracks: r.stats.backtracks,
        }
    }
}

impl std::fmt::Display for Board {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_grid_string())
    }
}

fn alphabet(size: usize) -> String {
    format!("1-{size}, 0 or . (blank)")
}

/// Parses a puzzle given as 81 (9x9), 36 (6x6) or 16 (4x4) characters: `1-9` (`1-6`, `1-4`)
/// for digits, `0` or `.` for blanks; whitespace is ignored, so a grid laid out on lines works
/// too. The number of characters decides the side.
///
/// ```
/// let b = hrm_data::sudoku::parse_puzzle("1.3. ..1. .1.. ...1").unwrap();
/// assert_eq!(b.size(), 4);
/// assert_eq!(b.givens(), 5);
/// let err = hrm_data::sudoku::parse_puzzle("11.. .... .... ....").unwrap_err();
/// assert_eq!(err.to_string(), "digit 1 appears twice in row 1");
/// let six = hrm_data::sudoku::parse_puzzle("12.... ...... ...... ...... ...... .....6").unwrap();
/// assert_eq!((six.size(), six.box_dims()), (6, (2, 3)));
/// ```
///
/// # Errors
/// [`DataError::PuzzleChar`] with the 1-based position of a character outside the alphabet,
/// [`DataError::PuzzleLength`] with the number of cells found, [`DataError::PuzzleConflict`]
/// naming the row, column or box where a digit repeats.
pub fn parse_puzzle(text: &str) -> Result<Board> {
    let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(i) = chars
        .iter()
        .position(|c| !(c.is_ascii_digit() || *c == '.'))
    {
        return Err(DataError::PuzzleChar {
            position: i + 1,
            found: chars[i],
            alphabet: alphabet(9),
        });
    }
    let Some(size) = SUDOKU_SIDES.into_iter().find(|&n| n * n == chars.len()) else {
        return Err(DataError::PuzzleLength {
            expected: accepted_lengths(),
            found: chars.len(),
        });
    };
    let cells: Vec<u8> = chars
        .iter()
        .map(|&c| if c == '.' { 0 } else { c as u8 - b'0' })
        .collect();
    if let Some(i) = cells.iter().position(|&d| usize::from(d) > size) {
        return Err(DataError::PuzzleChar {
            position: i + 1,
            found: chars[i],
            alphabet: alphabet(size),
        });
    }
    let board = Board { size, cells };
    if let Some((digit, unit)) = board.first_conflict() {
        return Err(DataError::PuzzleConflict { digit, unit });
    }
    Ok(board)
}

/// The accepted puzzle lengths, largest first: `81 (9x9), 36 (6x6) or 16 (4x4)`.
fn accepted_lengths() -> String {
    let s: Vec<String> = SUDOKU_SIDES
        .iter()
        .rev()
        .map(|n| format!("{} ({n}x{n})", n * n))
        .collect();
    format!("{} or {}", s[..s.len() - 1].join(", "), s[s.len() - 1])
}

/// The model's tokens for a board: `1` blank, `d + 1` digit `d` (no padding).
pub fn encode_board(board: &Board) -> Vec<i32> {
    board.cells.iter().map(|&d| i32::from(d) + 1).collect()
}

pub(crate) fn encode_board_u8(board: &Board) -> Vec<u8> {
    board.cells.iter().map(|&d| d + 1).collect()
}

/// Decodes model tokens into a board of side `size`: `2..=size + 1` are digits; `0` (PAD) and
/// `1` (blank) are blanks.
///
/// # Errors
/// [`DataError::PuzzleLength`] for a sequence that is not `size * size` long,
/// [`DataError::Token`] for a token above `size + 1` or below 0, [`DataError::Option`] for a
/// side other than 4, 6 or 9.
pub fn decode_tokens(tokens: &[i32], size: usize) -> Result<Board> {
    check_side(size)?;
    if tokens.len() != size * size {
        return Err(DataError::PuzzleLength {
            expected: format!("{}", size * size),
            found: tokens.len(),
        });
    }
    let mut cells = Vec::with_capacity(tokens.len());
    for (i, &t) in tokens.iter().enumerate() {
        if t < 0 || t > size as i32 + 1 {
            return Err(DataError::Token {
                position: i,
                token: i64::from(t),
                expected: format!("0-{}", size + 1),
            });
        }
        cells.push(if t <= 1 { 0 } else { (t - 1) as u8 });
    }
    Ok(Board { size, cells })
}

/// What [`check_solution`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SudokuVerdict {
    /// No digit repeats in a row, column or box of the solution.
    pub valid_rules: bool,
    /// Every given of the puzzle has the same digit in the solution.
    pub agrees_with_givens: bool,
    /// The solution has no blank.
    pub complete: bool,
}

impl SudokuVerdict {
    /// All three: a correct solution (the unique one, for a unique puzzle).
    pub fn solved(&self) -> bool {
        self.valid_rules && self.agrees_with_givens && self.complete
    }
}

/// Checks a proposed solution against the rules and the puzzle's givens.
///
/// # Panics
/// If the two boards differ in side.
pub fn check_solution(puzzle: &Board, solution: &Board) -> SudokuVerdict {
    assert_eq!(puzzle.size, solution.size, "boards of different sides");
    SudokuVerdict {
        valid_rules: solution.first_conflict().is_none(),
        agrees_with_givens: puzzle
            .cells
            .iter()
            .zip(&solution.cells)
            .all(|(&p, &s)| p == 0 || p == s),
        complete: solution.is_complete(),
    }
}

/// What the tests of this module and its submodules share: one classic puzzle with its
/// solution, and a writer of Kaggle-format CSV files.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::Path;

    pub(crate) const PUZZLE: &str =
        "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79";
    pub(crate) const SOLUTION: &str =
        "534678912672195348198342567859761423426853791713924856961537284287419635345286179";

    /// Writes `rows` under the CSV header as `dir/name`.
    pub(crate) fn write_csv(dir: &Path, name: &str, rows: &[String]) {
        let mut text = String::from("source,question,answer,rating\n");
        for r in rows {
            text.push_str(r);
            text.push('\n');
        }
        std::fs::write(dir.join(name), text).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{PUZZLE, SOLUTION};
    use super::*;

    #[test]
    fn parse_errors_are_precise() {
        assert!(matches!(
            parse_puzzle(&PUZZLE[..80]),
            Err(DataError::PuzzleLength { found: 80, .. })
        ));
        let bad = format!("{}x{}", &PUZZLE[..10], &PUZZLE[11..]);
        assert!(matches!(
            parse_puzzle(&bad),
            Err(DataError::PuzzleChar {
                position: 11,
                found: 'x',
                ..
            })
        ));
        let five = "5...............";
        assert!(matches!(
            parse_puzzle(five),
            Err(DataError::PuzzleChar {
                position: 1,
                found: '5',
                ..
            })
        ));
        // Column conflict: 5 at r1c1 and r2c1.
        let col = format!("5........5{}", &".".repeat(71));
        assert_eq!(
            parse_puzzle(&col).unwrap_err().to_string(),
            "digit 5 appears twice in column 1"
        );
        // Box conflict only.
        let bx = format!("5.........5{}", &".".repeat(70));
        assert_eq!(
            parse_puzzle(&bx).unwrap_err().to_string(),
            "digit 5 appears twice in box 1"
        );
        // Whitespace and 0 are fine.
        let spaced: String = PUZZLE
            .replace('.', "0")
            .chars()
            .flat_map(|c| [c, ' '])
            .collect();
        assert_eq!(
            parse_puzzle(&spaced).unwrap(),
            parse_puzzle(PUZZLE).unwrap()
        );
    }

    #[test]
    fn encode_decode_round_trip() {
        let b = parse_puzzle(PUZZLE).unwrap();
        let t = encode_board(&b);
        assert_eq!(t[0], 6);
        assert_eq!(t[2], BLANK_TOKEN);
        assert_eq!(decode_tokens(&t, 9).unwrap(), b);
        assert!(matches!(
            decode_tokens(&[11; 81], 9),
            Err(DataError::Token {
                position: 0,
                token: 11,
                ..
            })
        ));
        assert!(matches!(
            decode_tokens(&[1; 80], 9),
            Err(DataError::PuzzleLength { found: 80, .. })
        ));
    }

    #[test]
    fn verdicts() {
        let p = parse_puzzle(PUZZLE).unwrap();
        let s = parse_puzzle(SOLUTION).unwrap();
        assert!(check_solution(&p, &s).solved());
        assert_eq!(p.unique_solution().unwrap(), s);
        let mut wrong = s.cells().to_vec();
        wrong.swap(0, 1); // rows still valid, columns broken, givens disagree
        let v = check_solution(&p, &Board::new(9, wrong).unwrap());
        assert!(!v.valid_rules && !v.agrees_with_givens && v.complete);
        let v = check_solution(&p, &p);
        assert!(v.valid_rules && v.agrees_with_givens && !v.complete);
    }

    const PUZZLE6: &str = "1.3....56......5.4.6...1.1.6.....3.2";
    const SOLUTION6: &str = "123456456123231564564231312645645312";

    #[test]
    fn six_by_six_parse_errors_name_what_is_wrong() {
        let b = parse_puzzle(PUZZLE6).unwrap();
        assert_eq!((b.size(), b.box_dims(), b.givens()), (6, (2, 3), 12));
        assert_eq!(b.to_line(), PUZZLE6);
        // Length: all three accepted lengths are named.
        assert_eq!(
            parse_puzzle(&PUZZLE6[..35]).unwrap_err().to_string(),
            "puzzle has 35 cells, expected 81 (9x9), 36 (6x6) or 16 (4x4)"
        );
        // A digit above 6 on a 6x6 board, with its position and the 6x6 alphabet.
        let seven = format!("{}7{}", &PUZZLE6[..4], &PUZZLE6[5..]);
        assert_eq!(
            parse_puzzle(&seven).unwrap_err().to_string(),
            "puzzle character '7' at position 5 (1-based) is not one of 1-6, 0 or . (blank)"
        );
        // Row, column and 2x3-box conflicts, boxes numbered row-major (box 2 is rows 1-2,
        // columns 4-6; box 3 rows 3-4, columns 1-3).
        let with = |cells: &[(usize, char)]| {
            let mut c: Vec<char> = ".".repeat(36).chars().collect();
            for &(i, d) in cells {
                c[i] = d;
            }
            c.into_iter().collect::<String>()
        };
        for (cells, message) in [
            (vec![(0, '5'), (5, '5')], "digit 5 appears twice in row 1"),
            (
                vec![(4, '2'), (34, '2')],
                "digit 2 appears twice in column 5",
            ),
            (vec![(0, '3'), (8, '3')], "digit 3 appears twice in box 1"),
            (vec![(3, '6'), (11, '6')], "digit 6 appears twice in box 2"),
            (vec![(12, '1'), (20, '1')], "digit 1 appears twice in box 3"),
        ] {
            assert_eq!(
                parse_puzzle(&with(&cells)).unwrap_err().to_string(),
                message
            );
        }
        // Rows 2 and 3 are in different bands, columns 3 and 4 in different stacks: no box
        // conflict (a 3x2 or 3x3 box would have one).
        assert!(parse_puzzle(&with(&[(6, '4'), (13, '4')])).is_ok());
        assert!(parse_puzzle(&with(&[(2, '4'), (9, '4')])).is_ok());
        // Boards are checked the same way.
        assert!(matches!(
            Board::new(6, vec![7; 36]),
            Err(DataError::PuzzleChar { position: 1, .. })
        ));
        assert!(matches!(
            Board::new(6, vec![0; 35]),
            Err(DataError::PuzzleLength { found: 35, .. })
        ));
        assert_eq!(
            Board::new(5, vec![0; 25]).unwrap_err().to_string(),
            "option `size`: Sudoku side must be 4, 6 or 9, not 5"
        );
        assert_eq!(Board::empty(6).cells().len(), 36);
    }

    #[test]
    fn six_by_six_tokens_and_verdicts() {
        let p = parse_puzzle(PUZZLE6).unwrap();
        let s = parse_puzzle(SOLUTION6).unwrap();
        let t = encode_board(&p);
        assert_eq!((t.len(), t[0], t[1]), (36, 2, BLANK_TOKEN));
        assert_eq!(decode_tokens(&t, 6).unwrap(), p);
        assert!(matches!(
            decode_tokens(&[8; 36], 6),
            Err(DataError::Token { position: 0, token: 8, ref expected }) if expected == "0-7"
        ));
        assert!(matches!(
            decode_tokens(&t, 9),
            Err(DataError::PuzzleLength { found: 36, .. })
        ));
        assert!(matches!(
            decode_tokens(&[1; 25], 5),
            Err(DataError::Option { option: "size", .. })
        ));
        assert_eq!(p.unique_solution().unwrap(), s);
        assert!(check_solution(&p, &s).solved());
        let mut wrong = s.cells().to_vec();
        wrong.swap(0, 1);
        let v = check_solution(&p, &Board::new(6, wrong).unwrap());
        assert!(!v.valid_rules && !v.agrees_with_givens && v.complete);
        assert_eq!(
            s.to_grid_string(),
            "1 2 3 | 4 5 6\n4 5 6 | 1 2 3\n------+------\n2 3 1 | 5 6 4\n5 6 4 | 2 3 1\n\
             ------+------\n3 1 2 | 6 4 5\n6 4 5 | 3 1 2\n"
        );
        assert_eq!(
            SUDOKU_SIDES.map(box_dims),
            [Some((2, 2)), Some((2, 3)), Some((3, 3))]
        );
    }

    #[test]
    fn grid_text_4x4() {
        let b = parse_puzzle("1.3...1..1.....1").unwrap();
        assert_eq!(
            b.to_grid_string(),
            "1 . | 3 .\n. . | 1 .\n----+----\n. 1 | . .\n. . | . 1\n"
        );
    }
}
