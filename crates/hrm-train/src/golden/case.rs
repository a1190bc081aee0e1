//! Reading a golden case and reproducing every tensor it expects.
//!
//! The schedule is the one of section 5 of `shared/golden/README.md`: an evaluation rollout of
//! `eval.steps` on one batch, then training calls from the initial carry (the first with a
//! backward pass of `loss * loss_scale`), one optimiser step computed from the **stored** weights
//! and gradients, the EMA (TRM) from the stored weights and `after_step.*`, the loss functions
//! on their own and the RoPE tables. All sizes come from `config.json`, so any case in the
//! format is read, not only the shipped ones.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tch::{Device, Kind, Tensor};

use hrm_act::{act_step, ActBatch, ActCarry, LossHead, LossType, Metrics};
use hrm_core::weights::{read_safetensors, strip_reference_prefixes};
use hrm_core::Mode;

use crate::arch::build_recurrent_core;
use crate::error::{Result, TrainError};
use crate::optim::{
    adam_atan2_update, ema_blend, sign_sgd_step, AdamAtan2Config, MomentState, SignSgdConfig,
};

/// The parts of `config.json` the check uses (other keys are informational).
#[derive(Debug, Deserialize)]
pub struct CaseConfig {
    /// `"hrm"` (default) or `"trm"`.
    #[serde(default = "default_arch")]
    pub arch: String,
    /// The model config with the reference's names.
    pub model: serde_json::Value,
    /// The loss settings.
    pub loss: LossSection,
    /// The evaluation rollout.
    pub eval: EvalSection,
    /// The training calls.
    pub train: TrainSection,
    /// Optimiser hyperparameters.
    pub optimizer: OptimizerSection,
    /// EMA settings (TRM).
    #[serde(default)]
    pub ema: Option<EmaSection>,
    /// Tensor name lists.
    pub tensors: TensorsSection,
}

fn default_arch() -> String {
    "hrm".into()
}

/// `loss` of `config.json`.
#[derive(Debug, Deserialize)]
pub struct LossSection {
    /// `stablemax_cross_entropy` or `softmax_cross_entropy`.
    pub loss_type: String,
    /// Weight of the Q losses.
    #[serde(default = "default_q_weight")]
    pub q_loss_weight: f64,
}

fn default_q_weight() -> f64 {
    0.5
}

/// `eval` of `config.json`.
#[derive(Debug, Deserialize)]
pub struct EvalSection {
    /// Batch prefix.
    pub batch: String,
    /// Recorded steps, 1-based.
    pub steps: Vec<usize>,
}

/// `train` of `config.json`.
#[derive(Debug, Deserialize)]
pub struct TrainSection {
    /// Call numbers, 1-based.
    pub calls: Vec<usize>,
    /// Batch prefix of each call.
    pub batch_per_call: Vec<String>,
    /// The call that is differentiated.
    pub backward_call: usize,
    /// Factor of the loss before the backward pass.
    pub loss_scale: f64,
}

/// `optimizer` of `config.json`.
#[derive(Debug, Deserialize)]
pub struct OptimizerSection {
    /// AdamATan2.
    pub adam_atan2: AdamSection,
    /// Sign-SGD of the puzzle embedding.
    pub puzzle_emb_sign_sgd: SignSgdSection,
}

/// `optimizer.adam_atan2`.
#[derive(Debug, Deserialize)]
pub struct AdamSection {
    /// Learning rate.
    pub lr: f64,
    /// `[beta1, beta2]`.
    pub betas: [f64; 2],
    /// Weight decay.
    pub weight_decay: f64,
    /// Steps taken (1).
    #[serde(default = "one")]
    pub step: u64,
}

fn one() -> u64 {
    1
}

/// `optimizer.puzzle_emb_sign_sgd`.
#[derive(Debug, Deserialize)]
pub struct SignSgdSection {
    /// Learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
}

/// `ema`.
#[derive(Debug, Deserialize)]
pub struct EmaSection {
    /// Decay.
    pub mu: f64,
}

/// `tensors`.
#[derive(Debug, Deserialize)]
pub struct TensorsSection {
    /// Trainable parameter names (with the `model.` prefix).
    pub trainable: Vec<String>,
}

/// A case read from disk.
pub struct Case {
    /// The case directory.
    pub dir: PathBuf,
    /// Parsed `config.json`.
    pub config: CaseConfig,
    /// `weights.safetensors`, names as stored.
    pub weights: BTreeMap<String, Tensor>,
    /// `batch.safetensors`.
    pub batch: BTreeMap<String, Tensor>,
    /// `expected.safetensors`.
    pub expected: BTreeMap<String, Tensor>,
}

impl Case {
    /// Reads the four files of a case directory.
    ///
    /// # Errors
    /// [`TrainError::Golden`] naming the file that is missing or malformed.
    pub fn read(dir: &Path) -> Result<Case> {
        let golden = |reason: String| TrainError::Golden {
            path: dir.to_path_buf(),
            reason,
        };
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| golden(format!("cannot read config.json: {e}")))?;
        let config: CaseConfig =
            serde_json::from_str(&text).map_err(|e| golden(format!("config.json: {e}")))?;
        let read = |file: &str| -> Result<BTreeMap<String, Tensor>> {
            let tensors =
                read_safetensors(&dir.join(file)).map_err(|e| golden(format!("{file}: {e}")))?;
            Ok(tensors.into_iter().collect())
        };
        Ok(Case {
            dir: dir.to_path_buf(),
            weights: read("weights.safetensors")?,
            batch: read("batch.safetensors")?,
            expected: read("expected.safetensors")?,
            config,
        })
    }

    fn golden_error(&self, reason: impl Into<String>) -> TrainError {
        TrainError::Golden {
            path: self.dir.clone(),
            reason: reason.into(),
        }
    }

    fn batch_named(
        &self,
        prefix: &str,
        dims: &hrm_core::CoreDims,
        device: Device,
    ) -> Result<ActBatch> {
        let get = |field: &str| {
            self.batch.get(&format!("{prefix}.{field}")).ok_or_else(|| {
                self.golden_error(format!("batch.safetensors lacks `{prefix}.{field}`"))
            })
        };
        let to_vec = |t: &Tensor| -> Result<Vec<i32>> {
            Ok(Vec::<i32>::try_from(t.to_kind(Kind::Int).reshape([-1]))?)
        };
        let inputs = to_vec(get("inputs")?)?;
        let labels = to_vec(get("labels")?)?;
        let ids = to_vec(get("puzzle_identifiers")?)?;
        Ok(ActBatch::from_host(&inputs, &labels, &ids, dims, device)?)
    }

    fn expected_tensor(&self, name: &str) -> Result<&Tensor> {
        self.expected
            .get(name)
            .ok_or_else(|| self.golden_error(format!("expected.safetensors lacks `{name}`")))
    }

    /// Runs the model on the case and returns every tensor the format defines, by name.
    ///
    /// # Errors
    /// [`TrainError::Golden`] for an inconsistent case, or any model error.
    pub fn produce(&self) -> Result<BTreeMap<String, Tensor>> {
        self.produce_on(Device::Cpu, false)
    }

    /// [`Case::produce`] on `device`, with the forward in bfloat16 when `bf16` is set.
    ///
    /// # Errors
    /// As [`Case::produce`].
    pub fn produce_on(&self, device: Device, bf16: bool) -> Result<BTreeMap<String, Tensor>> {
        let cfg = &self.config;
        let mut model = cfg.model.clone();
        if let (true, Some(table)) = (bf16, model.as_object_mut()) {
            table.insert("forward_dtype".into(), "bfloat16".into());
        }
        let core = build_recurrent_core(&cfg.arch, &model, device)
            .map_err(|e| self.golden_error(format!("model config: {e}")))?;
        let weights: Vec<(String, Tensor)> = self
            .weights
            .iter()
            .map(|(n, t)| (n.clone(), t.shallow_clone()))
            .collect();
        core.params()
            .load_named(&self.dir.join("weights.safetensors"), weights)?;
        let dims = core.dims();
        let loss_type: LossType = cfg.loss.loss_type.parse()?;
        let head = LossHead {
            loss_type,
            q_loss_weight: cfg.loss.q_loss_weight,
        };
        let mut out = BTreeMap::new();

        // Evaluation rollout.
        {
            let _guard = tch::no_grad_guard();
            let batch = self.batch_named(&cfg.eval.batch, &dims, device)?;
            out.insert(
                "eval.input_embeddings".into(),
                core.input_embeddings(&batch.core_input(), Mode::Eval).0,
            );
            let last = cfg.eval.steps.iter().copied().max().unwrap_or(0);
            let mut carry = ActCarry::initial(core.as_ref(), &batch);
            for k in 1..=last {
                let (next, step_out) = act_step(core.as_ref(), &carry, &batch, Mode::Eval);
                let loss = head.act(&next, &step_out);
                if cfg.eval.steps.contains(&k) {
                    let p = format!("eval.step{k}");
                    record_step(&mut out, &p, &next, &step_out, &loss.loss, &loss.metrics);
                    out.insert(format!("{p}.z_H"), next.inner.z_h.shallow_clone());
                    out.insert(format!("{p}.z_L"), next.inner.z_l.shallow_clone());
                }
                carry = next;
            }
        }

        // Training calls.
        let mut call1_ids = None;
        let mut carry: Option<ActCarry> = None;
        if cfg.train.calls.len() != cfg.train.batch_per_call.len() {
            return Err(self.golden_error("train.calls and train.batch_per_call differ in length"));
        }
        for (c, prefix) in cfg.train.calls.iter().zip(&cfg.train.batch_per_call) {
            let batch = self.batch_named(prefix, &dims, device)?;
            let from = carry
                .take()
                .unwrap_or_else(|| ActCarry::initial(core.as_ref(), &batch));
            let (next, step_out) = act_step(core.as_ref(), &from, &batch, Mode::Train);
            let loss = head.act(&next, &step_out);
            let p = format!("train.call{c}");
            record_step(
                &mut out,
                &p,
                &next,
                &step_out,
                &loss.loss.detach(),
                &loss.metrics,
            );
            if let Some(t) = &step_out.target_q_continue {
                out.insert(format!("{p}.target_q_continue"), t.shallow_clone());
            }
            out.insert(
                format!("{p}.current_data.inputs"),
                next.current_data.inputs.shallow_clone(),
            );
            out.insert(
                format!("{p}.current_data.labels"),
                next.current_data.labels.shallow_clone(),
            );
            out.insert(
                format!("{p}.current_data.puzzle_identifiers"),
                next.current_data.puzzle_identifiers.shallow_clone(),
            );
            if *c == cfg.train.backward_call {
                (&loss.loss * cfg.train.loss_scale).backward();
                for (name, param) in core.params().trainable() {
                    let grad = param.grad();
                    let grad = if grad.defined() {
                        grad.copy()
                    } else {
                        param.zeros_like()
                    };
                    out.insert(format!("grad.model.{name}"), grad);
                }
                if let Some(local) = &step_out.puzzle_emb_local {
                    out.insert("grad.puzzle_emb.local_weights".into(), local.grad().copy());
                }
                call1_ids = Some(next.current_data.puzzle_identifiers.shallow_clone());
            }
            carry = Some(next);
        }

        self.optimizer_steps(&mut out, call1_ids.as_ref(), device)?;
        self.loss_functions(&mut out, device)?;
        if let Some(rope) = core.rope() {
            out.insert("rope.cos".into(), rope.cos.shallow_clone());
            out.insert("rope.sin".into(), rope.sin.shallow_clone());
        }
        Ok(out)
    }

    /// `after_step.*` (and `ema.*`) from the stored weights and the stored gradients.
    fn optimizer_steps(
        &self,
        out: &mut BTreeMap<String, Tensor>,
        ids: Option<&Tensor>,
        device: Device,
    ) -> Result<()> {
        let cfg = &self.config;
        let adam = &cfg.optimizer.adam_atan2;
        if adam.step != 1 {
            return Err(self.golden_error(format!(
                "optimizer.adam_atan2.step = {} (only 1 is defined)",
                adam.step
            )));
        }
        let adam_cfg = AdamAtan2Config {
            betas: (adam.betas[0], adam.betas[1]),
            weight_decay: adam.weight_decay,
        };
        for name in &cfg.tensors.trainable {
            let weight = self.weights.get(name).ok_or_else(|| {
                self.golden_error(format!("weights.safetensors lacks trainable `{name}`"))
            })?;
            let grad = self
                .expected_tensor(&format!("grad.{name}"))?
                .to_device(device);
            let weight = weight.to_device(device);
            let p = weight.copy();
            let mut st = MomentState {
                exp_avg: p.zeros_like(),
                exp_avg_sq: p.zeros_like(),
                step: 1,
            };
            adam_atan2_update(&p, &grad, &mut st, adam.lr, adam_cfg);
            if let Some(ema) = &cfg.ema {
                out.insert(format!("ema.{name}"), ema_blend(&p, &weight, ema.mu));
            }
            out.insert(format!("after_step.{name}"), p);
        }
        let table_name = self
            .weights
            .keys()
            .find(|n| strip_reference_prefixes(n) == "inner.puzzle_emb.weights")
            .cloned();
        if let Some(table_name) = table_name {
            let ids = ids.ok_or_else(|| {
                self.golden_error("no backward call, so no puzzle identifiers for sign-SGD")
            })?;
            let table = self.weights[&table_name].to_device(device).copy();
            let grad = self
                .expected_tensor("grad.puzzle_emb.local_weights")?
                .to_device(device);
            let sgd = &cfg.optimizer.puzzle_emb_sign_sgd;
            sign_sgd_step(
                &table,
                &grad,
                ids,
                sgd.lr,
                SignSgdConfig {
                    weight_decay: sgd.weight_decay,
                },
            )?;
            out.insert(format!("after_step.{table_name}"), table);
        }
        Ok(())
    }

    /// `loss_fn.*`: both losses per element and the gradients of their sums.
    fn loss_functions(&self, out: &mut BTreeMap<String, Tensor>, device: Device) -> Result<()> {
        let (Some(logits), Some(labels)) = (
            self.expected.get("loss_fn.logits"),
            self.expected.get("loss_fn.labels"),
        ) else {
            return Ok(());
        };
        let (logits, labels) = (&logits.to_device(device), &labels.to_device(device));
        out.insert("loss_fn.logits".into(), logits.shallow_clone());
        out.insert("loss_fn.labels".into(), labels.shallow_clone());
        for (name, loss_type) in [
            ("stablemax", LossType::StablemaxCrossEntropy),
            ("softmax", LossType::SoftmaxCrossEntropy),
        ] {
            let x = logits.detach().copy().set_requires_grad(true);
            let per = loss_type.per_token(&x, labels);
            per.sum(per.kind()).backward();
            out.insert(format!("loss_fn.{name}"), per.detach());
            out.insert(format!("loss_fn.{name}_grad"), x.grad().copy());
        }
        Ok(())
    }
}

fn record_step(
    out: &mut BTreeMap<String, Tensor>,
    p: &str,
    carry: &ActCarry,
    step: &hrm_act::ActOutput,
    loss: &Tensor,
    metrics: &Metrics,
) {
    out.insert(format!("{p}.logits"), step.logits.detach());
    out.insert(format!("{p}.q_halt_logits"), step.q_halt_logits.detach());
    out.insert(
        format!("{p}.q_continue_logits"),
        step.q_continue_logits.detach(),
    );
    out.insert(format!("{p}.halted"), carry.halted.shallow_clone());
    out.insert(format!("{p}.steps"), carry.steps.shallow_clone());
    out.insert(format!("{p}.all_finish"), carry.halted.all());
    out.insert(format!("{p}.loss"), loss.detach());
    let m = format!("{p}.metrics");
    out.insert(format!("{m}.count"), metrics.count.shallow_clone());
    out.insert(format!("{m}.accuracy"), metrics.accuracy.shallow_clone());
    out.insert(
        format!("{m}.exact_accuracy"),
        metrics.exact_accuracy.shallow_clone(),
    );
    out.insert(
        format!("{m}.q_halt_accuracy"),
        metrics.q_halt_accuracy.shallow_clone(),
    );
    out.insert(format!("{m}.steps"), metrics.steps.shallow_clone());
    out.insert(format!("{m}.lm_loss"), metrics.lm_loss.shallow_clone());
    if let Some(t) = &metrics.q_halt_loss {
        out.insert(format!("{m}.q_halt_loss"), t.shallow_clone());
    }
    if let Some(t) = &metrics.q_continue_loss {
        out.insert(format!("{m}.q_continue_loss"), t.shallow_clone());
    }
}
