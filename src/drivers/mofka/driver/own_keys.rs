//! What this library keeps in the master database besides Mofka's own keys, under prefixes of
//! its own (never `MOFKA:GLOBAL:`, so Mofka's clients and [`super::topics`] do not see them):
//!
//! - producers' liveness leases, `DIASPORA:PRODUCERS:<topic>:<producer>`, each holding a
//!   heartbeat rewritten every `lease_interval_ms` (see [`crate::drivers::heartbeats`]); a
//!   clean end replaces it with `null`, since the Yokan calls this driver speaks have no erase;
//! - consumers' acknowledged positions, `DIASPORA:POSITIONS:<topic>:<partition>:<consumer>`,
//!   the next id as decimal text. The service keeps its own cursor per consumer name, but has
//!   no call to read it back; these let a restarted consumer (and its steps) know where it was.

use super::shared::Shared;
use crate::drivers::heartbeats::{Heartbeat, HeartbeatStore};
use crate::error::Result;
use crate::types::EventId;
use std::sync::Arc;

const LEASE_PREFIX: &str = "DIASPORA:PRODUCERS:";
const POSITION_PREFIX: &str = "DIASPORA:POSITIONS:";
/// The value of a withdrawn lease.
const WITHDRAWN: &[u8] = b"null";

/// The leases of one topic's producers.
pub(super) struct Leases {
    pub(super) shared: Arc<Shared>,
    /// `DIASPORA:PRODUCERS:<topic>:`.
    prefix: String,
}

impl Leases {
    pub(super) fn new(shared: Arc<Shared>, topic: &str) -> Self {
        Leases {
            shared,
            prefix: format!("{LEASE_PREFIX}{topic}:"),
        }
    }

    /// Every lease still held (key, heartbeat).
    pub(super) fn read(&self) -> Result<Vec<(String, Heartbeat)>> {
        let keys: Vec<String> = self
            .shared
            .list_keys(&self.prefix)?
            .into_iter()
            .map(|k| String::from_utf8_lossy(&k).into_owned())
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let values = self.shared.get_keys(&keys)?;
        let mut out = Vec::new();
        for (key, value) in keys.into_iter().zip(values) {
            // Missing: withdrawn between the listing and the read.
            let Some(v) = value else { continue };
            if v == WITHDRAWN {
                continue;
            }
            let beat = Heartbeat::from_json(&v, &format!("mofka master database key {key}"))?;
            out.push((key, beat));
        }
        Ok(out)
    }
}

impl HeartbeatStore for Leases {
    fn write(&self, key: &str, beat: &Heartbeat) -> Result<()> {
        self.shared
            .put_keys(&[(format!("{}{key}", self.prefix), beat.to_json())])
    }

    fn withdraw(&self, key: &str) -> Result<()> {
        self.shared
            .put_keys(&[(format!("{}{key}", self.prefix), WITHDRAWN.to_vec())])
    }
}

fn position_key(topic: &str, partition: usize, consumer: &str) -> String {
    format!("{POSITION_PREFIX}{topic}:{partition}:{consumer}")
}

/// The position stored for `consumer` in `partition` of `topic` (0 if none).
pub(super) fn load_position(
    shared: &Shared,
    topic: &str,
    partition: usize,
    consumer: &str,
) -> Result<EventId> {
    let key = position_key(topic, partition, consumer);
    let Some(v) = shared.get_keys(std::slice::from_ref(&key))?.pop().flatten() else {
        return Ok(0);
    };
    std::str::from_utf8(&v)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            crate::error::Error::corrupt(
                format!("mofka master database key {key}"),
                0,
                format!("not a position: {:?}", String::from_utf8_lossy(&v)),
            )
        })
}

/// Stores `next` as the position of `consumer` in `partition` of `topic`.
pub(super) fn store_position(
    shared: &Shared,
    topic: &str,
    partition: usize,
    consumer: &str,
    next: EventId,
) -> Result<()> {
    shared.put_keys(&[(
        position_key(topic, partition, consumer),
        next.to_string().into_bytes(),
    )])
}
