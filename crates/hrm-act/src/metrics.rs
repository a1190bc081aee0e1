//! The reference's metrics of one step (`ACTLossHead.forward`), as raw sums over the batch.
//!
//! Per row: `mask = labels != -100`, `n = sum(mask)`, `correct = mask & argmax == label`,
//! `seq_correct = sum(correct) == n`, `valid = halted & n > 0`. Only valid rows count:
//! `count`, `accuracy` (sum of per-row token accuracies), `exact_accuracy`, `q_halt_accuracy`
//! (`(q_halt >= 0) == seq_correct`), `steps`. The losses cover every row. [`MetricValues::reduce_train`]
//! applies the reference's normalisation for logging.

use std::collections::BTreeMap;

use tch::{Kind, Tensor};

use crate::inputs::LossInputs;

/// One step's metrics as device scalars (no host synchronisation until read).
#[derive(Debug)]
pub struct Metrics {
    /// Valid rows, int64.
    pub count: Tensor,
    /// Sum over valid rows of the token accuracy, float32.
    pub accuracy: Tensor,
    /// Valid rows predicted exactly, int64.
    pub exact_accuracy: Tensor,
    /// Valid rows whose halt sign agrees with exactness, int64.
    pub q_halt_accuracy: Tensor,
    /// Sum of steps over valid rows, int64.
    pub steps: Tensor,
    /// LM loss (all rows), float64.
    pub lm_loss: Tensor,
    /// Q-halt BCE (all rows), float32; absent for models without a Q head.
    pub q_halt_loss: Option<Tensor>,
    /// Q-continue BCE, float32; training with a continue target only.
    pub q_continue_loss: Option<Tensor>,
}

impl Metrics {
    /// `(counts [b], seq_correct [b], metrics without losses)` of a step.
    pub(crate) fn token_stats(x: &LossInputs<'_>) -> (Tensor, Tensor, Metrics) {
        let mask = x.labels.ne(crate::batch::IGNORE_LABEL_ID); // [b, S]
        let counts = mask.sum_dim_intlist(-1, false, Kind::Int64); // [b]
        let pred = x.logits.argmax(-1, false); // [b, S]
        let correct = mask.logical_and(&pred.eq_tensor(x.labels));
        let n_correct = correct.sum_dim_intlist(-1, false, Kind::Int64);
        let seq_correct = n_correct.eq_tensor(&counts); // [b]
        let valid = x.halted.logical_and(&counts.gt(0));
        let divisor = counts.clamp_min(1).unsqueeze(-1);
        let token_acc =
            (correct.to_kind(Kind::Float) / &divisor).sum_dim_intlist(-1, false, Kind::Float);
        let zero_f = token_acc.zeros_like();
        let accuracy = token_acc.where_self(&valid, &zero_f).sum(Kind::Float);
        let q_halt_accuracy = match x.q_halt_logits {
            Some(q) => valid
                .logical_and(&q.ge(0.0).eq_tensor(&seq_correct))
                .sum(Kind::Int64),
            None => Tensor::zeros([], (Kind::Int64, x.labels.device())),
        };
        let steps = x.steps.to_kind(Kind::Int64);
        let metrics = Metrics {
            count: valid.sum(Kind::Int64),
            accuracy,
            exact_accuracy: valid.logical_and(&seq_correct).sum(Kind::Int64),
            q_halt_accuracy,
            steps: steps
                .where_self(&valid, &steps.zeros_like())
                .sum(Kind::Int64),
            lm_loss: Tensor::zeros([], (Kind::Double, x.labels.device())),
            q_halt_loss: None,
            q_continue_loss: None,
        };
        (counts, seq_correct, metrics)
    }

    pub(crate) fn with_losses(
        self,
        lm_loss: Tensor,
        q_halt_loss: Option<Tensor>,
        q_continue_loss: Option<Tensor>,
    ) -> Self {
        Metrics {
            lm_loss,
            q_halt_loss,
            q_continue_loss,
            ..self
        }
    }

    /// An independent copy (new storage), e.g. of metrics a CUDA graph's next replay rewrites.
    pub fn copy(&self) -> Metrics {
        Metrics {
            count: self.count.copy(),
            accuracy: self.accuracy.copy(),
            exact_accuracy: self.exact_accuracy.copy(),
            q_halt_accuracy: self.q_halt_accuracy.copy(),
            steps: self.steps.copy(),
            lm_loss: self.lm_loss.copy(),
            q_halt_loss: self.q_halt_loss.as_ref().map(Tensor::copy),
            q_continue_loss: self.q_continue_loss.as_ref().map(Tensor::copy),
        }
    }

    /// The metrics by the reference's names, read to the host in one transfer.
    pub fn to_host(&self) -> MetricValues {
        let mut names = vec![
            "count",
            "accuracy",
            "exact_accuracy",
            "q_halt_accuracy",
            "steps",
            "lm_loss",
        ];
        let mut parts = vec![
            &self.count,
            &self.accuracy,
            &self.exact_accuracy,
            &self.q_halt_accuracy,
            &self.steps,
            &self.lm_loss,
        ];
        if let Some(t) = &self.q_halt_loss {
            names.push("q_halt_loss");
            parts.push(t);
        }
        if let Some(t) = &self.q_continue_loss {
            names.push("q_continue_loss");
            parts.push(t);
        }
        let stacked = Tensor::stack(
            &parts
                .iter()
                .map(|t| t.to_kind(Kind::Double))
                .collect::<Vec<_>>(),
            0,
        );
        let values: Vec<f64> =
            Vec::try_from(stacked.to_device(tch::Device::Cpu)).unwrap_or_default();
        MetricValues(names.into_iter().map(String::from).zip(values).collect())
    }
}

/// Metric values on the host, by name. In JSON a non-finite value is written as a string
/// (`"NaN"`, `"Infinity"`, `"-Infinity"`, see [`json_f64`]), so a log line of a diverged step
/// stays readable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricValues(pub BTreeMap<String, f64>);

impl serde::Serialize for MetricValues {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, &JsonF64(*v))?;
        }
        map.end()
    }
}

impl<'de> serde::Deserialize<'de> for MetricValues {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<String, JsonF64>::deserialize(d)?;
        Ok(MetricValues(
            map.into_iter().map(|(k, JsonF64(v))| (k, v)).collect(),
        ))
    }
}

/// A float that survives JSON: finite values as numbers, NaN and the infinities as the strings
/// `"NaN"`, `"Infinity"` and `"-Infinity"` (JSON has no literal for them, and `serde_json` would
/// write `null`, which no reader takes back as a number). Reading also accepts `null` as NaN, as
/// logs written before this rule hold it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JsonF64(pub f64);

impl serde::Serialize for JsonF64 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        json_f64::serialize(&self.0, s)
    }
}

impl<'de> serde::Deserialize<'de> for JsonF64 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        json_f64::deserialize(d).map(JsonF64)
    }
}

/// `#[serde(with = "hrm_act::metrics::json_f64")]` for an `f64` field, with the rules of
/// [`JsonF64`].
pub mod json_f64 {
    use std::fmt;

    /// Writes a finite value as a number, the others as `"NaN"`, `"Infinity"`, `"-Infinity"`.
    ///
    /// # Errors
    /// The serializer's.
    pub fn serialize<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else if v.is_nan() {
            s.serialize_str("NaN")
        } else if *v > 0.0 {
            s.serialize_str("Infinity")
        } else {
            s.serialize_str("-Infinity")
        }
    }

    /// Reads a number, one of the strings [`serialize`] writes (case-insensitive, also `inf`
    /// and `nan`), or `null` (NaN).
    ///
    /// # Errors
    /// Any other value, named in the message.
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        d.deserialize_any(Visitor)
    }

    struct Visitor;

    impl serde::de::Visitor<'_> for Visitor {
        type Value = f64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
        }
        fn visit_f64<E>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }
        fn visit_i64<E>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_u64<E>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }
        fn visit_unit<E>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }
        fn visit_none<E>(self) -> Result<f64, E> {
            Ok(f64::NAN)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<f64, E> {
            match v.to_ascii_lowercase().as_str() {
                "nan" | "-nan" | "+nan" => Ok(f64::NAN),
                "infinity" | "+infinity" | "inf" | "+inf" => Ok(f64::INFINITY),
                "-infinity" | "-inf" => Ok(f64::NEG_INFINITY),
                _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
            }
        }
    }
}

impl MetricValues {
    /// A value, 0 when absent.
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    /// Adds `other` into `self` name by name (evaluation sums over batches).
    pub fn accumulate(&mut self, other: &MetricValues) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0.0) += v;
        }
    }

    /// The reference's normalisation for a training log line: names ending in `loss` divided by
    /// `global_batch_size`, the others by `max(count, 1)`; `count` itself is kept.
    pub fn reduce_train(&self, global_batch_size: usize) -> MetricValues {
        let count = self.get("count").max(1.0);
        MetricValues(
            self.0
                .iter()
                .map(|(k, v)| {
                    let value = if k == "count" {
                        *v
                    } else if k.ends_with("loss") {
                        v / global_batch_size as f64
                    } else {
                        v / count
                    };
                    (k.clone(), value)
                })
                .collect(),
        )
    }

    /// The reference's normalisation of evaluation sums: every metric divided by the summed
    /// `count`; `count` itself is kept.
    pub fn reduce_eval(&self) -> MetricValues {
        let count = self.get("count").max(1.0);
        MetricValues(
            self.0
                .iter()
                .map(|(k, v)| (k.clone(), if k == "count" { *v } else { v / count }))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_round_trip_through_json() {
        let values = MetricValues(
            [
                ("a".to_string(), 1.5),
                ("b".to_string(), f64::NAN),
                ("c".to_string(), f64::INFINITY),
                ("d".to_string(), f64::NEG_INFINITY),
            ]
            .into_iter()
            .collect(),
        );
        let text = serde_json::to_string(&values).expect("serialise");
        assert_eq!(
            text,
            r#"{"a":1.5,"b":"NaN","c":"Infinity","d":"-Infinity"}"#
        );
        let back: MetricValues = serde_json::from_str(&text).expect("read back");
        assert_eq!(back.get("a"), 1.5);
        assert!(back.get("b").is_nan());
        assert_eq!(back.get("c"), f64::INFINITY);
        assert_eq!(back.get("d"), f64::NEG_INFINITY);
        // Logs written before non-finite values became strings hold `null`: read as NaN.
        let old: MetricValues = serde_json::from_str(r#"{"x":null,"y":2}"#).expect("null");
        assert!(old.get("x").is_nan());
        assert_eq!(old.get("y"), 2.0);
        let err = serde_json::from_str::<MetricValues>(r#"{"x":"lots"}"#).expect_err("a word");
        assert!(err.to_string().contains("lots"), "{err}");
    }
}
