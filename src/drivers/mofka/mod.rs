//! Building blocks of the native Mofka driver.
//!
//! [Mofka](https://github.com/mochi-hpc/mofka) is the Mochi event-streaming service: every
//! partition of a topic is a Bedrock provider, the topic's configuration lives in a Yokan
//! database, and clients talk to all of them with Mercury RPCs and RDMA. This module will hold a
//! client that speaks that protocol natively. What it holds today is the part that needs no
//! Mercury at all and is therefore always compiled and tested:
//!
//! - [`wire`]: the byte-exact codec of every message a Mofka client (or a test server standing
//!   in for Mofka) sends or receives, checked against traffic captured from a real deployment.
//!
//! The transport (Mercury handles, bulk transfers, progress loop) and the driver itself will be
//! added on top of [`wire`] behind a cargo feature, because they link against the Mochi
//! libraries found on the build machine.

pub mod wire;
