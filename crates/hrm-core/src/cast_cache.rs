//! The forward-dtype copy of a float32 parameter, made once per parameter version instead of at
//! every call.
//!
//! The reference's cast-on-use layers (`CastedLinear`, `CastedEmbedding` in `models/layers.py`)
//! cast their float32 weights to the forward dtype at every call. In HRM that is six times per
//! ACT step for every block weight, and almost all of those calls run under `no_grad` (every
//! update but the last L and H one, the Q-target pass, evaluation). A [`CastCache`] keeps the
//! bfloat16 copy and reuses it until the parameter changes: libtorch bumps a tensor's version
//! counter on every in-place write (the optimiser's step, a checkpoint load, an EMA swap), and
//! a new storage (a replaced tensor) has a new data pointer; either makes the next call cast
//! again. A call whose result needs a gradient casts through autograd as before, so the
//! gradient still reaches the float32 parameter (HRM uses each weight once per step that way).
//!
//! A CUDA-graph capture starts a new epoch of every cache when it begins and when it ends
//! ([`crate::cuda_graph`]): the captured step must make its own casts, and eager code must not
//! reuse a copy that lives in the graph's memory.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tch::{Kind, Tensor};

/// One cached cast: what it was made from and the copy.
#[derive(Debug)]
struct Entry {
    epoch: u64,
    kind: Kind,
    data_ptr: usize,
    version: i64,
    value: Tensor,
}

/// The cached forward-dtype copy of one parameter.
#[derive(Debug, Default)]
pub struct CastCache {
    slot: Mutex<Option<Entry>>,
}

impl CastCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// `param` in `kind`. The parameter itself when it already has that kind; a fresh cast
    /// recorded by autograd when gradients are being recorded for `param`; otherwise the cached
    /// copy, remade when the parameter's data pointer or version changed since it was made.
    pub fn get(&self, param: &Tensor, kind: Kind) -> Tensor {
        if param.kind() == kind {
            return param.shallow_clone();
        }
        if records_grad(param) {
            return param.to_kind(kind);
        }
        let data_ptr = param.data_ptr() as usize;
        let version = param.internal_version();
        let epoch = EPOCH.load(Ordering::Acquire);
        // A poisoned lock only means another thread panicked mid-update; the entry is then
        // either the old one or the new one, and the key check below decides whether to use it.
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = slot.as_ref() {
            if e.epoch == epoch && e.kind == kind && e.data_ptr == data_ptr && e.version == version
            {
                return e.value.shallow_clone();
            }
        }
        let value = tch::no_grad(|| param.to_kind(kind));
        *slot = Some(Entry {
            epoch,
            kind,
            data_ptr,
            version,
            value: value.shallow_clone(),
        });
        value
    }
}

/// The epoch every cached copy was made in; a copy from an older epoch is made again.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Makes every cache of the process cast again at its next use.
pub(crate) fn start_new_epoch() {
    EPOCH.fetch_add(1, Ordering::AcqRel);
}

/// Whether an op on `t` now would be recorded by autograd: `t` requires a gradient and grad
/// mode is on.
pub fn records_grad(t: &Tensor) -> bool {
    t.requires_grad() && grad_mode_enabled()
}

/// Whether grad mode is on in this thread. tch does not expose it, but an op's result requires
/// a gradient exactly when grad mode is on and an input requires one, so one operation on a
/// one-element probe answers the question (a view would not: views of a tensor that requires a
/// gradient require one even in no-grad mode).
pub fn grad_mode_enabled() -> bool {
    thread_local! {
        static PROBE: Tensor = Tensor::zeros([1], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
    }
    PROBE.with(|p| p.neg().requires_grad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_copy_until_the_parameter_changes() {
        let p = Tensor::from_slice(&[1.0f32, 2.0, 3.0]).set_requires_grad(true);
        let cache = CastCache::new();
        let (a, b) =
            tch::no_grad(|| (cache.get(&p, Kind::BFloat16), cache.get(&p, Kind::BFloat16)));
        assert_eq!(a.kind(), Kind::BFloat16);
        assert_eq!(a.data_ptr(), b.data_ptr(), "second call reuses the copy");
        // An optimiser-style in-place update bumps the version: the next call casts again.
        tch::no_grad(|| {
            let _ = p.shallow_clone().g_add_scalar_(1.0);
        });
        let c = tch::no_grad(|| cache.get(&p, Kind::BFloat16));
        assert_ne!(a.data_ptr(), c.data_ptr());
        assert_eq!(
            Vec::<f32>::try_from(c.to_kind(Kind::Float)).expect("f32"),
            vec![2.0, 3.0, 4.0]
        );
        // Same kind: the parameter itself.
        let same = cache.get(&p, Kind::Float);
        assert_eq!(same.data_ptr(), p.data_ptr());
    }

    #[test]
    fn a_new_epoch_makes_the_copy_again() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let cache = CastCache::new();
        let a = tch::no_grad(|| cache.get(&p, Kind::BFloat16));
        start_new_epoch();
        let b = tch::no_grad(|| cache.get(&p, Kind::BFloat16));
        assert_ne!(a.data_ptr(), b.data_ptr(), "a new epoch casts again");
        let c = tch::no_grad(|| cache.get(&p, Kind::BFloat16));
        assert_eq!(b.data_ptr(), c.data_ptr(), "and then reuses the new copy");
    }

    #[test]
    fn a_recorded_call_casts_through_autograd() {
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let cache = CastCache::new();
        let _ = tch::no_grad(|| cache.get(&p, Kind::BFloat16)); // fills the cache
        assert!(records_grad(&p));
        assert!(!tch::no_grad(|| records_grad(&p)));
        let w = cache.get(&p, Kind::BFloat16);
        assert!(w.requires_grad());
        (w.to_kind(Kind::Float) * 3.0).sum(Kind::Float).backward();
        assert_eq!(Vec::<f32>::try_from(p.grad()).expect("f32"), vec![3.0, 3.0]);
    }
}
