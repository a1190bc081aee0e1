//! Data-parallel training over a process group, with the semantics of the reference's
//! `pretrain.py` (`torch.distributed` with one process per device):
//!
//! - each rank takes its slice `[rank * B / W, (rank + 1) * B / W)` of every global batch (all
//!   ranks draw the same global batches: the sampler is seeded alike everywhere);
//! - rank 0's initial parameters are broadcast to every rank;
//! - after the backward of `loss / global_batch_size` the network's gradients are summed over
//!   the ranks (one all-reduce of a flat buffer), so every rank takes the same AdamATan2 step;
//! - the puzzle-embedding gradients and identifiers of every rank are gathered before the
//!   sign-SGD, as `CastedSparseEmbeddingSignSGD_Distributed` does, so every rank updates its
//!   table alike;
//! - random draws (exploration) are seeded `seed + rank`;
//! - evaluation is sharded the same way and its sums reduced; ARC voting sees every rank's
//!   predictions;
//! - only rank 0 writes the run directory.
//!
//! A world of one process needs none of this: [`DataParallel`] is only built for more.

use std::cell::Cell;
use std::ops::Range;
use std::rc::Rc;
use std::time::Instant;

use tch::{Kind, Tensor};

use hrm_act::{ActBatch, ActCarry, MetricValues};
use hrm_core::{InnerCarry, ModelParams};
use hrm_dist::ProcessGroup;

use crate::error::{Result, TrainError};

/// This process's place in a data-parallel run, and the collectives the loop needs.
#[derive(Debug, Clone)]
pub struct DataParallel {
    group: Rc<ProcessGroup>,
    /// Seconds spent in collectives so far (all clones of this value share it).
    communication: Rc<Cell<f64>>,
}

impl DataParallel {
    /// Data parallelism over `group` (shared by the options, the optimisers and the
    /// evaluation of one training thread: a process group is not `Sync`).
    pub fn new(group: Rc<ProcessGroup>) -> Self {
        DataParallel {
            group,
            communication: Rc::new(Cell::new(0.0)),
        }
    }

    /// Seconds this process has spent in collectives (waiting for the slowest rank included).
    pub fn communication_seconds(&self) -> f64 {
        self.communication.get()
    }

    /// Runs a collective, adding its time to [`DataParallel::communication_seconds`].
    fn timed<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let out = f();
        self.communication
            .set(self.communication.get() + start.elapsed().as_secs_f64());
        out
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// The number of processes.
    pub fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// Whether this is rank 0, the one that writes.
    pub fn is_main(&self) -> bool {
        self.group.is_main()
    }

    /// The process group.
    pub fn group(&self) -> &ProcessGroup {
        &self.group
    }

    /// This rank's rows of a global batch of `global` rows.
    ///
    /// # Errors
    /// [`TrainError::Config`] (key `global_batch_size`) when `global` does not divide by the
    /// world size, as the reference requires.
    pub fn local_rows(&self, global: usize) -> Result<Range<usize>> {
        let w = self.world_size();
        if global % w != 0 || global == 0 {
            return Err(TrainError::Config {
                key: "global_batch_size".into(),
                reason: format!(
                    "{global} rows cannot be split evenly over {w} processes; choose a multiple \
                     of the world size"
                ),
            });
        }
        let local = global / w;
        Ok(self.rank() * local..(self.rank() + 1) * local)
    }

    /// Copies rank 0's parameters, buffers and puzzle table to every rank.
    ///
    /// # Errors
    /// A failed collective (a lost peer, a timeout), naming the rank where it can.
    pub fn broadcast_parameters(&self, params: &ModelParams) -> Result<()> {
        let _guard = tch::no_grad_guard();
        for (_, t) in params.all() {
            let mut t = t.shallow_clone();
            self.group.broadcast(&mut t, 0)?;
        }
        Ok(())
    }

    /// Sums the gradients of `params` over the ranks, in place. Parameters without a
    /// gradient on this rank take part with zeros, so that every rank reduces the same list.
    ///
    /// # Errors
    /// A failed collective.
    pub fn all_reduce_gradients<'a>(
        &self,
        params: impl IntoIterator<Item = &'a Tensor>,
    ) -> Result<()> {
        let mut grads: Vec<Tensor> = Vec::new();
        for p in params {
            let mut g = p.grad();
            if !g.defined() {
                // A backward of `0 * sum(p)` gives `p` a zero gradient for the sum to land in.
                (p * 0.0).sum(p.kind()).backward();
                g = p.grad();
            }
            grads.push(g);
        }
        let mut by_kind: Vec<(Kind, Vec<Tensor>)> = Vec::new();
        for g in grads {
            let kind = g.kind();
            match by_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, list)) => list.push(g),
                None => by_kind.push((kind, vec![g])),
            }
        }
        self.timed(|| {
            for (_, mut list) in by_kind {
                self.group.all_reduce_many(&mut list)?;
            }
            Ok(())
        })
    }

    /// Every rank's puzzle-embedding gradient rows `[b, Dp]` and identifiers `[b]`, stacked
    /// in rank order: `([W * b, Dp], [W * b])`.
    ///
    /// # Errors
    /// A failed collective, or ranks with different local batch sizes.
    pub fn gather_puzzle_gradients(
        &self,
        local: &Tensor,
        ids: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        self.timed(|| {
            let grads = self.group.all_gather(&local.contiguous())?.flatten(0, 1);
            let ids = self
                .group
                .all_gather(&ids.to_kind(Kind::Int64).contiguous())?
                .flatten(0, 1);
            Ok((grads, ids))
        })
    }

    /// Every rank's rows of `t` (`[b, ...]`) stacked in rank order: `[W * b, ...]`, the global
    /// batch's layout (a carry gathered for a checkpoint, predictions for voting).
    ///
    /// # Errors
    /// A failed collective, or ranks with different shapes.
    pub fn gather_rows(&self, t: &Tensor) -> Result<Tensor> {
        Ok(self.group.all_gather(&t.contiguous())?.flatten(0, 1))
    }

    /// Sums metric values over the ranks (every rank must hold the same names).
    ///
    /// # Errors
    /// A failed collective.
    pub fn sum_metrics(&self, values: &MetricValues) -> Result<MetricValues> {
        let names: Vec<&String> = values.0.keys().collect();
        let data: Vec<f64> = values.0.values().copied().collect();
        let mut t = Tensor::from_slice(&data).to_device(self.group.device());
        self.timed(|| Ok(self.group.all_reduce(&mut t)?))?;
        let summed: Vec<f64> = Vec::try_from(t.to_device(tch::Device::Cpu))?;
        Ok(MetricValues(
            names.into_iter().cloned().zip(summed).collect(),
        ))
    }

    /// Whether any rank asks to stop: every rank must leave the loop at the same step, or the
    /// others would wait in the next all-reduce until the timeout.
    ///
    /// # Errors
    /// A failed collective.
    pub fn any(&self, flag: bool) -> Result<bool> {
        let mut t = Tensor::from_slice(&[i64::from(flag)]).to_device(self.group.device());
        self.timed(|| Ok(self.group.all_reduce(&mut t)?))?;
        Ok(t.int64_value(&[0]) > 0)
    }
}

/// Every rank's ACT carry stacked into the global batch's layout (rank 0's rows first), the form
/// a checkpoint stores: it resumes on any world size that divides the batch.
///
/// # Errors
/// A failed collective.
pub fn gather_carry(dp: &DataParallel, carry: &ActCarry) -> Result<ActCarry> {
    Ok(ActCarry {
        inner: InnerCarry {
            z_h: dp.gather_rows(&carry.inner.z_h)?,
            z_l: dp.gather_rows(&carry.inner.z_l)?,
        },
        steps: dp.gather_rows(&carry.steps)?,
        halted: dp.gather_rows(&carry.halted)?,
        current_data: ActBatch {
            inputs: dp.gather_rows(&carry.current_data.inputs)?,
            labels: dp.gather_rows(&carry.current_data.labels)?,
            puzzle_identifiers: dp.gather_rows(&carry.current_data.puzzle_identifiers)?,
        },
    })
}

/// This rank's rows of a carry stored in the global batch's layout.
///
/// # Errors
/// [`TrainError::Checkpoint`] when the stored carry's rows do not divide by the world size.
pub fn local_carry(dp: &DataParallel, global: &ActCarry) -> Result<ActCarry> {
    let b = global.steps.size().first().copied().unwrap_or(0).max(0) as usize;
    let rows = dp.local_rows(b).map_err(|_| {
        TrainError::Checkpoint(format!(
            "the stored carry has {b} rows, which do not split over {} processes",
            dp.world_size()
        ))
    })?;
    let (start, len) = (rows.start as i64, rows.len() as i64);
    let take = |t: &Tensor| t.narrow(0, start, len).contiguous();
    Ok(ActCarry {
        inner: InnerCarry {
            z_h: take(&global.inner.z_h),
            z_l: take(&global.inner.z_l),
        },
        steps: take(&global.steps),
        halted: take(&global.halted),
        current_data: ActBatch {
            inputs: take(&global.current_data.inputs),
            labels: take(&global.current_data.labels),
            puzzle_identifiers: take(&global.current_data.puzzle_identifiers),
        },
    })
}
