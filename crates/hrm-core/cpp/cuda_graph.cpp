// CUDA graphs for hrm-core: a handle over libtorch's `at::cuda::CUDAGraph` with the side stream
// it is captured on. Rust drives the phases (enter the stream, warm up, begin, run the step,
// end, leave) so that the step itself stays Rust code; see `src/cuda_graph.rs`.
//
// Built with HRM_CUDA_GRAPHS only where the build script found libtorch's CUDA libraries and the
// CUDA runtime headers; otherwise every entry point reports that this build has no CUDA graphs.

#include <cstddef>

#include "guard.h"

#ifdef HRM_CUDA_GRAPHS

#include <optional>

#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

// Only functions that libc10_cuda and libtorch_cuda export are called here. c10's CUDAGuard and
// CUDAStreamGuard would instantiate inline code that calls the CUDA runtime directly, and a
// binary linked to the runtime itself would need its directory on the loader's path.

namespace {

// Makes `device` current for the scope (c10's CUDAGuard, out of line).
struct DeviceScope {
  explicit DeviceScope(c10::DeviceIndex device) : previous(c10::cuda::ExchangeDevice(device)) {}
  ~DeviceScope() { c10::cuda::MaybeSetDevice(previous); }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;
  c10::DeviceIndex previous;
};

// What `enter` replaced: the current device and that device's current stream.
struct Previous {
  c10::DeviceIndex device;
  c10::cuda::CUDAStream stream;
};

// One graph and the stream it is captured on. CUDA graphs cannot be captured on the default
// stream; the warm-up runs on the same stream as the capture, so that the lazily made per-stream
// state (cuBLAS workspaces) exists before capture, when making it would be illegal.
struct Graph {
  explicit Graph(c10::DeviceIndex device)
      : device(device), stream(c10::cuda::getStreamFromPool(false, device)) {}

  c10::DeviceIndex device;
  c10::cuda::CUDAStream stream;
  // Set between enter and leave, while `stream` is current on `device`.
  std::optional<Previous> previous;
  // Made in `begin`, on the capture stream's device.
  std::optional<at::cuda::CUDAGraph> graph;
  bool capturing = false;
};

void restore(Graph* graph) {
  if (!graph->previous.has_value()) return;
  c10::cuda::setCurrentCUDAStream(graph->previous->stream);
  c10::cuda::MaybeSetDevice(graph->previous->device);
  graph->previous.reset();
}

Graph* as_graph(void* g) {
  hrm::check(g != nullptr, "null CUDA graph handle");
  return static_cast<Graph*>(g);
}

}  // namespace

extern "C" {

int hrm_cuda_graphs_built() { return 1; }

int hrm_cuda_graph_new(int device, void** out, char* err, size_t len) {
  return hrm::guarded(
      [&] {
        hrm::check(out != nullptr, "null output pointer");
        hrm::check(device >= 0 && device < c10::cuda::device_count(),
                   "no such CUDA device");
        DeviceScope on_device(static_cast<c10::DeviceIndex>(device));
        *out = new Graph(static_cast<c10::DeviceIndex>(device));
      },
      err, len);
}

// Waits for the device, then makes the graph's stream current, for the warm-up and the capture.
int hrm_cuda_graph_enter(void* g, char* err, size_t len) {
  return hrm::guarded(
      [&] {
        Graph* graph = as_graph(g);
        hrm::check(!graph->previous.has_value(), "the capture stream is already current");
        c10::DeviceIndex device = c10::cuda::ExchangeDevice(graph->device);
        graph->previous.emplace(Previous{device, c10::cuda::getCurrentCUDAStream(graph->device)});
        c10::cuda::device_synchronize();
        c10::cuda::setCurrentCUDAStream(graph->stream);
      },
      err, len);
}

// Starts capturing on the graph's stream. The default CUDA generator is registered, so random
// ops in the step draw new numbers at every replay.
int hrm_cuda_graph_begin(void* g, char* err, size_t len) {
  return hrm::guarded(
      [&] {
        Graph* graph = as_graph(g);
        hrm::check(graph->previous.has_value(), "capture begun off the capture stream");
        hrm::check(!graph->graph.has_value(), "this handle already holds a graph");
        graph->stream.synchronize();
        graph->graph.emplace();
        graph->graph->register_generator_state(
            at::cuda::detail::getDefaultCUDAGenerator(graph->device));
        graph->graph->capture_begin();
        graph->capturing = true;
      },
      err, len);
}

// Ends the capture and instantiates the graph. Also what ends a capture that failed half way:
// the stream then leaves capture mode and the error is reported.
int hrm_cuda_graph_end(void* g, char* err, size_t len) {
  return hrm::guarded(
      [&] {
        Graph* graph = as_graph(g);
        hrm::check(graph->capturing, "no capture in progress");
        graph->capturing = false;
        graph->graph->capture_end();
      },
      err, len);
}

// Restores the stream that was current before `enter`, after the graph's stream has drained.
int hrm_cuda_graph_leave(void* g, char* err, size_t len) {
  return hrm::guarded(
      [&] {
        Graph* graph = as_graph(g);
        hrm::check(!graph->capturing, "leaving the capture stream mid-capture");
        if (graph->previous.has_value()) {
          graph->stream.synchronize();
          restore(graph);
        }
      },
      err, len);
}

// Launches the graph on the current stream of its device.
int hrm_cuda_graph_replay(void* g, char* err, size_t len) {
  return hrm::guarded(
      [&] {
        Graph* graph = as_graph(g);
        hrm::check(graph->graph.has_value() && !graph->capturing,
                   "replay of a graph that was not captured");
        DeviceScope on_device(graph->device);
        graph->graph->replay();
      },
      err, len);
}

void hrm_cuda_graph_free(void* g) {
  if (g == nullptr) return;
  Graph* graph = static_cast<Graph*>(g);
  try {
    if (graph->capturing) {
      graph->capturing = false;
      graph->graph->capture_end();
    }
  } catch (...) {
    // The capture failed; the stream has left capture mode either way.
  }
  try {
    restore(graph);
    delete graph;
  } catch (...) {
  }
}

}  // extern "C"

#else  // no CUDA graphs in this build

namespace {
const char* kNotBuilt =
    "this build of hrm-core has no CUDA graphs: its build found no libtorch CUDA libraries or "
    "no CUDA runtime headers";
}

extern "C" {
int hrm_cuda_graphs_built() { return 0; }
int hrm_cuda_graph_new(int, void**, char* err, size_t len) { return hrm::fail(kNotBuilt, err, len); }
int hrm_cuda_graph_enter(void*, char* err, size_t len) { return hrm::fail(kNotBuilt, err, len); }
int hrm_cuda_graph_begin(void*, char* err, size_t len) { return hrm::fail(kNotBuilt, err, len); }
int hrm_cuda_graph_end(void*, char* err, size_t len) { return hrm::fail(kNotBuilt, err, len); }
int hrm_cuda_graph_leave(void*, char* err, size_t len) { return hrm::fail(kNotBuilt, err, len); }
int hrm_cuda_graph_replay(void*, char* err, size_t len) { return hrm::fail(kNotBuilt, err, len); }
void hrm_cuda_graph_free(void*) {}
}

#endif
