//! The `hrm` application: the command line and everything only the command line needs.
//!
//! The training library is `hrm-train`; this crate adds what a person at a terminal wants from
//! it: the clap commands ([`cmd`]), solving single puzzles with answer checks and reasoning
//! traces ([`solve`]), evaluation reports with charts and failure galleries ([`report`]), the
//! architecture comparison ([`compare`]), plots ([`plot`]), the progress bar ([`progress`]) and
//! the embedded default dataset ([`default_data`]). It is the only crate of the workspace with
//! clap, anyhow, ctrlc and indicatif.

pub mod cmd;
pub mod compare;
pub mod default_data;
pub mod launch;
pub mod plot;
pub mod progress;
pub mod report;
pub mod solve;
