//! Minimal leveled logging to stderr: `[2025-01-31 12:00:00.123Z] [info] message` (UTC).
//!
//! Logs never go to stdout, which carries only data.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Log levels, from the most to the least verbose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    // Everything, including per-event traces.
    Trace,
    // Diagnostics.
    Debug,
    // Normal progress messages.
    Info,
    // Something was ignored or retried.
    Warn,
    // Something failed.
    Error,
    // Nothing.
    Off,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
            Level::Off => "off",
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);

/// Sets the lowest level that is printed.
pub fn set_level(level: Level) {
    LEVEL.store(level as u8, Ordering::Relaxed);
}

/// True when messages of `level` are printed.
pub fn enabled(level: Level) -> bool {
    level != Level::Off && level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// Prints one log line if `level` is enabled.
pub fn log(level: Level, args: std::fmt::Arguments<'_>) {
    if enabled(level) {
        eprintln!("[{}] [{}] {}", timestamp(), level.name(), args);
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmmZ` in UTC.
fn timestamp() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        now.subsec_millis()
    )
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Logs at debug level.
macro_rules! log_debug {
    ($($t:tt)*) => { $crate::logging::log($crate::logging::Level::Debug, format_args!($($t)*)) };
}
/// Logs at info level.
macro_rules! log_info {
    ($($t:tt)*) => { $crate::logging::log($crate::logging::Level::Info, format_args!($($t)*)) };
}
/// Logs at warning level.
macro_rules! log_warn {
    ($($t:tt)*) => { $crate::logging::log($crate::logging::Level::Warn, format_args!($($t)*)) };
}
/// Logs at error level.
macro_rules! log_error {
    ($($t:tt)*) => { $crate::logging::log($crate::logging::Level::Error, format_args!($($t)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn levels_order() {
        assert!(Level::Error > Level::Info);
        set_level(Level::Warn);
        assert!(enabled(Level::Error));
        assert!(!enabled(Level::Info));
        assert!(!enabled(Level::Off));
        set_level(Level::Info);
    }
}
