//! [`ProcessGroup`]: this process's place in a data-parallel run and the collectives over it.
//!
//! The reference trains with `torch.distributed` (`pretrain.py`: `dist.init_process_group`,
//! `dist.all_reduce` of the gradients, `dist.broadcast` of the initial parameters, and
//! `dist.all_gather_into_tensor` of the sparse puzzle-embedding gradients in
//! `models/sparse_embedding.py`). This type offers the same four operations on libtorch's own
//! c10d, with a timeout on each and typed errors. With one process it does no communication at
//! all, so single-process code can call it unconditionally.

use std::net::TcpListener;
use std::sync::OnceLock;
use std::time::Duration;

use tch::{Device, Tensor};

use crate::env::DistEnv;
use crate::error::DistError;
use crate::ffi::{self, BackendKind, Failure, Lost, Status};

/// Which c10d backend a group runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One process: every collective is a local no-op (or a copy, for `all_gather`).
    Single,
    /// `c10d::ProcessGroupGloo`, for CPU tensors.
    Gloo,
    /// `c10d::ProcessGroupNCCL`, for CUDA tensors.
    Nccl,
}

/// This process's group of ranks and the collectives over it.
///
/// Every rank must call the same collectives in the same order with tensors of the same shape
/// and kind. Tensors must live on the group's [`device`](ProcessGroup::device) (CPU for Gloo,
/// the group's CUDA device for NCCL). Call the collectives outside autograd (under
/// `tch::no_grad`, or on `.grad()` tensors): they write into tensors in place.
///
/// After a collective fails the ranks are out of step, so the group refuses further
/// collectives with [`DistError::Broken`]; drop it and exit. The one exception is
/// [`DistError::ShapeMismatch`] from [`all_gather`](ProcessGroup::all_gather), which every rank
/// sees alike.
///
/// `ProcessGroup` is `Send` but not `Sync`: one thread issues its collectives.
pub struct ProcessGroup {
    rank: usize,
    world_size: usize,
    local_rank: usize,
    device: Device,
    timeout: Duration,
    backend: Backend,
    /// `None` for one process.
    group: Option<ffi::Group>,
    /// The first failure, once there has been one.
    broken: OnceLock<String>,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.rank)
            .field("world_size", &self.world_size)
            .field("local_rank", &self.local_rank)
            .field("device", &self.device)
            .field("backend", &self.backend)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Whether this build can run CPU groups of several processes (it found Gloo's headers).
pub fn gloo_available() -> bool {
    ffi::gloo_available()
}

/// Whether this build can run CUDA groups of several processes (it found NCCL and CUDA headers
/// and libtorch has CUDA).
pub fn nccl_available() -> bool {
    ffi::nccl_available()
}

/// Why the build left NCCL out, as build.rs found it, for [`DistError::NoNccl`].
const NCCL_MISSING: &str = env!("HRM_DIST_NCCL_MISSING");

impl ProcessGroup {
    /// A group of one process on `device`: rank 0 of 1, no communication.
    pub fn single(device: Device) -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            device,
            timeout: Duration::from_secs(1800),
            backend: Backend::Single,
            group: None,
            broken: OnceLock::new(),
        }
    }

    /// Joins the group torchrun describes in the environment (see [`DistEnv::from_env`]); one
    /// process when `WORLD_SIZE` is unset.
    ///
    /// For CUDA, pick the device from the local rank first: read [`DistEnv::from_env`], then
    /// call [`ProcessGroup::from_dist_env`] with `Device::Cuda(env.local_rank)`.
    ///
    /// # Errors
    /// Those of [`DistEnv::from_env`] and [`ProcessGroup::new`].
    pub fn from_env(device: Device, timeout: Duration) -> Result<Self, DistError> {
        Self::from_dist_env(&DistEnv::from_env()?, device, timeout)
    }

    /// Joins the group `env` describes.
    ///
    /// # Errors
    /// As [`ProcessGroup::new`].
    pub fn from_dist_env(
        env: &DistEnv,
        device: Device,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        let mut group = Self::new(
            env.rank,
            env.world_size,
            &env.master_addr,
            env.master_port,
            device,
            timeout,
        )?;
        group.local_rank = env.local_rank;
        Ok(group)
    }

    /// Joins a group of `world_size` processes as `rank`, meeting the others through a
    /// `c10d::TCPStore` at `addr:port` that rank 0 serves. Blocks until every rank has arrived
    /// or `timeout` has passed; `timeout` is also the default for each collective. The local
    /// rank is taken to be `rank` (one machine); [`ProcessGroup::from_dist_env`] sets it from
    /// `LOCAL_RANK`.
    ///
    /// With `world_size == 1` nothing is opened: `addr` and `port` are ignored and the
    /// collectives do no communication.
    ///
    /// # Errors
    /// - [`DistError::ZeroWorldSize`], [`DistError::RankOutOfRange`], [`DistError::ZeroPort`];
    /// - [`DistError::UnsupportedDevice`] for a device other than CPU or CUDA;
    /// - [`DistError::NoGloo`] / [`DistError::NoNccl`] when this build lacks the backend;
    /// - [`DistError::PortInUse`] on rank 0 when `port` is taken;
    /// - [`DistError::RendezvousTimeout`] when the others do not arrive in time;
    /// - [`DistError::Rendezvous`] for any other c10d failure, with its message.
    pub fn new(
        rank: usize,
        world_size: usize,
        addr: &str,
        port: u16,
        device: Device,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        if world_size == 0 {
            return Err(DistError::ZeroWorldSize);
        }
        if rank >= world_size {
            return Err(DistError::RankOutOfRange { rank, world_size });
        }
        let (backend, device_index) = match device {
            Device::Cpu => (BackendKind::Gloo, -1),
            Device::Cuda(index) => (BackendKind::Nccl, clamp_i32(index)),
            other => return Err(DistError::UnsupportedDevice { device: other }),
        };
        if world_size == 1 {
            let mut group = Self::single(device);
            group.timeout = timeout;
            return Ok(group);
        }
        if port == 0 {
            return Err(DistError::ZeroPort { world_size });
        }
        match backend {
            BackendKind::Gloo if !gloo_available() => return Err(DistError::NoGloo),
            BackendKind::Nccl if !nccl_available() => {
                return Err(DistError::NoNccl {
                    reason: NCCL_MISSING,
                })
            }
            _ => {}
        }
        // Under torchrun's elastic agent the agent already serves the store on MASTER_PORT and
        // every worker is a client, as torch.distributed's env:// rendezvous does it.
        let agent_store = std::env::var("TORCHELASTIC_USE_AGENT_STORE").as_deref() == Ok("True");
        let serve_store = rank == 0 && !agent_store;
        if serve_store {
            // c10d's own message for a taken port varies with its socket backend; asking the
            // system first gives the same clear error everywhere. (A port taken between this
            // check and the store's bind is still recognised from c10d's message below.)
            if let Err(e) = TcpListener::bind(("0.0.0.0", port)) {
                if e.kind() == std::io::ErrorKind::AddrInUse {
                    return Err(DistError::PortInUse {
                        port,
                        message: e.to_string(),
                    });
                }
            }
        }
        let group = ffi::Group::new(
            addr,
            port,
            clamp_i32(rank),
            clamp_i32(world_size),
            serve_store,
            backend,
            device_index,
            millis(timeout),
        )
        .map_err(|Failure { status, message }| match status {
            Status::AddrInUse => DistError::PortInUse { port, message },
            Status::NoBackend if backend == BackendKind::Gloo => DistError::NoGloo,
            Status::NoBackend => DistError::NoNccl {
                reason: NCCL_MISSING,
            },
            Status::Timeout => DistError::RendezvousTimeout {
                addr: addr.to_string(),
                port,
                rank,
                world_size,
                timeout,
                message,
            },
            Status::Error | Status::ShapeMismatch => DistError::Rendezvous {
                addr: addr.to_string(),
                port,
                rank,
                world_size,
                message,
            },
        })?;
        Ok(Self {
            rank,
            world_size,
            local_rank: rank,
            device,
            timeout,
            backend: match backend {
                BackendKind::Gloo => Backend::Gloo,
                BackendKind::Nccl => Backend::Nccl,
            },
            group: Some(group),
            broken: OnceLock::new(),
        })
    }

    /// This process's rank, `0..world_size`.
    pub fn rank(&self) -> usize {
        self.rank
    }

    /// The number of processes.
    pub fn world_size(&self) -> usize {
        self.world_size
    }

    /// The rank among the processes on this machine.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The device every tensor handed to a collective must be on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether this is rank 0 (the one that writes checkpoints and logs).
    pub fn is_main(&self) -> bool {
        self.rank == 0
    }

    /// The timeout of each collective.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sets the timeout of the following collectives (every rank should set the same).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Sums `tensor` over all ranks, in place: afterwards every rank holds the same sum.
    ///
    /// A peer that dies makes this return [`DistError::PeerLost`] naming it, within the
    /// timeout plus a short liveness check (at most a quarter of the timeout, and 4 s).
    ///
    /// # Errors
    /// [`DistError::Device`], [`DistError::NotContiguous`], [`DistError::Broken`], and the
    /// collective failures [`DistError::PeerLost`], [`DistError::Timeout`],
    /// [`DistError::Collective`].
    pub fn all_reduce(&self, tensor: &mut Tensor) -> Result<(), DistError> {
        const OP: &str = "all_reduce";
        self.check_tensor(OP, tensor, true)?;
        let Some(group) = self.live_group(OP)? else {
            return Ok(());
        };
        group
            .all_reduce_sum(tensor, millis(self.timeout))
            .map_err(|failure| self.fail(OP, group, failure))
    }

    /// Sums several tensors of one kind over all ranks with a single collective: they are
    /// flattened into one buffer, reduced, and copied back. For gradients this is much faster
    /// than one [`all_reduce`](ProcessGroup::all_reduce) per parameter. The tensors may have any
    /// shapes and need not be contiguous; the handles are written through (`copy_`), so
    /// `var.grad()` handles update the gradients themselves.
    ///
    /// # Errors
    /// [`DistError::MixedKinds`], then as [`ProcessGroup::all_reduce`].
    pub fn all_reduce_many(&self, tensors: &mut [Tensor]) -> Result<(), DistError> {
        const OP: &str = "all_reduce_many";
        let Some(first) = tensors.first() else {
            return Ok(());
        };
        let kind = first.f_kind()?;
        for (index, t) in tensors.iter().enumerate() {
            self.check_tensor(OP, t, false)?;
            let found = t.f_kind()?;
            if found != kind {
                return Err(DistError::MixedKinds {
                    index,
                    expected: kind,
                    found,
                });
            }
        }
        if self.world_size == 1 {
            return Ok(());
        }
        let _guard = tch::no_grad_guard();
        let flat: Vec<Tensor> = tensors.iter().map(|t| t.reshape([-1])).collect();
        // [sum of numels]
        let mut buffer = Tensor::f_cat(&flat, 0)?;
        self.all_reduce(&mut buffer)?;
        let mut offset = 0i64;
        for t in tensors.iter_mut() {
            let n = t.numel() as i64;
            let part = buffer.f_narrow(0, offset, n)?.f_view_as(t)?;
            t.f_copy_(&part)?;
            offset += n;
        }
        Ok(())
    }

    /// Gathers `tensor` from every rank: returns a new tensor `[world_size, *tensor.shape]`
    /// whose row `r` is rank `r`'s tensor. Every rank must pass the same shape and kind (for the
    /// sparse puzzle-embedding gradients: pad to the same row count; `flatten(0, 1)` then
    /// concatenates the ranks' rows).
    ///
    /// # Errors
    /// [`DistError::ShapeMismatch`] (on every rank alike) when the shapes or kinds differ;
    /// otherwise as [`ProcessGroup::all_reduce`] (except that any layout is accepted).
    pub fn all_gather(&self, tensor: &Tensor) -> Result<Tensor, DistError> {
        const OP: &str = "all_gather";
        self.check_tensor(OP, tensor, false)?;
        let Some(group) = self.live_group(OP)? else {
            // [1, *shape]
            return Ok(tensor.f_detach()?.f_unsqueeze(0)?.copy());
        };
        match group.all_gather(tensor, millis(self.timeout)) {
            Ok(gathered) => Ok(gathered),
            Err(Failure {
                status: Status::ShapeMismatch,
                message,
            }) => Err(DistError::ShapeMismatch {
                rank: self.rank,
                message,
            }),
            Err(failure) => Err(self.fail(OP, group, failure)),
        }
    }

    /// Copies `tensor` from rank `root` into `tensor` on every rank, in place (rank 0 broadcasts
    /// the initial parameters this way).
    ///
    /// # Errors
    /// [`DistError::Root`], then as [`ProcessGroup::all_reduce`].
    pub fn broadcast(&self, tensor: &mut Tensor, root: usize) -> Result<(), DistError> {
        const OP: &str = "broadcast";
        if root >= self.world_size {
            return Err(DistError::Root {
                op: OP,
                root,
                world_size: self.world_size,
            });
        }
        self.check_tensor(OP, tensor, true)?;
        let Some(group) = self.live_group(OP)? else {
            return Ok(());
        };
        group
            .broadcast(tensor, clamp_i32(root), millis(self.timeout))
            .map_err(|failure| self.fail(OP, group, failure))
    }

    /// Returns once every rank has called it.
    ///
    /// # Errors
    /// [`DistError::Broken`], [`DistError::PeerLost`], [`DistError::Timeout`],
    /// [`DistError::Collective`].
    pub fn barrier(&self) -> Result<(), DistError> {
        const OP: &str = "barrier";
        let Some(group) = self.live_group(OP)? else {
            return Ok(());
        };
        group
            .barrier(millis(self.timeout))
            .map_err(|failure| self.fail(OP, group, failure))
    }

    /// The shim group, `None` for one process, or `Broken` after an earlier failure.
    fn live_group(&self, op: &'static str) -> Result<Option<&ffi::Group>, DistError> {
        if let Some(first) = self.broken.get() {
            return Err(DistError::Broken {
                op,
                first: first.clone(),
            });
        }
        Ok(self.group.as_ref())
    }

    fn check_tensor(
        &self,
        op: &'static str,
        tensor: &Tensor,
        in_place: bool,
    ) -> Result<(), DistError> {
        let found = tensor.device();
        if found != self.device {
            return Err(DistError::Device {
                op,
                expected: self.device,
                found,
            });
        }
        if in_place && !tensor.is_contiguous() {
            return Err(DistError::NotContiguous { op });
        }
        Ok(())
    }

    /// Turns a shim failure into the typed error, asking which peers went away, and marks the
    /// group broken.
    fn fail(&self, op: &'static str, group: &ffi::Group, failure: Failure) -> DistError {
        let Failure { status, message } = failure;
        let (rank, world_size) = (self.rank, self.world_size);
        let lost = match group.lost_ranks(world_size) {
            Lost::StoreHost => vec![0],
            Lost::Ranks(ranks) => ranks,
        };
        let error = if !lost.is_empty() {
            DistError::PeerLost {
                op,
                rank,
                world_size,
                lost,
                message,
            }
        } else if status == Status::Timeout {
            DistError::Timeout {
                op,
                rank,
                world_size,
                timeout: self.timeout,
                message,
            }
        } else {
            DistError::Collective {
                op,
                rank,
                world_size,
                message,
            }
        };
        // Only the first failure is kept; a later one is a consequence of it.
        let _ = self.broken.set(error.to_string());
        error
    }
}

fn millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn clamp_i32(value: usize) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}
