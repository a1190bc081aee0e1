//! The reference's Sudoku augmentation: validity-preserving relabelling and reordering.
//!
//! Mirrors `shuffle_sudoku` in `dataset/build_sudoku_dataset.py`: a permutation of the digits
//! (blank fixed), an optional transpose (probability 1/2), a shuffle of the bands and of the
//! rows within each band, a shuffle of the stacks and of the columns within each stack. Cell
//! `(i, j)` of the result takes the (transposed) input's cell `(row_perm[i], col_perm[j])`
//! mapped through the digit permutation; the same augmentation is applied to puzzle and
//! solution. Generalised to side 4 (2 bands of 2 rows).

use super::Board;
use crate::rng::{self, DataRng};

/// One draw of the augmentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudokuAugmentation {
    /// `digit_map[d]` is the new digit for digit `d`; `digit_map[0] == 0` (blank stays blank).
    pub digit_map: [u8; 10],
    /// Transpose before reordering.
    pub transpose: bool,
    /// New row `i` is old row `row_perm[i]` (bands and rows within bands shuffled).
    pub row_perm: Vec<usize>,
    /// New column `j` is old column `col_perm[j]`.
    pub col_perm: Vec<usize>,
}

impl SudokuAugmentation {
    /// The identity for side `size`.
    pub fn identity(size: usize) -> SudokuAugmentation {
        let mut digit_map = [0u8; 10];
        for (d, m) in digit_map.iter_mut().enumerate() {
            *m = d as u8;
        }
        SudokuAugmentation {
            digit_map,
            transpose: false,
            row_perm: (0..size).collect(),
            col_perm: (0..size).collect(),
        }
    }

    /// A random augmentation for side `size` (4 or 9).
    pub fn random(rng: &mut DataRng, size: usize) -> SudokuAugmentation {
        let b = if size == 4 { 2 } else { 3 };
        let mut digit_map = [0u8; 10];
        for (i, p) in rng::permutation(rng, size).into_iter().enumerate() {
            digit_map[i + 1] = p as u8 + 1;
        }
        let transpose = rng::coin(rng);
        let lines = |rng: &mut DataRng| -> Vec<usize> {
            rng::permutation(rng, b)
                .into_iter()
                .flat_map(|band| {
                    rng::permutation(rng, b)
                        .into_iter()
                        .map(move |r| band * b + r)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        let row_perm = lines(rng);
        let col_perm = lines(rng);
        SudokuAugmentation {
            digit_map,
            transpose,
            row_perm,
            col_perm,
        }
    }

    /// Applies the augmentation to a board.
    ///
    /// # Panics
    /// If the board's side differs from the augmentation's.
    pub fn apply(&self, board: &Board) -> Board {
        let n = board.size();
        assert_eq!(
            n,
            self.row_perm.len(),
            "augmentation drawn for another side"
        );
        let src = board.cells();
        let mut out = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                let (r, c) = (self.row_perm[i], self.col_perm[j]);
                let d = if self.transpose {
                    src[c * n + r]
                } else {
                    src[r * n + c]
                };
                out.push(self.digit_map[usize::from(d)]);
            }
        }
        Board::from_cells_unchecked(n, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sudoku::{check_solution, generate_puzzle, parse_puzzle, Difficulty};

    #[test]
    fn identity_is_identity() {
        let b = parse_puzzle(
            "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79",
        )
        .unwrap();
        assert_eq!(SudokuAugmentation::identity(9).apply(&b), b);
    }

    #[test]
    fn augmented_puzzles_stay_valid_and_unique() {
        // Checked by the rules and the solver: the augmented puzzle has exactly one solution,
        // and it is the augmented solution.
        for size in [4, 9] {
            let mut rng = rng::stream(3, 77, size as u64);
            let g = generate_puzzle(&mut rng, size, Difficulty::Hard).unwrap();
            for _ in 0..30 {
                let aug = SudokuAugmentation::random(&mut rng, size);
                assert_eq!(aug.digit_map[0], 0);
                let p = aug.apply(&g.puzzle);
                let s = aug.apply(&g.solution);
                assert_eq!(p.givens(), g.puzzle.givens());
                assert!(p.first_conflict().is_none());
                assert!(check_solution(&p, &s).solved());
                assert_eq!(p.unique_solution().unwrap(), s);
            }
        }
    }

    #[test]
    fn row_permutations_keep_bands() {
        let mut rng = rng::stream(4, 77, 0);
        for _ in 0..50 {
            let a = SudokuAugmentation::random(&mut rng, 9);
            for perm in [&a.row_perm, &a.col_perm] {
                for band in 0..3 {
                    let rows = &perm[band * 3..band * 3 + 3];
                    assert!(rows.iter().all(|r| r / 3 == rows[0] / 3), "{perm:?}");
                }
                let mut sorted = perm.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, (0..9).collect::<Vec<_>>());
            }
        }
    }
}
