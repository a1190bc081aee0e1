//! Mazes: the generator, BFS shortest paths, the model's encoding, checking a predicted path,
//! the reference's CSV import and the dataset builder.
//!
//! Mirrors the reference's `dataset/build_maze_dataset.py`: the character set `# SGo` (wall,
//! open, start, goal, path), tokens `0` PAD and `1..=5` for those characters in that order,
//! `vocab_size` 6, one set `all`, every puzzle identifier 0, each maze one puzzle and one group
//! (or, with `aug`, a group of its 8 dihedral transforms, in transform-id order, for the
//! training split). The input is the maze, the label the same grid with the shortest path's
//! cells (between S and G) marked `o`.
//!
//! What differs: the reference downloads 1000 30x30 "hard" mazes (shortest path of at least
//! 110 steps); this module generates them. A maze is a random spanning tree of a lattice of
//! cells (randomised depth-first search, long winding corridors) with a few extra walls opened
//! to make loops; S is a random open square and G a random open square whose shortest path
//! from S has at least `min_path` steps and is unique (so the label is well defined). Every CSV
//! row is checked (characters, one S and one G, the answer a valid path on the question).
//! Generated mazes are distinct, and a generated test maze never equals a training input (a
//! training maze or, with `aug`, one of its transforms): such draws are redrawn and counted in
//! the build notes. Imported CSV rows are kept; the notes count the test rows found among the
//! training inputs.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;

use crate::csv::CsvReader;
use crate::dihedral::Dihedral;
use crate::disjoint::{fingerprint, InputSet};
use crate::error::{DataError, Result};
use crate::format::{split_metadata, DatasetWriter, BLANK_IDENTIFIER};
use crate::rng::{self, domain, DataRng};
use crate::summary::{BuildSummary, SplitSummary};

/// The reference's character set, in token order (token = index + 1).
pub const CHARSET: &str = "# SGo";
/// Vocabulary size of maze datasets: PAD plus the five characters.
pub const MAZE_VOCAB_SIZE: usize = 6;
/// Wall.
pub const WALL: u8 = b'#';
/// Open square.
pub const OPEN: u8 = b' ';
/// Start.
pub const START: u8 = b'S';
/// Goal.
pub const GOAL: u8 = b'G';
/// A square on the path.
pub const PATH: u8 = b'o';

/// A rectangular maze of `# SGo` characters, row-major.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Maze {
    height: usize,
    width: usize,
    cells: Vec<u8>,
}

impl Maze {
    /// A maze from row-major characters.
    ///
    /// # Errors
    /// [`DataError::PuzzleLength`] if `cells` is not `height * width` long;
    /// [`DataError::PuzzleChar`] for a character outside `# SGo`.
    pub fn new(height: usize, width: usize, cells: Vec<u8>) -> Result<Maze> {
        if cells.len() != height * width || height == 0 || width == 0 {
            return Err(DataError::PuzzleLength {
                expected: format!("{height}x{width} = {}", height * width),
                found: cells.len(),
            });
        }
        if let Some(i) = cells.iter().position(|c| !CHARSET.as_bytes().contains(c)) {
            return Err(DataError::PuzzleChar {
                position: i + 1,
                found: char::from(cells[i]),
                alphabet: format!("{CHARSET:?}"),
            });
        }
        Ok(Maze {
            height,
            width,
            cells,
        })
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Row-major characters.
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }

    /// The character at `(row, col)`.
    pub fn get(&self, row: usize, col: usize) -> u8 {
        self.cells[row * self.width + col]
    }

    fn find(&self, c: u8) -> Option<usize> {
        self.cells.iter().position(|&x| x == c)
    }

    /// Position `(row, col)` of S.
    pub fn start(&self) -> Option<(usize, usize)> {
        self.find(START).map(|i| (i / self.width, i % self.width))
    }

    /// Position `(row, col)` of G.
    pub fn goal(&self) -> Option<(usize, usize)> {
        self.find(GOAL).map(|i| (i / self.width, i % self.width))
    }

    /// The maze as text, one line per row.
    pub fn to_text(&self) -> String {
        let mut s = String::with_capacity(self.cells.len() + self.height);
        for row in self.cells.chunks(self.width) {
            s.push_str(&String::from_utf8_lossy(row));
            s.push('\n');
        }
        s
    }

    /// One line of `height * width` characters (the reference CSV's format).
    pub fn to_line(&self) -> String {
        String::from_utf8_lossy(&self.cells).into_owned()
    }

    /// The maze without path marks (`o` becomes open).
    pub fn without_path(&self) -> Maze {
        let cells = self
            .cells
            .iter()
            .map(|&c| if c == PATH { OPEN } else { c })
            .collect();
        Maze {
            height: self.height,
            width: self.width,
            cells,
        }
    }

    /// The 4-neighbours of flat index `i`.
    fn neighbours(&self, i: usize) -> impl Iterator<Item = usize> {
        let (h, w) = (self.height, self.width);
        let (r, c) = (i / w, i % w);
        [
            (r > 0).then(|| i - w),
            (r + 1 < h).then(|| i + w),
            (c > 0).then(|| i - 1),
            (c + 1 < w).then(|| i + 1),
        ]
        .into_iter()
        .flatten()
    }

    /// BFS from S over non-wall squares: distance (`u32::MAX` unreachable), number of shortest
    /// paths (saturating at 2) and a predecessor on a shortest path, per square.
    fn bfs(&self, from: usize) -> (Vec<u32>, Vec<u8>, Vec<usize>) {
        let n = self.cells.len();
        let mut dist = vec![u32::MAX; n];
        let mut count = vec![0u8; n];
        let mut pred = vec![usize::MAX; n];
        let mut queue = VecDeque::with_capacity(n);
        dist[from] = 0;
        count[from] = 1;
        queue.push_back(from);
        while let Some(i) = queue.pop_front() {
            for j in self.neighbours(i) {
                if self.cells[j] == WALL {
                    continue;
                }
                if dist[j] == u32::MAX {
                    dist[j] = dist[i] + 1;
                    count[j] = count[i];
                    pred[j] = i;
                    queue.push_back(j);
                } else if dist[j] == dist[i] + 1 {
                    count[j] = (count[j] + count[i]).min(2);
                }
            }
        }
        (dist, count, pred)
    }

    /// A shortest S-to-G path as `(row, col)` squares, S and G included; `None` if S or G is
    /// missing or G cannot be reached. Path marks (`o`) count as open.
    pub fn shortest_path(&self) -> Option<Vec<(usize, usize)>> {
        let (s, g) = (self.find(START)?, self.find(GOAL)?);
        let (dist, _, pred) = self.bfs(s);
        if dist[g] == u32::MAX {
            return None;
        }
        let mut path = vec![g];
        let mut i = g;
        while i != s {
            i = pred[i];
            path.push(i);
        }
        path.reverse();
        Some(
            path.into_iter()
                .map(|i| (i / self.width, i % self.width))
                .collect(),
        )
    }

    /// The maze with a shortest path marked `o` (the label); `None` if G is unreachable.
    pub fn solved(&self) -> Option<Maze> {
        let path = self.without_path().shortest_path()?;
        let mut out = self.without_path();
        for &(r, c) in &path[1..path.len() - 1] {
            out.cells[r * self.width + c] = PATH;
        }
        Some(out)
    }

    /// Applies a dihedral transform.
    pub fn transform(&self, t: Dihedral) -> Maze {
        let (height, width) = t.output_shape(self.height, self.width);
        Maze {
            height,
            width,
            cells: t.apply(&self.cells, self.height, self.width),
        }
    }
}

impl std::fmt::Display for Maze {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// Parses a maze written as text, one row per line, in `# SGo` (a `.` is also read as open,
/// since editors strip trailing spaces); there must be one S and one G.
///
/// # Errors
/// [`DataError::Line`] for rows of different lengths or no rows, [`DataError::Char`] with line
/// and column for a character outside the set or a second S or G. `path` only names the source
/// in the errors.
pub fn parse_maze(text: &str, path: &Path) -> Result<Maze> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let Some(&(first_line, first)) = lines.first() else {
        return Err(DataError::line(path, 1, "no maze rows"));
    };
    let width = first.chars().count();
    let mut cells = Vec::with_capacity(width * lines.len());
    let (mut start, mut goal) = (None, None);
    for &(line, row) in &lines {
        let n = row.chars().count();
        if n != width {
            return Err(DataError::line(
                path,
                line,
                format!("row has {n} characters, expected {width} (as line {first_line})"),
            ));
        }
        for (col, ch) in row.chars().enumerate() {
            let c = match ch {
                '.' => OPEN,
                '#' | ' ' | 'S' | 'G' | 'o' => ch as u8,
                other => {
                    return Err(DataError::Char {
                        path: path.to_path_buf(),
                        line,
                        column: col + 1,
                        reason: format!("{other:?} is not one of '#' wall, ' ' or '.' open, 'S' start, 'G' goal, 'o' path"),
                    })
                }
            };
            let slot = match c {
                START => Some((&mut start, "S")),
                GOAL => Some((&mut goal, "G")),
                _ => None,
            };
            if let Some((slot, name)) = slot {
                if let Some((l, c0)) = *slot {
                    return Err(DataError::Char {
                        path: path.to_path_buf(),
                        line,
                        column: col + 1,
                        reason: format!("second {name} (the first is at line {l}, column {c0})"),
                    });
                }
                *slot = Some((line, col + 1));
            }
            cells.push(c);
        }
    }
    for (slot, name) in [(start, "S (start)"), (goal, "G (goal)")] {
        if slot.is_none() {
            return Err(DataError::line(
                path,
                first_line,
                format!("the maze has no {name}"),
            ));
        }
    }
    Ok(Maze {
        height: lines.len(),
        width,
        cells,
    })
}

/// Reads a maze text file (see [`parse_maze`]).
///
/// # Errors
/// [`DataError::Io`] naming the file, and the errors of [`parse_maze`].
pub fn read_maze_file(path: &Path) -> Result<Maze> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_maze(&text, path)
}

/// The model's tokens for a maze: `#` 1, ` ` 2, `S` 3, `G` 4, `o` 5.
pub fn encode_maze(maze: &Maze) -> Vec<i32> {
    maze.cells
        .iter()
        .map(|&c| i32::from(char_token(c)))
        .collect()
}

fn char_token(c: u8) -> u8 {
    CHARSET
        .bytes()
        .position(|x| x == c)
        .map(|p| p as u8 + 1)
        .unwrap_or(0)
}

fn encode_u8(maze: &Maze) -> Vec<u8> {
    maze.cells.iter().map(|&c| char_token(c)).collect()
}

/// Decodes model tokens into a `height x width` maze.
///
/// # Errors
/// [`DataError::PuzzleLength`] for the wrong length, [`DataError::Token`] for PAD (0) or a
/// token above 5.
pub fn decode_tokens(tokens: &[i32], height: usize, width: usize) -> Result<Maze> {
    if tokens.len() != height * width {
        return Err(DataError::PuzzleLength {
            expected: format!("{height}x{width} = {}", height * width),
            found: tokens.len(),
        });
    }
    let set = CHARSET.as_bytes();
    let cells = tokens
        .iter()
        .enumerate()
        .map(|(i, &t)| match t {
            1..=5 => Ok(set[t as usize - 1]),
            _ => Err(DataError::Token {
                position: i,
                token: i64::from(t),
                expected: "1-5 (# SGo)".into(),
            }),
        })
        .collect::<Result<_>>()?;
    Ok(Maze {
        height,
        width,
        cells,
    })
}

/// What [`check_path`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MazeVerdict {
    /// The `o` squares with S and G form a simple S-to-G path over open squares of the maze
    /// (each `o` touches exactly two path squares; S and G stay where they are).
    pub valid_path: bool,
    /// Valid and as short as possible.
    pub shortest: bool,
    /// Steps of the predicted path, if valid.
    pub length: Option<usize>,
    /// Steps of a shortest path, if G is reachable.
    pub optimal_length: Option<usize>,
}

/// Checks a predicted grid (the maze with its path marked `o`) against the maze.
pub fn check_path(maze: &Maze, predicted: &Maze) -> MazeVerdict {
    let base = maze.without_path();
    let optimal_length = base.shortest_path().map(|p| p.len() - 1);
    let invalid = MazeVerdict {
        valid_path: false,
        shortest: false,
        length: None,
        optimal_length,
    };
    if (predicted.height, predicted.width) != (base.height, base.width) {
        return invalid;
    }
    let (Some(s), Some(g)) = (base.find(START), base.find(GOAL)) else {
        return invalid;
    };
    if predicted.cells[s] != START || predicted.cells[g] != GOAL {
        return invalid;
    }
    let on_path = |i: usize| i == s || i == g || predicted.cells[i] == PATH;
    // Path squares must be open in the maze.
    let squares: Vec<usize> = (0..base.cells.len()).filter(|&i| on_path(i)).collect();
    if squares.iter().any(|&i| base.cells[i] == WALL) {
        return invalid;
    }
    for &i in &squares {
        let degree = base.neighbours(i).filter(|&j| on_path(j)).count();
        let want = if i == s || i == g { 1 } else { 2 };
        if degree != want {
            return invalid;
        }
    }
    // Walk from S; with those degrees the path squares form one S-G chain plus possibly
    // separate cycles, which the walk would not visit.
    let (mut prev, mut cur, mut steps) = (usize::MAX, s, 0);
    while cur != g {
        let Some(next) = base.neighbours(cur).find(|&j| j != prev && on_path(j)) else {
            return invalid;
        };
        prev = cur;
        cur = next;
        steps += 1;
    }
    if steps + 1 != squares.len() {
        return invalid;
    }
    MazeVerdict {
        valid_path: true,
        shortest: Some(steps) == optimal_length,
        length: Some(steps),
        optimal_length,
    }
}

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

/// Options of [`build_maze`] (the flags of `hrm data build maze`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MazeOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Training mazes (generated, or rows kept from `train.csv`; 0 keeps every row).
    pub train: usize,
    /// Test mazes (generated, or rows kept from `test.csv`; 0 keeps every row).
    pub test: usize,
    /// Shortest path length, in steps, of generated mazes at least.
    pub min_path: usize,
    /// Add the 8 dihedral transforms of each training maze (the reference's `aug`).
    pub aug: bool,
    /// Seed of everything random.
    pub seed: u64,
    /// Side of generated mazes.
    pub size: usize,
    /// A directory with the reference's `train.csv` and `test.csv` to import instead.
    pub csv_dir: Option<PathBuf>,
}

impl MazeOptions {
    /// The defaults of `hrm data build maze`: 1000 train, 1000 test, min path 110, no
    /// augmentation, seed 0, 30x30.
    pub fn new(out: impl Into<PathBuf>) -> MazeOptions {
        MazeOptions {
            out: out.into(),
            train: 1000,
            test: 1000,
            min_path: 110,
            aug: false,
            seed: 0,
            size: 30,
            csv_dir: None,
        }
    }
}

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
    let [source, question, answer, rating]: [String; 4] =
        fields.try_into().map_err(|f: Vec<String>| {
            err(format!(
                "expected 4 fields (source,question,answer,rating), found {}",
                f.len()
            ))
        })?;
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

/// Writes one split's mazes, each a group of 1 or 8 (dihedral) one-example puzzles. With
/// `inputs_seen`, the fingerprint of every input written is added to it.
fn write_maze_split(
    writer: &DatasetWriter,
    split: &str,
    pairs: &[(Maze, Maze)],
    aug: bool,
    mut inputs_seen: Option<&mut InputSet>,
) -> Result<crate::format::SetStats> {
    let seq_len = pairs.first().map(|(m, _)| m.cells.len()).unwrap_or(0);
    let mut set = writer.set_writer(split, "all", seq_len.max(1))?;
    let transforms: &[Dihedral] = if aug {
        &Dihedral::ALL
    } else {
        &Dihedral::ALL[..1]
    };
    for (maze, solution) in pairs {
        for &t in transforms {
            let input = encode_u8(&maze.transform(t));
            if let Some(seen) = inputs_seen.as_deref_mut() {
                seen.insert_fingerprint(fingerprint(&input));
            }
            set.push_puzzle(0, &input, &encode_u8(&solution.transform(t)))?;
        }
        set.end_group();
    }
    set.finish()
}

fn take_rows(rows: Vec<MazeCsvRow>, keep: usize, rng: &mut DataRng) -> Vec<MazeCsvRow> {
    if keep == 0 || keep >= rows.len() {
        return rows;
    }
    let chosen = rng::sample_without_replacement(rng, rows.len(), keep);
    chosen.into_iter().map(|i| rows[i].clone()).collect()
}

/// Builds a maze dataset in the reference's layout at `opts.out` (atomically).
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// use hrm_data::maze::{build_maze, MazeOptions};
/// let opts = MazeOptions { train: 2, test: 1, min_path: 10, size: 9, aug: true, ..MazeOptions::new(dir.path().join("maze")) };
/// let summary = build_maze(&opts).unwrap();
/// assert_eq!(summary.examples("train"), 2 * 8);
/// assert_eq!(summary.seq_len, 81);
/// ```
///
/// # Errors
/// [`DataError::Generation`] if mazes with such long paths cannot be found for the side; CSV
/// errors as [`read_maze_csv`]; I/O errors naming the file. On any error nothing is left at
/// `opts.out`.
pub fn build_maze(opts: &MazeOptions) -> Result<BuildSummary> {
    let start = Instant::now();
    let writer = DatasetWriter::create(&opts.out)?;
    let mut splits = Vec::new();
    let mut notes = Vec::new();
    let mut seq_len = opts.size * opts.size;
    let task;
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    // Every training input (with its dihedral transforms under --aug), to keep test apart.
    let mut train_inputs = InputSet::with_capacity(opts.train * if opts.aug { 8 } else { 1 });
    for (split, count) in [("train", opts.train), ("test", opts.test)] {
        let is_train = split == "train";
        let aug = opts.aug && is_train;
        let pairs: Vec<(Maze, Maze)> = if let Some(dir) = &opts.csv_dir {
            let path = dir.join(format!("{split}.csv"));
            let rows = read_maze_csv(&path)?;
            let mut rng = rng::stream(opts.seed, domain::MAZE_CSV, u64::from(split == "test"));
            let rows = take_rows(rows, count, &mut rng);
            if let Some(r) = rows.first() {
                seq_len = r.maze.cells.len();
            }
            if !is_train && !rows.is_empty() {
                let shared = rows
                    .iter()
                    .filter(|r| train_inputs.contains(&encode_u8(&r.maze)))
                    .count();
                notes.push(format!(
                    "{shared} of {} test rows are among the {} distinct training inputs{}; \
                     imported rows are kept, not dropped",
                    rows.len(),
                    train_inputs.len(),
                    if opts.aug {
                        " (with their 8 transforms)"
                    } else {
                        ""
                    }
                ));
            }
            rows.into_iter().map(|r| (r.maze, r.solution)).collect()
        } else {
            let dom = if split == "train" {
                domain::MAZE_TRAIN
            } else {
                domain::MAZE_TEST
            };
            let first: Vec<GeneratedMaze> = (0..count)
                .into_par_iter()
                .map(|i| {
                    generate_maze(
                        &mut rng::stream(opts.seed, dom, i as u64),
                        opts.size,
                        opts.min_path,
                    )
                })
                .collect::<Result<_>>()?;
            let mut mazes = Vec::with_capacity(count);
            let (mut in_train, mut duplicates) = (0usize, 0usize);
            for (i, mut g) in first.into_iter().enumerate() {
                let mut retry = 0u64;
                loop {
                    if !is_train && train_inputs.contains(&encode_u8(&g.maze)) {
                        in_train += 1;
                    } else if seen.insert(g.maze.cells.clone()) {
                        break;
                    } else {
                        duplicates += 1;
                    }
                    retry += 1;
                    if retry > 1000 {
                        return Err(DataError::Generation {
                            reason: format!(
                                "could not find {count} distinct {0}x{0} mazes{1} (too few \
                                 exist with a path of {2} steps; ask for fewer)",
                                opts.size,
                                if is_train {
                                    ""
                                } else {
                                    " that are not among the training inputs"
                                },
                                opts.min_path
                            ),
                        });
                    }
                    g = generate_maze(
                        &mut rng::stream(opts.seed, dom, i as u64 | (retry << 32)),
                        opts.size,
                        opts.min_path,
                    )?;
                }
                mazes.push(g);
            }
            if let (Some(lo), Some(hi)) = (
                mazes.iter().map(|g| g.path_length).min(),
                mazes.iter().map(|g| g.path_length).max(),
            ) {
                let mean =
                    mazes.iter().map(|g| g.path_length as f64).sum::<f64>() / mazes.len() as f64;
                notes.push(format!(
                    "{split} mazes: shortest path {lo}-{hi} steps (mean {mean:.1})"
                ));
            }
            if !is_train && count > 0 {
                notes.push(format!(
                    "test split kept apart from train: {in_train} test draws equal to one of \
                     the {} distinct training inputs{} and {duplicates} duplicate draws were \
                     redrawn; no test maze is a training input",
                    train_inputs.len(),
                    if opts.aug {
                        " (with their 8 transforms)"
                    } else {
                        ""
                    }
                ));
            } else if duplicates > 0 {
                notes.push(format!(
                    "{split} mazes: {duplicates} duplicate draws redrawn"
                ));
            }
            mazes.into_iter().map(|g| (g.maze, g.solution)).collect()
        };
        let stats = write_maze_split(
            &writer,
            split,
            &pairs,
            aug,
            is_train.then_some(&mut train_inputs),
        )?;
        writer.write_metadata(
            split,
            &split_metadata(std::slice::from_ref(&stats), MAZE_VOCAB_SIZE, seq_len, 1),
        )?;
        splits.push(SplitSummary {
            split: split.to_string(),
            sets: vec![stats],
        });
    }
    if let Some(dir) = &opts.csv_dir {
        task = format!("maze from {}", dir.display());
    } else {
        task = format!(
            "maze {0}x{0} (min path {1}{2})",
            opts.size,
            opts.min_path,
            if opts.aug {
                ", 8 dihedral augmentations"
            } else {
                ""
            }
        );
    }
    writer.write_identifiers(&[BLANK_IDENTIFIER.to_string()])?;
    let out = writer.commit()?;
    Ok(BuildSummary {
        out,
        task,
        splits,
        seq_len,
        vocab_size: MAZE_VOCAB_SIZE,
        num_puzzle_identifiers: 1,
        elapsed: start.elapsed(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Dataset;

    const SMALL: &str = "#####\n#S  #\n# # #\n#  G#\n#####\n";

    #[test]
    fn bfs_and_labels() {
        let m = parse_maze(SMALL, Path::new("small.txt")).unwrap();
        assert_eq!((m.height(), m.width()), (5, 5));
        let path = m.shortest_path().unwrap();
        assert_eq!(path.len() - 1, 4);
        let solved = m.solved().unwrap();
        assert_eq!(solved.cells().iter().filter(|&&c| c == PATH).count(), 3);
        let v = check_path(&m, &solved);
        assert_eq!(
            v,
            MazeVerdict {
                valid_path: true,
                shortest: true,
                length: Some(4),
                optimal_length: Some(4)
            }
        );
        // No path marked: invalid (S's only path neighbour would be G).
        assert!(!check_path(&m, &m).valid_path);
        // A path through a wall is invalid.
        let through = parse_maze("#####\n#Soo#\n# #o#\n#  G#\n#####\n", Path::new("p")).unwrap();
        assert!(check_path(&m, &through).valid_path);
        let wall = parse_maze("#####\n#S  #\n#oo #\n#  G#\n#####\n", Path::new("p")).unwrap();
        assert!(!check_path(&m, &wall).valid_path);
    }

    #[test]
    fn longer_valid_paths_are_not_shortest() {
        let m = parse_maze("#####\n#S G#\n# # #\n#   #\n#####\n", Path::new("m")).unwrap();
        let long = parse_maze("#####\n#S G#\n#o#o#\n#ooo#\n#####\n", Path::new("m")).unwrap();
        let v = check_path(&m, &long);
        assert_eq!(
            v,
            MazeVerdict {
                valid_path: true,
                shortest: false,
                length: Some(6),
                optimal_length: Some(2)
            }
        );
        assert!(check_path(&m, &m.solved().unwrap()).shortest);
        // Two equally short routes: either is shortest.
        let m = parse_maze(
            "#######\n#S    #\n# ### #\n#    G#\n#######\n",
            Path::new("m"),
        )
        .unwrap();
        let top = parse_maze(
            "#######\n#Soooo#\n# ###o#\n#    G#\n#######\n",
            Path::new("m"),
        )
        .unwrap();
        let bottom = parse_maze(
            "#######\n#S    #\n#o### #\n#ooooG#\n#######\n",
            Path::new("m"),
        )
        .unwrap();
        assert!(check_path(&m, &top).shortest && check_path(&m, &bottom).shortest);
        // A path with a gap, or with a stray mark, is invalid.
        let gap = parse_maze(
            "#######\n#Soo o#\n# ###o#\n#    G#\n#######\n",
            Path::new("m"),
        )
        .unwrap();
        assert!(!check_path(&m, &gap).valid_path);
        let stray = parse_maze(
            "#######\n#Soooo#\n# ###o#\n#o   G#\n#######\n",
            Path::new("m"),
        )
        .unwrap();
        assert!(!check_path(&m, &stray).valid_path);
    }

    #[test]
    fn parse_errors_name_line_and_column() {
        let p = Path::new("maze.txt");
        let err = parse_maze("#####\n#S x#\n", p).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Char {
                    line: 2,
                    column: 4,
                    ..
                }
            ),
            "{err}"
        );
        let err = parse_maze("#####\n#S #\n", p).unwrap_err();
        assert!(matches!(err, DataError::Line { line: 2, .. }), "{err}");
        let err = parse_maze("#SS##\n#G  #\n", p).unwrap_err();
        assert!(err.to_string().contains("maze.txt:1:3: second S"), "{err}");
        let err = parse_maze("#S###\n#   #\n", p).unwrap_err();
        assert!(err.to_string().contains("no G"), "{err}");
        // '.' reads as open.
        assert_eq!(parse_maze("#S.G#\n", p).unwrap().cells(), b"#S G#");
    }

    #[test]
    fn tokens_round_trip() {
        let m = parse_maze(SMALL, Path::new("m")).unwrap().solved().unwrap();
        let t = encode_maze(&m);
        assert_eq!(&t[..7], &[1, 1, 1, 1, 1, 1, 3]);
        assert_eq!(decode_tokens(&t, 5, 5).unwrap(), m);
        assert!(matches!(
            decode_tokens(&[0; 25], 5, 5),
            Err(DataError::Token { position: 0, .. })
        ));
    }

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
