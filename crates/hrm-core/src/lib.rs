//! The Hierarchical Reasoning Model on libtorch.
//!
//! `hrm-core` holds the model of Wang et al. 2025 ("Hierarchical Reasoning Model") as the
//! reference implementation (sapientinc/HRM, `models/hrm/hrm_act_v1.py` and `models/layers.py`)
//! defines it: configuration, initialisation, the cast-on-use layers, RoPE, attention through
//! libtorch's scaled-dot-product attention, SwiGLU, RMSNorm, the post-norm block, the H and L
//! reasoning modules with input injection, the sparse puzzle embedding and the carry. Parameter
//! names are the reference's state-dict names, so weights move between the two as safetensors.
//!
//! The ACT loop, losses and metrics are in `hrm-act`; training in `hrm-train`.
//!
//! On the CPU, the forward without a graph (every H/L update but the last two, the Q-target
//! pass, evaluation) runs two fused kernels of this crate's own (`cpp/fused.cpp`, compiled
//! against libtorch's headers by the build script): the residual sum plus RMSNorm in
//! bfloat16 ([`block::residual_rms_norm`]) and RoPE in both dtypes ([`Rope::apply`]). On CPUs
//! with AVX512-BF16, bfloat16 attention, with or without a graph, runs this crate's own
//! attention kernels and their backward (`cpp/attention.cpp`) instead of libtorch's flash
//! kernel ([`attention::Attention::forward`]). `HRM_FUSED=off` runs libtorch's ops instead.
//!
//! On CUDA, [`cuda_graph::CudaGraph`] captures a step of work once and replays it as one graph
//! (libtorch's `at::cuda::CUDAGraph`, through `cpp/cuda_graph.cpp`): `hrm-train` uses it for
//! the ACT training step and the evaluation rollout, which are launch-bound at small sizes.
//!
//! # Example
//! ```
//! use hrm_core::{CoreInput, HrmConfig, Hrm, Mode, RecurrentCore};
//!
//! let mut cfg = HrmConfig::tiny();
//! cfg.hidden_size = 64;
//! cfg.num_heads = 2;
//! cfg.puzzle_emb_ndim = 64;
//! tch::manual_seed(0);
//! let model = Hrm::new(&cfg, tch::Device::Cpu)?;
//! let dims = model.dims();
//! // One Sudoku-shaped example: 81 tokens, puzzle identifier 0.
//! let input = CoreInput::from_host(&[1; 81], &[0], &dims, tch::Device::Cpu)?;
//! let carry = model.empty_carry(1);
//! let carry = model.reset_carry(&tch::Tensor::from_slice(&[true]), &carry);
//! let out = tch::no_grad(|| model.forward(&carry, &input, Mode::Eval));
//! assert_eq!(out.logits.size(), vec![1, 81, 11]);
//! assert_eq!(out.carry.z_h.size(), vec![1, 82, 64]);
//! # Ok::<(), hrm_core::CoreError>(())
//! ```

pub mod attention;
pub mod baselines;
pub mod block;
// Reads the message a failing C entry point wrote (a `CStr` from a raw buffer): `unsafe` is
// allowed here, in `cuda_graph` and in `fused`, nowhere else.
#[allow(unsafe_code)]
mod c_status;
pub mod carry;
pub mod cast_cache;
pub mod config;
// CUDA graphs through libtorch's C++ API: `unsafe` to call the C entry points of
// `cpp/cuda_graph.cpp` and to own the handle they return.
#[allow(unsafe_code)]
pub mod cuda_graph;
pub mod direct;
pub mod embedding;
pub mod error;
// The FFI boundary to the fused C++ kernels needs `unsafe` to call them with tch's raw tensor
// handles; it is allowed in that module, in `cuda_graph` and in `c_status`, nowhere else.
#[allow(unsafe_code)]
mod fused;
pub mod heads;
pub mod hrm;
pub mod init;
pub mod linear;
pub mod linear_route;
pub mod params;
pub mod puzzle_embedding;
pub mod recurrent;
pub mod rms_norm;
pub mod rope;
mod shell;
pub mod swiglu;
pub mod trm;
pub mod weights;

pub use baselines::{Gru, GruConfig, Transformer, TransformerConfig};
pub use carry::InnerCarry;
pub use config::{ForwardDtype, ModelConfig, PosEncoding};
pub use direct::{DirectModel, DirectOutput};
pub use error::CoreError;
pub use hrm::{Hrm, HrmConfig};
pub use linear_route::LinearRoute;
pub use params::ModelParams;
pub use recurrent::{CoreDims, CoreInput, CoreOutput, HaltRule, Mode, RecurrentCore};
pub use rms_norm::rms_norm;
pub use rope::Rope;
pub use trm::{Trm, TrmConfig};
