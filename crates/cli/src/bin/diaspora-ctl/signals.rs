//! Graceful shutdown on SIGINT and SIGTERM.
//!
//! The first signal sets a flag that the commands poll; a second one (if the graceful shutdown is
//! stuck) exits at once with status 1.
//!
//! Handlers that a shared library installed before `main` are removed first: signal-hook calls
//! the handler it replaces after its own, and in builds linking Mercury, Debian's libfabric loads
//! the PSM library (libinfinipath), whose constructor installs a SIGINT/SIGTERM handler that
//! exits with status 1 (its `IPATH_NO_BACKTRACE` setting cannot be given after the program
//! started). The daemons, not a transport library, decide what these signals do.

use crate::error::{CliError, CliResult};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A flag set by SIGINT or SIGTERM.
#[derive(Clone, Debug)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// Installs the handlers.
    pub fn install() -> CliResult<Shutdown> {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM] {
            // SAFETY: sets the disposition of a signal this program handles itself, before the
            // handlers below exist; no Rust code relies on the handler being replaced.
            if unsafe { libc::signal(sig, libc::SIG_DFL) } == libc::SIG_ERR {
                return Err(CliError(format!(
                    "cannot reset the handler of signal {sig}: {}",
                    std::io::Error::last_os_error()
                )));
            }
            // Order matters: the exit action runs first and fires only once the flag is set.
            signal_hook::flag::register_conditional_shutdown(sig, 1, flag.clone())
                .and_then(|_| signal_hook::flag::register(sig, flag.clone()))
                .map_err(|e| CliError(format!("cannot install signal handlers: {e}")))?;
        }
        Ok(Shutdown(flag))
    }

    /// True once a signal arrived.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Sets the flag without a signal (to stop workers after an error).
    pub fn force(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Sleeps up to `d`, waking early (within 20 ms) on shutdown; returns `requested()`.
    pub fn sleep(&self, d: std::time::Duration) -> bool {
        let end = std::time::Instant::now() + d;
        while !self.requested() {
            let now = std::time::Instant::now();
            if now >= end {
                break;
            }
            std::thread::sleep((end - now).min(std::time::Duration::from_millis(20)));
        }
        self.requested()
    }
}
