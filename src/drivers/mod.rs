//! Driver implementations. Each folder implements [`crate::driver::DriverBackend`] and
//! [`crate::driver::TopicBackend`].

pub mod files;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod mofka;
