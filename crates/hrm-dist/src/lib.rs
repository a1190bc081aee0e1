//! Collectives for data-parallel HRM training on libtorch's own c10d, the engine under
//! `torch.distributed`: a thin C++ shim (`cpp/shim.cpp`) hands tch tensors to
//! `c10d::ProcessGroupGloo` (CPU) or `c10d::ProcessGroupNCCL` (CUDA), after a rendezvous through
//! a `c10d::TCPStore` that rank 0 serves.
//!
//! - [`DistEnv`] reads torchrun's contract (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//!   `MASTER_PORT`); no `WORLD_SIZE` means one process.
//! - [`ProcessGroup`] joins the group and offers [`all_reduce`](ProcessGroup::all_reduce) (sum,
//!   in place), [`all_reduce_many`](ProcessGroup::all_reduce_many) (one flat buffer for many
//!   gradients), [`all_gather`](ProcessGroup::all_gather), [`broadcast`](ProcessGroup::broadcast)
//!   and [`barrier`](ProcessGroup::barrier), each bounded by the group's timeout. With one
//!   process they do no communication.
//! - Failures are [`DistError`]s carrying c10d's message; a peer that dies is reported as
//!   [`DistError::PeerLost`] naming its rank. No C++ exception crosses into Rust.
//! - [`gloo_available`] / [`nccl_available`] say what this build can do: without Gloo's headers
//!   (Debian's `libgloo-dev`) the crate builds, runs one process, and refuses several CPU
//!   processes with a message saying what to install.
//!
//! ```
//! use std::time::Duration;
//! use hrm_dist::ProcessGroup;
//! use tch::{Device, Kind, Tensor};
//!
//! // Under torchrun this joins the workers; run alone (no WORLD_SIZE) it is rank 0 of 1.
//! let group = ProcessGroup::new(0, 1, "127.0.0.1", 29500, Device::Cpu, Duration::from_secs(60))?;
//! assert_eq!((group.rank(), group.world_size()), (0, 1));
//!
//! // Gradients: every rank ends with the sum over ranks (here, one rank: unchanged).
//! let mut grad = Tensor::from_slice(&[1.0f32, -2.0, 0.5]);
//! group.all_reduce(&mut grad)?;
//! assert_eq!(Vec::<f32>::try_from(&grad)?, [1.0, -2.0, 0.5]);
//!
//! // Sparse puzzle-embedding rows: [world_size, rows, dim], here [1, 2, 3].
//! let rows = Tensor::ones([2, 3], (Kind::Float, Device::Cpu));
//! assert_eq!(group.all_gather(&rows)?.size(), [1, 2, 3]);
//!
//! // Initial parameters from rank 0, then wait for everyone.
//! let mut weight = Tensor::zeros([4], (Kind::Float, Device::Cpu));
//! group.broadcast(&mut weight, 0)?;
//! group.barrier()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod env;
mod error;
// The FFI boundary needs `unsafe` to call the C++ shim and pass tch's raw tensor handles; it is
// allowed in this module only (the workspace denies it everywhere else).
#[allow(unsafe_code)]
mod ffi;
mod group;

pub use env::DistEnv;
pub use error::DistError;
pub use group::{gloo_available, nccl_available, Backend, ProcessGroup};
