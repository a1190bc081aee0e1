// The error boundary of hrm-core's C++ kernels (fused.cpp, attention.cpp): input checks that
// throw, and the wrapper that turns any exception into a status and a NUL-terminated message,
// so that no C++ exception unwinds into Rust.
#pragma once

#include <cstring>
#include <exception>
#include <stdexcept>

#include <c10/util/Exception.h>

namespace hrm {

inline void check(bool ok, const char* what) {
  if (!ok) throw std::invalid_argument(what);
}

// Copies `message` into `err` (at most `len` bytes, NUL-terminated) and returns 1.
inline int fail(const char* message, char* err, size_t len) {
  if (err != nullptr && len > 0) {
    std::strncpy(err, message, len - 1);
    err[len - 1] = '\0';
  }
  return 1;
}

// Runs f(): 0 when it returns, 1 with the message in `err` when it throws.
template <typename F>
int guarded(F&& f, char* err, size_t len) {
  try {
    f();
    return 0;
  } catch (const c10::Error& e) {
    return fail(e.what_without_backtrace(), err, len);
  } catch (const std::exception& e) {
    return fail(e.what(), err, len);
  } catch (...) {
    return fail("unknown C++ exception", err, len);
  }
}

}  // namespace hrm
