// hrm-dist's C interface over libtorch's c10d: a TCPStore rendezvous, a Gloo or NCCL backend,
// and the four collectives the trainer needs. Every function catches every C++ exception and
// reports it as a status code plus a message written into the caller's buffer, so no exception
// ever crosses into Rust. Tensors are passed as the `at::Tensor*` handles that tch's `Tensor`
// wraps (torch-sys's `C_tensor`).
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// Status codes; keep in step with `Status` in src/ffi.rs.
#define HRM_DIST_OK 0
#define HRM_DIST_ERROR 1           // any other failure; the message says what
#define HRM_DIST_TIMEOUT 2         // the operation ran past its timeout
#define HRM_DIST_ADDR_IN_USE 3     // rank 0 could not listen on the port
#define HRM_DIST_NO_BACKEND 4      // this build lacks the backend (no Gloo / NCCL headers)
#define HRM_DIST_SHAPE_MISMATCH 5  // all_gather: ranks passed tensors of different shapes

// Backends for hrm_dist_group_new.
#define HRM_DIST_BACKEND_GLOO 0
#define HRM_DIST_BACKEND_NCCL 1

typedef struct hrm_dist_group hrm_dist_group;

// 1 when compiled with the backend's headers, else 0.
int hrm_dist_gloo_available(void);
int hrm_dist_nccl_available(void);

// Rendezvous through a TCPStore at addr:port (served by this process when serve_store is
// non-zero: rank 0, unless torchrun's agent serves it) and build the backend.
// `device_index` is the CUDA device for NCCL (ignored by Gloo). On success *out holds a group
// to be freed with hrm_dist_group_free.
int hrm_dist_group_new(const char* addr, uint16_t port, int32_t rank, int32_t world_size,
                       int32_t serve_store, int32_t backend, int32_t device_index,
                       int64_t timeout_ms, hrm_dist_group** out, char* err, size_t err_len);

// Stops the liveness thread and releases the backend and the store.
void hrm_dist_group_free(hrm_dist_group* group);

// In-place sum over all ranks. `tensor` is an `at::Tensor*`.
int hrm_dist_all_reduce_sum(hrm_dist_group* group, void* tensor, int64_t timeout_ms, char* err,
                            size_t err_len);

// Gathers `input` (same shape and dtype on every rank) from every rank into a new tensor
// [world_size, *input.shape], returned through *out as a new `at::Tensor*` owned by the caller.
int hrm_dist_all_gather(hrm_dist_group* group, const void* input, void** out, int64_t timeout_ms,
                        char* err, size_t err_len);

// In-place broadcast of `tensor` from `root` to every rank.
int hrm_dist_broadcast(hrm_dist_group* group, void* tensor, int32_t root, int64_t timeout_ms,
                       char* err, size_t err_len);

// Blocks until every rank has reached it.
int hrm_dist_barrier(hrm_dist_group* group, int64_t timeout_ms, char* err, size_t err_len);

// After a failed collective: which peers stopped beating (each rank bumps a counter in the store
// every few hundred milliseconds). Writes up to `cap` ranks into `lost` and returns how many
// were lost, or -1 when the store itself is unreachable (rank 0, which serves it, is gone).
int32_t hrm_dist_lost_ranks(hrm_dist_group* group, int32_t* lost, int32_t cap);

#ifdef __cplusplus
}
#endif
