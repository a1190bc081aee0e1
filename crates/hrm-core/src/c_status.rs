//! The status convention of this crate's C entry points (`cpp/guard.h`): 0 when the call
//! succeeded, otherwise 1 with a NUL-terminated message in a buffer the caller passes. Shared by
//! the fused kernels ([`crate::fused`]) and the CUDA-graph handle ([`crate::cuda_graph`]).

use std::ffi::{c_char, c_int, CStr};

/// Runs `call` with an error buffer: `Ok` when it returned 0, otherwise the message it wrote.
pub(crate) fn call_with_status(
    call: impl FnOnce(*mut c_char, usize) -> c_int,
) -> Result<(), String> {
    let mut err = [0 as c_char; 1024];
    if call(err.as_mut_ptr(), err.len()) == 0 {
        return Ok(());
    }
    // Safety: a failing entry point wrote a NUL-terminated message of at most `err.len()` bytes
    // (`hrm::fail` truncates and terminates it).
    let message = unsafe { CStr::from_ptr(err.as_ptr()) };
    Err(message.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_status_is_ok_and_another_returns_the_written_message() {
        assert_eq!(call_with_status(|_, _| 0), Ok(()));
        let failed = call_with_status(|err, len| {
            let message = b"bad input\0";
            assert!(len >= message.len());
            for (i, &b) in message.iter().enumerate() {
                // Safety: `i < len`, inside the buffer the caller passed.
                unsafe { *err.add(i) = b as c_char };
            }
            1
        });
        assert_eq!(failed, Err("bad input".to_string()));
    }
}
