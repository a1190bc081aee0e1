//! Which CPU kernel computes a linear layer `x W^T (+ b)`: BLAS through libtorch's `linear`, or
//! oneDNN through a 1x1 convolution over channels-last activations. Chosen per shape by timing
//! both on this host, once per process.
//!
//! Why two routes: on x86 CPUs libtorch's float32 `linear` calls MKL, which runs only its AVX2
//! kernels on AMD processors, while its convolutions run through oneDNN, which uses AVX-512
//! where the CPU has it; in bfloat16 the two call different oneDNN/MKL kernels. A 1x1
//! convolution is the same product with float32 accumulation. Which is faster depends on the
//! host (2.2x in favour of oneDNN on one host, 15 % on another) and on the shape, so no fixed
//! rule is right everywhere: the first call of each shape (batch, sequence, in, out, dtype,
//! bias, with or without backward) times both routes on that shape, with constant data (the
//! random generator is not touched, so seeded runs stay reproducible), and every later call of
//! the shape takes the faster one. The two are timed in alternating rounds and compared by the
//! median of the per-round ratios, which a burst of load on a shared host (hitting one round)
//! does not move; a near tie goes to the lower best time ([`CLEAR_MARGIN`]).
//!
//! `HRM_CPU_LINEAR=blas` or `HRM_CPU_LINEAR=onednn` in the environment skips the timing and
//! forces a route (`auto`, or unset, times). The two routes differ by float32 rounding (well
//! inside the golden tolerances), but a near tie may be decided differently in two processes,
//! and a training run amplifies any difference. So a run that must compute in a new process
//! exactly what it computed before (a resumed training run) records the decisions
//! ([`decisions`]) and pins them in the new process ([`pin`]) before its first call; a pinned
//! shape is never timed. CUDA tensors, 2-d inputs and other dtypes always take `linear`.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::config::ForwardDtype;
use crate::error::{CoreError, Result};

/// The environment variable that forces a route.
pub const ENV_VAR: &str = "HRM_CPU_LINEAR";

/// A clear win: oneDNN is chosen when the median of its per-round time ratios to BLAS is below
/// this, BLAS when it is above the inverse; in between, the route with the lower best time.
pub const CLEAR_MARGIN: f64 = 0.97;

/// Timed rounds per shape (after one untimed call of each route); each round times both.
const TIMED_ROUNDS: usize = 5;

/// A kernel route for a linear layer; serialised by its [`LinearRoute::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinearRoute {
    /// libtorch's `linear` (MKL or oneDNN matmul, as libtorch dispatches it).
    Blas,
    /// A 1x1 convolution over channels-last activations (oneDNN).
    OneDnn,
}

impl LinearRoute {
    /// `blas` or `onednn`.
    pub fn name(self) -> &'static str {
        match self {
            LinearRoute::Blas => "blas",
            LinearRoute::OneDnn => "onednn",
        }
    }

    /// The route forced by `HRM_CPU_LINEAR`: `None` when it is unset, empty or `auto` (time
    /// each shape).
    ///
    /// # Errors
    /// [`CoreError::Config`] naming the variable when it holds anything else; the layers then
    /// time the routes as if it were unset, so an application should call this at start-up to
    /// report the mistake.
    pub fn from_env() -> Result<Option<LinearRoute>> {
        match std::env::var(ENV_VAR) {
            Ok(v) if !(v.is_empty() || v == "auto") => v.parse().map(Some),
            _ => Ok(None),
        }
    }
}

impl std::fmt::Display for LinearRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LinearRoute {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "blas" => Ok(LinearRoute::Blas),
            "onednn" => Ok(LinearRoute::OneDnn),
            other => Err(CoreError::Config {
                key: ENV_VAR,
                reason: format!("`{other}` is not one of blas, onednn, auto"),
            }),
        }
    }
}

/// What a route decision is keyed on: the shape and dtype of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RouteKey {
    /// `[b, s, in]` of the input.
    pub input: [i64; 3],
    /// Output features.
    pub out_features: i64,
    /// Input and weight dtype.
    pub dtype: ForwardDtype,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// Whether the call records a graph (the timing then includes the backward pass).
    pub backward: bool,
}

/// One decision: the key, the route and, when it was timed, the best time of each route.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteDecision {
    /// The shape it applies to.
    pub key: RouteKey,
    /// The route every call of that shape takes.
    pub route: LinearRoute,
    /// `(blas, onednn)` best times; `None` when the route was forced.
    pub timings: Option<(Duration, Duration)>,
}

fn decisions_map() -> &'static Mutex<HashMap<RouteKey, RouteDecision>> {
    static MAP: OnceLock<Mutex<HashMap<RouteKey, RouteDecision>>> = OnceLock::new();
    MAP.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Every decision made so far in this process (for reports, tuning and [`pin`]), sorted by key
/// so that two processes with the same decisions list them alike.
pub fn decisions() -> Vec<RouteDecision> {
    let map = decisions_map().lock().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<RouteDecision> = map.values().copied().collect();
    all.sort_by_key(|d| d.key);
    all
}

/// Fixes the route of `key` for the rest of the process: later calls of that shape take
/// `route` without timing, replacing any earlier decision (a process restoring a run pins
/// before its first forward, so nothing has been computed with the old one). An environment
/// override (`HRM_CPU_LINEAR=blas|onednn`) still wins: pinning never changes what a user forced.
pub fn pin(key: RouteKey, route: LinearRoute) {
    if LinearRoute::from_env().ok().flatten().is_some() {
        return;
    }
    let mut map = decisions_map().lock().unwrap_or_else(|e| e.into_inner());
    map.insert(
        key,
        RouteDecision {
            key,
            route,
            timings: None,
        },
    );
}

/// The dtype of a call that may take the convolution route at all: a `[b, s, in]` input in
/// float32 or bfloat16 on an x86-64 CPU.
fn eligible(x: &Tensor) -> Option<ForwardDtype> {
    if cfg!(target_arch = "x86_64") && x.device() == Device::Cpu && x.dim() == 3 {
        ForwardDtype::from_kind(x.kind())
    } else {
        None
    }
}

/// `x W^T (+ b)` by the route chosen for this shape (timing both the first time it is seen).
/// `backward` says whether the call records a graph.
///
/// # Shapes
/// `x: [..., in]`, `w: [out, in]`, `bias: [out]` -> `[..., out]`.
pub fn linear(x: &Tensor, w: &Tensor, bias: Option<&Tensor>, backward: bool) -> Tensor {
    let Some(dtype) = eligible(x) else {
        return x.linear(w, bias);
    };
    let size = x.size();
    let key = RouteKey {
        input: [size[0], size[1], size[2]],
        out_features: w.size()[0],
        dtype,
        bias: bias.is_some(),
        backward,
    };
    apply(route_for(key), x, w, bias)
}

/// The route of `key`: forced by the environment, decided earlier, or timed now.
fn route_for(key: RouteKey) -> LinearRoute {
    let mut map = decisions_map().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(d) = map.get(&key) {
        return d.route;
    }
    let decision = match LinearRoute::from_env().ok().flatten() {
        Some(route) => RouteDecision {
            key,
            route,
            timings: None,
        },
        None => {
            let timing = time_routes(key);
            RouteDecision {
                key,
                route: timing.winner(),
                timings: Some((timing.best[0], timing.best[1])),
            }
        }
    };
    map.insert(key, decision);
    decision.route
}

/// The timing of both routes on one shape: the best time of each and the per-round ratios.
#[derive(Debug, Clone)]
struct RouteTiming {
    /// `[blas, onednn]` best times.
    best: [Duration; 2],
    /// Per round, oneDNN's time over BLAS's.
    ratios: Vec<f64>,
}

impl RouteTiming {
    /// The route that wins clearly by the median ratio, else the one with the lower best time.
    fn winner(&self) -> LinearRoute {
        let mut r = self.ratios.clone();
        r.sort_by(f64::total_cmp);
        let median = r.get(r.len() / 2).copied().unwrap_or(1.0);
        if median < CLEAR_MARGIN {
            LinearRoute::OneDnn
        } else if median > 1.0 / CLEAR_MARGIN || self.best[0] <= self.best[1] {
            LinearRoute::Blas
        } else {
            LinearRoute::OneDnn
        }
    }
}

/// Times the two routes on `key`'s shape in alternating rounds, so that a change of load on a
/// shared host hits both alike.
fn time_routes(key: RouteKey) -> RouteTiming {
    let opts = (key.dtype.kind(), Device::Cpu);
    let [b, s, inp] = key.input;
    let out = key.out_features;
    // Constant data: the kernels' speed does not depend on the values (no denormals here), and
    // drawing random numbers would shift the caller's seeded stream.
    let x = Tensor::full([b, s, inp], 0.5, opts);
    let w = Tensor::full([out, inp], 0.01, opts);
    let bias = key.bias.then(|| Tensor::zeros([out], opts));
    let grad_out = Tensor::full([b, s, out], 1e-3, opts);
    let once = |route: LinearRoute| -> Duration {
        let start = Instant::now();
        if key.backward {
            tch::with_grad(|| {
                let x = x.detach().set_requires_grad(true);
                let w = w.detach().set_requires_grad(true);
                let bias = bias.as_ref().map(|t| t.detach().set_requires_grad(true));
                // `y * g` summed: the backward pass receives a dense gradient, as in training.
                let y = apply(route, &x, &w, bias.as_ref());
                (y * &grad_out).sum(Kind::Float).backward();
            });
        } else {
            tch::no_grad(|| drop(apply(route, &x, &w, bias.as_ref())));
        }
        start.elapsed()
    };
    let routes = [LinearRoute::Blas, LinearRoute::OneDnn];
    for route in routes {
        once(route);
    }
    let mut best = [Duration::MAX; 2];
    let mut ratios = Vec::with_capacity(TIMED_ROUNDS);
    for round in 0..TIMED_ROUNDS {
        // Alternate which route goes first: the first of a pair may find colder caches.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        let mut t = [Duration::ZERO; 2];
        for i in order {
            t[i] = once(routes[i]);
            best[i] = best[i].min(t[i]);
        }
        ratios.push(t[1].as_secs_f64() / t[0].as_secs_f64().max(1e-12));
    }
    RouteTiming { best, ratios }
}

/// `x W^T (+ b)` by `route`.
///
/// # Shapes
/// `x: [b, s, in]`, `w: [out, in]`, `bias: [out]` -> `[b, s, out]`.
pub fn apply(route: LinearRoute, x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    match route {
        LinearRoute::Blas => x.linear(w, bias),
        LinearRoute::OneDnn => linear_as_conv(x, w, bias),
    }
}

/// `x W^T (+ b)` as a 1x1 convolution: the batch is the convolution's batch, the sequence its
/// height, the features its channels. libtorch sends a large-enough convolution (a batch of 16
/// or more, or more than one thread) to oneDNN and smaller ones to its generic kernel; both
/// give the linear layer's result.
///
/// # Shapes
/// `x: [b, s, in]`, `w: [out, in]`, `bias: [out]` -> `[b, s, out]`, contiguous.
fn linear_as_conv(x: &Tensor, w: &Tensor, bias: Option<&Tensor>) -> Tensor {
    let (out, inp) = w.size2().unwrap_or_default();
    // [b, s, in] -> [b, in, s, 1]: an NCHW view whose memory is channels-last (NHWC), so no copy.
    let images = x.unsqueeze(2).permute([0, 3, 1, 2]);
    let y = images.conv2d(&w.view([out, inp, 1, 1]), bias, [1, 1], [0, 0], [1, 1], 1);
    // [b, out, s, 1], channels-last -> [b, s, out]; contiguous unless a kernel chose NCHW, and
    // then `contiguous` makes the one copy later layers would otherwise each make.
    y.permute([0, 2, 3, 1]).squeeze_dim(2).contiguous()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_routes_match_linear_with_gradients() {
        tch::manual_seed(3);
        let w = Tensor::randn([40, 48], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        let bias = Tensor::randn([40], (Kind::Float, Device::Cpu)).set_requires_grad(true);
        // Batch 20 takes oneDNN, batch 3 (single-threaded) libtorch's generic convolution.
        for b in [20, 3] {
            let x = Tensor::randn([b, 7, 48], (Kind::Float, Device::Cpu)).set_requires_grad(true);
            let slow = x.linear(&w, Some(&bias));
            let g_slow =
                Tensor::run_backward(&[slow.sum(Kind::Float)], &[&x, &w, &bias], false, false);
            for route in [LinearRoute::Blas, LinearRoute::OneDnn] {
                let fast = apply(route, &x, &w, Some(&bias));
                assert!(fast.is_contiguous());
                let diff = (&fast - &slow).abs().max().double_value(&[]);
                assert!(diff < 1e-5, "{route} batch {b}: forward differs by {diff}");
                let g_fast =
                    Tensor::run_backward(&[fast.sum(Kind::Float)], &[&x, &w, &bias], false, false);
                for (a, e) in g_fast.iter().zip(&g_slow) {
                    let diff = (a - e).abs().max().double_value(&[]);
                    assert!(diff < 1e-4, "{route} batch {b}: gradient differs by {diff}");
                }
            }
        }
    }

    #[test]
    fn a_shape_is_timed_once_and_keeps_its_route() {
        let w = Tensor::full([6, 5], 0.1, (Kind::Float, Device::Cpu));
        let x = Tensor::full([2, 3, 5], 1.0, (Kind::Float, Device::Cpu));
        let y = tch::no_grad(|| linear(&x, &w, None, false));
        assert_eq!(y.size(), vec![2, 3, 6]);
        let key = RouteKey {
            input: [2, 3, 5],
            out_features: 6,
            dtype: ForwardDtype::Float32,
            bias: false,
            backward: false,
        };
        let first = decisions()
            .into_iter()
            .find(|d| d.key == key)
            .expect("decided");
        if LinearRoute::from_env().ok().flatten().is_none() {
            let (blas, onednn) = first.timings.expect("timed");
            assert!(blas > Duration::ZERO && onednn > Duration::ZERO);
        }
        let _ = tch::no_grad(|| linear(&x, &w, None, false));
        let again: Vec<_> = decisions().into_iter().filter(|d| d.key == key).collect();
        assert_eq!(again, vec![first]);
        // That the timing leaves the random stream alone is checked in its own process
        // (tests/linear_route_rng.rs): other unit tests draw from the same global generator on
        // parallel threads.
    }

    #[test]
    fn the_median_ratio_decides_and_a_tie_goes_to_the_best_time() {
        let ms = Duration::from_millis;
        let t = |blas, onednn, ratios: &[f64]| RouteTiming {
            best: [ms(blas), ms(onednn)],
            ratios: ratios.to_vec(),
        };
        // One round spoiled by load does not decide: the median does.
        assert_eq!(
            t(10, 8, &[0.8, 0.8, 5.0, 0.85, 0.8]).winner(),
            LinearRoute::OneDnn
        );
        assert_eq!(
            t(8, 10, &[1.2, 1.25, 0.1, 1.3, 1.2]).winner(),
            LinearRoute::Blas
        );
        // A near tie: the lower best time.
        assert_eq!(t(10, 9, &[1.0, 0.99, 1.01]).winner(), LinearRoute::OneDnn);
        assert_eq!(t(9, 10, &[1.0, 0.99, 1.01]).winner(), LinearRoute::Blas);
    }

    #[test]
    fn a_pinned_shape_is_not_timed_and_takes_the_pinned_route() {
        if LinearRoute::from_env().ok().flatten().is_some() {
            return; // a forced route wins over pins, by design
        }
        // A shape no other test uses (decisions are per process).
        let key = RouteKey {
            input: [3, 5, 7],
            out_features: 11,
            dtype: ForwardDtype::Float32,
            bias: false,
            backward: false,
        };
        for route in [LinearRoute::Blas, LinearRoute::OneDnn] {
            pin(key, route);
            let x = Tensor::full([3, 5, 7], 0.5, (Kind::Float, Device::Cpu));
            let w = Tensor::full([11, 7], 0.1, (Kind::Float, Device::Cpu));
            let y = tch::no_grad(|| linear(&x, &w, None, false));
            assert_eq!(y.size(), vec![3, 5, 11]);
            let d = decisions()
                .into_iter()
                .find(|d| d.key == key)
                .expect("pinned");
            assert_eq!(d.route, route);
            assert_eq!(d.timings, None, "a pinned shape is never timed");
        }
        // `state.json` records decisions in this form.
        let json = r#"{"input":[3,5,7],"out_features":11,"dtype":"float32","bias":false,"backward":false}"#;
        assert_eq!(serde_json::to_string(&key).expect("json"), json);
        assert_eq!(
            serde_json::to_string(&LinearRoute::OneDnn).expect("json"),
            "\"onednn\""
        );
    }

    #[test]
    fn route_names_parse_and_a_bad_one_names_the_variable() {
        for r in [LinearRoute::Blas, LinearRoute::OneDnn] {
            assert_eq!(r.name().parse::<LinearRoute>().expect("name"), r);
        }
        match "mkl".parse::<LinearRoute>() {
            Err(CoreError::Config { key, reason }) => {
                assert_eq!(key, ENV_VAR);
                assert!(reason.contains("`mkl`"), "{reason}");
            }
            other => panic!("expected a config error, got {other:?}"),
        }
    }
}
