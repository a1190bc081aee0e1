//! The maze generator: a randomised depth-first spanning tree of a lattice of cells, braided
//! with a few extra openings, and S and G placed so the shortest path is unique and long.
//!
//! The reference downloads its mazes (`dataset/build_maze_dataset.py` reads a hub CSV of
//! 30x30 "hard" mazes, shortest path of at least 110 steps); this module draws comparable ones
//! from a seeded stream instead.

use super::{Maze, GOAL, OPEN, START, WALL};
use crate::error::{DataError, Result};
use crate::rng::{self, DataRng};

/// A generated maze: the puzzle (S and G, no path) and its label (path marked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedMaze {
    /// The input grid.
    pub maze: Maze,
    /// The label grid: the maze with its unique shortest path marked `o`.
    pub solution: Maze,
    /// Steps of the shortest path.
    pub path_length: usize,
    /// Mazes drawn before this one was accepted.
    pub attempts: usize,
}

/// Draws a braided lattice maze of `size x size` squares (walls and open squares only).
fn carve(rng: &mut DataRng, size: usize) -> Vec<u8> {
    let n = size;
    let mut cells = vec![WALL; n * n];
    // Lattice cells sit at one parity of rows and columns, chosen at random so the extra wall
    // line of an even side falls on a random side.
    let (or, oc) = if n % 2 == 0 {
        (usize::from(rng::coin(rng)), usize::from(rng::coin(rng)))
    } else {
        (0, 0)
    };
    let rows: Vec<usize> = (or..n).step_by(2).collect();
    let cols: Vec<usize> = (oc..n).step_by(2).collect();
    let (lr, lc) = (rows.len(), cols.len());
    let at = |i: usize, j: usize| rows[i] * n + cols[j];
    let mut visited = vec![false; lr * lc];
    let first = rng::below(rng, lr * lc);
    let mut stack = vec![first];
    visited[first] = true;
    cells[at(first / lc, first % lc)] = OPEN;
    while let Some(&cur) = stack.last() {
        let (i, j) = (cur / lc, cur % lc);
        let mut options = [0usize; 4];
        let mut k = 0;
        for (di, dj) in [(-1i64, 0i64), (1, 0), (0, -1), (0, 1)] {
            let (ni, nj) = (i as i64 + di, j as i64 + dj);
            if ni >= 0
                && nj >= 0
                && (ni as usize) < lr
                && (nj as usize) < lc
                && !visited[ni as usize * lc + nj as usize]
            {
                options[k] = ni as usize * lc + nj as usize;
                k += 1;
            }
        }
        if k == 0 {
            stack.pop();
            continue;
        }
        let next = options[rng::below(rng, k)];
        let (ni, nj) = (next / lc, next % lc);
        visited[next] = true;
        cells[at(ni, nj)] = OPEN;
        // Open the wall square between the two cells.
        cells[(rows[i] + rows[ni]) / 2 * n + (cols[j] + cols[nj]) / 2] = OPEN;
        stack.push(next);
    }
    // Braid: open about one wall in twelve between neighbouring cells, making loops.
    let mut walls = Vec::new();
    for (i, &r) in rows.iter().enumerate() {
        for (j, &c) in cols.iter().enumerate() {
            if i + 1 < lr {
                walls.push((r + 1) * n + c);
            }
            if j + 1 < lc {
                walls.push(r * n + c + 1);
            }
        }
    }
    walls.retain(|&w| cells[w] == WALL);
    for _ in 0..(lr * lc) / 12 {
        if walls.is_empty() {
            break;
        }
        let k = rng::below(rng, walls.len());
        cells[walls.swap_remove(k)] = OPEN;
    }
    cells
}

/// Attempts (mazes drawn) before giving up on one.
const MAX_MAZE_ATTEMPTS: usize = 10_000;

/// Generates one `size x size` maze whose S-to-G shortest path is unique and at least
/// `min_path` steps long.
///
/// # Errors
/// [`DataError::Option`] for a side below 2; [`DataError::Generation`] if no such maze turns up
/// within the attempt budget (`min_path` too long for the side).
pub fn generate_maze(rng: &mut DataRng, size: usize, min_path: usize) -> Result<GeneratedMaze> {
    if size < 2 {
        return Err(DataError::option(
            "size",
            format!("a maze needs a side of at least 2, not {size}"),
        ));
    }
    for attempt in 1..=MAX_MAZE_ATTEMPTS {
        let cells = carve(rng, size);
        let open: Vec<usize> = (0..cells.len()).filter(|&i| cells[i] == OPEN).collect();
        let mut maze = Maze {
            height: size,
            width: size,
            cells,
        };
        for _ in 0..4 {
            let s = open[rng::below(rng, open.len())];
            let (dist, count, _) = maze.bfs(s);
            let far: Vec<usize> = open
                .iter()
                .copied()
                .filter(|&g| {
                    g != s
                        && dist[g] != u32::MAX
                        && dist[g] as usize >= min_path.max(1)
                        && count[g] == 1
                })
                .collect();
            if far.is_empty() {
                continue;
            }
            let g = far[rng::below(rng, far.len())];
            maze.cells[s] = START;
            maze.cells[g] = GOAL;
            let solution = maze.solved().expect("G is reachable");
            return Ok(GeneratedMaze {
                path_length: dist[g] as usize,
                maze,
                solution,
                attempts: attempt,
            });
        }
    }
    Err(DataError::Generation { reason: format!("no {size}x{size} maze with a unique shortest path of at least {min_path} steps in {MAX_MAZE_ATTEMPTS} attempts") })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dihedral::Dihedral;
    use crate::maze::check_path;

    #[test]
    fn generated_mazes_meet_the_filter() {
        let mut rng = rng::stream(1, 2, 3);
        for (size, min_path) in [(30, 110), (9, 10), (10, 0)] {
            let g = generate_maze(&mut rng, size, min_path).unwrap();
            assert!(g.path_length >= min_path);
            let v = check_path(&g.maze, &g.solution);
            assert!(v.valid_path && v.shortest, "{size}: {v:?}");
            assert_eq!(v.length, Some(g.path_length));
            assert_eq!(g.solution.without_path(), g.maze);
        }
        assert!(matches!(
            generate_maze(&mut rng, 4, 100),
            Err(DataError::Generation { .. })
        ));
    }

    #[test]
    fn dihedral_augmentation_keeps_paths_valid() {
        let g = generate_maze(&mut rng::stream(4, 4, 4), 12, 20).unwrap();
        for t in Dihedral::ALL {
            let (m, s) = (g.maze.transform(t), g.solution.transform(t));
            let v = check_path(&m, &s);
            assert!(v.shortest, "{t:?}");
            assert_eq!(m.transform(t.inverse()), g.maze);
        }
    }
}
