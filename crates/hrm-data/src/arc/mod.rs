//! ARC: grids, the model's 30x30 token encoding, augmentations and puzzle identifiers, and (in
//! submodules) task loading, the dataset builder and the inference helpers.
//!
//! Mirrors the ARC builder of the reference line (`dataset/build_arc_dataset.py` in
//! sapientinc/HRM and its Kaggle-JSON successor in TRM, which also writes `test_puzzles.json`)
//! and the evaluator's `_crop` and `inverse_aug` (`evaluators/arc.py`): a grid of colours 0-9
//! becomes 900 tokens, `0` PAD, `1` EOS, `colour + 2`, placed at a (possibly translated)
//! offset inside the 30x30 canvas, with an EOS row under the grid and an EOS column right of it
//! where they fit. An augmentation is a dihedral transform (ids as in `dataset/common.py`)
//! after a permutation of the colours 1-9 (0, black, is kept); the augmented puzzle's name is
//! `<task id>|||t<transform id>|||<colour map digits>`, e.g. `007bbfb7|||t3|||0712869453`
//! (the HRM repository's older builder wrote `<task id>_t3_0712869453`; [`parse_identifier`]
//! reads both).

mod build;
mod infer;
mod load;

pub use build::{build_arc, default_arc_dir, ArcOptions, ArcSets, MAX_ARC_AUGMENTATIONS};
pub use infer::{prediction_to_task_grid, task_test_batch, ArcTaskBatch, TestView};
pub use load::{
    load_challenges, load_task_dir, load_tasks, parse_task, read_test_puzzles, ArcPair, ArcTask,
};

use crate::dihedral::Dihedral;
use crate::error::{DataError, Result};
use crate::rng::{self, DataRng};

/// Largest grid side, and the side of the token canvas.
pub const ARC_MAX_GRID_SIZE: usize = 30;
/// Tokens per example: the 30x30 canvas.
pub const ARC_SEQ_LEN: usize = ARC_MAX_GRID_SIZE * ARC_MAX_GRID_SIZE;
/// Vocabulary: PAD, EOS, colours 0-9.
pub const ARC_VOCAB_SIZE: usize = 12;
/// Padding token.
pub const PAD_TOKEN: u8 = 0;
/// End-of-grid marker token.
pub const EOS_TOKEN: u8 = 1;
/// Separator in augmented puzzle names.
pub const ID_SEPARATOR: &str = "|||";

/// A grid of ARC colours (0-9), row-major, at most 30x30.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Grid {
    height: usize,
    width: usize,
    cells: Vec<u8>,
}

impl Grid {
    /// A grid from row-major colours.
    ///
    /// # Errors
    /// [`DataError::Option`] for an empty or larger than 30x30 grid, a size that does not
    /// match `cells`, or a colour above 9.
    pub fn new(height: usize, width: usize, cells: Vec<u8>) -> Result<Grid> {
        if height == 0 || width == 0 || height > ARC_MAX_GRID_SIZE || width > ARC_MAX_GRID_SIZE {
            return Err(DataError::option(
                "grid",
                format!("{height}x{width} is not within 1x1..30x30"),
            ));
        }
        if cells.len() != height * width {
            return Err(DataError::option(
                "grid",
                format!(
                    "{height}x{width} needs {} cells, got {}",
                    height * width,
                    cells.len()
                ),
            ));
        }
        if let Some(c) = cells.iter().find(|&&c| c > 9) {
            return Err(DataError::option(
                "grid",
                format!("colour {c} is not in 0-9"),
            ));
        }
        Ok(Grid {
            height,
            width,
            cells,
        })
    }

    pub(crate) fn from_parts(height: usize, width: usize, cells: Vec<u8>) -> Grid {
        debug_assert_eq!(cells.len(), height * width);
        Grid {
            height,
            width,
            cells,
        }
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.height
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Row-major colours.
    pub fn cells(&self) -> &[u8] {
        &self.cells
    }

    /// The colour at `(row, col)`.
    pub fn get(&self, row: usize, col: usize) -> u8 {
        self.cells[row * self.width + col]
    }

    /// The rows, as in the task JSON.
    pub fn to_rows(&self) -> Vec<Vec<u8>> {
        self.cells.chunks(self.width).map(<[u8]>::to_vec).collect()
    }

    /// Applies a dihedral transform.
    pub fn transform(&self, t: Dihedral) -> Grid {
        let (height, width) = t.output_shape(self.height, self.width);
        Grid {
            height,
            width,
            cells: t.apply(&self.cells, self.height, self.width),
        }
    }

    /// Replaces every colour `c` by `map[c]`.
    pub fn map_colours(&self, map: &[u8; 10]) -> Grid {
        Grid {
            height: self.height,
            width: self.width,
            cells: self.cells.iter().map(|&c| map[usize::from(c)]).collect(),
        }
    }

    /// The grid as digit rows, one line per row (e.g. `0 7 7`).
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for row in self.cells.chunks(self.width) {
            let line: Vec<String> = row.iter().map(|c| c.to_string()).collect();
            s.push_str(&line.join(" "));
            s.push('\n');
        }
        s
    }

    /// Appends `[height, width, cells...]`: a self-delimiting encoding for hashing puzzles,
    /// as the reference's `grid_hash` hashes shape bytes then cells.
    fn append_key(&self, out: &mut Vec<u8>) {
        out.push(self.height as u8);
        out.push(self.width as u8);
        out.extend_from_slice(&self.cells);
    }
}

impl std::fmt::Display for Grid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_text())
    }
}

/// The 900 model tokens of a grid placed with its top-left corner at `(row, col)` of the
/// 30x30 canvas: PAD around, `colour + 2` on the grid, EOS under it and right of it where the
/// canvas has room (the corner below-right stays PAD), as the reference's
/// `np_grid_to_seq_translational_augment`.
///
/// # Panics
/// If the grid does not fit at that offset.
pub fn grid_to_tokens_at(grid: &Grid, row: usize, col: usize) -> Vec<u8> {
    let n = ARC_MAX_GRID_SIZE;
    assert!(
        row + grid.height <= n && col + grid.width <= n,
        "grid does not fit at ({row}, {col})"
    );
    let mut out = vec![PAD_TOKEN; ARC_SEQ_LEN];
    for r in 0..grid.height {
        let base = (row + r) * n + col;
        for c in 0..grid.width {
            out[base + c] = grid.cells[r * grid.width + c] + 2;
        }
    }
    let (eos_row, eos_col) = (row + grid.height, col + grid.width);
    if eos_row < n {
        out[eos_row * n + col..eos_row * n + eos_col].fill(EOS_TOKEN);
    }
    if eos_col < n {
        for r in row..eos_row {
            out[r * n + eos_col] = EOS_TOKEN;
        }
    }
    out
}

/// The model tokens of a grid at the top-left corner (no translation), as `i32`.
///
/// ```
/// use hrm_data::arc::{grid_to_tokens, tokens_to_grid, Grid};
/// let g = Grid::new(1, 2, vec![0, 7]).unwrap();
/// let t = grid_to_tokens(&g);
/// assert_eq!(&t[..3], &[2, 9, 1]); // colours + 2, then EOS
/// assert_eq!(&t[30..32], &[1, 1]); // the EOS row
/// assert_eq!(tokens_to_grid(&t), Some(g));
/// ```
pub fn grid_to_tokens(grid: &Grid) -> Vec<i32> {
    grid_to_tokens_at(grid, 0, 0)
        .into_iter()
        .map(i32::from)
        .collect()
}

/// Reads a grid back from 900 tokens: the largest rectangle at the top-left corner with no
/// token outside the colours (the reference evaluator's `_crop`). `None` when that rectangle
/// is empty or the sequence is not 900 long.
pub fn tokens_to_grid(tokens: &[i32]) -> Option<Grid> {
    let n = ARC_MAX_GRID_SIZE;
    if tokens.len() != ARC_SEQ_LEN {
        return None;
    }
    let is_colour = |t: i32| (2..=11).contains(&t);
    let (mut best_area, mut best) = (0, (0, 0));
    let mut num_c = n;
    for num_r in 1..=n {
        if let Some(c) = (0..num_c).find(|&c| !is_colour(tokens[(num_r - 1) * n + c])) {
            num_c = c;
        }
        let area = num_r * num_c;
        if area > best_area {
            best_area = area;
            best = (num_r, num_c);
        }
    }
    if best_area == 0 {
        return None;
    }
    let (h, w) = best;
    let cells = (0..h)
        .flat_map(|r| (0..w).map(move |c| (tokens[r * n + c] - 2) as u8))
        .collect();
    Some(Grid {
        height: h,
        width: w,
        cells,
    })
}

/// One ARC augmentation: colours mapped, then a dihedral transform (the two commute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Augmentation {
    /// The dihedral transform.
    pub transform: Dihedral,
    /// `colour_map[c]` is the new colour of colour `c`; a permutation with `colour_map[0] == 0`.
    pub colour_map: [u8; 10],
}

impl Augmentation {
    /// The identity (the original puzzle).
    pub fn identity() -> Augmentation {
        Augmentation {
            transform: Dihedral::Identity,
            colour_map: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
        }
    }

    /// Whether this is the identity.
    pub fn is_identity(&self) -> bool {
        *self == Augmentation::identity()
    }

    /// A random augmentation: a uniform transform id and a uniform permutation of colours 1-9.
    pub fn random(rng: &mut DataRng) -> Augmentation {
        let transform = Dihedral::ALL[rng::below(rng, 8)];
        let mut colour_map = [0u8; 10];
        for (i, p) in rng::permutation(rng, 9).into_iter().enumerate() {
            colour_map[i + 1] = p as u8 + 1;
        }
        Augmentation {
            transform,
            colour_map,
        }
    }

    /// Augments a grid.
    pub fn apply(&self, grid: &Grid) -> Grid {
        grid.map_colours(&self.colour_map).transform(self.transform)
    }

    /// Undoes [`Augmentation::apply`].
    pub fn invert(&self, grid: &Grid) -> Grid {
        let mut inverse = [0u8; 10];
        for (c, &m) in self.colour_map.iter().enumerate() {
            inverse[usize::from(m)] = c as u8;
        }
        grid.transform(self.transform.inverse())
            .map_colours(&inverse)
    }

    /// The name of the puzzle this augmentation makes of task `task_id`:
    /// `<task_id>|||t<id>|||<colour map digits>`.
    pub fn identifier(&self, task_id: &str) -> String {
        let digits: String = self
            .colour_map
            .iter()
            .map(|d| char::from(b'0' + d))
            .collect();
        format!(
            "{task_id}{ID_SEPARATOR}t{}{ID_SEPARATOR}{digits}",
            self.transform.id()
        )
    }
}

/// Parses `t<id>` and a 10-digit colour permutation keeping 0.
fn parse_suffix(t: &str, digits: &str) -> Option<Augmentation> {
    let id: u8 = t.strip_prefix('t')?.parse().ok()?;
    let transform = Dihedral::from_id(id)?;
    if digits.len() != 10 {
        return None;
    }
    let mut colour_map = [0u8; 10];
    let mut seen = [false; 10];
    for (i, b) in digits.bytes().enumerate() {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        if std::mem::replace(&mut seen[usize::from(d)], true) {
            return None;
        }
        colour_map[i] = d;
    }
    (colour_map[0] == 0).then_some(Augmentation {
        transform,
        colour_map,
    })
}

/// Splits a puzzle name from `identifiers.json` into its task id and augmentation: a plain task
/// id is the identity; `<task>|||t<id>|||<map>` (this crate, TRM) and `<task>_t<id>_<map>`
/// (the HRM repository's builder) carry one. `None` for `<blank>`, an empty name or a malformed
/// suffix.
///
/// ```
/// use hrm_data::arc::{parse_identifier, Augmentation};
/// use hrm_data::Dihedral;
/// let (task, aug) = parse_identifier("007bbfb7|||t3|||0712869453").unwrap();
/// assert_eq!(task, "007bbfb7");
/// assert_eq!(aug.transform, Dihedral::Rot270);
/// assert_eq!(aug.colour_map, [0, 7, 1, 2, 8, 6, 9, 4, 5, 3]);
/// assert_eq!(parse_identifier("007bbfb7"), Some(("007bbfb7".to_string(), Augmentation::identity())));
/// assert_eq!(parse_identifier("<blank>"), None);
/// ```
pub fn parse_identifier(name: &str) -> Option<(String, Augmentation)> {
    if name.is_empty() || name == crate::format::BLANK_IDENTIFIER {
        return None;
    }
    if name.contains(ID_SEPARATOR) {
        let parts: Vec<&str> = name.split(ID_SEPARATOR).collect();
        return match parts.as_slice() {
            [task, t, digits] if !task.is_empty() => {
                parse_suffix(t, digits).map(|a| (task.to_string(), a))
            }
            _ => None,
        };
    }
    // The HRM repository's format: the last two `_`-separated parts, if they parse.
    let mut parts = name.rsplitn(3, '_');
    if let (Some(digits), Some(t), Some(task)) = (parts.next(), parts.next(), parts.next()) {
        if let Some(a) = parse_suffix(t, digits) {
            if !task.is_empty() {
                return Some((task.to_string(), a));
            }
        }
    }
    Some((name.to_string(), Augmentation::identity()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&[u8]]) -> Grid {
        Grid::new(rows.len(), rows[0].len(), rows.concat()).unwrap()
    }

    #[test]
    fn tokens_match_the_reference_layout() {
        let g = grid(&[&[1, 2, 3], &[4, 5, 6]]);
        let t = grid_to_tokens_at(&g, 1, 2);
        let n = 30;
        assert_eq!(&t[n + 2..n + 6], &[3, 4, 5, 1]);
        assert_eq!(&t[2 * n + 2..2 * n + 6], &[6, 7, 8, 1]);
        assert_eq!(
            &t[3 * n + 2..3 * n + 6],
            &[1, 1, 1, 0],
            "EOS row, corner stays PAD"
        );
        assert_eq!(t.iter().filter(|&&x| x == 1).count(), 5);
        // A full-width grid has no EOS column, a full-height one no EOS row.
        let wide = Grid::new(1, 30, vec![0; 30]).unwrap();
        let t = grid_to_tokens_at(&wide, 29, 0);
        assert_eq!(t.iter().filter(|&&x| x == EOS_TOKEN).count(), 0);
        assert!(t[29 * n..].iter().all(|&x| x == 2));
    }

    #[test]
    fn crop_round_trips_and_rejects_garbage() {
        let mut rng = rng::stream(0, 0, 0);
        for _ in 0..50 {
            let h = 1 + rng::below(&mut rng, 30);
            let w = 1 + rng::below(&mut rng, 30);
            let cells = (0..h * w).map(|_| rng::below(&mut rng, 10) as u8).collect();
            let g = Grid::new(h, w, cells).unwrap();
            assert_eq!(tokens_to_grid(&grid_to_tokens(&g)), Some(g));
        }
        assert_eq!(tokens_to_grid(&[0; 900]), None);
        assert_eq!(tokens_to_grid(&[1; 900]), None);
        assert_eq!(tokens_to_grid(&[2; 899]), None);
        // A ragged prediction crops to the largest clean rectangle.
        let mut t = vec![0; 900];
        t[..3].copy_from_slice(&[2, 3, 4]);
        t[30..32].copy_from_slice(&[5, 6]);
        assert_eq!(tokens_to_grid(&t), Some(grid(&[&[0, 1], &[3, 4]])));
    }

    #[test]
    fn augmentations_invert_and_keep_black() {
        let mut rng = rng::stream(1, 0, 0);
        let g = grid(&[&[0, 1, 2], &[3, 0, 9]]);
        for _ in 0..100 {
            let a = Augmentation::random(&mut rng);
            assert_eq!(a.colour_map[0], 0);
            let out = a.apply(&g);
            assert_eq!(a.invert(&out), g);
            // Black cells stay black, wherever the transform moves them.
            assert_eq!(out.cells().iter().filter(|&&c| c == 0).count(), 2);
            let name = a.identifier("abc");
            assert_eq!(parse_identifier(&name), Some(("abc".to_string(), a)));
        }
    }

    #[test]
    fn identifiers_parse_both_formats() {
        let a = parse_identifier("ExtractObjects10_t1_0123456798").unwrap();
        assert_eq!(a.0, "ExtractObjects10");
        assert_eq!(a.1.transform, Dihedral::Rot90);
        assert_eq!(
            parse_identifier("some_task").unwrap(),
            ("some_task".to_string(), Augmentation::identity())
        );
        assert_eq!(parse_identifier("x|||t8|||0123456789"), None);
        assert_eq!(
            parse_identifier("x|||t1|||1023456789"),
            None,
            "0 must stay 0"
        );
        assert_eq!(
            parse_identifier("x|||t1|||0023456789"),
            None,
            "not a permutation"
        );
        assert_eq!(parse_identifier("|||t1|||0123456789"), None);
        assert_eq!(parse_identifier(""), None);
    }
}
