//! Adaptive computation time for HRM-family models.
//!
//! `hrm-act` drives any [`hrm_core::RecurrentCore`] (HRM, TRM) through the reference's ACT loop
//! (`HierarchicalReasoningModel_ACTV1` in sapientinc/HRM `models/hrm/hrm_act_v1.py`): halted
//! rows are reset and take new data, the Q head decides halting in training with exploration,
//! and the continue value learns from a bootstrapped target. The loss head
//! (`ACTLossHead` in `models/losses.py`) turns a step into the stablemax or softmax LM loss, the
//! Q losses and the reference metrics.
//!
//! # Example
//! ```
//! use hrm_act::{act_step, ActBatch, ActCarry, LossHead};
//! use hrm_core::{Hrm, HrmConfig, Mode, RecurrentCore};
//!
//! let mut cfg = HrmConfig::tiny();
//! cfg.hidden_size = 64;
//! cfg.num_heads = 2;
//! cfg.puzzle_emb_ndim = 0;
//! cfg.halt_max_steps = 2;
//! let model = Hrm::new(&cfg, tch::Device::Cpu)?;
//! let batch = ActBatch::from_host(&[1; 2 * 81], &[2; 2 * 81], &[0, 0], &model.dims(), tch::Device::Cpu)?;
//! let mut carry = ActCarry::initial(&model, &batch);
//! let _guard = tch::no_grad_guard();
//! for _ in 0..2 {
//!     let (next, out) = act_step(&model, &carry, &batch, Mode::Eval);
//!     let step = LossHead::default().act(&next, &out);
//!     carry = next;
//!     assert!(step.loss.double_value(&[]) > 0.0);
//! }
//! // Evaluation runs to halt_max_steps: every row has halted after two calls.
//! assert!(carry.all_halted());
//! # Ok::<(), hrm_act::ActError>(())
//! ```

pub mod act;
pub mod batch;
pub mod error;
pub mod inputs;
pub mod loss;
pub mod metrics;

pub use act::{act_step, eval_rollout, ActCarry, ActOutput};
pub use batch::{ActBatch, IGNORE_LABEL_ID};
pub use error::ActError;
pub use inputs::LossInputs;
pub use loss::{
    bce_with_logits_sum, softmax_cross_entropy, stablemax_cross_entropy, LossHead, LossType,
    StepLoss,
};
pub use metrics::{MetricValues, Metrics};
