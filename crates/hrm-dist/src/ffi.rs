//! The FFI boundary to the C++ shim (`cpp/shim.{h,cpp}`): the `extern "C"` declarations and a
//! safe owner of the shim's group handle.
//!
//! This is the only module of this crate that may use `unsafe` (lib.rs allows it here and
//! nowhere else): calling C functions and handing them tch's raw `at::Tensor*` handles cannot be
//! written without it. The invariants each block relies on are stated beside it. The shim
//! catches every C++ exception, so a call returns a status and fills our message buffer instead
//! of unwinding into Rust.

use std::ffi::{c_char, c_void, CStr, CString};
use std::ptr::NonNull;

use tch::Tensor;
use torch_sys::C_tensor;

/// Status codes of the shim (`HRM_DIST_*` in shim.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    Error,
    Timeout,
    AddrInUse,
    NoBackend,
    ShapeMismatch,
}

impl Status {
    fn from_code(code: i32) -> Option<Self> {
        match code {
            0 => None,
            2 => Some(Self::Timeout),
            3 => Some(Self::AddrInUse),
            4 => Some(Self::NoBackend),
            5 => Some(Self::ShapeMismatch),
            _ => Some(Self::Error),
        }
    }
}

/// A failed shim call: its status and the C++ exception's message.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) status: Status,
    pub(crate) message: String,
}

/// The backend to build (`HRM_DIST_BACKEND_*` in shim.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BackendKind {
    Gloo = 0,
    Nccl = 1,
}

/// What `hrm_dist_lost_ranks` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Lost {
    /// These peers stopped bumping their liveness counters.
    Ranks(Vec<usize>),
    /// The store itself no longer answers: rank 0, which serves it, is gone.
    StoreHost,
}

#[repr(C)]
struct RawGroup {
    _private: [u8; 0],
}

extern "C" {
    fn hrm_dist_gloo_available() -> i32;
    fn hrm_dist_nccl_available() -> i32;
    fn hrm_dist_group_new(
        addr: *const c_char,
        port: u16,
        rank: i32,
        world_size: i32,
        serve_store: i32,
        backend: i32,
        device_index: i32,
        timeout_ms: i64,
        out: *mut *mut RawGroup,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn hrm_dist_group_free(group: *mut RawGroup);
    fn hrm_dist_all_reduce_sum(
        group: *mut RawGroup,
        tensor: *mut c_void,
        timeout_ms: i64,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn hrm_dist_all_gather(
        group: *mut RawGroup,
        input: *const c_void,
        out: *mut *mut c_void,
        timeout_ms: i64,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn hrm_dist_broadcast(
        group: *mut RawGroup,
        tensor: *mut c_void,
        root: i32,
        timeout_ms: i64,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn hrm_dist_barrier(
        group: *mut RawGroup,
        timeout_ms: i64,
        err: *mut c_char,
        err_len: usize,
    ) -> i32;
    fn hrm_dist_lost_ranks(group: *mut RawGroup, lost: *mut i32, cap: i32) -> i32;
}

/// Room for c10d's messages; longer ones are cut.
const MESSAGE_LEN: usize = 8192;

/// Runs one shim call with a message buffer and turns its status into a `Result`.
fn call(f: impl FnOnce(*mut c_char, usize) -> i32) -> Result<(), Failure> {
    let mut buffer = vec![0u8; MESSAGE_LEN];
    let code = f(buffer.as_mut_ptr().cast::<c_char>(), buffer.len());
    match Status::from_code(code) {
        None => Ok(()),
        Some(status) => {
            // The shim always writes a NUL-terminated message within the buffer; if it wrote
            // nothing the buffer is all zeros, which reads as an empty string.
            let message = CStr::from_bytes_until_nul(&buffer)
                .map(|m| m.to_string_lossy().into_owned())
                .unwrap_or_default();
            Err(Failure { status, message })
        }
    }
}

/// Whether the shim was compiled with Gloo's headers.
pub(crate) fn gloo_available() -> bool {
    // SAFETY: a pure function of how the shim was compiled; no arguments.
    unsafe { hrm_dist_gloo_available() == 1 }
}

/// Whether the shim was compiled with NCCL.
pub(crate) fn nccl_available() -> bool {
    // SAFETY: as for `gloo_available`.
    unsafe { hrm_dist_nccl_available() == 1 }
}

/// Owner of one shim group (TCPStore + backend + liveness thread); freed on drop.
pub(crate) struct Group {
    ptr: NonNull<RawGroup>,
}

// SAFETY: the shim's group has no thread affinity: c10d's store and backends lock internally and
// may be driven from any thread. `Group` is deliberately not `Sync`: collectives must be issued
// in one order by one caller, so `&Group` is never shared between threads.
unsafe impl Send for Group {}

impl Group {
    /// Meets the other ranks at `addr:port` (serving the store there when `serve_store`) and
    /// builds the backend.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        addr: &str,
        port: u16,
        rank: i32,
        world_size: i32,
        serve_store: bool,
        backend: BackendKind,
        device_index: i32,
        timeout_ms: i64,
    ) -> Result<Self, Failure> {
        let addr = CString::new(addr).map_err(|_| Failure {
            status: Status::Error,
            message: format!("address {addr:?} contains a NUL byte"),
        })?;
        let mut out: *mut RawGroup = std::ptr::null_mut();
        call(|err, len| {
            // SAFETY: `addr` is a valid NUL-terminated string for the call; `out` is a valid
            // place for the handle; `err` points to `len` writable bytes.
            unsafe {
                hrm_dist_group_new(
                    addr.as_ptr(),
                    port,
                    rank,
                    world_size,
                    i32::from(serve_store),
                    backend as i32,
                    device_index,
                    timeout_ms,
                    &mut out,
                    err,
                    len,
                )
            }
        })?;
        NonNull::new(out).map(|ptr| Self { ptr }).ok_or(Failure {
            status: Status::Error,
            message: "the shim returned no group".to_string(),
        })
    }

    /// In-place sum of `tensor` over all ranks.
    pub(crate) fn all_reduce_sum(
        &self,
        tensor: &mut Tensor,
        timeout_ms: i64,
    ) -> Result<(), Failure> {
        let raw = tensor.as_mut_ptr().cast::<c_void>();
        call(|err, len| {
            // SAFETY: `self.ptr` is a live group (freed only on drop); `raw` is the `at::Tensor*`
            // of a tensor we borrow mutably for the whole call, and the shim copies the handle
            // (sharing storage) before any work outlives the call.
            unsafe { hrm_dist_all_reduce_sum(self.ptr.as_ptr(), raw, timeout_ms, err, len) }
        })
    }

    /// Gathers `tensor` from every rank into a new `[world_size, *shape]` tensor.
    pub(crate) fn all_gather(&self, tensor: &Tensor, timeout_ms: i64) -> Result<Tensor, Failure> {
        let raw = tensor.as_ptr().cast::<c_void>();
        let mut out: *mut c_void = std::ptr::null_mut();
        call(|err, len| {
            // SAFETY: as for `all_reduce_sum`; the shim only reads the input tensor and writes a
            // freshly allocated `at::Tensor*` into `out` on success.
            unsafe { hrm_dist_all_gather(self.ptr.as_ptr(), raw, &mut out, timeout_ms, err, len) }
        })?;
        if out.is_null() {
            return Err(Failure {
                status: Status::Error,
                message: "all_gather returned no tensor".to_string(),
            });
        }
        // SAFETY: `out` is a heap `at::Tensor*` created by the shim with `new`, owned by nobody
        // else; tch's `Tensor` takes ownership and frees it with `delete` on drop, as it does
        // for every tensor torch-sys returns.
        Ok(unsafe { Tensor::from_ptr(out.cast::<C_tensor>()) })
    }

    /// In-place broadcast of `tensor` from `root`.
    pub(crate) fn broadcast(
        &self,
        tensor: &mut Tensor,
        root: i32,
        timeout_ms: i64,
    ) -> Result<(), Failure> {
        let raw = tensor.as_mut_ptr().cast::<c_void>();
        call(|err, len| {
            // SAFETY: as for `all_reduce_sum`.
            unsafe { hrm_dist_broadcast(self.ptr.as_ptr(), raw, root, timeout_ms, err, len) }
        })
    }

    /// Waits for every rank.
    pub(crate) fn barrier(&self, timeout_ms: i64) -> Result<(), Failure> {
        call(|err, len| {
            // SAFETY: `self.ptr` is a live group; `err` points to `len` writable bytes.
            unsafe { hrm_dist_barrier(self.ptr.as_ptr(), timeout_ms, err, len) }
        })
    }

    /// Which peers stopped beating (asked after a failed collective).
    pub(crate) fn lost_ranks(&self, world_size: usize) -> Lost {
        let mut lost = vec![0i32; world_size];
        let cap = i32::try_from(world_size).unwrap_or(i32::MAX);
        // SAFETY: `self.ptr` is a live group; `lost` has room for `cap` ranks.
        let n = unsafe { hrm_dist_lost_ranks(self.ptr.as_ptr(), lost.as_mut_ptr(), cap) };
        match usize::try_from(n) {
            Err(_) => Lost::StoreHost,
            Ok(n) => Lost::Ranks(
                lost.iter()
                    .take(n.min(world_size))
                    .filter_map(|&r| usize::try_from(r).ok())
                    .collect(),
            ),
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: `self.ptr` came from `hrm_dist_group_new` and is freed exactly once, here.
        unsafe { hrm_dist_group_free(self.ptr.as_ptr()) }
    }
}
