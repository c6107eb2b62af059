//! The error of every command: a message shown to the user as `error: <message>` (exit code 1),
//! and [`Context`] to say what was being done when something failed.

use std::fmt;

/// An error reported to the user as `error: <message>` with exit code 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// Result of the commands.
pub type CliResult<T> = Result<T, CliError>;

/// Adds what was being done to an error message.
pub trait Context<T> {
    /// `"<what>: <error>"`.
    fn context(self, what: impl FnOnce() -> String) -> CliResult<T>;
}

impl<T, E: fmt::Display> Context<T> for Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> CliResult<T> {
        self.map_err(|e| CliError(format!("{}: {e}", what())))
    }
}
