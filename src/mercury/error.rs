//! Mercury's return codes as errors, and the guard that keeps panics from unwinding into C.

use crate::error::{panic_message, Error, Result};
use mercury_sys as hg;
use std::ffi::CStr;

/// Builds an [`Error`] for a Mercury call that returned `code`.
pub(super) fn hg_error(operation: impl Into<String>, code: hg::hg_return_t) -> Error {
    // SAFETY: HG_Error_to_string returns a static string for every code.
    let text = unsafe {
        let p = hg::HG_Error_to_string(code);
        if p.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Error::Transport {
        operation: operation.into(),
        code: code as i32,
        message: text,
    }
}

/// `Ok` for `HG_SUCCESS`, else the [`Error`] of `operation`.
pub(super) fn hg_check(operation: &str, code: hg::hg_return_t) -> Result<()> {
    if code == hg::HG_SUCCESS {
        Ok(())
    } else {
        Err(hg_error(operation, code))
    }
}

/// Runs `f`, turning a panic into an error code so that it cannot unwind into C.
pub(super) fn guard(what: &str, f: impl FnOnce() -> hg::hg_return_t) -> hg::hg_return_t {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(payload) => {
            eprintln!(
                "diaspora-stream: panic in the Mercury {what} callback: {}",
                panic_message(&*payload)
            );
            hg::HG_OTHER_ERROR
        }
    }
}
