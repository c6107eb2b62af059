//! Waiting from Python: with the GIL released, in slices of at most [`SIGNAL_CHECK`] between
//! which Ctrl-C is checked (it raises KeyboardInterrupt), until a deadline.

use crate::buffer;
use crate::error::to_py;
use diaspora_stream::{Future, Result};
use pyo3::prelude::*;
use std::time::{Duration, Instant};

/// Longest stretch a wait spends without the GIL before it checks for Ctrl-C.
pub const SIGNAL_CHECK: Duration = Duration::from_millis(50);

/// When a wait gives up: `timeout_ms` from now, or never (None, negative or not finite).
pub struct Deadline(Option<Instant>);

impl Deadline {
    pub fn after_ms(timeout_ms: Option<f64>) -> Self {
        Deadline(
            timeout_ms
                .filter(|ms| *ms >= 0.0 && ms.is_finite())
                .map(|ms| Instant::now() + Duration::from_secs_f64(ms / 1000.0)),
        )
    }

    fn slice(&self) -> Duration {
        match self.0 {
            Some(d) => d
                .saturating_duration_since(Instant::now())
                .min(SIGNAL_CHECK),
            None => SIGNAL_CHECK,
        }
    }

    fn passed(&self) -> bool {
        self.0.is_some_and(|d| Instant::now() >= d)
    }
}

/// Calls `step(slice)` with the GIL released until it gives a value or `deadline` passes
/// (`Ok(None)`), checking for signals between calls and releasing the buffers the library has
/// finished with after each.
pub fn until<T>(
    py: Python<'_>,
    deadline: &Deadline,
    mut step: impl FnMut(Duration) -> Result<Option<T>> + Send,
) -> PyResult<Option<T>>
where
    T: Send,
{
    loop {
        let slice = deadline.slice();
        let r = py.detach(|| step(slice));
        buffer::release_pending(py);
        match r {
            Ok(Some(v)) => return Ok(Some(v)),
            Err(e) => return Err(to_py(e)),
            Ok(None) => {}
        }
        if deadline.passed() {
            return Ok(None);
        }
        py.check_signals()?;
    }
}

/// Waits for `future` at most `timeout_ms` (None or negative: without limit).
pub fn future<T: Clone + Send + Sync + 'static>(
    py: Python<'_>,
    future: &Future<T>,
    timeout_ms: Option<f64>,
) -> PyResult<Option<T>> {
    until(py, &Deadline::after_ms(timeout_ms), |s| {
        future.wait_timeout(s)
    })
}
