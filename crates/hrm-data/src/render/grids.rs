//! Grid pictures: Sudoku boards with digits, mazes and ARC grids as coloured cells in the ARC
//! palette, and an example's input, label and prediction side by side.
//!
//! The palette is the one the ARC tools and the reference's `arc_eval.ipynb` use.

use super::{Canvas, Rgb, TaskKind};
use crate::arc::{tokens_to_grid, Grid, ARC_MAX_GRID_SIZE};
use crate::maze::Maze;
use crate::sudoku::Board;

/// The ARC colours 0-9: black, blue, red, green, yellow, grey, magenta, orange, sky, maroon.
pub const ARC_PALETTE: [Rgb; 10] = [
    Rgb::hex(0x000000),
    Rgb::hex(0x0074D9),
    Rgb::hex(0xFF4136),
    Rgb::hex(0x2ECC40),
    Rgb::hex(0xFFDC00),
    Rgb::hex(0xAAAAAA),
    Rgb::hex(0xF012BE),
    Rgb::hex(0xFF851B),
    Rgb::hex(0x7FDBFF),
    Rgb::hex(0x870C25),
];

/// Colour of a cell that holds no valid token.
const INVALID: Rgb = Rgb::hex(0xFF00FF);
/// Colour of ARC PAD and EOS cells in a raw canvas.
const ARC_PAD: Rgb = Rgb::hex(0x303030);
const ARC_EOS: Rgb = Rgb::hex(0xFFFFFF);
/// Light red background of highlighted Sudoku cells.
const HIGHLIGHT: Rgb = Rgb::hex(0xFFC8C8);

/// Draws `height x width` cells of `cell` pixels with 1-pixel grid lines in `line` colour.
fn cells(
    height: usize,
    width: usize,
    cell: usize,
    line: Rgb,
    colour: impl Fn(usize, usize) -> Rgb,
) -> Canvas {
    let step = cell + 1;
    let mut c = Canvas::new(width * step + 1, height * step + 1, line);
    for r in 0..height {
        for col in 0..width {
            c.fill_rect(
                (col * step + 1) as i64,
                (r * step + 1) as i64,
                cell as i64,
                cell as i64,
                colour(r, col),
            );
        }
    }
    c
}

/// An ARC grid as coloured cells of `cell` pixels.
pub fn render_arc_grid(grid: &Grid, cell: usize) -> Canvas {
    cells(grid.height(), grid.width(), cell, Rgb::GREY, |r, c| {
        ARC_PALETTE[usize::from(grid.get(r, c))]
    })
}

/// Colour of a maze character: wall grey, open black, S green, G red, path yellow (ARC colours).
fn maze_colour(c: u8) -> Rgb {
    match c {
        b'#' => ARC_PALETTE[5],
        b' ' => ARC_PALETTE[0],
        b'S' => ARC_PALETTE[3],
        b'G' => ARC_PALETTE[2],
        b'o' => ARC_PALETTE[4],
        _ => INVALID,
    }
}

/// A maze as coloured cells of `cell` pixels (wall grey, open black, S green, G red, path
/// yellow).
pub fn render_maze(maze: &Maze, cell: usize) -> Canvas {
    cells(maze.height(), maze.width(), cell, Rgb::DARK_GREY, |r, c| {
        maze_colour(maze.get(r, c))
    })
}

/// A Sudoku board: the puzzle's givens in black; with `filled`, that board's other digits in
/// blue (a solution or a prediction); `highlight` marks cells (row-major) with a red background,
/// e.g. wrong predictions. `cell` is the cell size in pixels (at least 12). Box borders are
/// thick black lines: every `box_cols` columns and every `box_rows` rows (on a 6x6 board after
/// columns 3 and rows 2 and 4).
pub fn render_sudoku(
    puzzle: &Board,
    filled: Option<&Board>,
    highlight: Option<&[bool]>,
    cell: usize,
) -> Canvas {
    let n = puzzle.size();
    let (box_rows, box_cols) = puzzle.box_dims();
    let cell = cell.max(12);
    let size = n * cell + 3;
    let mut c = Canvas::new(size, size, Rgb::WHITE);
    let origin = 1i64;
    for r in 0..n {
        for col in 0..n {
            let (x, y) = (origin + (col * cell) as i64, origin + (r * cell) as i64);
            if highlight.is_some_and(|h| h.get(r * n + col).copied().unwrap_or(false)) {
                c.fill_rect(x, y, cell as i64, cell as i64, HIGHLIGHT);
            }
            let given = puzzle.get(r, col);
            let (digit, colour) = match (given, filled) {
                (0, Some(f)) => (f.get(r, col), Rgb::BLUE),
                (g, _) => (g, Rgb::BLACK),
            };
            if digit != 0 {
                let scale = ((cell - 4) / 8).max(1);
                let text = char::from(b'0' + digit).to_string();
                let tx = x + (cell as i64 - Canvas::text_width(&text, scale) as i64) / 2;
                let ty = y + (cell as i64 - Canvas::text_height(&text, scale) as i64) / 2;
                c.draw_text(tx, ty, &text, scale, colour);
            }
        }
    }
    // Thin lines first, so the thick box borders are drawn over them where they cross.
    for thick in [false, true] {
        for k in 0..=n {
            let p = origin + (k * cell) as i64;
            let (w, off, colour) = if thick {
                (3, -1, Rgb::BLACK)
            } else {
                (1, 0, Rgb::GREY)
            };
            // Vertical lines separate columns (stacks of box_cols), horizontal ones rows
            // (bands of box_rows).
            if (k % box_cols == 0) == thick {
                c.fill_rect(p + off, 0, w, size as i64, colour);
            }
            if (k % box_rows == 0) == thick {
                c.fill_rect(0, p + off, size as i64, w, colour);
            }
        }
    }
    c
}

/// Sudoku tokens to a board, blanks for anything but a digit token.
fn lenient_board(tokens: &[i32], size: usize) -> Board {
    let cells = tokens
        .iter()
        .map(|&t| {
            if t >= 2 && t <= size as i32 + 1 {
                (t - 1) as u8
            } else {
                0
            }
        })
        .collect();
    Board::from_cells_unchecked(size, cells)
}

/// One token sequence as a picture for `kind`: a Sudoku board, a maze, the cropped ARC grid
/// (or the whole canvas, PAD dark and EOS white, when it does not crop to a grid), or numbered
/// cells for unknown tasks. Invalid tokens show in magenta.
pub fn render_tokens(kind: TaskKind, tokens: &[i32]) -> Canvas {
    match kind {
        TaskKind::Sudoku { size } if tokens.len() == size * size => {
            render_sudoku(&lenient_board(tokens, size), None, None, 28)
        }
        TaskKind::Maze { side } if tokens.len() == side * side => {
            let set = crate::maze::CHARSET.as_bytes();
            cells(side, side, 12, Rgb::DARK_GREY, |r, c| {
                match tokens[r * side + c] {
                    t @ 1..=5 => maze_colour(set[t as usize - 1]),
                    _ => INVALID,
                }
            })
        }
        TaskKind::Arc if tokens.len() == ARC_MAX_GRID_SIZE * ARC_MAX_GRID_SIZE => {
            match tokens_to_grid(tokens) {
                Some(g) => render_arc_grid(&g, 16),
                None => cells(30, 30, 10, Rgb::GREY, |r, c| match tokens[r * 30 + c] {
                    0 => ARC_PAD,
                    1 => ARC_EOS,
                    t @ 2..=11 => ARC_PALETTE[t as usize - 2],
                    _ => INVALID,
                }),
            }
        }
        _ => {
            let side = ((tokens.len() as f64).sqrt().ceil() as usize).max(1);
            cells(
                tokens.len().div_ceil(side).max(1),
                side,
                12,
                Rgb::GREY,
                |r, c| {
                    tokens
                        .get(r * side + c)
                        .map(|&t| {
                            if t >= 0 {
                                ARC_PALETTE[t as usize % 10]
                            } else {
                                INVALID
                            }
                        })
                        .unwrap_or(Rgb::WHITE)
                },
            )
        }
    }
}

/// Input, label and (if given) prediction side by side with titles. For Sudoku the label shows
/// the solution's digits in blue over the givens, and the prediction its wrong cells in red;
/// for mazes wrong prediction cells are outlined in red; for ARC the prediction's title says
/// whether it equals the label.
pub fn render_example(
    kind: TaskKind,
    input: &[i32],
    label: &[i32],
    prediction: Option<&[i32]>,
) -> Canvas {
    let mut panels: Vec<(String, Canvas)> = Vec::new();
    match kind {
        TaskKind::Sudoku { size } if input.len() == size * size && label.len() == size * size => {
            let puzzle = lenient_board(input, size);
            let solution = lenient_board(label, size);
            panels.push(("input".into(), render_sudoku(&puzzle, None, None, 28)));
            panels.push((
                "label".into(),
                render_sudoku(&puzzle, Some(&solution), None, 28),
            ));
            if let Some(p) = prediction.filter(|p| p.len() == size * size) {
                let pred = lenient_board(p, size);
                let wrong: Vec<bool> = (0..size * size)
                    .map(|i| pred.cells()[i] != solution.cells()[i])
                    .collect();
                let n_wrong = wrong.iter().filter(|&&w| w).count();
                panels.push((
                    format!("prediction ({n_wrong} wrong)"),
                    render_sudoku(&puzzle, Some(&pred), Some(&wrong), 28),
                ));
            }
        }
        _ => {
            panels.push(("input".into(), render_tokens(kind, input)));
            panels.push(("label".into(), render_tokens(kind, label)));
            if let Some(p) = prediction {
                let mut canvas = render_tokens(kind, p);
                let title = match kind {
                    TaskKind::Maze { side }
                        if p.len() == side * side && label.len() == side * side =>
                    {
                        let step = 13;
                        let mut wrong = 0;
                        for i in (0..p.len()).filter(|&i| p[i] != label[i]) {
                            wrong += 1;
                            let (r, c) = (i / side, i % side);
                            canvas.stroke_rect(
                                (c * step) as i64,
                                (r * step) as i64,
                                (step + 1) as i64,
                                (step + 1) as i64,
                                2,
                                Rgb::RED,
                            );
                        }
                        format!("prediction ({wrong} wrong)")
                    }
                    TaskKind::Arc => {
                        let same = tokens_to_grid(p).is_some()
                            && tokens_to_grid(p) == tokens_to_grid(label);
                        format!("prediction ({})", if same { "exact" } else { "wrong" })
                    }
                    _ => {
                        let wrong = p.iter().zip(label).filter(|(a, b)| a != b).count();
                        format!("prediction ({wrong} wrong)")
                    }
                };
                panels.push((title, canvas));
            }
        }
    }
    let (margin, title_scale) = (16usize, 2usize);
    let title_h = Canvas::text_height("A", title_scale) + 8;
    let width = panels
        .iter()
        .map(|(t, c)| c.width().max(Canvas::text_width(t, title_scale)))
        .sum::<usize>()
        + margin * (panels.len() + 1);
    let height = panels.iter().map(|(_, c)| c.height()).max().unwrap_or(0) + title_h + 2 * margin;
    let mut out = Canvas::new(width, height, Rgb::WHITE);
    let mut x = margin;
    for (title, c) in &panels {
        out.draw_text(x as i64, margin as i64, title, title_scale, Rgb::BLACK);
        out.blit(c, x as i64, (margin + title_h) as i64);
        x += c.width().max(Canvas::text_width(title, title_scale)) + margin;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sudoku::{encode_board, parse_puzzle};

    #[test]
    fn arc_cells_use_the_palette() {
        let g = Grid::new(1, 2, vec![2, 9]).unwrap();
        let c = render_arc_grid(&g, 4);
        assert_eq!((c.width(), c.height()), (11, 6));
        assert_eq!(c.pixel(1, 1), Some(ARC_PALETTE[2]));
        assert_eq!(c.pixel(6, 1), Some(ARC_PALETTE[9]));
        assert_eq!(c.pixel(0, 0), Some(Rgb::GREY));
    }

    #[test]
    fn sudoku_prediction_marks_wrong_cells() {
        let p = parse_puzzle("1.3...1..1.....1").unwrap();
        let s = parse_puzzle("1432321441232341").unwrap();
        let mut pred = encode_board(&s);
        pred[1] = 2; // digit 1 where 4 belongs
        let canvas = render_example(
            TaskKind::Sudoku { size: 4 },
            &encode_board(&p),
            &encode_board(&s),
            Some(&pred),
        );
        // Three panels of 4 * 28 + 3 pixels plus margins.
        assert!(canvas.width() > 3 * 115);
        let pixels = canvas.pixels();
        let count = |c: Rgb| pixels.chunks(3).filter(|p| p == &[c.0, c.1, c.2]).count();
        assert!(count(HIGHLIGHT) > 0, "the wrong cell is highlighted");
        assert!(count(Rgb::BLUE) > 0, "filled digits are blue");
    }

    #[test]
    fn six_by_six_box_borders() {
        // Cells of 28 pixels from x = y = 1: thick black borders every 3 columns and every 2
        // rows, thin grey lines elsewhere.
        let c = render_sudoku(&Board::empty(6), None, None, 28);
        assert_eq!((c.width(), c.height()), (6 * 28 + 3, 6 * 28 + 3));
        let line = |k: usize| 1 + k * 28;
        let mid = 1 + 14; // the middle of the first row or column of cells
        for k in 0..=6 {
            let vertical = if k % 3 == 0 { Rgb::BLACK } else { Rgb::GREY };
            let horizontal = if k % 2 == 0 { Rgb::BLACK } else { Rgb::GREY };
            assert_eq!(
                c.pixel(line(k).min(c.width() - 2), mid),
                Some(vertical),
                "x {k}"
            );
            assert_eq!(
                c.pixel(mid, line(k).min(c.height() - 2)),
                Some(horizontal),
                "y {k}"
            );
        }
        // The same picture through the tokens of a 6x6 task.
        let t = render_tokens(TaskKind::Sudoku { size: 6 }, &[1; 36]);
        assert_eq!(t.pixels(), c.pixels());
    }

    #[test]
    fn mazes_and_raw_canvases_render() {
        let m = crate::maze::parse_maze("#S#\n# G\n", std::path::Path::new("m")).unwrap();
        let c = render_maze(&m, 5);
        assert_eq!(c.pixel(7, 1), Some(ARC_PALETTE[3]));
        let raw = render_tokens(TaskKind::Arc, &[0; 900]);
        assert_eq!(raw.pixel(1, 1), Some(ARC_PAD));
        let other = render_tokens(TaskKind::Other { seq_len: 3 }, &[1, -5, 2]);
        assert!(other.pixels().chunks(3).any(|p| p == [255, 0, 255]));
    }
}
