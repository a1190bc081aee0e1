//! A batch as the ACT wrapper consumes it: inputs, labels and puzzle identifiers on the model's
//! device (the reference's `batch` dict).

use tch::{Device, Kind, Tensor};

use hrm_core::{CoreDims, CoreInput};

use crate::error::{ActError, Result};

/// The label value that is ignored by the loss and the metrics (`IGNORE_LABEL_ID`).
pub const IGNORE_LABEL_ID: i64 = -100;

/// Inputs, labels and identifiers of `b` examples, int64 on the model's device.
#[derive(Debug)]
pub struct ActBatch {
    /// `[b, S]` token ids.
    pub inputs: Tensor,
    /// `[b, S]` target ids, [`IGNORE_LABEL_ID`] where not scored.
    pub labels: Tensor,
    /// `[b]` puzzle identifiers.
    pub puzzle_identifiers: Tensor,
}

impl ActBatch {
    /// Builds a batch from host arrays, validating every value on the host first (see
    /// [`CoreInput::from_host`]); labels must be in `[0, V)` or [`IGNORE_LABEL_ID`].
    ///
    /// # Errors
    /// [`ActError::BatchShape`] for mismatched lengths, [`hrm_core::CoreError::InputRange`]
    /// (wrapped) for values the model cannot take.
    pub fn from_host(
        inputs: &[i32],
        labels: &[i32],
        puzzle_identifiers: &[i32],
        dims: &CoreDims,
        device: Device,
    ) -> Result<Self> {
        let input = CoreInput::from_host(inputs, puzzle_identifiers, dims, device)?;
        let b = puzzle_identifiers.len() as i64;
        if labels.len() != inputs.len() {
            return Err(ActError::BatchShape {
                name: "labels",
                expected: vec![b, dims.seq_len],
                found: vec![labels.len() as i64],
            });
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| {
            i64::from(l) != IGNORE_LABEL_ID && (l < 0 || i64::from(l) >= dims.vocab_size)
        }) {
            return Err(ActError::Core(hrm_core::CoreError::InputRange {
                name: "labels",
                reason: format!(
                    "label {l} at flat position {i} is outside [0, {}) and not -100",
                    dims.vocab_size
                ),
            }));
        }
        Ok(ActBatch {
            inputs: input.inputs,
            labels: Tensor::from_slice(labels)
                .view([b, dims.seq_len])
                .to_device(device)
                .to_kind(Kind::Int64),
            puzzle_identifiers: input.puzzle_identifiers,
        })
    }

    /// Wraps device tensors that are already validated (any integer kind; converted to int64).
    pub fn from_tensors(inputs: &Tensor, labels: &Tensor, puzzle_identifiers: &Tensor) -> Self {
        ActBatch {
            inputs: inputs.to_kind(Kind::Int64),
            labels: labels.to_kind(Kind::Int64),
            puzzle_identifiers: puzzle_identifiers.to_kind(Kind::Int64),
        }
    }

    /// Number of rows.
    pub fn batch_size(&self) -> i64 {
        self.puzzle_identifiers.size()[0]
    }

    /// The model's view of the batch (inputs and identifiers).
    pub fn core_input(&self) -> CoreInput {
        CoreInput {
            inputs: self.inputs.shallow_clone(),
            puzzle_identifiers: self.puzzle_identifiers.shallow_clone(),
        }
    }

    /// Rows where `take` (`[b]` bool) is true come from `fresh`, the others from `self`.
    pub fn merge_rows(&self, take: &Tensor, fresh: &ActBatch) -> ActBatch {
        let row = take.view([-1, 1]);
        ActBatch {
            inputs: fresh.inputs.where_self(&row, &self.inputs),
            labels: fresh.labels.where_self(&row, &self.labels),
            puzzle_identifiers: fresh
                .puzzle_identifiers
                .where_self(take, &self.puzzle_identifiers),
        }
    }

    /// An independent copy.
    pub fn copy(&self) -> ActBatch {
        ActBatch {
            inputs: self.inputs.copy(),
            labels: self.labels.copy(),
            puzzle_identifiers: self.puzzle_identifiers.copy(),
        }
    }

    /// Overwrites this batch's tensors in place with `other`'s values (same shapes), keeping
    /// their storage: how new data reaches a step captured in a CUDA graph.
    ///
    /// # Errors
    /// [`ActError::BatchShape`] when `other` has another shape.
    pub fn copy_from(&mut self, other: &ActBatch) -> Result<()> {
        for (name, dst, src) in [
            ("inputs", &mut self.inputs, &other.inputs),
            ("labels", &mut self.labels, &other.labels),
            (
                "puzzle_identifiers",
                &mut self.puzzle_identifiers,
                &other.puzzle_identifiers,
            ),
        ] {
            if dst.size() != src.size() {
                return Err(ActError::BatchShape {
                    name,
                    expected: dst.size(),
                    found: src.size(),
                });
            }
            if dst.data_ptr() != src.data_ptr() {
                dst.copy_(src);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(b: i64, s: i64, fill: i64) -> ActBatch {
        ActBatch {
            inputs: Tensor::full([b, s], fill, (Kind::Int64, Device::Cpu)),
            labels: Tensor::full([b, s], fill + 1, (Kind::Int64, Device::Cpu)),
            puzzle_identifiers: Tensor::full([b], fill + 2, (Kind::Int64, Device::Cpu)),
        }
    }

    #[test]
    fn copy_from_writes_in_place_and_refuses_other_shapes() {
        let mut dst = batch(2, 3, 0);
        let storage = dst.inputs.data_ptr();
        dst.copy_from(&batch(2, 3, 5)).expect("same shapes");
        assert_eq!(dst.inputs.data_ptr(), storage, "the storage is kept");
        assert_eq!(dst.inputs.int64_value(&[1, 2]), 5);
        assert_eq!(dst.labels.int64_value(&[0, 0]), 6);
        assert_eq!(dst.puzzle_identifiers.int64_value(&[1]), 7);
        let err = dst
            .copy_from(&batch(3, 3, 1))
            .expect_err("another batch size");
        assert!(
            matches!(err, ActError::BatchShape { name: "inputs", .. }),
            "{err}"
        );
        assert_eq!(dst.inputs.int64_value(&[0, 0]), 5, "nothing was written");
    }
}
