//! The driver under test.

use diaspora_stream::Driver;
use serde_json::{Map, Value};
use std::any::Any;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// What a test keeps alive while it uses its driver (a temporary folder, a service).
pub type Guard = Box<dyn Any>;

type Make = Box<dyn Fn() -> (Driver, Guard) + Send + Sync>;

/// The driver the kit tests: how to make one for each test, the name it reports, and the
/// options every topic the tests create starts from.
pub struct Target {
    name: String,
    make: Make,
    topic_args: Value,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("topic_args", &self.topic_args)
            .finish()
    }
}

fn must(name: &str, r: diaspora_stream::Result<Driver>) -> Driver {
    r.unwrap_or_else(|e| panic!("cannot create the driver {name:?} under test: {e}"))
}

impl Target {
    /// A driver named `name` (the name its backend reports, or `NAME:LIBRARY`), made by `make`
    /// for each test. Topics must be new for each test: the kit names them uniquely.
    pub fn new(
        name: impl Into<String>,
        make: impl Fn() -> diaspora_stream::Result<Driver> + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        let shown = name.clone();
        Target::with_guard(name, move || (must(&shown, make()), Box::new(())))
    }

    /// Like [`Target::new`], but each test gets a fresh temporary folder (removed after the
    /// test), for drivers that keep topics on disk.
    pub fn with_temp_dir(
        name: impl Into<String>,
        make: impl Fn(&Path) -> diaspora_stream::Result<Driver> + Send + Sync + 'static,
    ) -> Self {
        let name = name.into();
        let shown = name.clone();
        Target::with_guard(name, move || {
            let dir = tempfile::tempdir().expect("cannot create a temporary directory");
            (must(&shown, make(dir.path())), Box::new(dir))
        })
    }

    /// `Driver::new(name, options)` for each test; with `root_path: true` a fresh temporary
    /// folder is added as the `root_path` option (the convention of the files driver and the
    /// driver template).
    pub fn by_name(name: impl Into<String>, options: Value, root_path: bool) -> Self {
        let name = name.into();
        let n = name.clone();
        if root_path {
            Target::with_temp_dir(name, move |dir| {
                let mut o = object(options.clone());
                o.insert("root_path".into(), Value::String(dir.display().to_string()));
                Driver::new(&n, &Value::Object(o))
            })
        } else {
            Target::new(name, move || Driver::new(&n, &options))
        }
    }

    /// The most general form: `make` returns the driver and what must live while it is used.
    pub fn with_guard(
        name: impl Into<String>,
        make: impl Fn() -> (Driver, Guard) + Send + Sync + 'static,
    ) -> Self {
        Target {
            name: name.into(),
            make: Box::new(make),
            topic_args: Value::Object(Map::new()),
        }
    }

    /// The driver named by the environment, as the C++ reference's tests read it:
    /// `DIASPORA_TEST_BACKEND` (default `files`), `DIASPORA_TEST_BACKEND_ARGS` (JSON, default
    /// `{}`) and `DIASPORA_TEST_TOPIC_ARGS` (JSON options of every topic). The files driver, and
    /// any driver whose options name `root_path` as `"<temp>"`, gets a fresh temporary folder.
    pub fn from_env() -> Self {
        let name = match std::env::var("DIASPORA_TEST_BACKEND") {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => "files".to_string(),
        };
        let args = json_from_env("DIASPORA_TEST_BACKEND_ARGS");
        let temp = name.split(':').next() == Some("files") && args.get("root_path").is_none()
            || args.get("root_path").and_then(Value::as_str) == Some("<temp>");
        Target::by_name(name, args, temp).topic_args(json_from_env("DIASPORA_TEST_TOPIC_ARGS"))
    }

    /// Options every topic the tests create starts from (tests add their own
    /// `num_partitions` where they depend on it).
    pub fn topic_args(mut self, args: Value) -> Self {
        self.topic_args = args;
        self
    }

    /// The driver's name as given.
    pub fn name(&self) -> &str {
        &self.name
    }
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Parses the JSON in environment variable `var`, `{}` when unset or empty.
pub fn json_from_env(var: &str) -> Value {
    match std::env::var(var) {
        Ok(s) if !s.trim().is_empty() => serde_json::from_str(&s)
            .unwrap_or_else(|e| panic!("{var} is not valid JSON ({e}): {s}")),
        _ => Value::Object(Map::new()),
    }
}

static TARGET: OnceLock<Target> = OnceLock::new();

/// Runs one case against the target `make` returns (made once per test process: every test of
/// one binary tests the same driver).
pub fn run(make: fn() -> Target, case: fn()) {
    TARGET.get_or_init(make);
    case();
}

fn target() -> &'static Target {
    TARGET
        .get()
        .expect("no conformance target: call the cases through diaspora_stream_conformance::run")
}

/// A new driver under test, with what must live as long as it is used.
pub fn test_driver() -> (Driver, Guard) {
    (target().make)()
}

/// The name of the driver under test as given to the target.
pub fn backend_name() -> String {
    target().name.clone()
}

/// Options of every topic the tests create.
pub fn topic_args() -> Value {
    target().topic_args.clone()
}

/// [`topic_args`] with the keys of `extra` added (replacing same-named keys).
pub fn topic_args_with(extra: Value) -> Value {
    let mut out = object(topic_args());
    out.extend(object(extra));
    Value::Object(out)
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
