//! An exact Sudoku solver: candidate bitmasks, naked and hidden singles, MRV backtracking.
//!
//! The reference has no solver (its Sudoku-Extreme CSVs come with answers and a rating from an
//! external tool); this one labels generated puzzles, proves uniqueness (it counts up to two
//! solutions) and rates difficulty by the number of guesses its search makes.
//!
//! Boards of side 4 (2x2 boxes), 6 (boxes of 2 rows x 3 columns) and 9 (3x3 boxes) share one
//! implementation: candidates are `u16` bitmasks (bit `d - 1` for digit `d`), units and peers
//! come from a per-size [`Geometry`] built once.

use std::sync::OnceLock;

use crate::rng::{self, DataRng};

/// The cells, units and peers of a board side.
#[derive(Debug)]
pub(crate) struct Geometry {
    /// `n * n`.
    pub cells: usize,
    /// Rows, then columns, then boxes; each `n` cell indices.
    pub units: Vec<Vec<u8>>,
    /// For each cell, the other cells sharing a unit with it.
    pub peers: Vec<Vec<u8>>,
    /// All digits' bits.
    pub full: u16,
}

impl Geometry {
    /// The geometry of a board whose boxes are `box_rows x box_cols` (side
    /// `box_rows * box_cols`). Boxes are numbered row-major: box `k` covers rows
    /// `(k / stacks) * box_rows ..` and columns `(k % stacks) * box_cols ..`, with
    /// `stacks = n / box_cols` boxes side by side.
    fn new(box_rows: usize, box_cols: usize) -> Geometry {
        let n = box_rows * box_cols;
        let cells = n * n;
        let stacks = n / box_cols;
        let mut units: Vec<Vec<u8>> = Vec::with_capacity(3 * n);
        for r in 0..n {
            units.push((0..n).map(|c| (r * n + c) as u8).collect());
        }
        for c in 0..n {
            units.push((0..n).map(|r| (r * n + c) as u8).collect());
        }
        for bx in 0..n {
            let (r0, c0) = ((bx / stacks) * box_rows, (bx % stacks) * box_cols);
            units.push(
                (0..n)
                    .map(|k| ((r0 + k / box_cols) * n + c0 + k % box_cols) as u8)
                    .collect(),
            );
        }
        let peers = (0..cells)
            .map(|cell| {
                let mut p: Vec<u8> = units
                    .iter()
                    .filter(|u| u.contains(&(cell as u8)))
                    .flatten()
                    .copied()
                    .filter(|&x| x as usize != cell)
                    .collect();
                p.sort_unstable();
                p.dedup();
                p
            })
            .collect();
        Geometry {
            cells,
            units,
            peers,
            full: ((1u32 << n) - 1) as u16,
        }
    }
}

/// The geometry of side `n` (4, 6 or 9; see [`super::box_dims`]).
///
/// # Panics
/// For any other side (callers check the side first, see [`super::check_side`]).
pub(crate) fn geometry(n: usize) -> &'static Geometry {
    static G4: OnceLock<Geometry> = OnceLock::new();
    static G6: OnceLock<Geometry> = OnceLock::new();
    static G9: OnceLock<Geometry> = OnceLock::new();
    let cell = match n {
        4 => &G4,
        6 => &G6,
        9 => &G9,
        _ => panic!("unsupported Sudoku side {n}"),
    };
    cell.get_or_init(|| {
        let (r, c) = super::box_dims(n).expect("a supported side");
        Geometry::new(r, c)
    })
}

/// Which deductions the solver makes before it guesses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deductions {
    /// Naked singles only (a cell with one candidate left).
    NakedSingles,
    /// Naked and hidden singles (a digit with one place left in a unit).
    Singles,
}

/// Counters of one search.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    /// Branching nodes: states where the solver had to guess among several candidates.
    pub guesses: u64,
    /// Guesses that led to a contradiction.
    pub backtracks: u64,
}

#[derive(Clone)]
struct State {
    cand: [u16; 81],
    value: [u8; 81],
    unsolved: usize,
}

struct Solver<'a> {
    g: &'static Geometry,
    deductions: Deductions,
    stats: SearchStats,
    limit: usize,
    solutions: usize,
    first: Option<[u8; 81]>,
    rng: Option<&'a mut DataRng>,
}

impl State {
    fn new(g: &Geometry) -> State {
        let mut s = State {
            cand: [0; 81],
            value: [0; 81],
            unsolved: g.cells,
        };
        s.cand[..g.cells].fill(g.full);
        s
    }

    /// Places digit `d` (1-based) at `cell` and removes it from the peers; naked singles found
    /// on the way are placed too. `false` on a contradiction.
    fn assign(&mut self, g: &Geometry, cell: usize, d: u8) -> bool {
        let mut stack = [0u8; 81];
        let mut top = 0;
        if !self.place(g, cell, d, &mut stack, &mut top) {
            return false;
        }
        while top > 0 {
            top -= 1;
            let c = stack[top] as usize;
            if self.value[c] == 0 {
                let digit = self.cand[c].trailing_zeros() as u8 + 1;
                if !self.place(g, c, digit, &mut stack, &mut top) {
                    return false;
                }
            }
        }
        true
    }

    #[inline]
    fn place(
        &mut self,
        g: &Geometry,
        cell: usize,
        d: u8,
        stack: &mut [u8; 81],
        top: &mut usize,
    ) -> bool {
        let bit = 1u16 << (d - 1);
        if self.value[cell] != 0 {
            return self.value[cell] == d;
        }
        if self.cand[cell] & bit == 0 {
            return false;
        }
        self.value[cell] = d;
        self.cand[cell] = bit;
        self.unsolved -= 1;
        for &p in &g.peers[cell] {
            let p = p as usize;
            let c = self.cand[p];
            if c & bit != 0 {
                let c = c & !bit;
                if c == 0 {
                    return false;
                }
                self.cand[p] = c;
                if c & (c - 1) == 0 && self.value[p] == 0 && *top < 81 {
                    stack[*top] = p as u8;
                    *top += 1;
                }
            }
        }
        true
    }

    /// Hidden singles until none are left. `false` on a contradiction (a digit with no place
    /// in a unit).
    fn hidden_singles(&mut self, g: &Geometry) -> bool {
        loop {
            let mut progress = false;
            for unit in &g.units {
                let (mut once, mut twice, mut placed) = (0u16, 0u16, 0u16);
                for &c in unit {
                    let m = self.cand[c as usize];
                    if self.value[c as usize] != 0 {
                        placed |= m;
                    }
                    twice |= once & m;
                    once |= m;
                }
                if once != g.full {
                    return false;
                }
                let mut hidden = once & !twice & !placed;
                while hidden != 0 {
                    let bit = hidden & hidden.wrapping_neg();
                    hidden &= hidden - 1;
                    let Some(&cell) = unit.iter().find(|&&c| self.cand[c as usize] & bit != 0)
                    else {
                        return false;
                    };
                    if self.value[cell as usize] == 0 {
                        if !self.assign(g, cell as usize, bit.trailing_zeros() as u8 + 1) {
                            return false;
                        }
                        progress = true;
                    }
                }
            }
            if !progress {
                return true;
            }
        }
    }

    /// The unsolved cell with the fewest candidates.
    fn mrv(&self, g: &Geometry) -> Option<usize> {
        let mut best = None;
        let mut best_count = u32::MAX;
        for c in 0..g.cells {
            if self.value[c] == 0 {
                let k = self.cand[c].count_ones();
                if k < best_count {
                    best_count = k;
                    best = Some(c);
                    if k == 2 {
                        break;
                    }
                }
            }
        }
        best
    }
}

impl Solver<'_> {
    fn search(&mut self, mut s: State) {
        if self.deductions == Deductions::Singles && !s.hidden_singles(self.g) {
            self.stats.backtracks += 1;
            return;
        }
        if s.unsolved == 0 {
            self.solutions += 1;
            if self.first.is_none() {
                self.first = Some(s.value);
            }
            return;
        }
        let cell = s.mrv(self.g).expect("an unsolved cell");
        self.stats.guesses += 1;
        let mut digits = [0u8; 16];
        let mut k = 0;
        let mut m = s.cand[cell];
        while m != 0 {
            digits[k] = m.trailing_zeros() as u8 + 1;
            k += 1;
            m &= m - 1;
        }
        if let Some(rng) = self.rng.as_deref_mut() {
            rng::shuffle(rng, &mut digits[..k]);
        }
        for &d in &digits[..k] {
            let mut next = s.clone();
            if next.assign(self.g, cell, d) {
                self.search(next);
            } else {
                self.stats.backtracks += 1;
            }
            if self.solutions >= self.limit {
                return;
            }
        }
    }
}

/// The outcome of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SolveResult {
    /// Solutions found, stopping at the limit (so `2` means "two or more" with limit 2).
    pub solutions: usize,
    /// The first solution found, row-major digits.
    pub solution: Option<Vec<u8>>,
    /// Search counters.
    pub stats: SearchStats,
}

/// Solves the row-major side-`n` board `cells` (0 = blank), counting up to `limit` solutions.
/// `forbid` removes one candidate before the search; `rng` shuffles the order in which
/// guesses are tried (to draw random complete grids).
pub(crate) fn solve_cells(
    n: usize,
    cells: &[u8],
    limit: usize,
    deductions: Deductions,
    rng: Option<&mut DataRng>,
    forbid: Option<(usize, u8)>,
) -> SolveResult {
    let g = geometry(n);
    debug_assert_eq!(cells.len(), g.cells);
    let none = SolveResult {
        solutions: 0,
        solution: None,
        stats: SearchStats::default(),
    };
    let mut s = State::new(g);
    for (cell, &d) in cells.iter().enumerate() {
        if d != 0 && !s.assign(g, cell, d) {
            return none;
        }
    }
    if let Some((cell, d)) = forbid {
        if s.value[cell] == d {
            return none;
        }
        if s.value[cell] == 0 {
            let c = s.cand[cell] & !(1u16 << (d - 1));
            if c == 0 {
                return none;
            }
            s.cand[cell] = c;
            if c & (c - 1) == 0 && !s.assign(g, cell, c.trailing_zeros() as u8 + 1) {
                return none;
            }
        }
    }
    let mut solver = Solver {
        g,
        deductions,
        stats: SearchStats::default(),
        limit,
        solutions: 0,
        first: None,
        rng,
    };
    solver.search(s);
    SolveResult {
        solutions: solver.solutions,
        solution: solver.first.map(|v| v[..g.cells].to_vec()),
        stats: solver.stats,
    }
}

/// Whether `deductions` alone solve the board, without a single guess.
pub(crate) fn solvable_without_guessing(n: usize, cells: &[u8], deductions: Deductions) -> bool {
    let r = solve_cells(n, cells, 1, deductions, None, None);
    r.solutions == 1 && r.stats.guesses == 0
}

/// A uniformly shuffled search on the empty board: a random complete grid.
pub(crate) fn random_grid(n: usize, rng: &mut DataRng) -> Vec<u8> {
    let empty = vec![0u8; n * n];
    solve_cells(n, &empty, 1, Deductions::Singles, Some(rng), None)
        .solution
        .expect("the empty board has solutions")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Vec<u8> {
        s.bytes()
            .map(|b| if b == b'.' { 0 } else { b - b'0' })
            .collect()
    }

    #[test]
    fn solves_a_known_puzzle() {
        // A well-known puzzle with a unique solution.
        let p = parse(
            "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79",
        );
        let r = solve_cells(9, &p, 2, Deductions::Singles, None, None);
        assert_eq!(r.solutions, 1);
        let s = r.solution.unwrap();
        assert_eq!(
            s.iter().map(|d| (b'0' + d) as char).collect::<String>(),
            "534678912672195348198342567859761423426853791713924856961537284287419635345286179"
        );
    }

    #[test]
    fn counts_ambiguous_and_impossible() {
        let empty = vec![0u8; 81];
        assert_eq!(
            solve_cells(9, &empty, 2, Deductions::Singles, None, None).solutions,
            2
        );
        let mut bad = empty.clone();
        bad[0] = 5;
        bad[80] = 5;
        bad[8] = 5;
        assert_eq!(
            solve_cells(9, &bad, 2, Deductions::Singles, None, None).solutions,
            0
        );
        // Forbidding the only solution's digit leaves none.
        let p = parse(
            "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79",
        );
        assert_eq!(
            solve_cells(9, &p, 1, Deductions::Singles, None, Some((2, 4))).solutions,
            0
        );
        assert_eq!(
            solve_cells(9, &p, 1, Deductions::Singles, None, Some((2, 5))).solutions,
            1
        );
    }

    #[test]
    fn naked_singles_are_weaker_than_singles() {
        // Both solvers agree on solutions, whatever the deductions.
        let p = parse(
            "53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79",
        );
        let a = solve_cells(9, &p, 2, Deductions::NakedSingles, None, None);
        let b = solve_cells(9, &p, 2, Deductions::Singles, None, None);
        assert_eq!(a.solution, b.solution);
        assert!(a.stats.guesses >= b.stats.guesses);
    }

    /// A minimal 6x6 puzzle (12 givens, boxes of 2 rows x 3 columns) and its solution, checked
    /// by an independent brute-force count when they were written.
    const PUZZLE6: &str = "1.3....56......5.4.6...1.1.6.....3.2";
    const SOLUTION6: &str = "123456456123231564564231312645645312";

    #[test]
    fn six_by_six_geometry() {
        let g = geometry(6);
        assert_eq!((g.cells, g.units.len(), g.full), (36, 18, 0b11_1111));
        // Rows, columns, then boxes of 2 rows x 3 columns, numbered row-major.
        assert_eq!(g.units[0], vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(g.units[6], vec![0, 6, 12, 18, 24, 30]);
        assert_eq!(g.units[12], vec![0, 1, 2, 6, 7, 8]);
        assert_eq!(g.units[13], vec![3, 4, 5, 9, 10, 11]);
        assert_eq!(g.units[14], vec![12, 13, 14, 18, 19, 20]);
        assert_eq!(g.units[17], vec![27, 28, 29, 33, 34, 35]);
        for (k, u) in g.units.iter().enumerate() {
            assert_eq!(u.len(), 6, "unit {k}");
            if k >= 12 {
                // A box: 2 consecutive rows, 3 consecutive columns, aligned.
                let rows: Vec<usize> = u.iter().map(|&c| c as usize / 6).collect();
                let cols: Vec<usize> = u.iter().map(|&c| c as usize % 6).collect();
                assert!(rows.iter().all(|&r| r / 2 == rows[0] / 2), "{u:?}");
                assert!(cols.iter().all(|&c| c / 3 == cols[0] / 3), "{u:?}");
            }
        }
        // Every cell is in exactly one row, one column and one box.
        for cell in 0..36u8 {
            assert_eq!(g.units.iter().filter(|u| u.contains(&cell)).count(), 3);
        }
        // Peers: 5 in the row + 5 in the column + (2-1)*(3-1) more in the box.
        assert!(g.peers.iter().all(|p| p.len() == 5 + 5 + 2));
        // The same rule for every side: (n-1) + (n-1) + (box_rows-1)(box_cols-1).
        for (n, extra) in [(4, 1), (9, 4)] {
            assert!(geometry(n)
                .peers
                .iter()
                .all(|p| p.len() == 2 * (n - 1) + extra));
        }
        // Cell (0, 0) sees (1, 2) through the box, but not (2, 1) (another band).
        assert!(g.peers[0].contains(&8) && !g.peers[0].contains(&13));
    }

    #[test]
    fn solves_a_known_6x6_puzzle_and_sees_a_second_solution() {
        let p = parse(PUZZLE6);
        for deductions in [Deductions::NakedSingles, Deductions::Singles] {
            let r = solve_cells(6, &p, 2, deductions, None, None);
            assert_eq!(r.solutions, 1, "{deductions:?}");
            assert_eq!(r.solution.unwrap(), parse(SOLUTION6));
        }
        // Without its first given the puzzle has two or more solutions; the solver finds a
        // second one and both are valid completions.
        let mut less = p.clone();
        less[0] = 0;
        let r = solve_cells(6, &less, 2, Deductions::Singles, None, None);
        assert_eq!(r.solutions, 2);
        // Forbidding the known solution's digit in that cell leaves another solution.
        let other = solve_cells(6, &less, 1, Deductions::Singles, None, Some((0, 1)));
        assert_eq!(other.solutions, 1);
        let s = other.solution.unwrap();
        assert_ne!(s, parse(SOLUTION6));
        let geo = geometry(6);
        for u in &geo.units {
            let mut d: Vec<u8> = u.iter().map(|&c| s[c as usize]).collect();
            d.sort_unstable();
            assert_eq!(d, vec![1, 2, 3, 4, 5, 6]);
        }
        // A 2 next to the given 1 and another 2 in its box: no solution.
        let mut bad = p.clone();
        bad[1] = 2;
        bad[8] = 2;
        assert_eq!(
            solve_cells(6, &bad, 2, Deductions::Singles, None, None).solutions,
            0
        );
    }

    #[test]
    fn random_grids_are_valid() {
        for n in [4, 6, 9] {
            let mut rng = rng::stream(1, 99, n as u64);
            let g = random_grid(n, &mut rng);
            let geo = geometry(n);
            for u in &geo.units {
                let mut d: Vec<u8> = u.iter().map(|&c| g[c as usize]).collect();
                d.sort_unstable();
                assert_eq!(d, (1..=n as u8).collect::<Vec<_>>());
            }
            assert_ne!(g, random_grid(n, &mut rng), "two draws should differ");
        }
    }
}
