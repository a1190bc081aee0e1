//! A generator of unique-solution Sudoku puzzles with a difficulty control.
//!
//! The reference downloads Sudoku-Extreme (puzzles collected from hard-puzzle lists and rated
//! by an external solver's backtrack count); it generates nothing. This generator draws a
//! random complete grid, then blanks cells in random order, keeping a blank only if the puzzle
//! stays within the difficulty's rules:
//!
//! | difficulty | cells blanked (9x9 / 6x6 / 4x4) | kept only if | accepted if |
//! |---|---|---|---|
//! | `easy` | up to 45 / 18 / 8 | naked singles alone solve it | always |
//! | `medium` | up to 53 / 23 / 10 | naked and hidden singles solve it | always |
//! | `hard` | as many as possible (a minimal puzzle) | the solution stays unique | always |
//! | `extreme` | as many as possible | the solution stays unique | the solver needs at least [`extreme_min_guesses`] guesses: 8 (9x9), 1 (6x6), 0 (4x4) |
//!
//! The rating ([`Rating`]) counts the guesses (branching nodes) of the solver's full
//! uniqueness proof after naked and hidden singles; 0 means singles alone solve the puzzle, so
//! every 9x9 or 6x6 `extreme` puzzle needs search. Minimal 6x6 puzzles have 8-13 givens (about
//! 10 on average); about 1 in 30 needs a guess after singles, so a 6x6 `extreme` puzzle is a
//! minimal puzzle that singles alone cannot prove (drawn by rejection, about 30 grids per
//! puzzle). On 4x4 boards singles solve every minimal puzzle, so `extreme` there means `hard`
//! (the builder reports this).

use super::solver::{self, Deductions};
use super::Board;
use crate::error::{DataError, Result};
use crate::rng::{self, DataRng};

/// Guesses an `extreme` 9x9 puzzle needs at least.
pub const EXTREME_MIN_GUESSES: u64 = 8;
/// Guesses an `extreme` 6x6 puzzle needs at least: one, i.e. singles alone do not prove it
/// (about 1 minimal 6x6 puzzle in 30 needs a guess, about 1 in 400 two).
pub const EXTREME_MIN_GUESSES_6X6: u64 = 1;

/// Guesses an `extreme` puzzle of side `size` needs at least: [`EXTREME_MIN_GUESSES`] for 9x9,
/// [`EXTREME_MIN_GUESSES_6X6`] for 6x6, 0 for 4x4 (singles solve every minimal 4x4 puzzle, so
/// `extreme` is `hard` there).
pub fn extreme_min_guesses(size: usize) -> u64 {
    match size {
        9 => EXTREME_MIN_GUESSES,
        6 => EXTREME_MIN_GUESSES_6X6,
        _ => 0,
    }
}

/// Attempts (complete grids drawn) before giving up on one puzzle.
const MAX_ATTEMPTS: usize = 100_000;

/// How hard generated puzzles are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Difficulty {
    /// Many givens, naked singles suffice.
    Easy,
    /// Fewer givens, naked and hidden singles suffice.
    Medium,
    /// Minimal puzzles (no given can be removed).
    Hard,
    /// Minimal puzzles that need search after singles.
    Extreme,
}

impl Difficulty {
    /// All difficulties, easiest first.
    pub const ALL: [Difficulty; 4] = [
        Difficulty::Easy,
        Difficulty::Medium,
        Difficulty::Hard,
        Difficulty::Extreme,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Difficulty::Easy => "easy",
            Difficulty::Medium => "medium",
            Difficulty::Hard => "hard",
            Difficulty::Extreme => "extreme",
        }
    }
}

impl std::fmt::Display for Difficulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Difficulty {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Difficulty> {
        Difficulty::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                DataError::option(
                    "difficulty",
                    format!("{s:?} is not one of easy, medium, hard, extreme"),
                )
            })
    }
}

/// How hard a puzzle is for the solver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rating {
    /// Filled cells.
    pub givens: usize,
    /// Guesses (branching nodes) in the full uniqueness proof after singles; 0 = singles suffice.
    pub guesses: u64,
    /// Guesses that led to a contradiction.
    pub backtracks: u64,
}

/// A generated puzzle with its solution and rating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedPuzzle {
    /// The puzzle (unique solution).
    pub puzzle: Board,
    /// Its solution.
    pub solution: Board,
    /// Its rating.
    pub rating: Rating,
    /// Complete grids drawn before this puzzle was accepted.
    pub attempts: usize,
}

/// Blanks cells of `solution` in random order under the difficulty's rule.
fn carve(rng: &mut DataRng, n: usize, solution: &[u8], difficulty: Difficulty) -> Vec<u8> {
    let target = match (difficulty, n) {
        (Difficulty::Easy, 4) => 8,
        (Difficulty::Easy, 6) => 18,
        (Difficulty::Easy, _) => 45,
        (Difficulty::Medium, 4) => 10,
        (Difficulty::Medium, 6) => 23,
        (Difficulty::Medium, _) => 53,
        _ => n * n,
    };
    let mut puzzle = solution.to_vec();
    let mut blanks = 0;
    for cell in rng::permutation(rng, n * n) {
        if blanks >= target {
            break;
        }
        let v = puzzle[cell];
        puzzle[cell] = 0;
        let keep = match difficulty {
            Difficulty::Easy => {
                solver::solvable_without_guessing(n, &puzzle, Deductions::NakedSingles)
            }
            Difficulty::Medium => {
                solver::solvable_without_guessing(n, &puzzle, Deductions::Singles)
            }
            // Unique iff no solution puts another digit in the blanked cell.
            Difficulty::Hard | Difficulty::Extreme => {
                solver::solve_cells(n, &puzzle, 1, Deductions::Singles, None, Some((cell, v)))
                    .solutions
                    == 0
            }
        };
        if keep {
            blanks += 1;
        } else {
            puzzle[cell] = v;
        }
    }
    puzzle
}

/// Generates one puzzle of side `size` (4, 6 or 9) at `difficulty`, drawing everything from
/// `rng`.
///
/// # Errors
/// [`DataError::Option`] for a side other than 4, 6 or 9; [`DataError::Generation`] if no
/// acceptable puzzle turns up within the attempt budget.
pub fn generate_puzzle(
    rng: &mut DataRng,
    size: usize,
    difficulty: Difficulty,
) -> Result<GeneratedPuzzle> {
    super::check_side(size)?;
    let min_guesses = if difficulty == Difficulty::Extreme {
        extreme_min_guesses(size)
    } else {
        0
    };
    for attempt in 1..=MAX_ATTEMPTS {
        let solution = solver::random_grid(size, rng);
        let cells = carve(rng, size, &solution, difficulty);
        let puzzle = Board::from_cells_unchecked(size, cells);
        let rating = puzzle.rate();
        if rating.guesses >= min_guesses {
            return Ok(GeneratedPuzzle {
                puzzle,
                solution: Board::from_cells_unchecked(size, solution),
                rating,
                attempts: attempt,
            });
        }
    }
    Err(DataError::Generation {
        reason: format!("no {difficulty} {size}x{size} puzzle in {MAX_ATTEMPTS} attempts"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sudoku::check_solution;

    #[test]
    fn every_difficulty_gives_unique_puzzles_with_the_promised_rating() {
        for size in [4, 6, 9] {
            for d in Difficulty::ALL {
                let mut rng = rng::stream(5, 88, size as u64 * 10 + d as u64);
                let g = generate_puzzle(&mut rng, size, d).unwrap();
                assert_eq!(
                    g.puzzle.unique_solution().unwrap(),
                    g.solution,
                    "{size} {d}"
                );
                assert!(check_solution(&g.puzzle, &g.solution).solved());
                assert_eq!(g.rating, g.puzzle.rate());
                match d {
                    Difficulty::Easy => {
                        assert!(solver::solvable_without_guessing(
                            size,
                            g.puzzle.cells(),
                            Deductions::NakedSingles
                        ));
                        let givens = match size {
                            4 => 8,
                            6 => 18,
                            _ => 36,
                        };
                        assert_eq!(g.puzzle.givens(), givens);
                    }
                    Difficulty::Medium => {
                        assert_eq!(g.rating.guesses, 0);
                        assert!(solver::solvable_without_guessing(
                            size,
                            g.puzzle.cells(),
                            Deductions::Singles
                        ));
                    }
                    Difficulty::Hard | Difficulty::Extreme => {
                        if d == Difficulty::Extreme {
                            assert!(g.rating.guesses >= extreme_min_guesses(size));
                        }
                        // Minimal: no given can be removed without losing uniqueness.
                        for cell in 0..size * size {
                            let v = g.puzzle.cells()[cell];
                            if v != 0 {
                                let mut less = g.puzzle.cells().to_vec();
                                less[cell] = 0;
                                let b = Board::from_cells_unchecked(size, less);
                                assert_eq!(
                                    b.solve(2).solutions,
                                    2,
                                    "removing cell {cell} keeps it unique"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_needs_search_not_only_singles() {
        let mut rng = rng::stream(6, 88, 0);
        for _ in 0..3 {
            let g = generate_puzzle(&mut rng, 9, Difficulty::Extreme).unwrap();
            assert!(g.rating.guesses >= EXTREME_MIN_GUESSES);
            // Naked and hidden singles alone get stuck.
            assert!(!solver::solvable_without_guessing(
                9,
                g.puzzle.cells(),
                Deductions::Singles
            ));
        }
    }

    #[test]
    fn six_by_six_difficulties() {
        // Several puzzles per difficulty: unique, at the promised givens, and extreme ones
        // need search after singles while medium ones never do.
        for d in Difficulty::ALL {
            let mut rng = rng::stream(7, 88, d as u64);
            for _ in 0..8 {
                let g = generate_puzzle(&mut rng, 6, d).unwrap();
                assert_eq!(g.puzzle.size(), 6);
                assert_eq!(g.puzzle.unique_solution().unwrap(), g.solution, "{d}");
                match d {
                    Difficulty::Easy => assert_eq!(g.puzzle.givens(), 18),
                    Difficulty::Medium => {
                        // Up to 23 blanks: 13 givens unless singles stop the carving early.
                        assert!(g.puzzle.givens() >= 13);
                        assert_eq!(g.rating.guesses, 0);
                    }
                    Difficulty::Hard => assert!((8..=14).contains(&g.puzzle.givens())),
                    Difficulty::Extreme => {
                        assert!(g.rating.guesses >= EXTREME_MIN_GUESSES_6X6);
                        assert!(!solver::solvable_without_guessing(
                            6,
                            g.puzzle.cells(),
                            Deductions::Singles
                        ));
                    }
                }
            }
        }
        assert!(matches!(
            generate_puzzle(&mut rng::stream(0, 0, 0), 5, Difficulty::Easy),
            Err(DataError::Option { option: "size", .. })
        ));
    }

    #[test]
    fn difficulty_names() {
        assert_eq!(
            "Extreme".parse::<Difficulty>().unwrap(),
            Difficulty::Extreme
        );
        assert!(matches!(
            "insane".parse::<Difficulty>(),
            Err(DataError::Option {
                option: "difficulty",
                ..
            })
        ));
    }
}
