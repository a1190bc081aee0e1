// hrm-dist's C++ shim: hands tch tensors (`at::Tensor*`) to libtorch's c10d process groups.
//
// One group = a c10d::TCPStore (rank 0 serves it, every rank is a client), a c10d backend
// (ProcessGroupGloo for CPU tensors, ProcessGroupNCCL for CUDA tensors) and a liveness thread
// that bumps this rank's counter in the store, so that after a failed collective the survivors
// can name the ranks that went away. Every entry point catches every exception; callers get a
// status code and the message (without the C++ backtrace).
#include "shim.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#ifdef USE_C10D_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef USE_C10D_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

using std::chrono::milliseconds;

namespace {

// The key prefix of our own store entries; Gloo's rendezvous gets a prefix of its own.
const char* const kAlivePrefix = "hrm_dist/alive/";
const char* const kBackendPrefix = "hrm_dist/pg";

struct Failure {
  int code;
  std::string message;
};

void write_message(const std::string& message, char* err, size_t err_len) {
  if (err == nullptr || err_len == 0) {
    return;
  }
  size_t n = std::min(message.size(), err_len - 1);
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

bool contains_ci(const std::string& haystack, const std::string& needle) {
  auto it = std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(),
                        [](char a, char b) {
                          return std::tolower(static_cast<unsigned char>(a)) ==
                                 std::tolower(static_cast<unsigned char>(b));
                        });
  return it != haystack.end();
}

// Maps an exception message to a status code: timeouts and ports in use get codes of their own,
// so that Rust can hand out typed errors; the message always travels verbatim.
int classify(const std::string& message) {
  if (contains_ci(message, "EADDRINUSE") || contains_ci(message, "address already in use")) {
    return HRM_DIST_ADDR_IN_USE;
  }
  if (contains_ci(message, "timed out") || contains_ci(message, "timeout")) {
    return HRM_DIST_TIMEOUT;
  }
  return HRM_DIST_ERROR;
}

// Runs `body`, turning any exception into a status code and message.
template <typename F>
int guarded(char* err, size_t err_len, F&& body) {
  try {
    body();
    return HRM_DIST_OK;
  } catch (const Failure& f) {
    write_message(f.message, err, err_len);
    return f.code;
  } catch (const c10::Error& e) {
    std::string message = e.what_without_backtrace();
    write_message(message, err, err_len);
    return classify(message);
  } catch (const std::exception& e) {
    std::string message = e.what();
    write_message(message, err, err_len);
    return classify(message);
  } catch (...) {
    write_message("unknown C++ exception", err, err_len);
    return HRM_DIST_ERROR;
  }
}

bool is_loopback(const std::string& addr) {
  return addr == "localhost" || addr == "::1" || addr.rfind("127.", 0) == 0;
}

#ifdef USE_C10D_GLOO
// Gloo devices as torch.distributed picks them: one per interface in GLOO_SOCKET_IFNAME
// (comma-separated), else the loopback when the rendezvous address is local, else the address
// this machine's hostname resolves to.
std::vector<std::shared_ptr<::gloo::transport::Device>> gloo_devices(const std::string& addr) {
  std::vector<std::shared_ptr<::gloo::transport::Device>> devices;
  const char* ifnames = std::getenv("GLOO_SOCKET_IFNAME");
  if (ifnames != nullptr && *ifnames != '\0') {
    std::stringstream list(ifnames);
    std::string name;
    while (std::getline(list, name, ',')) {
      if (!name.empty()) {
        devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(name));
      }
    }
  } else if (is_loopback(addr)) {
    devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  } else {
    devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  }
  return devices;
}
#endif

milliseconds heartbeat_interval(milliseconds timeout) {
  auto interval = timeout / 16;
  return std::max(milliseconds(25), std::min(milliseconds(1000), interval));
}

}  // namespace

struct hrm_dist_group {
  int rank = 0;
  int world_size = 1;
  int backend_kind = HRM_DIST_BACKEND_GLOO;
  int device_index = -1;
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::Backend> backend;

  // Liveness: a thread bumps kAlivePrefix<rank> every `interval` through its own store client.
  milliseconds interval{250};
  c10::intrusive_ptr<c10d::Store> beat_store;
  std::thread beat_thread;
  std::mutex beat_mutex;
  std::condition_variable beat_cv;
  bool beat_stop = false;

  void start_heartbeat() {
    beat_store = store->clone();
    beat_store->setTimeout(std::max(interval * 4, milliseconds(1000)));
    std::string key = std::string(kAlivePrefix) + std::to_string(rank);
    beat_store->add(key, 1);
    beat_thread = std::thread([this, key]() {
      std::unique_lock<std::mutex> lock(beat_mutex);
      while (!beat_stop) {
        beat_cv.wait_for(lock, interval, [this]() { return beat_stop; });
        if (beat_stop) {
          break;
        }
        try {
          beat_store->add(key, 1);
        } catch (...) {
          // The store's host (rank 0) is gone; nothing left to tell anyone.
          break;
        }
      }
    });
  }

  void stop_heartbeat() {
    {
      std::lock_guard<std::mutex> lock(beat_mutex);
      beat_stop = true;
    }
    beat_cv.notify_all();
    if (beat_thread.joinable()) {
      beat_thread.join();
    }
  }

  ~hrm_dist_group() {
    stop_heartbeat();
  }
};

namespace {

void wait_work(const c10::intrusive_ptr<c10d::Work>& work, milliseconds timeout) {
  work->wait(timeout);
}

std::string shape_string(const std::vector<int64_t>& header) {
  // header: [ndim or -1, scalar type, dims...]
  if (header[0] < 0) {
    return "(more than 8 dimensions)";
  }
  std::ostringstream out;
  out << "[";
  for (int64_t d = 0; d < header[0]; ++d) {
    out << (d ? ", " : "") << header[2 + d];
  }
  out << "] " << c10::toString(static_cast<c10::ScalarType>(header[1]));
  return out.str();
}

constexpr int64_t kMaxGatherDims = 8;

}  // namespace

extern "C" {

int hrm_dist_gloo_available(void) {
#ifdef USE_C10D_GLOO
  return 1;
#else
  return 0;
#endif
}

int hrm_dist_nccl_available(void) {
#ifdef USE_C10D_NCCL
  return 1;
#else
  return 0;
#endif
}

int hrm_dist_group_new(const char* addr, uint16_t port, int32_t rank, int32_t world_size,
                       int32_t serve_store, int32_t backend, int32_t device_index,
                       int64_t timeout_ms, hrm_dist_group** out, char* err, size_t err_len) {
  *out = nullptr;
  return guarded(err, err_len, [&]() {
    milliseconds timeout(timeout_ms);
    std::string host(addr);
#ifndef USE_C10D_GLOO
    if (backend == HRM_DIST_BACKEND_GLOO) {
      throw Failure{HRM_DIST_NO_BACKEND, "built without Gloo headers"};
    }
#endif
#ifndef USE_C10D_NCCL
    if (backend == HRM_DIST_BACKEND_NCCL) {
      throw Failure{HRM_DIST_NO_BACKEND, "built without NCCL"};
    }
#endif
    auto group = std::make_unique<hrm_dist_group>();
    group->rank = rank;
    group->world_size = world_size;
    group->backend_kind = backend;
    group->device_index = device_index;
    group->interval = heartbeat_interval(timeout);

    c10d::TCPStoreOptions options;
    options.port = port;
    options.isServer = serve_store != 0;
    options.numWorkers = static_cast<size_t>(world_size);
    options.waitWorkers = true;
    options.timeout = timeout;
    try {
      group->store = c10::make_intrusive<c10d::TCPStore>(host, options);
    } catch (const c10::Error& e) {
      std::string message = e.what_without_backtrace();
      int code = classify(message);
      throw Failure{code, "TCPStore at " + host + ":" + std::to_string(port) + ": " + message};
    }
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>(kBackendPrefix, group->store);

    if (backend == HRM_DIST_BACKEND_GLOO) {
#ifdef USE_C10D_GLOO
      auto gloo_options = c10d::ProcessGroupGloo::Options::create(timeout);
      gloo_options->devices = gloo_devices(host);
      group->backend =
          c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world_size, gloo_options);
#endif
    } else {
#ifdef USE_C10D_NCCL
      // Without blocking wait a timed-out NCCL collective is aborted by c10d's watchdog thread,
      // which ends the process; with it, Work::wait throws and the error reaches Rust.
      setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
      auto nccl_options = c10d::ProcessGroupNCCL::Options::create();
      nccl_options->timeout = timeout;
      group->backend =
          c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world_size, nccl_options);
#endif
    }
    group->start_heartbeat();
    *out = group.release();
  });
}

void hrm_dist_group_free(hrm_dist_group* group) {
  try {
    delete group;
  } catch (...) {
    // A destructor that throws has nothing left to clean; never let it reach Rust.
  }
}

int hrm_dist_all_reduce_sum(hrm_dist_group* group, void* tensor, int64_t timeout_ms, char* err,
                            size_t err_len) {
  return guarded(err, err_len, [&]() {
    milliseconds timeout(timeout_ms);
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::AllreduceOptions options;
    options.reduceOp = c10d::ReduceOp(c10d::ReduceOp::SUM);
    options.timeout = timeout;
    wait_work(group->backend->allreduce(tensors, options), timeout);
  });
}

int hrm_dist_all_gather(hrm_dist_group* group, const void* input, void** out, int64_t timeout_ms,
                        char* err, size_t err_len) {
  *out = nullptr;
  return guarded(err, err_len, [&]() {
    milliseconds timeout(timeout_ms);
    at::Tensor local = static_cast<const at::Tensor*>(input)->contiguous();
    const int world = group->world_size;

    // First agree on shapes: gather a small header [ndim, dtype, dims...] from every rank, so
    // that a mismatch is the same clear error on every rank instead of garbage or a hang.
    std::vector<int64_t> header(2 + kMaxGatherDims, 0);
    header[0] = local.dim() <= kMaxGatherDims ? local.dim() : -1;
    header[1] = static_cast<int64_t>(local.scalar_type());
    for (int64_t d = 0; d < std::min<int64_t>(local.dim(), kMaxGatherDims); ++d) {
      header[2 + d] = local.size(d);
    }
    at::Tensor header_local = at::tensor(header, at::kLong).to(local.device());
    std::vector<std::vector<at::Tensor>> header_out(1);
    for (int r = 0; r < world; ++r) {
      header_out[0].push_back(at::empty_like(header_local));
    }
    std::vector<at::Tensor> header_in{header_local};
    c10d::AllgatherOptions options;
    options.timeout = timeout;
    wait_work(group->backend->allgather(header_out, header_in, options), timeout);
    std::vector<std::vector<int64_t>> headers;
    bool same = true;
    for (int r = 0; r < world; ++r) {
      at::Tensor h = header_out[0][r].to(at::kCPU);
      headers.emplace_back(h.data_ptr<int64_t>(), h.data_ptr<int64_t>() + h.numel());
      same = same && headers.back() == headers.front() && headers.back()[0] >= 0;
    }
    if (!same) {
      std::ostringstream message;
      message << "ranks passed tensors of different shapes or dtypes:";
      for (int r = 0; r < world; ++r) {
        message << (r ? "," : "") << " rank " << r << " " << shape_string(headers[r]);
      }
      throw Failure{HRM_DIST_SHAPE_MISMATCH, message.str()};
    }

    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < world; ++r) {
      outputs[0].push_back(at::empty_like(local));
    }
    std::vector<at::Tensor> inputs{local};
    wait_work(group->backend->allgather(outputs, inputs, options), timeout);
    // [world_size, *input.shape]
    *out = new at::Tensor(at::stack(outputs[0], 0));
  });
}

int hrm_dist_broadcast(hrm_dist_group* group, void* tensor, int32_t root, int64_t timeout_ms,
                       char* err, size_t err_len) {
  return guarded(err, err_len, [&]() {
    milliseconds timeout(timeout_ms);
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    options.rootTensor = 0;
    options.timeout = timeout;
    wait_work(group->backend->broadcast(tensors, options), timeout);
  });
}

int hrm_dist_barrier(hrm_dist_group* group, int64_t timeout_ms, char* err, size_t err_len) {
  return guarded(err, err_len, [&]() {
    milliseconds timeout(timeout_ms);
    c10d::BarrierOptions options;
    options.timeout = timeout;
    if (group->backend_kind == HRM_DIST_BACKEND_NCCL && group->device_index >= 0) {
      options.device_ids = {static_cast<int64_t>(group->device_index)};
    }
    wait_work(group->backend->barrier(options), timeout);
  });
}

int32_t hrm_dist_lost_ranks(hrm_dist_group* group, int32_t* lost, int32_t cap) {
  try {
    auto& store = group->beat_store;
    const int world = group->world_size;
    auto read = [&](int r) {
      return store->add(std::string(kAlivePrefix) + std::to_string(r), 0);
    };
    std::vector<int64_t> first(world, 0);
    std::vector<bool> alive(world, false);
    alive[group->rank] = true;
    for (int r = 0; r < world; ++r) {
      if (r != group->rank) {
        first[r] = read(r);
      }
    }
    // A live peer bumps its counter every `interval`; give it four before calling it lost.
    auto deadline = std::chrono::steady_clock::now() + group->interval * 4;
    while (std::chrono::steady_clock::now() < deadline &&
           std::find(alive.begin(), alive.end(), false) != alive.end()) {
      std::this_thread::sleep_for(group->interval / 2);
      for (int r = 0; r < world; ++r) {
        if (!alive[r] && read(r) > first[r]) {
          alive[r] = true;
        }
      }
    }
    int32_t n = 0;
    for (int r = 0; r < world; ++r) {
      if (!alive[r]) {
        if (n < cap) {
          lost[n] = r;
        }
        ++n;
      }
    }
    return n;
  } catch (...) {
    // The store lives in rank 0's process: unreachable store, lost rank 0.
    return -1;
  }
}

}  // extern "C"
