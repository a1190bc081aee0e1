//! Reasoning traces: one puzzle's prediction after every ACT step, side by side, the cells
//! that changed since the previous step highlighted (step 1 against the input), with the Q-halt
//! and Q-continue probabilities under each step; and the same data as JSON.
//!
//! The HRM paper (figure 7, "visualization of intermediate timesteps") shows such strips for
//! Sudoku, maze and ARC; the reference repository has no code for them. Predictions are the
//! argmax of each step's logits, in the orientation and colours the model saw (for ARC, the
//! augmented view).

use std::path::Path;

use serde::Serialize;

use hrm_data::arc::tokens_to_grid;
use hrm_data::render::{render_arc_grid, render_sudoku, render_tokens};
use hrm_data::{format_grid, Canvas, Rgb, TaskKind};

use super::sudoku::decode_lenient;
use hrm_core::CoreDims;
use hrm_train::rollout::{is_exact, learned_rule_halts, sigmoid, HaltMode, RowResult};
use hrm_train::{Result, TrainError};

/// One ACT step of a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStep {
    /// 1-based step.
    pub step: usize,
    /// The predicted tokens after this step.
    pub tokens: Vec<i32>,
    /// The prediction as text (hrm-data's [`format_grid`]).
    pub grid: String,
    /// 0-based positions whose token differs from the previous step's (step 1: from the input).
    pub changed: Vec<usize>,
    /// `sigmoid(q_halt)`; `None` for models without a Q head.
    pub q_halt: Option<f64>,
    /// `sigmoid(q_continue)`; `None` for models without a Q head.
    pub q_continue: Option<f64>,
    /// Whether the learned rule halts at this step (the first such step is the learned halting
    /// step; when the rule never fires, the step cap is).
    pub learned_halt: bool,
}

/// A whole trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace {
    /// The task (`sudoku 9x9`, `maze 30x30`, `arc`, ...).
    pub task: String,
    /// What the tokens encode.
    #[serde(skip)]
    pub kind: TaskKind,
    /// The halting mode of the rollout.
    pub halt: HaltMode,
    /// The step whose prediction is the answer.
    pub halt_step: usize,
    /// The step at which the learned rule halts.
    pub learned_halt_step: usize,
    /// The model's cap on steps.
    pub halt_max_steps: usize,
    /// The input tokens.
    pub input: Vec<i32>,
    /// The input as text.
    pub input_grid: String,
    /// The expected tokens, when known (dataset labels as stored).
    pub label: Option<Vec<i32>>,
    /// Whether the answer equals the label, when known.
    pub correct: Option<bool>,
    /// Steps `1..=halt_step`.
    pub steps: Vec<TraceStep>,
}

impl Trace {
    /// Builds the trace of a row that was traced (its `step_predictions` kept).
    ///
    /// # Errors
    /// [`TrainError::Shape`] when the row has no step predictions or their length differs
    /// from the input's.
    pub fn new(
        kind: TaskKind,
        input: &[i32],
        label: Option<&[i32]>,
        row: &RowResult,
        halt: HaltMode,
        dims: &CoreDims,
    ) -> Result<Trace> {
        let preds = row.step_predictions.as_ref().ok_or_else(|| {
            TrainError::Shape("the row was not traced (no step predictions kept)".into())
        })?;
        if preds.iter().any(|p| p.len() != input.len()) {
            return Err(TrainError::Shape(format!(
                "step predictions do not have the input's {} tokens",
                input.len()
            )));
        }
        let mut steps = Vec::new();
        let mut previous = input;
        for (k, tokens) in preds.iter().take(row.halt_step).enumerate() {
            let changed = tokens
                .iter()
                .zip(previous)
                .enumerate()
                .filter(|(_, (a, b))| a != b)
                .map(|(i, _)| i)
                .collect();
            let (qh, qc) = (
                row.q_halt_logits.get(k).copied(),
                row.q_continue_logits.get(k).copied(),
            );
            // The learned halting step halts by definition: there the rule fired first, or
            // the step cap (`halt_max_steps` or a test-time `--max-steps`) was reached.
            let learned_halt = match (qh, qc) {
                (Some(h), Some(c)) => {
                    k + 1 == row.learned_halt_step || learned_rule_halts(dims.halt_rule, h, c)
                }
                _ => true,
            };
            steps.push(TraceStep {
                step: k + 1,
                tokens: tokens.clone(),
                grid: format_grid(kind, tokens),
                changed,
                q_halt: qh.map(sigmoid),
                q_continue: qc.map(sigmoid),
                learned_halt,
            });
            previous = tokens;
        }
        Ok(Trace {
            task: kind.name(),
            kind,
            halt,
            halt_step: row.halt_step,
            learned_halt_step: row.learned_halt_step,
            halt_max_steps: dims.halt_max_steps.max(1) as usize,
            input: input.to_vec(),
            input_grid: format_grid(kind, input),
            label: label.map(<[i32]>::to_vec),
            correct: label.map(|l| is_exact(&row.prediction, l, None)),
            steps,
        })
    }

    /// Writes the trace as pretty JSON.
    ///
    /// # Errors
    /// [`TrainError::Io`] naming the file.
    pub fn save_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|source| TrainError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        hrm_train::run_dir::write_atomic(path, text.as_bytes())
    }

    /// Draws the strip: a header line, the input, then one panel per step (at most 8 per row)
    /// with the changed cells highlighted and the Q probabilities under it.
    pub fn render(&self) -> Canvas {
        let mut panels: Vec<Panel> = vec![Panel {
            title: "input".into(),
            title_colour: Rgb::BLACK,
            picture: picture(self.kind, &self.input, &self.input, &[]),
            lines: Vec::new(),
        }];
        for s in &self.steps {
            let answer = s.step == self.halt_step;
            let mut title = format!("step {}", s.step);
            if answer {
                title.push_str(" *");
            }
            let mut lines = Vec::new();
            if let (Some(h), Some(c)) = (s.q_halt, s.q_continue) {
                lines.push(format!("halt {h:.3}"));
                lines.push(format!("cont {c:.3}"));
            }
            lines.push(format!("{} changed", s.changed.len()));
            panels.push(Panel {
                title,
                title_colour: if answer { Rgb::GREEN } else { Rgb::BLACK },
                picture: picture(self.kind, &self.input, &s.tokens, &s.changed),
                lines,
            });
        }
        let header = format!(
            "{} trace, halting {}: answer at step {} of at most {} (learned rule halts at {}){}",
            self.task,
            self.halt,
            self.halt_step,
            self.halt_max_steps,
            self.learned_halt_step,
            match self.correct {
                Some(true) => ", correct",
                Some(false) => ", wrong",
                None => "",
            }
        );
        let legend = "highlighted: cells changed since the previous step (step 1: since the input); * marks the answer";
        layout(&panels, &[header, legend.to_string()])
    }

    /// Renders and writes the PNG.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save_png(&self, path: &Path) -> Result<()> {
        Ok(self.render().save_png(path)?)
    }
}

/// A titled picture with text lines under it.
struct Panel {
    title: String,
    title_colour: Rgb,
    picture: Canvas,
    lines: Vec<String>,
}

const MARGIN: usize = 12;
/// Outline of changed cells in grid pictures: cyan, in neither the maze nor the ARC palette.
const CHANGED: Rgb = Rgb(0, 230, 230);
const SCALE: usize = 2;
const PER_ROW: usize = 8;

/// Lays panels out in rows under header lines.
fn layout(panels: &[Panel], header: &[String]) -> Canvas {
    let line_h = Canvas::text_height("A", SCALE) + 4;
    let col_w = panels
        .iter()
        .map(|p| {
            p.lines
                .iter()
                .chain(std::iter::once(&p.title))
                .map(|l| Canvas::text_width(l, SCALE))
                .max()
                .unwrap_or(0)
                .max(p.picture.width())
        })
        .max()
        .unwrap_or(1);
    let row_h = line_h
        + panels.iter().map(|p| p.picture.height()).max().unwrap_or(0)
        + 4
        + line_h * panels.iter().map(|p| p.lines.len()).max().unwrap_or(0);
    let cols = panels.len().clamp(1, PER_ROW);
    let rows = panels.len().div_ceil(cols);
    let header_w = header
        .iter()
        .map(|h| Canvas::text_width(h, 1))
        .max()
        .unwrap_or(0);
    let header_h = header.len() * (Canvas::text_height("A", 1) + 4);
    let width = (cols * (col_w + MARGIN) + MARGIN).max(header_w + 2 * MARGIN);
    let height = MARGIN + header_h + MARGIN + rows * (row_h + MARGIN);
    let mut c = Canvas::new(width, height, Rgb::WHITE);
    for (i, h) in header.iter().enumerate() {
        let y = MARGIN + i * (Canvas::text_height("A", 1) + 4);
        c.draw_text(MARGIN as i64, y as i64, h, 1, Rgb::BLACK);
    }
    let top = MARGIN + header_h + MARGIN;
    for (i, p) in panels.iter().enumerate() {
        let x = (MARGIN + (i % cols) * (col_w + MARGIN)) as i64;
        let y = (top + (i / cols) * (row_h + MARGIN)) as i64;
        c.draw_text(x, y, &p.title, SCALE, p.title_colour);
        c.blit(&p.picture, x, y + line_h as i64);
        let mut ly = y + (line_h + p.picture.height() + 4) as i64;
        for l in &p.lines {
            c.draw_text(x, ly, l, SCALE, Rgb::DARK_GREY);
            ly += line_h as i64;
        }
    }
    c
}

/// One prediction as a picture with `changed` cells highlighted: a Sudoku board (givens black,
/// filled digits blue, changed cells on light red), or the grid with changed cells outlined
/// in cyan (a colour of neither the maze nor the ARC palette).
fn picture(kind: TaskKind, input: &[i32], tokens: &[i32], changed: &[usize]) -> Canvas {
    match kind {
        TaskKind::Sudoku { size } if tokens.len() == size * size => {
            let boards = decode_lenient(input, size)
                .and_then(|(p, _)| decode_lenient(tokens, size).map(|(f, _)| (p, f)));
            if let Ok((puzzle, filled)) = boards {
                let mut mask = vec![false; size * size];
                for &i in changed {
                    if let Some(m) = mask.get_mut(i) {
                        *m = true;
                    }
                }
                return render_sudoku(&puzzle, Some(&filled), Some(&mask), 28);
            }
            render_tokens(kind, tokens)
        }
        TaskKind::Arc => match tokens_to_grid(tokens) {
            Some(g) => {
                let mut c = render_arc_grid(&g, 16);
                let cells = changed.iter().filter_map(|&i| {
                    let (r, col) = (i / 30, i % 30);
                    (r < g.height() && col < g.width()).then_some((r, col))
                });
                outline(&mut c, cells, 17);
                c
            }
            None => {
                let mut c = render_tokens(kind, tokens);
                outline(&mut c, changed.iter().map(|&i| (i / 30, i % 30)), 11);
                c
            }
        },
        TaskKind::Maze { side } if tokens.len() == side * side => {
            let mut c = render_tokens(kind, tokens);
            outline(&mut c, changed.iter().map(|&i| (i / side, i % side)), 13);
            c
        }
        _ => {
            let side = ((tokens.len() as f64).sqrt().ceil() as usize).max(1);
            let mut c = render_tokens(kind, tokens);
            outline(&mut c, changed.iter().map(|&i| (i / side, i % side)), 13);
            c
        }
    }
}

/// Outlines cells `(row, col)` of a grid picture whose cells are `step` pixels apart.
fn outline(c: &mut Canvas, cells: impl Iterator<Item = (usize, usize)>, step: usize) {
    for (r, col) in cells {
        c.stroke_rect(
            (col * step) as i64,
            (r * step) as i64,
            (step + 1) as i64,
            (step + 1) as i64,
            2,
            CHANGED,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrm_core::HaltRule;

    fn dims() -> CoreDims {
        CoreDims {
            seq_len: 16,
            vocab_size: 11,
            hidden_size: 8,
            puzzle_emb_len: 0,
            puzzle_emb_ndim: 0,
            num_puzzle_identifiers: 1,
            halt_max_steps: 3,
            halt_exploration_prob: 0.0,
            halt_rule: HaltRule::QHaltAboveContinue,
            forward_kind: tch::Kind::Float,
        }
    }

    #[test]
    fn changes_are_counted_against_the_previous_step() {
        let input = vec![2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1];
        let mut s1 = input.clone();
        s1[1] = 3;
        s1[2] = 4;
        let mut s2 = s1.clone();
        s2[2] = 5;
        let row = RowResult {
            prediction: s2.clone(),
            learned_prediction: s2.clone(),
            halt_step: 2,
            learned_halt_step: 2,
            q_halt_logits: vec![-1.0, 2.0, 0.0],
            q_continue_logits: vec![1.0, -2.0, 0.0],
            step_predictions: Some(vec![s1, s2.clone(), s2]),
        };
        let t = Trace::new(
            TaskKind::Sudoku { size: 4 },
            &input,
            None,
            &row,
            HaltMode::Learned,
            &dims(),
        )
        .expect("trace");
        assert_eq!(t.steps.len(), 2, "cut at the halting step");
        assert_eq!(t.steps[0].changed, vec![1, 2]);
        assert_eq!(t.steps[1].changed, vec![2]);
        assert!(!t.steps[0].learned_halt && t.steps[1].learned_halt);
        assert!((t.steps[1].q_halt.expect("q") - sigmoid(2.0)).abs() < 1e-12);
        let c = t.render();
        // The input plus two steps of 4 * 28 + 3 pixels wide each, plus margins.
        assert!(c.width() >= 3 * 115, "{}", c.width());
        let json = serde_json::to_value(&t).expect("json");
        assert_eq!(json["steps"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["task"], "sudoku 4x4");
    }
}
