//! Files driver under damage: zeroed index tails, reads that must not write, lost index records,
//! checksums, forged control events, lock timeouts. Each test reproduces one way data used to be
//! lost, hidden or silently wrong.

use diaspora_stream::drivers::files::{FilesDriver, RepairAction};
use diaspora_stream::{DataView, Driver, Error, TopicHandle};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod checksums;
mod helpers;
mod reads;
mod recovery;
mod tails;
mod writers;
