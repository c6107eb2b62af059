//! Building blocks of the native Mofka driver.
//!
//! [Mofka](https://github.com/mochi-hpc/mofka) is the Mochi event-streaming service: every
//! partition of a topic is a Bedrock provider, the topic's configuration lives in a Yokan
//! database, and clients talk to all of them with Mercury RPCs and RDMA. This module holds a client
//! that speaks that protocol natively:
//!
//! - [`wire`]: the byte-exact codec of every message a Mofka client (or a test server standing
//!   in for Mofka) sends or receives, checked against traffic captured from a real deployment.
//!   It needs no Mercury and is always compiled and tested.
//! - `MofkaDriver` (feature `mofka`): the `"mofka"` driver, on the Mercury layer
//!   (`crate::mercury`).
//! - `mock` (feature `mofka`): a Rust stand-in for a Bedrock + Yokan + Mofka service, on the
//!   same codec and transport, so that the driver is tested end to end where Mercury is
//!   installed.

#[cfg(feature = "mofka")]
mod driver;
#[cfg(feature = "mofka")]
pub mod mock;
#[cfg(feature = "mofka")]
mod rpc;
pub mod wire;

#[cfg(feature = "mofka")]
pub use driver::{MofkaDriver, PartitionSpec};
