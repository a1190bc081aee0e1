//! The terminal side of training: a progress bar and eval lines while a run trains, and the
//! training-curve PNG at its end. Implements hrm-train's observer; the library itself prints
//! nothing.

use std::path::Path;

use hrm_train::eval::EvalReport;
use hrm_train::observer::{RunStart, StepEvent, TrainObserver};
use hrm_train::train_step::NonFinite;
use hrm_train::trainer::TrainSummary;

/// What `hrm train` and `hrm compare` show of a run.
pub struct TerminalObserver {
    /// Draw a progress bar (otherwise only the resume line and evaluations are printed).
    show_bar: bool,
    bar: Option<indicatif::ProgressBar>,
}

impl TerminalObserver {
    /// An observer with or without a progress bar.
    pub fn new(show_bar: bool) -> Self {
        TerminalObserver {
            show_bar,
            bar: None,
        }
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl TrainObserver for TerminalObserver {
    fn on_start(&mut self, start: &RunStart<'_>) {
        for skipped in start.skipped_checkpoints {
            let moved = skipped
                .moved_to
                .as_ref()
                .map_or(" (could not be moved aside)".to_string(), |to| {
                    format!(", moved to {}", to.display())
                });
            eprintln!(
                "warning: checkpoint {} fails verification and is skipped{moved}: {}",
                skipped.dir.display(),
                skipped.reason
            );
        }
        if let Some(dir) = start.resumed_from {
            let fallback = if start.skipped_checkpoints.is_empty() {
                ""
            } else {
                " (the newest checkpoint that verifies)"
            };
            eprintln!(
                "[train] resumed from {} at step {}{fallback}",
                dir.display(),
                start.step
            );
        }
        let cut = start.metrics_cut;
        if let Some(torn) = &cut.torn {
            eprintln!(
                "warning: metrics.jsonl line {} was cut short (a killed run) and is dropped: {}",
                torn.line, torn.reason
            );
        }
        if cut.dropped > 0 {
            eprintln!(
                "[train] metrics.jsonl: dropped {} line(s) of steps after {}, which this run logs again",
                cut.dropped, cut.step
            );
        }
        if self.show_bar {
            let bar = indicatif::ProgressBar::new(start.total_steps);
            let style = indicatif::ProgressStyle::with_template(
                "{spinner} step {pos}/{len} [{bar:30}] {per_sec} ETA {eta} | {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_position(start.step);
            self.bar = Some(bar);
        }
    }

    fn on_step(&mut self, event: &StepEvent<'_>) {
        let Some(bar) = &self.bar else {
            return;
        };
        if let Some(m) = event.logged {
            bar.set_message(format!(
                "loss {:.3} acc {:.3} exact {:.3}",
                m.get("lm_loss"),
                m.get("accuracy"),
                m.get("exact_accuracy")
            ));
        }
        bar.set_position(event.step);
    }

    fn on_skipped_step(&mut self, step: u64, what: &NonFinite) {
        self.println(format!(
            "warning: step {step} skipped: the {} is {} (on_nonfinite = \"skip\")",
            what.quantity, what.value
        ));
    }

    fn on_eval(&mut self, step: u64, report: &EvalReport) {
        if self.bar.is_some() {
            self.println(format!("[eval step {step}] {}", format_eval(report)));
        }
    }

    fn on_end(&mut self, run_dir: &Path, _summary: &TrainSummary) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        // A plot is a view of metrics.jsonl: failing to draw it must not fail the run.
        if let Err(e) = crate::plot::training_curves(run_dir) {
            eprintln!("warning: no training-curve plot: {e}");
        }
    }
}

/// A one-line summary of an evaluation.
pub fn format_eval(r: &EvalReport) -> String {
    let o = &r.overall;
    format!(
        "exact {:.4} acc {:.4} q_halt_acc {:.3} steps {:.2} lm_loss {:.4} ({} examples)",
        o.get("exact_accuracy"),
        o.get("accuracy"),
        o.get("q_halt_accuracy"),
        o.get("steps"),
        o.get("lm_loss"),
        o.get("count")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hrm_act::MetricValues;
    use hrm_train::run_dir::{MetricsLine, RunDir};

    #[test]
    fn the_end_of_a_run_draws_its_curves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut run = RunDir::open(dir.path()).expect("run dir");
        for step in 1..=5u64 {
            let mut m = MetricValues::default();
            m.0.insert("lm_loss".into(), 2.0 / step as f64);
            m.0.insert("accuracy".into(), 0.1 * step as f64);
            run.log(&MetricsLine::Train {
                step,
                epoch: 0,
                lr: 1e-3,
                samples_per_sec: 10.0,
                metrics: m,
            })
            .expect("log");
        }
        let summary = TrainSummary {
            steps: 5,
            total_steps: 5,
            interrupted: false,
            stopped: None,
            train_seconds: 1.0,
            samples_per_sec: 10.0,
            last_train: None,
            last_eval: None,
            checkpoint: None,
            num_parameters: 1,
            communication_seconds: 0.0,
        };
        TerminalObserver::new(false).on_end(dir.path(), &summary);
        let png = std::fs::read(dir.path().join("curves.png")).expect("curves.png");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
    }
}
