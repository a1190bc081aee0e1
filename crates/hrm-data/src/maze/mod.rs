//! Mazes: the grid type, text parsing, BFS shortest paths, the model's encoding and checking a
//! predicted path; the generator, the CSV import and the builder live in the submodules.
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

mod build;
mod csv;
mod generate;

pub use build::{build_maze, MazeOptions};
pub use csv::{read_maze_csv, MazeCsvRow};
pub use generate::{generate_maze, GeneratedMaze};

use std::collections::VecDeque;
use std::path::Path;

use crate::dihedral::Dihedral;
use crate::error::{DataError, Result};

/// The reference's character set, in token order (token = index + 1).
pub const CHARSET: &str = "# SGo";
/// Vocabulary size of maze datasets: PAD plus the five characters.
pub const MAZE_VOCAB_SIZE: usize = 6;
/// The largest side [`build_maze`] accepts: the model reads a maze as one sequence of
/// `side * side` tokens, and 128x128 (16384 tokens) is already 18 times the reference's 30x30.
pub const MAX_MAZE_SIZE: usize = 128;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
