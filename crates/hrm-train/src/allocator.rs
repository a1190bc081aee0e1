//! How the C allocator treats the large, short-lived buffers of tensor code.
//!
//! libtorch's CPU tensors come from `malloc`. glibc serves blocks above its mmap threshold with
//! fresh `mmap`s and gives freed memory at the top of the heap back to the kernel above its trim
//! threshold. A training step allocates and frees the same activation-sized buffers (a few MiB)
//! hundreds of times, so with the defaults many of them arrive as new pages: the kernel zeroes
//! each page on its first touch, and the profile of a step shows 4-5 % of its samples in page
//! faults (`clear_page_erms`, `exc_page_fault`) and more in `munmap`. Raising the mmap
//! threshold to glibc's maximum and never trimming keeps those buffers in the heap, where the
//! next step reuses them: 8-9 % more training samples/s on the `small` preset in float32 on a
//! 2-core host (`docs/performance.md`). The cost is that the process keeps its peak heap until
//! it exits, which a training or evaluation process does anyway.
//!
//! [`keep_freed_memory`] applies this once per process, before the first tensor. It leaves
//! glibc alone when the user tuned it already (any `MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_` or `MALLOC_TOP_PAD_` in the environment) or asked for the defaults
//! (`HRM_MALLOC=system`), and does nothing on other C libraries.

/// The environment variable that keeps glibc's defaults when set to `system`.
pub const ENV_VAR: &str = "HRM_MALLOC";

/// glibc's largest allowed mmap threshold on 64-bit targets (`HEAP_MAX_SIZE / 2`).
const MMAP_THRESHOLD: i32 = 32 << 20;

/// What [`keep_freed_memory`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllocatorPolicy {
    /// Large blocks stay in the heap and freed memory is not returned to the kernel.
    KeepFreed,
    /// Left as it was: the environment asked for it, or the C library is not glibc.
    Unchanged,
}

/// Raises glibc's mmap threshold to its maximum and disables trimming (see the module docs),
/// unless the environment says otherwise. Call it at the start of a process, before tensors
/// are made; calling it again changes nothing further.
pub fn keep_freed_memory() -> AllocatorPolicy {
    let tuned_by_user = [
        "MALLOC_MMAP_THRESHOLD_",
        "MALLOC_TRIM_THRESHOLD_",
        "MALLOC_TOP_PAD_",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    let system = std::env::var(ENV_VAR).is_ok_and(|v| v == "system");
    if tuned_by_user || system {
        return AllocatorPolicy::Unchanged;
    }
    apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)] // one FFI call to glibc's `mallopt`
fn apply() -> AllocatorPolicy {
    // SAFETY: `mallopt` only changes allocator parameters; it is thread-safe in glibc and takes
    // no pointers. A rejected value leaves that parameter unchanged (return value 0).
    let ok = unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX) == 1
            && libc::mallopt(libc::M_TOP_PAD, 64 << 20) == 1
    };
    if ok {
        AllocatorPolicy::KeepFreed
    } else {
        AllocatorPolicy::Unchanged
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> AllocatorPolicy {
    AllocatorPolicy::Unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_on_glibc_unless_the_environment_says_otherwise() {
        let policy = keep_freed_memory();
        let env_set = std::env::var_os(ENV_VAR).is_some()
            || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
            || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some()
            || std::env::var_os("MALLOC_TOP_PAD_").is_some();
        if cfg!(all(target_os = "linux", target_env = "gnu")) && !env_set {
            assert_eq!(policy, AllocatorPolicy::KeepFreed);
        } else if env_set {
            assert_eq!(policy, AllocatorPolicy::Unchanged);
        }
    }
}
