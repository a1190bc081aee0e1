//! CUDA graphs: one step of work (a training step's forward and backward, an evaluation
//! rollout) recorded once and then launched as a single graph, through libtorch's
//! `at::cuda::CUDAGraph` (`cpp/cuda_graph.cpp`).
//!
//! Why: at the small presets an HRM step is thousands of small kernels, and on a fast GPU the
//! eager step is bound by launching them from the host. A replay launches the whole recorded
//! step at once.
//!
//! What a captured step must respect (libtorch's rules for CUDA graphs):
//! - It reads its inputs from, and leaves its outputs in, tensors that outlive the graph: copy
//!   new inputs into the same tensors before each [`CudaGraph::replay`] and read the outputs
//!   from the tensors the capture returned, which every replay overwrites.
//! - Shapes, dtypes and the work done are fixed at capture; nothing in the step may read a value
//!   back to the host (no `.item()`, no data-dependent shapes).
//! - Gradients must exist before capture (the warm-up steps make them), so that the captured
//!   backward accumulates into them in place; the step zeroes them in place itself.
//! - Random ops draw new numbers at every replay (libtorch's default CUDA generator is
//!   registered with the graph).
//!
//! The bfloat16 weight copies of [`crate::cast_cache`] are dropped when a capture begins and when
//! it ends, so the captured step makes its own casts (a copy made before the capture would be
//! stale after the next optimiser step) and eager code never reuses one the capture made.

use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use tch::Device;

use crate::c_status::call_with_status;
use crate::cast_cache;
use crate::error::{CoreError, Result};

extern "C" {
    fn hrm_cuda_graphs_built() -> c_int;
    fn hrm_cuda_graph_new(
        device: c_int,
        out: *mut *mut c_void,
        err: *mut c_char,
        len: usize,
    ) -> c_int;
    fn hrm_cuda_graph_enter(g: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    fn hrm_cuda_graph_begin(g: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    fn hrm_cuda_graph_end(g: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    fn hrm_cuda_graph_leave(g: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    fn hrm_cuda_graph_replay(g: *mut c_void, err: *mut c_char, len: usize) -> c_int;
    fn hrm_cuda_graph_free(g: *mut c_void);
}

/// Whether this build of hrm-core can capture CUDA graphs: its build script found a libtorch
/// with CUDA and the CUDA runtime headers. Says nothing about whether a GPU is present.
pub fn cuda_graphs_built() -> bool {
    // Safety: a function of no arguments that returns a constant.
    unsafe { hrm_cuda_graphs_built() != 0 }
}

/// Checks that a graph can be captured on `device`: a CUDA device that exists, in a build with
/// CUDA graphs.
///
/// # Errors
/// [`CoreError::CudaGraph`] naming what is missing.
pub fn check_device(device: Device) -> Result<usize> {
    let Device::Cuda(index) = device else {
        return Err(graph_error(format!(
            "CUDA graphs need a CUDA device, not {device:?}"
        )));
    };
    if !cuda_graphs_built() {
        return Err(graph_error(
            "this build of hrm-core has no CUDA graphs: its build found no libtorch CUDA \
             libraries or no CUDA runtime headers"
                .into(),
        ));
    }
    let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
    if index >= count {
        return Err(graph_error(format!(
            "CUDA device {index} does not exist ({count} visible)"
        )));
    }
    Ok(index)
}

/// A captured CUDA graph, ready to replay. Dropping it frees the graph and its memory pool
/// (the tensors the capture returned keep their own storage alive).
#[derive(Debug)]
pub struct CudaGraph {
    raw: *mut c_void,
    device: Device,
}

impl CudaGraph {
    /// Runs `step` `warmup` times, then once more under capture, on a side stream of `device`,
    /// and returns the graph with what the captured call returned (its outputs, which every
    /// replay rewrites). The captured call does no work of its own: replay it to run the step.
    ///
    /// # Errors
    /// [`CoreError::CudaGraph`] when the device cannot capture ([`check_device`]), when a
    /// warm-up step panics, or when the step does something a graph cannot hold (a host
    /// read-back, an allocation outside the graph's pool); the message is libtorch's or the
    /// panic's.
    pub fn capture<T>(
        device: Device,
        warmup: usize,
        mut step: impl FnMut() -> T,
    ) -> Result<(Self, T)> {
        let index = check_device(device)?;
        let index = c_int::try_from(index)
            .map_err(|_| graph_error(format!("CUDA device index {index} is out of range")))?;
        let mut raw = std::ptr::null_mut();
        // Safety: `raw` is a valid out-pointer; the handle is owned by `graph` from here on.
        call("creating the graph", |err, len| unsafe {
            hrm_cuda_graph_new(index, &mut raw, err, len)
        })?;
        let graph = CudaGraph { raw, device };
        // Safety (all calls on `graph.raw`): a live handle made above, used from this thread.
        call("entering the capture stream", |err, len| unsafe {
            hrm_cuda_graph_enter(graph.raw, err, len)
        })?;
        let captured = (|| {
            for i in 0..warmup {
                drop(run_step(&mut step).map_err(|m| {
                    graph_error(format!("warm-up step {} of {warmup} failed: {m}", i + 1))
                })?);
            }
            cast_cache::start_new_epoch();
            call("beginning the capture", |err, len| unsafe {
                hrm_cuda_graph_begin(graph.raw, err, len)
            })?;
            let out = run_step(&mut step);
            let end = call("ending the capture", |err, len| unsafe {
                hrm_cuda_graph_end(graph.raw, err, len)
            });
            cast_cache::start_new_epoch();
            match (out, end) {
                (Ok(value), Ok(())) => Ok(value),
                (Err(message), _) => Err(graph_error(format!(
                    "the step failed under capture (it may do something a CUDA graph cannot \
                     hold, such as reading a value back to the host): {message}"
                ))),
                (Ok(_), Err(e)) => Err(e),
            }
        })();
        let left = call("leaving the capture stream", |err, len| unsafe {
            hrm_cuda_graph_leave(graph.raw, err, len)
        });
        let value = captured?;
        left?;
        Ok((graph, value))
    }

    /// Launches the captured step on the current stream of its device.
    ///
    /// # Errors
    /// [`CoreError::CudaGraph`] with libtorch's message when the launch fails.
    pub fn replay(&self) -> Result<()> {
        // Safety: `raw` is the live handle this value owns.
        call("replaying", |err, len| unsafe {
            hrm_cuda_graph_replay(self.raw, err, len)
        })
    }

    /// The device the graph runs on.
    pub fn device(&self) -> Device {
        self.device
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // Safety: the handle is owned by this value and not used after this.
        unsafe { hrm_cuda_graph_free(self.raw) }
    }
}

/// Calls `step`, turning a panic (tch reports libtorch's errors as panics) into its message.
fn run_step<T>(step: &mut impl FnMut() -> T) -> std::result::Result<T, String> {
    catch_unwind(AssertUnwindSafe(step)).map_err(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "a panic without a message".into())
    })
}

/// Runs one entry point with an error buffer; its message, prefixed by `what`, on failure.
fn call(what: &str, f: impl FnOnce(*mut c_char, usize) -> c_int) -> Result<()> {
    call_with_status(f).map_err(|message| graph_error(format!("{what}: {message}")))
}

fn graph_error(reason: String) -> CoreError {
    CoreError::CudaGraph { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_device_is_refused_with_a_clear_error() {
        let err = CudaGraph::capture(Device::Cpu, 1, || ()).expect_err("CPU has no CUDA graphs");
        assert!(
            err.to_string().contains("need a CUDA device"),
            "unexpected message: {err}"
        );
    }

    #[test]
    fn a_missing_cuda_device_is_refused_before_anything_runs() {
        let count = usize::try_from(tch::Cuda::device_count()).unwrap_or(0);
        let mut ran = false;
        let err =
            CudaGraph::capture(Device::Cuda(count), 1, || ran = true).expect_err("no such device");
        assert!(!ran, "the step must not run when the device is refused");
        let message = err.to_string();
        assert!(
            message.contains("does not exist") || message.contains("no CUDA graphs"),
            "unexpected message: {message}"
        );
    }

    /// A captured step replays with new inputs, its output tensor is rewritten by each replay,
    /// and random ops draw new numbers each time. Needs a GPU: `scripts/gpu_check.py` runs it
    /// there (`--ignored`).
    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn replays_follow_new_inputs_on_a_gpu() {
        assert!(cuda_graphs_built(), "this build has no CUDA graphs");
        assert!(tch::Cuda::is_available(), "no CUDA device");
        let device = Device::Cuda(0);
        let mut x = tch::Tensor::zeros([4], (tch::Kind::Float, device));
        let (graph, (y, r)) =
            CudaGraph::capture(device, 2, || (&x * 2.0 + 1.0, x.rand_like())).expect("capture");
        x.copy_(&tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]));
        graph.replay().expect("replay");
        let first = r.copy();
        assert_eq!(
            Vec::<f32>::try_from(y.to_device(Device::Cpu)).expect("f32"),
            vec![3.0, 5.0, 7.0, 9.0]
        );
        graph.replay().expect("replay");
        assert!(
            !r.equal(&first),
            "random ops must draw new numbers at each replay"
        );
    }
}
