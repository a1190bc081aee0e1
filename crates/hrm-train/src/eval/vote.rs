//! Voting for every task: run several views of each puzzle (augmentations, and several
//! models), undo each view on its prediction, and rank the distinct answers by votes, ties
//! broken by the mean Q-halt confidence `sigmoid(q_halt)`: the ARC machinery of the
//! reference's `arc_eval.ipynb` ([`super::arc`]) applied to Sudoku and mazes, and across runs.
//!
//! A view of a Sudoku or maze is a [`TokenView`]: a permutation of positions and a relabelling
//! of tokens, which is what hrm-data's augmentations do to a token sequence. Sudoku views are
//! [`SudokuAugmentation`]s (digit permutation, band and row shuffles, stack and column shuffles,
//! the transpose on square boxes), maze views the dihedral transforms ([`Dihedral`]); both keep
//! the answer of the view equal to the view of the answer, so undoing the view on a prediction
//! gives a prediction for the original puzzle. The first view of every puzzle is the puzzle
//! itself.
//!
//! Ensembles of augmentations and checkpoints lift HRM's Sudoku-Extreme accuracy well above a
//! single pass (Ren & Liu); the reference ships no such tool. Ranking is [`rank_answers`], which
//! [`super::arc::rank_candidates`] also uses.

use std::collections::BTreeMap;

use serde::Serialize;
use tch::Device;

use hrm_data::dihedral::Dihedral;
use hrm_data::rng::{self, DataRng};
use hrm_data::sudoku::SudokuAugmentation;
use hrm_data::TaskKind;

use crate::arch::ArchModel;
use crate::error::{Result, TrainError};
use crate::rollout::{sigmoid, solve_rows, RolloutOptions, SolveRun};

/// The random stream domain of voting views (apart from hrm-data's builder domains).
const VOTE_DOMAIN: u64 = 0x766f_7465;

/// One distinct answer and its support.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked<T> {
    /// The answer, in the original puzzle's frame.
    pub answer: T,
    /// Views that gave it.
    pub votes: usize,
    /// Mean `sigmoid(q_halt)` of those views.
    pub mean_confidence: f64,
}

/// Ranks answers `(answer, confidence)`: most votes first, ties by mean confidence, then by
/// first appearance (the reference's sort on `[count, mean_q]`, made deterministic).
pub fn rank_answers<T: Ord + Clone>(
    predictions: impl IntoIterator<Item = (T, f64)>,
) -> Vec<Ranked<T>> {
    let mut stats: BTreeMap<T, (usize, f64, usize)> = BTreeMap::new();
    let mut seen = 0;
    for (answer, q) in predictions {
        let e = stats.entry(answer).or_insert_with(|| {
            seen += 1;
            (0, 0.0, seen - 1)
        });
        e.0 += 1;
        e.1 += q;
    }
    let mut ranked: Vec<(Ranked<T>, usize)> = stats
        .into_iter()
        .map(|(answer, (votes, sum_q, first))| {
            (
                Ranked {
                    answer,
                    votes,
                    mean_confidence: sum_q / votes as f64,
                },
                first,
            )
        })
        .collect();
    ranked.sort_by(|(a, fa), (b, fb)| {
        b.votes
            .cmp(&a.votes)
            .then(b.mean_confidence.total_cmp(&a.mean_confidence))
            .then(fa.cmp(fb))
    });
    ranked.into_iter().map(|(r, _)| r).collect()
}

/// Whether one of the first `k` ranked answers is right.
pub fn pass_at<T>(ranked: &[Ranked<T>], k: usize, right: impl Fn(&T) -> bool) -> bool {
    ranked.iter().take(k).any(|r| right(&r.answer))
}

/// A view of a token sequence: `view[k] = token_map[original[source[k]]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// For each position of the view, the original position it shows.
    pub source: Vec<usize>,
    /// For each token id, the id it becomes (a permutation of `0..V`).
    pub token_map: Vec<i32>,
}

impl TokenView {
    /// The view that changes nothing.
    pub fn identity(seq_len: usize, vocab_size: usize) -> TokenView {
        TokenView {
            source: (0..seq_len).collect(),
            token_map: (0..vocab_size as i32).collect(),
        }
    }

    /// A Sudoku augmentation as a view of the token encoding (`1` blank, `d + 1` digit `d`;
    /// other tokens are kept).
    pub fn sudoku(aug: &SudokuAugmentation, vocab_size: usize) -> TokenView {
        let n = aug.row_perm.len();
        let mut source = Vec::with_capacity(n * n);
        for i in 0..n {
            for j in 0..n {
                let (r, c) = (aug.row_perm[i], aug.col_perm[j]);
                // As `SudokuAugmentation::apply`: cell (i, j) shows the (transposed) board's
                // cell (row_perm[i], col_perm[j]).
                source.push(if aug.transpose { c * n + r } else { r * n + c });
            }
        }
        let mut token_map: Vec<i32> = (0..vocab_size as i32).collect();
        for d in 1..=n {
            if d + 1 < vocab_size {
                token_map[d + 1] = i32::from(aug.digit_map[d]) + 1;
            }
        }
        TokenView { source, token_map }
    }

    /// A dihedral transform of a `side x side` grid as a view (tokens kept).
    pub fn dihedral(t: Dihedral, side: usize, vocab_size: usize) -> TokenView {
        let positions: Vec<usize> = (0..side * side).collect();
        TokenView {
            source: t.apply(&positions, side, side),
            token_map: (0..vocab_size as i32).collect(),
        }
    }

    /// The view of `tokens` (`[S]`).
    pub fn apply(&self, tokens: &[i32]) -> Vec<i32> {
        self.source
            .iter()
            .map(|&k| self.map(tokens[k], &self.token_map))
            .collect()
    }

    /// Undoes the view on `tokens` (`[S]`, e.g. a prediction for the view).
    pub fn invert(&self, tokens: &[i32]) -> Vec<i32> {
        let mut inverse = vec![0i32; self.token_map.len()];
        for (t, &m) in self.token_map.iter().enumerate() {
            if let Some(slot) = usize::try_from(m).ok().and_then(|m| inverse.get_mut(m)) {
                *slot = t as i32;
            }
        }
        let mut out = vec![0; tokens.len()];
        for (k, &src) in self.source.iter().enumerate() {
            out[src] = self.map(tokens[k], &inverse);
        }
        out
    }

    /// Tokens outside the map (which a prediction should not have) are kept as they are.
    fn map(&self, t: i32, map: &[i32]) -> i32 {
        usize::try_from(t)
            .ok()
            .and_then(|t| map.get(t))
            .copied()
            .unwrap_or(t)
    }
}

/// `views` views of a puzzle of kind `kind`: the puzzle itself, then `views - 1` random ones
/// drawn from stream `(seed, puzzle)` (Sudoku: hrm-data's augmentation; maze: distinct
/// dihedral transforms other than the identity).
///
/// # Errors
/// [`TrainError::Config`] (key `vote`) for zero views, more than 8 views of a maze, or a kind
/// without augmentations here (ARC votes over its dataset's views, [`super::arc`]).
pub fn draw_views(
    kind: TaskKind,
    vocab_size: usize,
    views: usize,
    seed: u64,
    puzzle: u64,
) -> Result<Vec<TokenView>> {
    let bad = |reason: String| {
        Err(TrainError::Config {
            key: "vote".into(),
            reason,
        })
    };
    if views == 0 {
        return bad("at least one view is needed".into());
    }
    let mut rng: DataRng = rng::stream(seed, VOTE_DOMAIN, puzzle);
    match kind {
        TaskKind::Sudoku { size } => {
            let mut out = vec![TokenView::identity(size * size, vocab_size)];
            for _ in 1..views {
                let aug = SudokuAugmentation::random(&mut rng, size);
                out.push(TokenView::sudoku(&aug, vocab_size));
            }
            Ok(out)
        }
        TaskKind::Maze { side } => {
            if views > Dihedral::ALL.len() {
                return bad(format!(
                    "a maze has {} dihedral views; {views} were asked for",
                    Dihedral::ALL.len()
                ));
            }
            let mut others: Vec<Dihedral> = Dihedral::ALL[1..].to_vec();
            rng::shuffle(&mut rng, &mut others);
            Ok(std::iter::once(Dihedral::Identity)
                .chain(others)
                .take(views)
                .map(|t| TokenView::dihedral(t, side, vocab_size))
                .collect())
        }
        other => bad(format!(
            "voting over augmentations is for Sudoku and mazes, not {}",
            other.name()
        )),
    }
}

/// One puzzle's vote.
#[derive(Debug, Clone, PartialEq)]
pub struct VotedPuzzle {
    /// Distinct answers (tokens in the puzzle's own frame), best first.
    pub ranked: Vec<Ranked<Vec<i32>>>,
    /// Views run (views per model times models).
    pub views: usize,
    /// ACT steps each view's answer used, model by model, view by view.
    pub steps: Vec<usize>,
}

impl VotedPuzzle {
    /// Mean ACT steps over the views.
    pub fn mean_steps(&self) -> f64 {
        self.steps.iter().sum::<usize>() as f64 / self.steps.len().max(1) as f64
    }
}

/// What [`vote_rows`] returns.
#[derive(Debug, Clone)]
pub struct VoteRun {
    /// One vote per puzzle, in input order.
    pub puzzles: Vec<VotedPuzzle>,
    /// Per model, its rollout of every view (row `p * views + v` is view `v` of puzzle `p`).
    pub runs: Vec<SolveRun>,
}

/// Votes over `views[p]` (views of puzzle `p`, the same number for each) of `n` puzzles
/// (`inputs` `[n * S]`, `puzzle_identifiers` `[n]`) and over `models`: each model solves every
/// view with `opts` in batches of `batch_size`, each prediction is mapped back by its view, and
/// the answers are ranked by [`rank_answers`] with the confidence `sigmoid(q_halt)` at the
/// answer's step (one half for models without a Q head).
///
/// # Errors
/// [`TrainError::Config`] when the models disagree on `seq_len` or `vocab_size`, or the puzzles
/// have different numbers of views; [`TrainError::Shape`] for inputs of the wrong length; the
/// errors of [`solve_rows`].
pub fn vote_rows(
    models: &[&ArchModel],
    inputs: &[i32],
    puzzle_identifiers: &[i32],
    views: &[Vec<TokenView>],
    batch_size: usize,
    opts: &RolloutOptions,
    device: Device,
) -> Result<VoteRun> {
    let Some(first) = models.first() else {
        return Err(TrainError::Config {
            key: "run".into(),
            reason: "voting needs at least one model".into(),
        });
    };
    let dims = first.dims();
    for m in models {
        let d = m.dims();
        if (d.seq_len, d.vocab_size) != (dims.seq_len, dims.vocab_size) {
            return Err(TrainError::Config {
                key: if d.seq_len != dims.seq_len {
                    "seq_len"
                } else {
                    "vocab_size"
                }
                .into(),
                reason: format!(
                    "the models to vote disagree: seq_len {} and vocab_size {} against seq_len {} \
                     and vocab_size {}",
                    d.seq_len, d.vocab_size, dims.seq_len, dims.vocab_size
                ),
            });
        }
    }
    let s = dims.seq_len as usize;
    let n = puzzle_identifiers.len();
    if inputs.len() != n * s || views.len() != n {
        return Err(TrainError::Shape(format!(
            "{} input tokens and {} view lists for {n} puzzles of {s} tokens",
            inputs.len(),
            views.len()
        )));
    }
    let k = views.first().map_or(1, Vec::len);
    if views.iter().any(|v| v.len() != k) {
        return Err(TrainError::Config {
            key: "vote".into(),
            reason: "every puzzle needs the same number of views".into(),
        });
    }
    let mut view_inputs = Vec::with_capacity(n * k * s);
    let mut view_ids = Vec::with_capacity(n * k);
    for (p, vs) in views.iter().enumerate() {
        for v in vs {
            view_inputs.extend(v.apply(&inputs[p * s..(p + 1) * s]));
            view_ids.push(puzzle_identifiers[p]);
        }
    }
    let mut answers: Vec<Vec<(Vec<i32>, f64)>> = vec![Vec::new(); n];
    let mut steps: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut runs = Vec::with_capacity(models.len());
    for model in models {
        let run = solve_rows(model, &view_inputs, &view_ids, batch_size, opts, device)?;
        for (i, row) in run.rows.iter().enumerate() {
            let (p, v) = (i / k, i % k);
            answers[p].push((
                views[p][v].invert(&row.prediction),
                sigmoid(row.q_halt_at_answer()),
            ));
            steps[p].push(row.halt_step);
        }
        runs.push(run);
    }
    let puzzles = answers
        .into_iter()
        .zip(steps)
        .map(|(a, steps)| VotedPuzzle {
            views: a.len(),
            ranked: rank_answers(a),
            steps,
        })
        .collect();
    Ok(VoteRun { puzzles, runs })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrm_data::maze::{encode_maze, parse_maze};
    use hrm_data::sudoku::{encode_board, parse_puzzle};

    #[test]
    fn ranking_counts_votes_then_confidence_then_order() {
        let ranked = rank_answers(vec![
            (vec![1], 0.2),
            (vec![2], 0.9),
            (vec![1], 0.4),
            (vec![3], 0.95),
            (vec![2], 0.1),
            (vec![4], 0.95),
        ]);
        assert_eq!(ranked[0].answer, vec![2]);
        assert_eq!(ranked[1].answer, vec![1]);
        assert!((ranked[1].mean_confidence - 0.3).abs() < 1e-12);
        // [3] and [4] tie on votes and confidence: the first seen comes first.
        assert_eq!(ranked[2].answer, vec![3]);
        assert_eq!(ranked[3].answer, vec![4]);
        assert!(pass_at(&ranked, 2, |a| a == &vec![1]));
        assert!(!pass_at(&ranked, 1, |a| a == &vec![1]));
    }

    #[test]
    fn sudoku_views_are_the_augmentation_and_undo_it() {
        let board = parse_puzzle("1.3. ..1. .1.. ...1").expect("puzzle");
        let six = parse_puzzle("1.2... ...3.. .4.... ....5. ..6... .....1").expect("6x6");
        for b in [board, six] {
            let n = b.size();
            let mut rng = rng::stream(1, 2, n as u64);
            for _ in 0..20 {
                let aug = SudokuAugmentation::random(&mut rng, n);
                let view = TokenView::sudoku(&aug, 11);
                let tokens = encode_board(&b);
                assert_eq!(view.apply(&tokens), encode_board(&aug.apply(&b)));
                assert_eq!(view.invert(&view.apply(&tokens)), tokens);
            }
        }
    }

    #[test]
    fn maze_views_are_dihedral_and_undo_it() {
        let m = parse_maze("#S#.\n#..#\n..G.\n####\n", std::path::Path::new("m")).expect("maze");
        let tokens = encode_maze(&m);
        for t in Dihedral::ALL {
            let view = TokenView::dihedral(t, 4, 6);
            assert_eq!(view.apply(&tokens), encode_maze(&m.transform(t)));
            assert_eq!(view.invert(&view.apply(&tokens)), tokens);
        }
    }

    #[test]
    fn drawn_views_start_with_the_puzzle_and_are_seeded() {
        let kind = TaskKind::Maze { side: 4 };
        let a = draw_views(kind, 6, 8, 3, 0).expect("8 views");
        assert_eq!(a[0], TokenView::identity(16, 6));
        let distinct: std::collections::BTreeSet<_> = a.iter().map(|v| v.source.clone()).collect();
        assert_eq!(distinct.len(), 8, "the 8 dihedral transforms");
        assert_eq!(draw_views(kind, 6, 8, 3, 0).expect("again"), a);
        assert!(draw_views(kind, 6, 9, 3, 0).is_err());
        assert!(draw_views(TaskKind::Arc, 12, 2, 3, 0).is_err());
        let s = draw_views(TaskKind::Sudoku { size: 4 }, 11, 3, 3, 5).expect("sudoku");
        assert_eq!(s.len(), 3);
        assert_ne!(
            s,
            draw_views(TaskKind::Sudoku { size: 4 }, 11, 3, 3, 6).expect("other")
        );
    }
}
