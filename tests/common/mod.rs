//! Helpers shared by the integration tests: the driver under test and its topic options come
//! from the environment, as in the C++ reference's test suite (§5.1 of the behaviour notes):
//!
//! - `DIASPORA_TEST_BACKEND`: driver name (default `files`);
//! - `DIASPORA_TEST_BACKEND_ARGS`: driver options as JSON (default `{}`);
//! - `DIASPORA_TEST_TOPIC_ARGS`: options for every topic the tests create (default `{}`).
//!
//! For the `files` driver without a `root_path`, every call to [`test_driver`] gets a fresh
//! temporary directory, returned so that it lives (and is removed) with the test.
#![allow(dead_code)]

use diaspora_stream::Driver;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Name of the driver under test (`DIASPORA_TEST_BACKEND`, default `files`).
pub fn backend_name() -> String {
    match std::env::var("DIASPORA_TEST_BACKEND") {
        Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
        _ => "files".to_string(),
    }
}

/// Parses the JSON in environment variable `var`, `{}` when unset or empty.
fn json_from_env(var: &str) -> Value {
    match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => serde_json::from_str(&s)
            .unwrap_or_else(|e| panic!("{var} is not valid JSON ({e}): {s}")),
        _ => Value::Object(Map::new()),
    }
}

/// Driver options (`DIASPORA_TEST_BACKEND_ARGS`, default `{}`).
pub fn backend_args() -> Value {
    json_from_env("DIASPORA_TEST_BACKEND_ARGS")
}

/// Options for every topic the tests create (`DIASPORA_TEST_TOPIC_ARGS`, default `{}`).
pub fn topic_args() -> Value {
    json_from_env("DIASPORA_TEST_TOPIC_ARGS")
}

/// [`topic_args`] with the keys of `extra` added (replacing same-named keys).
pub fn topic_args_with(extra: Value) -> Value {
    merge_json(topic_args(), extra)
}

/// Shallow merge of two JSON objects: keys of `overlay` replace those of `base`. A non-object
/// `base` is treated as `{}`; a non-object `overlay` leaves `base` unchanged.
pub fn merge_json(base: Value, overlay: Value) -> Value {
    let mut out = match base {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    if let Value::Object(m) = overlay {
        out.extend(m);
    }
    Value::Object(out)
}

/// True when the driver under test is the built-in files driver (`files` or `files:<lib>`).
pub fn is_files_backend() -> bool {
    backend_name().split(':').next() == Some("files")
}

/// The driver under test, created from the environment. For the files driver without a
/// `root_path`, a fresh temporary directory is injected and returned: keep it alive for as long
/// as the driver is used.
pub fn test_driver() -> (Driver, Option<tempfile::TempDir>) {
    let name = backend_name();
    let mut args = backend_args();
    let mut dir = None;
    if is_files_backend() {
        if !args.is_object() {
            args = Value::Object(Map::new());
        }
        if args.get("root_path").is_none() {
            let d = tempfile::tempdir().expect("cannot create a temporary directory");
            args["root_path"] = Value::String(d.path().to_string_lossy().into_owned());
            dir = Some(d);
        }
    }
    #[cfg(feature = "mofka")]
    if name == "mofka" && args.get("group_file").is_none() {
        if !args.is_object() {
            args = Value::Object(Map::new());
        }
        let version = args
            .get("wire_version")
            .and_then(Value::as_str)
            .unwrap_or("0.9")
            .to_string();
        args["group_file"] = Value::String(mofka_group_file(&version));
    }
    let driver = Driver::new(&name, &args)
        .unwrap_or_else(|e| panic!("cannot create driver {name:?} with options {args}: {e}"));
    (driver, dir)
}

/// The Mofka service the tests use when the driver options name none: the real one given by
/// `MOFKA_GROUP_FILE`, or else a Rust mock service started once for this test process (on
/// `DIASPORA_TEST_MOFKA_TRANSPORT`, default `na+sm`) speaking wire `version`.
#[cfg(feature = "mofka")]
pub fn mofka_group_file(version: &str) -> String {
    use diaspora_stream::drivers::mofka::{mock::MockService, wire::WireVersion};
    use std::sync::OnceLock;
    if let Ok(g) = std::env::var("MOFKA_GROUP_FILE") {
        return g;
    }
    static MOCK: OnceLock<(MockService, tempfile::TempDir)> = OnceLock::new();
    let (mock, _dir) = MOCK.get_or_init(|| {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let transport =
            std::env::var("DIASPORA_TEST_MOFKA_TRANSPORT").unwrap_or_else(|_| "na+sm".to_string());
        let version: WireVersion = version.parse().expect("wire_version");
        let mock = MockService::start(&transport, version, dir.path())
            .unwrap_or_else(|e| panic!("cannot start the Mofka mock service on {transport}: {e}"));
        (mock, dir)
    });
    mock.group_file().to_string_lossy().into_owned()
}

/// A topic name no other test (in this or an earlier process) has used: drivers such as Kafka
/// keep topics across test runs.
pub fn unique_topic(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{nanos}-{n}", std::process::id())
}
