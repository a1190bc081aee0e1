//! The reference's Sudoku augmentation: validity-preserving relabelling and reordering, and the
//! canonical form of a board under the same group.
//!
//! Mirrors `shuffle_sudoku` in `dataset/build_sudoku_dataset.py`: a permutation of the digits
//! (blank fixed), an optional transpose (probability 1/2), a shuffle of the bands and of the
//! rows within each band, a shuffle of the stacks and of the columns within each stack. Cell
//! `(i, j)` of the result takes the (transposed) input's cell `(row_perm[i], col_perm[j])`
//! mapped through the digit permutation; the same augmentation is applied to puzzle and
//! solution. Generalised to boxes of `box_rows x box_cols` (see [`super::box_dims`]): bands are
//! `box_rows` rows, stacks `box_cols` columns, so a 4x4 board has 2 bands of 2 rows and 2 stacks
//! of 2 columns, and a 6x6 board 3 bands of 2 rows and 2 stacks of 3 columns. A transpose turns
//! 2x3 boxes into 3x2 boxes, which is not a Sudoku of the same kind, so 6x6 boards are never
//! transposed (no coin is drawn for them).
//!
//! [`canonical_form`] picks one representative per orbit of that group (digit permutations,
//! band, row, stack and column shuffles, and the transpose where boxes are square), which tells
//! whether two puzzles are the same up to augmentation. It is exact and cheap for 4x4 (128 maps
//! of cells) and 6x6 (3456), and not offered for 9x9 (3.4 million).

use super::Board;
use crate::rng::{self, DataRng};

/// One draw of the augmentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SudokuAugmentation {
    /// `digit_map[d]` is the new digit for digit `d`; `digit_map[0] == 0` (blank stays blank).
    pub digit_map: [u8; 10],
    /// Transpose before reordering (only for square boxes: never on 6x6 boards).
    pub transpose: bool,
    /// New row `i` is old row `row_perm[i]` (bands of `box_rows` rows and the rows within
    /// each band shuffled).
    pub row_perm: Vec<usize>,
    /// New column `j` is old column `col_perm[j]` (stacks of `box_cols` columns and the
    /// columns within each stack shuffled).
    pub col_perm: Vec<usize>,
}

/// A random permutation of `groups * per` lines that keeps groups of `per` consecutive lines
/// together: the groups are shuffled, then the lines inside each group.
fn grouped_lines(rng: &mut DataRng, groups: usize, per: usize) -> Vec<usize> {
    rng::permutation(rng, groups)
        .into_iter()
        .flat_map(|g| {
            rng::permutation(rng, per)
                .into_iter()
                .map(move |r| g * per + r)
                .collect::<Vec<_>>()
        })
        .collect()
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

    /// A random augmentation for side `size` (4, 6 or 9). For 4x4 and 9x9 boards the draws
    /// are, in order: the digit permutation, the transpose coin, the row permutation (bands,
    /// then rows in each band), the column permutation; 6x6 boards skip the coin.
    ///
    /// # Panics
    /// For a side other than 4, 6 or 9.
    pub fn random(rng: &mut DataRng, size: usize) -> SudokuAugmentation {
        let (br, bc) = super::box_dims(size).expect("Sudoku side 4, 6 or 9");
        let mut digit_map = [0u8; 10];
        for (i, p) in rng::permutation(rng, size).into_iter().enumerate() {
            digit_map[i + 1] = p as u8 + 1;
        }
        let transpose = br == bc && rng::coin(rng);
        let row_perm = grouped_lines(rng, size / br, br);
        let col_perm = grouped_lines(rng, size / bc, bc);
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
    /// If the board's side differs from the augmentation's, or if `transpose` is set for a
    /// board whose boxes are not square (the result would not be a Sudoku of the same kind).
    pub fn apply(&self, board: &Board) -> Board {
        let n = board.size();
        assert_eq!(
            n,
            self.row_perm.len(),
            "augmentation drawn for another side"
        );
        let (br, bc) = board.box_dims();
        assert!(
            !self.transpose || br == bc,
            "a {n}x{n} board with {br}x{bc} boxes cannot be transposed"
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

/// Every permutation of `groups * per` lines that keeps groups of `per` consecutive lines
/// together (`groups! * per!^groups` of them).
fn all_grouped_lines(groups: usize, per: usize) -> Vec<Vec<usize>> {
    fn perms(n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return vec![Vec::new()];
        }
        let mut out = Vec::new();
        for p in perms(n - 1) {
            for k in 0..=p.len() {
                let mut q = p.clone();
                q.insert(k, n - 1);
                out.push(q);
            }
        }
        out
    }
    let inner = perms(per);
    let mut out: Vec<Vec<usize>> = Vec::new();
    for order in perms(groups) {
        let mut partial: Vec<Vec<usize>> = vec![Vec::new()];
        for &g in &order {
            partial = partial
                .iter()
                .flat_map(|p| {
                    inner.iter().map(move |q| {
                        let mut p = p.clone();
                        p.extend(q.iter().map(|&r| g * per + r));
                        p
                    })
                })
                .collect();
        }
        out.extend(partial);
    }
    out
}

/// The canonical form of `board` under the augmentation group of its side: the
/// lexicographically smallest row-major cell sequence (blank `0` smallest) among all boards
/// [`SudokuAugmentation`] can make from it (any digit permutation, band, row-in-band, stack and
/// column-in-stack shuffles, and the transpose where boxes are square). Two boards are
/// equivalent under augmentation exactly when their canonical forms are equal.
///
/// Exact: every map of cells is tried (128 for 4x4, 48 x 72 = 3456 for 6x6), and for each the
/// digits are relabelled in order of first appearance, which is the smallest relabelling. `None`
/// for 9x9 boards, whose 2 x 1296² maps of cells make this too slow to be useful.
///
/// ```
/// use hrm_data::sudoku::{canonical_form, parse_puzzle};
/// let a = parse_puzzle("1.3. ..1. .1.. ...1").unwrap();
/// let b = parse_puzzle("3.1. ..3. .3.. ...3").unwrap(); // digits 1 and 3 swapped
/// assert_eq!(canonical_form(&a), canonical_form(&b));
/// ```
pub fn canonical_form(board: &Board) -> Option<Board> {
    let n = board.size();
    if n == 9 {
        return None;
    }
    let (br, bc) = board.box_dims();
    let rows = all_grouped_lines(n / br, br);
    let cols = all_grouped_lines(n / bc, bc);
    let src = board.cells();
    let mut best: Vec<u8> = vec![u8::MAX; n * n];
    let mut cur = vec![0u8; n * n];
    let transposes: &[bool] = if br == bc { &[false, true] } else { &[false] };
    for &transpose in transposes {
        for rp in &rows {
            for cp in &cols {
                // Relabel digits by first appearance while comparing with the best so far;
                // stop as soon as this map is larger.
                let mut map = [0u8; 10];
                let mut next = 1u8;
                let mut smaller = false;
                let mut larger = false;
                'cells: for (i, &r) in rp.iter().enumerate() {
                    for (j, &c) in cp.iter().enumerate() {
                        let d = if transpose {
                            src[c * n + r]
                        } else {
                            src[r * n + c]
                        };
                        let v = if d == 0 {
                            0
                        } else {
                            if map[usize::from(d)] == 0 {
                                map[usize::from(d)] = next;
                                next += 1;
                            }
                            map[usize::from(d)]
                        };
                        let k = i * n + j;
                        cur[k] = v;
                        if !smaller {
                            if v > best[k] {
                                larger = true;
                                break 'cells;
                            }
                            smaller = v < best[k];
                        }
                    }
                }
                if smaller && !larger {
                    best.copy_from_slice(&cur);
                }
            }
        }
    }
    Some(Board::from_cells_unchecked(n, best))
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
        for size in [4, 6, 9] {
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
    fn six_by_six_augmentations_keep_bands_and_stacks_and_never_transpose() {
        let mut rng = rng::stream(5, 77, 6);
        let g = generate_puzzle(&mut rng, 6, Difficulty::Hard).unwrap();
        let mut rows_seen = std::collections::HashSet::new();
        let mut cols_seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let a = SudokuAugmentation::random(&mut rng, 6);
            assert!(!a.transpose, "a 6x6 board is never transposed");
            assert_eq!(a.digit_map[0], 0);
            let mut digits = a.digit_map[1..=6].to_vec();
            digits.sort_unstable();
            assert_eq!(digits, vec![1, 2, 3, 4, 5, 6]);
            assert!(a.digit_map[7..].iter().all(|&d| d == 0));
            // 3 bands of 2 rows, 2 stacks of 3 columns.
            for band in 0..3 {
                let rows = &a.row_perm[band * 2..band * 2 + 2];
                assert!(
                    rows.iter().all(|r| r / 2 == rows[0] / 2),
                    "{:?}",
                    a.row_perm
                );
            }
            for stack in 0..2 {
                let cols = &a.col_perm[stack * 3..stack * 3 + 3];
                assert!(
                    cols.iter().all(|c| c / 3 == cols[0] / 3),
                    "{:?}",
                    a.col_perm
                );
            }
            rows_seen.insert(a.row_perm.clone());
            cols_seen.insert(a.col_perm.clone());
            // The augmented puzzle is valid, unique, and solved by the augmented solution.
            let p = a.apply(&g.puzzle);
            let s = a.apply(&g.solution);
            assert_eq!(p.givens(), g.puzzle.givens());
            assert_eq!(p.unique_solution().unwrap(), s);
            assert!(check_solution(&p, &s).solved());
        }
        // All 3! * 2^3 = 48 row and 2! * 3!^2 = 72 column orders turn up.
        assert_eq!((rows_seen.len(), cols_seen.len()), (48, 72));
    }

    #[test]
    #[should_panic(expected = "cannot be transposed")]
    fn transposing_a_6x6_board_is_refused() {
        let a = SudokuAugmentation {
            transpose: true,
            ..SudokuAugmentation::identity(6)
        };
        a.apply(&crate::sudoku::Board::empty(6));
    }

    #[test]
    fn canonical_forms_name_augmentation_classes() {
        for size in [4, 6] {
            let mut rng = rng::stream(8, 77, size as u64);
            for _ in 0..4 {
                let g = generate_puzzle(&mut rng, size, Difficulty::Hard).unwrap();
                let c = canonical_form(&g.puzzle).unwrap();
                assert_eq!(canonical_form(&c).unwrap(), c, "idempotent");
                assert_eq!(c.givens(), g.puzzle.givens());
                for _ in 0..20 {
                    let p = SudokuAugmentation::random(&mut rng, size).apply(&g.puzzle);
                    // The same class, and the canonical form is the smallest member.
                    assert_eq!(canonical_form(&p).unwrap(), c);
                    assert!(c.cells() <= p.cells());
                }
            }
        }
        // The 288 complete 4x4 grids form exactly 2 classes.
        let mut rng = rng::stream(9, 77, 0);
        let classes: std::collections::HashSet<_> = (0..200)
            .map(|_| {
                let g =
                    crate::sudoku::Board::new(4, super::super::solver::random_grid(4, &mut rng))
                        .unwrap();
                canonical_form(&g).unwrap()
            })
            .collect();
        assert_eq!(classes.len(), 2);
        // Different givens, different classes; 9x9 is not offered.
        let a = parse_puzzle("1... .... .... ....").unwrap();
        let b = parse_puzzle("12.. .... .... ....").unwrap();
        assert_ne!(canonical_form(&a), canonical_form(&b));
        assert_eq!(canonical_form(&crate::sudoku::Board::empty(9)), None);
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
