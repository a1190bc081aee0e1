//! The first half of `hrm eval`'s report: run the model over the split and collect, per
//! example, what the reference's evaluation and our step-by-step rollout say.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use hrm_act::LossHead;
use hrm_data::sudoku::BLANK_TOKEN;
use hrm_data::{Dataset, TaskKind};
use hrm_train::checkpoint::LoadedModel;
use hrm_train::eval::arc::{evaluate_arc, evaluate_arc_runs, ArcReport};
use hrm_train::eval::vote::{draw_views, pass_at, vote_rows};
use hrm_train::eval::{add_arc_voting, evaluate, EvalReport, SetOutputs};
use hrm_train::rollout::steps::{score_steps, sweep_points, LabelledRows, SweepPoint};
use hrm_train::rollout::{
    is_exact, solve_rows, token_accuracy, Batching, HaltMode, RolloutOptions,
};
use hrm_train::{Result, TrainError};

use super::*;

/// What the model did on every example of a split, before anything is written.
pub(super) struct Evaluated {
    /// What the split's tokens encode.
    pub kind: TaskKind,
    /// The trained `halt_max_steps` (the reference evaluation's steps).
    pub halt_max_steps: usize,
    /// The step cap of the learned-halting and max-step passes (`--max-steps`).
    pub step_cap: usize,
    /// The reference's evaluation (outputs dropped).
    pub reference: EvalReport,
    /// ARC voting of the reference's evaluation, for ARC datasets.
    pub arc: Option<ArcReport>,
    /// ARC voting over the answers of learned halting, for ARC datasets.
    pub arc_learned: Option<ArcReport>,
    /// One result per example, in split order.
    pub results: Vec<ExampleResult>,
    /// The first failures under learned halting, for the gallery.
    pub failures: Vec<Failure>,
    /// Time and compute of the two halting passes.
    pub timing: PassTiming,
    /// Accuracy against test-time steps, when asked for.
    pub sweep: Option<Vec<SweepPoint>>,
    /// Voting over augmentations and runs, when asked for.
    pub vote: Option<VoteSummary>,
}

/// Wall time and compute of the halting passes of a report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PassTiming {
    /// How the learned-halting pass batched its rows.
    pub learned_batching: String,
    /// Wall seconds of the learned-halting pass.
    pub learned_seconds: f64,
    /// Rows computed over all ACT calls of the learned-halting pass.
    pub learned_row_steps: usize,
    /// Wall seconds of the max-step answers: the reference evaluation (losses and metrics
    /// included) when the cap is `halt_max_steps`, else a max-step rollout.
    pub max_seconds: f64,
}

/// The result of voting over augmented views (and several runs) on a split. On an ARC split
/// (several runs voting over the dataset's own views with their reference evaluations) the
/// counts are of tasks, `views` is 1, `halt` is `max`, and `single_view_exact` is the first
/// run's own ARC pass@1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoteSummary {
    /// Views per puzzle and run (the puzzle itself and `views - 1` augmentations).
    pub views: usize,
    /// The runs (checkpoints) that voted, in order.
    pub runs: Vec<String>,
    /// The halting of every view's rollout.
    pub halt: HaltMode,
    /// Seed of the augmentation draws.
    pub seed: u64,
    /// Puzzles.
    pub count: usize,
    /// Share whose top answer is exact.
    pub pass_at_1: f64,
    /// Share with an exact answer among the top two.
    pub pass_at_2: f64,
    /// Share exact with the first run on the puzzle itself alone (no voting), for comparison.
    pub single_view_exact: f64,
    /// Mean ACT steps per view.
    pub mean_steps: f64,
    /// Wall seconds of all the views' rollouts.
    pub seconds: f64,
}

/// Runs the passes over split `opts.split` of `data_dir`: the reference's evaluation (with
/// ARC voting), learned halting (continuous batching unless asked otherwise), the max-step
/// answers, and, when asked for, the steps sweep and the vote. `runs[0]` is the model
/// reported on; the others only vote.
///
/// # Errors
/// [`TrainError::Dataset`] for a missing or unfit split, [`TrainError::Config`] for a step cap
/// of 0 or voting on a task without augmentations, and the evaluation's errors.
pub(super) fn evaluate_split(
    runs: &[&LoadedModel],
    data_dir: &Path,
    opts: &ReportOptions,
) -> Result<Evaluated> {
    let loaded = *runs.first().ok_or_else(|| TrainError::Config {
        key: "run".into(),
        reason: "no run to evaluate".into(),
    })?;
    let model = &loaded.model;
    let device = opts.device;
    let ds = Dataset::open(data_dir, &opts.split).map_err(|e| TrainError::Dataset {
        path: data_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    for r in runs {
        check_dataset_fits(&ds, &r.model)?;
    }
    let meta = ds.metadata().clone();
    let kind = TaskKind::detect(&meta);
    let dims = model.dims();
    let halt_max_steps = dims.halt_max_steps.max(1) as usize;
    let learned_opts = RolloutOptions {
        halt: HaltMode::Learned,
        trace_rows: Vec::new(),
        max_steps: opts.max_steps,
        batching: opts.batching,
    };
    let step_cap = match model {
        // Baselines without ACT answer in one step whatever the cap.
        hrm_train::arch::ArchModel::Direct(_) => 1,
        hrm_train::arch::ArchModel::Recurrent(_) => learned_opts.step_cap(&dims)?,
    };
    let mut timing = PassTiming {
        learned_batching: if learned_opts.is_continuous(model) {
            Batching::Continuous.name().to_string()
        } else {
            Batching::Lockstep.name().to_string()
        },
        ..PassTiming::default()
    };

    // Pass 1: the reference's evaluation (and ARC voting); its predictions are the max-step
    // answers when the cap is the trained one.
    let head = LossHead {
        loss_type: loaded.config.loss.loss_type,
        q_loss_weight: loaded.config.loss.q_loss_weight,
    };
    let arc = is_arc_dataset(data_dir);
    let t0 = Instant::now();
    let mut reference = evaluate(model, &ds, &head, opts.batch_size, device, true)?;
    let reference_seconds = t0.elapsed().as_secs_f64();
    add_arc_voting(&mut reference, data_dir, &ds)?;
    let arc_report = reference.arc.take();
    let reference_outputs = reference.outputs.take().unwrap_or_default();

    // Pass 2: learned halting, and the max-step answers, per example.
    let mut results: Vec<ExampleResult> = Vec::with_capacity(ds.num_examples());
    let mut failures: Vec<Failure> = Vec::new();
    let mut learned_outputs: BTreeMap<String, SetOutputs> = BTreeMap::new();
    let ignore = meta.ignore_label_id;
    let s = meta.seq_len;
    for set in ds.sets() {
        let rows = read_set(set)?;
        let n = rows.ids.len();
        let learned = solve_rows(
            model,
            &rows.inputs,
            &rows.ids,
            opts.batch_size,
            &learned_opts,
            device,
        )?;
        timing.learned_seconds += learned.total_seconds();
        timing.learned_row_steps += learned.row_steps;
        let max_predictions: Vec<i32> = if step_cap == halt_max_steps {
            timing.max_seconds = reference_seconds;
            reference_outputs
                .get(set.name())
                .map(|o| o.predictions.clone())
                .ok_or_else(|| {
                    TrainError::Shape(format!("no evaluation outputs for set `{}`", set.name()))
                })?
        } else {
            let max = solve_rows(
                model,
                &rows.inputs,
                &rows.ids,
                opts.batch_size,
                &RolloutOptions {
                    halt: HaltMode::Max,
                    ..learned_opts.clone()
                },
                device,
            )?;
            timing.max_seconds += max.total_seconds();
            max.rows.into_iter().flat_map(|r| r.prediction).collect()
        };
        if arc {
            learned_outputs.insert(
                set.name().to_string(),
                SetOutputs {
                    seq_len: s,
                    predictions: learned
                        .rows
                        .iter()
                        .flat_map(|r| r.prediction.iter().copied())
                        .collect(),
                    q_halt_logits: learned.rows.iter().map(|r| r.q_halt_at_answer()).collect(),
                    exact: vec![false; n],
                },
            );
        }
        for (k, row) in learned.rows.iter().enumerate() {
            let x = &rows.inputs[k * s..(k + 1) * s];
            let y = &rows.labels[k * s..(k + 1) * s];
            let at_max = &max_predictions[k * s..(k + 1) * s];
            let exact_learned = is_exact(&row.prediction, y, ignore);
            results.push(ExampleResult {
                steps: row.halt_step,
                exact_learned,
                exact_max: is_exact(at_max, y, ignore),
                token_accuracy: token_accuracy(&row.prediction, y, ignore),
                token_accuracy_max: token_accuracy(at_max, y, ignore),
                difficulty: difficulty(kind, x, y),
            });
            if !exact_learned && failures.len() < opts.gallery {
                failures.push(Failure {
                    set: set.name().to_string(),
                    index: k,
                    input: x.to_vec(),
                    label: y
                        .iter()
                        .map(|&l| if Some(l) == ignore || l < 0 { 0 } else { l })
                        .collect(),
                    prediction: row.prediction.clone(),
                    steps: row.halt_step,
                    q_halt: if row.q_halt_logits.is_empty() {
                        0.5
                    } else {
                        crate::solve::sigmoid(row.q_halt_at_answer())
                    },
                });
            }
        }
    }
    let arc_learned = if arc {
        Some(evaluate_arc(data_dir, &ds, &learned_outputs)?)
    } else {
        None
    };

    let sweep = if opts.steps_sweep.is_empty() {
        None
    } else {
        Some(steps_sweep(model, &ds, &opts.steps_sweep, opts)?)
    };
    let vote = match (opts.vote > 1 || runs.len() > 1, arc) {
        (false, _) => None,
        (true, false) => Some(vote_split(runs, &ds, kind, opts)?),
        (true, true) => Some(vote_arc(
            runs,
            data_dir,
            &ds,
            &reference_outputs,
            arc_report.as_ref(),
            opts,
        )?),
    };

    Ok(Evaluated {
        kind,
        halt_max_steps,
        step_cap,
        reference,
        arc: arc_report,
        arc_learned,
        results,
        failures,
        timing,
        sweep,
        vote,
    })
}

/// The examples of one set, host-side.
pub(super) struct SetRows {
    /// `[n * S]`.
    pub inputs: Vec<i32>,
    /// `[n * S]`.
    pub labels: Vec<i32>,
    /// `[n]`.
    pub ids: Vec<i32>,
}

/// Reads every example of `set`.
pub(super) fn read_set(set: &hrm_data::PuzzleSet) -> Result<SetRows> {
    let n = set.num_examples();
    let mut rows = SetRows {
        inputs: Vec::new(),
        labels: Vec::new(),
        ids: Vec::with_capacity(n),
    };
    for i in 0..n {
        let (x, y) = set.example(i)?;
        rows.inputs.extend(x);
        rows.labels.extend(y);
        rows.ids.push(set.puzzle_identifier_of_example(i)?);
    }
    Ok(rows)
}

/// Accuracy at each step cap of `caps` over the whole split, from one lockstep rollout per
/// set to the largest cap.
fn steps_sweep(
    model: &hrm_train::arch::ArchModel,
    ds: &Dataset,
    caps: &[usize],
    opts: &ReportOptions,
) -> Result<Vec<SweepPoint>> {
    let largest = caps.iter().copied().max().unwrap_or(1);
    if caps.contains(&0) {
        return Err(TrainError::Config {
            key: "steps_sweep".into(),
            reason: "step counts must be at least 1".into(),
        });
    }
    let ignore = ds.metadata().ignore_label_id;
    let mut scored = Vec::new();
    for set in ds.sets() {
        let rows = read_set(set)?;
        scored.extend(score_steps(
            model,
            LabelledRows {
                inputs: &rows.inputs,
                labels: &rows.labels,
                puzzle_identifiers: &rows.ids,
                ignore,
            },
            opts.batch_size,
            largest,
            opts.device,
        )?);
    }
    Ok(sweep_points(&scored, model.dims().halt_rule, caps))
}

/// ARC with several runs: every run's reference evaluation (all steps) over the dataset's own
/// views, all voting together per task. `--vote` does not apply (the views are the dataset's).
fn vote_arc(
    runs: &[&LoadedModel],
    data_dir: &Path,
    ds: &Dataset,
    first: &BTreeMap<String, SetOutputs>,
    first_report: Option<&ArcReport>,
    opts: &ReportOptions,
) -> Result<VoteSummary> {
    if opts.vote > 1 {
        return Err(TrainError::Config {
            key: "vote".into(),
            reason: "an ARC split votes over the augmented views its dataset was built with; \
                     --vote K is for Sudoku and mazes (several RUNs vote together on ARC)"
                .into(),
        });
    }
    let t0 = Instant::now();
    let mut others = Vec::new();
    for r in &runs[1..] {
        let head = LossHead {
            loss_type: r.config.loss.loss_type,
            q_loss_weight: r.config.loss.q_loss_weight,
        };
        let report = evaluate(&r.model, ds, &head, opts.batch_size, opts.device, true)?;
        others.push(report.outputs.unwrap_or_default());
    }
    let all: Vec<&BTreeMap<String, SetOutputs>> =
        std::iter::once(first).chain(others.iter()).collect();
    let pooled = evaluate_arc_runs(data_dir, ds, &all)?;
    Ok(VoteSummary {
        views: 1,
        runs: runs
            .iter()
            .map(|r| r.checkpoint.display().to_string())
            .collect(),
        halt: HaltMode::Max,
        seed: opts.vote_seed,
        count: pooled.tasks.len(),
        pass_at_1: pooled.pass_at_1,
        pass_at_2: pooled.pass_at_2,
        single_view_exact: first_report.map_or(0.0, |a| a.pass_at_1),
        mean_steps: runs[0].model.dims().halt_max_steps as f64,
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// Votes over `opts.vote` views of every example and over every run.
fn vote_split(
    runs: &[&LoadedModel],
    ds: &Dataset,
    kind: TaskKind,
    opts: &ReportOptions,
) -> Result<VoteSummary> {
    let meta = ds.metadata();
    let ignore = meta.ignore_label_id;
    let s = meta.seq_len;
    let models: Vec<&hrm_train::arch::ArchModel> = runs.iter().map(|r| &r.model).collect();
    let rollout = RolloutOptions {
        halt: opts.vote_halt,
        trace_rows: Vec::new(),
        max_steps: opts.max_steps,
        batching: opts.batching,
    };
    let (mut count, mut p1, mut p2, mut single, mut steps, mut seconds) =
        (0usize, 0usize, 0usize, 0usize, 0.0f64, 0.0f64);
    let mut index = 0u64;
    for set in ds.sets() {
        let rows = read_set(set)?;
        let n = rows.ids.len();
        let views = (0..n)
            .map(|p| {
                draw_views(
                    kind,
                    meta.vocab_size,
                    opts.vote,
                    opts.vote_seed,
                    index + p as u64,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        index += n as u64;
        let voted = vote_rows(
            &models,
            &rows.inputs,
            &rows.ids,
            &views,
            opts.batch_size,
            &rollout,
            opts.device,
        )?;
        seconds += voted.runs.iter().map(|r| r.total_seconds()).sum::<f64>();
        for (p, v) in voted.puzzles.iter().enumerate() {
            let y = &rows.labels[p * s..(p + 1) * s];
            let right = |a: &Vec<i32>| is_exact(a, y, ignore);
            count += 1;
            p1 += usize::from(pass_at(&v.ranked, 1, right));
            p2 += usize::from(pass_at(&v.ranked, 2, right));
            steps += v.mean_steps();
            // Row `p * views` of the first run is the puzzle itself.
            let first = &voted.runs[0].rows[p * opts.vote].prediction;
            single += usize::from(is_exact(first, y, ignore));
        }
    }
    let n = count.max(1) as f64;
    Ok(VoteSummary {
        views: opts.vote,
        runs: runs
            .iter()
            .map(|r| r.checkpoint.display().to_string())
            .collect(),
        halt: opts.vote_halt,
        seed: opts.vote_seed,
        count,
        pass_at_1: p1 as f64 / n,
        pass_at_2: p2 as f64 / n,
        single_view_exact: single as f64 / n,
        mean_steps: steps / n,
        seconds,
    })
}

/// The difficulty of an example: blanks of a Sudoku input, steps of a maze's labelled path.
pub(super) fn difficulty(kind: TaskKind, input: &[i32], label: &[i32]) -> Option<usize> {
    match kind {
        TaskKind::Sudoku { .. } => Some(input.iter().filter(|&&t| t == BLANK_TOKEN).count()),
        TaskKind::Maze { .. } => Some(label.iter().filter(|&&t| t == MAZE_PATH_TOKEN).count() + 1),
        _ => None,
    }
}

/// Means over examples of what `pick` gives: (exact, token accuracy, steps).
pub(super) fn summarise(
    results: &[ExampleResult],
    pick: impl Fn(&ExampleResult) -> (bool, f64, usize),
) -> HaltingSummary {
    let n = results.len().max(1) as f64;
    let picked: Vec<(bool, f64, usize)> = results.iter().map(pick).collect();
    HaltingSummary {
        count: results.len(),
        exact_accuracy: picked.iter().filter(|p| p.0).count() as f64 / n,
        token_accuracy: picked.iter().map(|p| p.1).sum::<f64>() / n,
        mean_steps: picked.iter().map(|p| p.2 as f64).sum::<f64>() / n,
    }
}

/// Groups examples by difficulty: one group per value when there are few distinct values,
/// otherwise about [`GROUPED_BUCKETS`] groups of equal width.
pub(super) fn breakdown(kind: TaskKind, results: &[ExampleResult]) -> Option<Breakdown> {
    let by = match kind {
        TaskKind::Sudoku { .. } => "blanks",
        TaskKind::Maze { .. } => "path_length",
        _ => return None,
    };
    let values: Vec<usize> = results.iter().filter_map(|r| r.difficulty).collect();
    let (lo, hi) = (*values.iter().min()?, *values.iter().max()?);
    let mut distinct = values.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let width = if distinct.len() <= MAX_SINGLE_BUCKETS {
        1
    } else {
        (hi - lo + 1).div_ceil(GROUPED_BUCKETS)
    };
    let mut groups: BTreeMap<usize, Vec<&ExampleResult>> = BTreeMap::new();
    for r in results {
        if let Some(d) = r.difficulty {
            groups.entry((d - lo) / width).or_default().push(r);
        }
    }
    let buckets = groups
        .into_iter()
        .map(|(g, rs)| {
            let n = rs.len() as f64;
            let share =
                |f: &dyn Fn(&ExampleResult) -> bool| rs.iter().filter(|r| f(r)).count() as f64 / n;
            Bucket {
                lo: lo + g * width,
                hi: lo + (g + 1) * width - 1,
                count: rs.len(),
                exact_learned: share(&|r| r.exact_learned),
                exact_max: share(&|r| r.exact_max),
                token_accuracy: rs.iter().map(|r| r.token_accuracy).sum::<f64>() / n,
                mean_steps: rs.iter().map(|r| r.steps as f64).sum::<f64>() / n,
            }
        })
        .collect();
    Some(Breakdown {
        by: by.to_string(),
        buckets,
    })
}
