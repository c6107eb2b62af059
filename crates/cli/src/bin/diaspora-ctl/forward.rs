//! `forward`: a daemon copying events (metadata and data) from topics to other topics, possibly
//! of other drivers, as a YAML file says.
//!
//! ```yaml
//! drivers:
//!   hpc:
//!     type: files
//!     options: {root_path: /scratch/topics}
//!   archive:
//!     type: files
//!     options: {root_path: /archive/topics}
//! forward:
//!   - from: hpc/steps
//!     to: archive/steps
//!     consumer: steps-archiver      # optional; default "hpc/steps->archive/steps"
//! ```
//!
//! One worker thread per policy reads the source with a consumer named after the policy and
//! pushes each event to the destination through the generic driver API. Every 100 ms (or 4096
//! events, or 64 MiB) it flushes the destination producer and, once the flush has completed
//! (so every push future has resolved), acknowledges on the source the last forwarded event of
//! each partition. A restarted daemon resumes after the acknowledged events.
//!
//! Guarantees:
//! * **exactly once across a clean stop** (SIGINT/SIGTERM): the worker stops pulling, flushes,
//!   acknowledges everything the destination accepted, and exits 0; events it had prefetched but
//!   not forwarded are not acknowledged and are forwarded after the restart;
//! * **at least once across a crash** (`kill -9`, power loss with a durable destination): the
//!   events forwarded after the last acknowledgement (at most one window: 100 ms, 4096 events)
//!   are forwarded again after the restart, so the destination may hold them twice; nothing is
//!   lost;
//! * the same at-least-once when the destination fails (the worker retries from the last
//!   acknowledged event);
//! * an event the destination's validator rejects is logged as an error and skipped (it would be
//!   rejected forever);
//! * events are pushed to the destination in the order they are read from the source.
//!
//! Run one daemon per configuration: two daemons with the same policy share its consumer name.

use crate::common::{make_driver, open_topic};
use crate::error::{CliError, CliResult};
use crate::signals::Shutdown;
use clap::Args;
use diaspora_stream::{Consumer, Driver, Error, Event, EventId, Future, Producer, TopicHandle};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Help text after the options.
pub const HELP: &str = "\
Configuration (YAML):
  drivers:                     # named driver instances
    src:
      type: files              # driver type
      options: {root_path: /scratch/topics}   # driver options (optional)
    dst:
      type: files
      options: {root_path: /archive/topics}
  forward:                     # policies; one worker each
    - from: src/steps          # <driver name>/<topic>
      to: dst/steps
      consumer: archiver       # optional consumer name (default: \"src/steps->dst/steps\")

Events (metadata and data) are acknowledged on the source only after the destination stored them.
SIGINT or SIGTERM: stop, flush, acknowledge, exit 0; a restart resumes exactly where it stopped.
When a source stream ends (its producers called end_of_stream), the policy passes the end on to
its destination and stops; the daemon exits 0 once every policy has stopped.
After a crash (kill -9), up to the last ~100 ms of forwarded events may be forwarded again.";

/// Options of `forward`.
#[derive(Args, Debug)]
pub struct ForwardArgs {
    /// YAML configuration file (see below).
    #[arg(long, value_name = "FILE.yaml")]
    config: PathBuf,
}

/// One `driver/topic` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TopicRef {
    driver: String,
    topic: String,
}

impl std::fmt::Display for TopicRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.driver, self.topic)
    }
}

/// One forwarding policy.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    from: TopicRef,
    to: TopicRef,
    consumer: String,
}

/// A parsed configuration.
#[derive(Debug)]
struct Config {
    /// name -> (type, options)
    drivers: BTreeMap<String, (String, Value)>,
    policies: Vec<Policy>,
}

fn check_keys(map: &Map<String, Value>, allowed: &[&str], what: &str) -> Result<(), String> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(format!(
            "{what}: unknown key '{k}' (expected {})",
            allowed
                .iter()
                .map(|a| format!("'{a}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn parse_ref(text: &str, what: &str) -> Result<TopicRef, String> {
    match text.split_once('/') {
        Some((d, t)) if !d.is_empty() && !t.is_empty() => Ok(TopicRef {
            driver: d.to_string(),
            topic: t.to_string(),
        }),
        _ => Err(format!(
            "{what}: invalid topic reference '{text}': expected 'driver/topic'"
        )),
    }
}

/// Parses and checks a configuration (YAML types are kept: `"123"` stays a string).
fn parse_config(text: &str) -> Result<Config, String> {
    let root: Value = serde_yaml_ng::from_str(text).map_err(|e| format!("invalid YAML: {e}"))?;
    let root = match root {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        _ => return Err("the configuration must be a mapping with 'drivers' and 'forward'".into()),
    };
    check_keys(&root, &["drivers", "forward"], "configuration")?;
    let drivers_v = root.get("drivers").ok_or("missing 'drivers' section")?;
    let Value::Object(drivers_m) = drivers_v else {
        return Err("'drivers' must be a mapping of driver names".into());
    };
    let mut drivers = BTreeMap::new();
    for (name, d) in drivers_m {
        let what = format!("driver '{name}'");
        let Value::Object(d) = d else {
            return Err(format!(
                "{what} must be a mapping with 'type' and 'options'"
            ));
        };
        check_keys(d, &["type", "options"], &what)?;
        let kind = match d.get("type") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(format!("{what}: 'type' must be a non-empty string")),
            None => return Err(format!("{what} is missing the required 'type' field")),
        };
        let options = match d.get("options") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(o @ Value::Object(_)) => o.clone(),
            Some(_) => return Err(format!("{what}: 'options' must be a mapping")),
        };
        drivers.insert(name.clone(), (kind, options));
    }
    let forward = match root.get("forward") {
        None => return Err("missing 'forward' entries".into()),
        Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err("'forward' must be a list of {from, to} entries".into()),
    };
    let mut policies: Vec<Policy> = Vec::new();
    for (i, entry) in forward.iter().enumerate() {
        let what = format!("forward entry {}", i + 1);
        let Value::Object(e) = entry else {
            return Err(format!("{what} must be a mapping with 'from' and 'to'"));
        };
        for plugin in ["data_selector", "data_allocator"] {
            if e.contains_key(plugin) {
                return Err(format!(
                    "{what}: '{plugin}' plugins (shared libraries) are not supported; the whole data is forwarded"
                ));
            }
        }
        check_keys(e, &["from", "to", "consumer"], &what)?;
        let get = |k: &str| match e.get(k) {
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(_) => Err(format!("{what}: '{k}' must be a string 'driver/topic'")),
            None => Err(format!("{what} is missing the '{k}' field")),
        };
        let from = parse_ref(get("from")?, &what)?;
        let to = parse_ref(get("to")?, &what)?;
        for r in [&from, &to] {
            if !drivers.contains_key(&r.driver) {
                return Err(format!(
                    "{what}: unknown driver '{}' (defined: {})",
                    r.driver,
                    drivers.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if from == to {
            return Err(format!(
                "{what}: forwarding {from} to itself would loop forever"
            ));
        }
        let consumer = match e.get("consumer") {
            None | Some(Value::Null) => format!("{from}->{to}"),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(format!("{what}: 'consumer' must be a non-empty string")),
        };
        if let Some(j) = policies
            .iter()
            .position(|p| p.from == from && p.consumer == consumer)
        {
            return Err(format!(
                "{what} reads {from} with the same consumer name '{consumer}' as forward entry {}; give one of them another 'consumer'",
                j + 1
            ));
        }
        policies.push(Policy { from, to, consumer });
    }
    Ok(Config { drivers, policies })
}

/// Events forwarded but not yet acknowledged.
#[derive(Default)]
struct Window {
    /// Last forwarded event per source partition.
    last: BTreeMap<usize, Event>,
    /// Push futures of the window's events.
    pushes: Vec<Future<EventId>>,
    count: u64,
    bytes: usize,
    since: Option<Instant>,
}

/// Most events in a window.
const WINDOW_EVENTS: u64 = 4096;
/// Most data bytes in a window.
const WINDOW_BYTES: usize = 64 << 20;
/// Longest time events stay unacknowledged while more keep coming.
const WINDOW_TIME: Duration = Duration::from_millis(100);

/// The worker of one policy.
struct Worker {
    policy: Policy,
    source: TopicHandle,
    dest: TopicHandle,
    shutdown: Shutdown,
    forwarded: Arc<AtomicU64>,
}

impl Worker {
    /// Flushes the destination, then acknowledges the window on the source.
    fn commit(&self, producer: &Producer, w: &mut Window) -> Result<(), String> {
        if w.count == 0 {
            return Ok(());
        }
        let flushed = producer.flush().wait();
        let window = std::mem::take(w);
        if let Err(e) = flushed {
            return Err(format!(
                "the destination did not store {} event(s): {e}",
                window.count
            ));
        }
        // The flush covers every push before it; still, acknowledge only on resolved pushes.
        for f in &window.pushes {
            if let Err(e) = f.wait() {
                return Err(format!("the destination did not store an event: {e}"));
            }
        }
        for (p, ev) in window.last {
            ev.acknowledge().map_err(|e| {
                format!(
                    "cannot acknowledge event {} of partition {p} on the source: {e}",
                    ev.id()
                )
            })?;
        }
        self.forwarded.fetch_add(window.count, Ordering::Relaxed);
        Ok(())
    }

    /// Forwards until shutdown (`Ok`) or a failure (`Err`, after acknowledging what was stored).
    fn pump(&self, consumer: &Consumer, producer: &Producer) -> Result<(), String> {
        let mut w = Window::default();
        loop {
            if self.shutdown.requested() {
                return self.commit(producer, &mut w);
            }
            let ev = match consumer.pull().wait_timeout(Duration::from_millis(50)) {
                Ok(Some(ev)) => ev,
                Ok(None) => {
                    self.commit(producer, &mut w)?;
                    continue;
                }
                Err(e) => {
                    self.commit(producer, &mut w)?;
                    return Err(format!("cannot read the source: {e}"));
                }
            };
            if ev.is_end_of_stream() {
                // The source's producers ended their stream: pass the end on and stop this
                // policy (the daemon exits once every policy has stopped).
                self.commit(producer, &mut w)?;
                producer
                    .end_of_stream(0, 1)
                    .wait()
                    .map_err(|e| format!("cannot end the destination's stream: {e}"))?;
                log_info!(
                    "{} -> {}: the source stream ended; end of stream passed on",
                    self.policy.from,
                    self.policy.to
                );
                return Ok(());
            }
            let f = producer.push(ev.metadata().clone(), ev.data().clone());
            let mut rejected = false;
            if f.completed() {
                if let Err(e) = f.wait() {
                    rejected = true;
                    if matches!(e, Error::InvalidMetadata(_)) {
                        log_error!(
                            "{} -> {}: the destination rejected event {} of partition {}: {e}; skipping it",
                            self.policy.from,
                            self.policy.to,
                            ev.id(),
                            ev.partition()
                        );
                    } else {
                        self.commit(producer, &mut w)?;
                        return Err(format!(
                            "cannot forward event {} of partition {}: {e}",
                            ev.id(),
                            ev.partition()
                        ));
                    }
                }
            }
            if !rejected {
                w.pushes.push(f);
            }
            w.count += 1;
            w.bytes += ev.data().size();
            w.since.get_or_insert_with(Instant::now);
            w.last.insert(ev.partition(), ev);
            if w.count >= WINDOW_EVENTS
                || w.bytes >= WINDOW_BYTES
                || w.since.is_some_and(|s| s.elapsed() >= WINDOW_TIME)
            {
                self.commit(producer, &mut w)?;
            }
        }
    }

    /// Runs until shutdown; returns false if events may be forwarded again after a restart.
    fn run(self) -> bool {
        let label = format!("{} -> {}", self.policy.from, self.policy.to);
        let producer = match self.dest.producer().name(&self.policy.consumer).build() {
            Ok(p) => p,
            Err(e) => {
                log_error!("{label}: cannot create a producer: {e}");
                return false;
            }
        };
        let mut clean = true;
        while !self.shutdown.requested() {
            let consumer = match self.source.consumer(&self.policy.consumer).build() {
                Ok(c) => c,
                Err(e) => {
                    log_error!("{label}: cannot create a consumer: {e}; retrying in 1 s");
                    clean = false;
                    self.shutdown.sleep(Duration::from_secs(1));
                    continue;
                }
            };
            clean = true;
            match self.pump(&consumer, &producer) {
                Ok(()) => break,
                Err(e) => {
                    clean = false;
                    log_error!("{label}: {e}; resuming after the last acknowledged event in 1 s");
                    drop(consumer);
                    self.shutdown.sleep(Duration::from_secs(1));
                }
            }
        }
        drop(producer);
        log_info!(
            "{label}: forwarded {} event(s) in this run",
            self.forwarded.load(Ordering::Relaxed)
        );
        clean
    }
}

/// Builds the drivers, opens the topics and prepares one worker per policy.
fn setup(config: &Config, shutdown: &Shutdown) -> CliResult<Vec<Worker>> {
    let mut drivers: HashMap<String, Driver> = HashMap::new();
    for (name, (kind, options)) in &config.drivers {
        let d =
            make_driver(kind, options).map_err(|e| CliError(format!("driver '{name}': {e}")))?;
        drivers.insert(name.clone(), d);
    }
    let mut topics: HashMap<TopicRef, TopicHandle> = HashMap::new();
    let mut workers = Vec::new();
    for (i, policy) in config.policies.iter().enumerate() {
        for r in [&policy.from, &policy.to] {
            if !topics.contains_key(r) {
                let driver = drivers
                    .get(&r.driver)
                    .ok_or_else(|| CliError(format!("unknown driver '{}'", r.driver)))?;
                let t = open_topic(driver, &r.topic)
                    .map_err(|e| CliError(format!("forward entry {}: {r}: {e}", i + 1)))?;
                topics.insert(r.clone(), t);
            }
        }
        workers.push(Worker {
            policy: policy.clone(),
            source: topics[&policy.from].clone(),
            dest: topics[&policy.to].clone(),
            shutdown: shutdown.clone(),
            forwarded: Arc::new(AtomicU64::new(0)),
        });
    }
    Ok(workers)
}

/// `forward`.
pub fn run(a: &ForwardArgs) -> CliResult<()> {
    let text = std::fs::read_to_string(&a.config).map_err(|e| {
        CliError(format!(
            "cannot read configuration {}: {e}",
            a.config.display()
        ))
    })?;
    let in_config = |e: String| CliError(format!("configuration {}: {e}", a.config.display()));
    let config = parse_config(&text).map_err(in_config)?;
    if config.policies.is_empty() {
        log_warn!("no forward entries: nothing to do");
        return Ok(());
    }
    let shutdown = Shutdown::install()?;
    let workers = setup(&config, &shutdown).map_err(|e| in_config(e.0))?;
    let mut handles = Vec::new();
    for w in workers {
        let label = format!("{} -> {}", w.policy.from, w.policy.to);
        log_info!("forwarding {label} (consumer '{}')", w.policy.consumer);
        let h = std::thread::Builder::new()
            .name("forward".into())
            .spawn(move || w.run())
            .map_err(|e| CliError(format!("cannot start a worker thread: {e}")))?;
        handles.push((label, h));
    }
    log_info!("forwarding daemon running; SIGINT or SIGTERM stops it");
    while !shutdown.requested() && !handles.iter().all(|(_, h)| h.is_finished()) {
        shutdown.sleep(Duration::from_millis(200));
    }
    log_info!("stopping: flushing and acknowledging");
    shutdown.force();
    let mut failed = Vec::new();
    for (label, h) in handles {
        match h.join() {
            Ok(true) => {}
            Ok(false) => failed.push(label),
            Err(_) => failed.push(format!("{label} (panicked)")),
        }
    }
    log_info!("forwarding daemon stopped");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError(format!(
            "these policies stopped after a failure, so some events may be forwarded again on restart: {}",
            failed.join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "
drivers:
  a: {type: files, options: {root_path: /tmp/a, use_file_locking: true}}
  b:
    type: files
forward:
  - from: a/x/y
    to: b/x
  - {from: a/z, to: b/z, consumer: zc}
";

    #[test]
    fn good_config() {
        let c = parse_config(GOOD).unwrap();
        assert_eq!(c.drivers["a"].1["use_file_locking"], Value::Bool(true));
        assert_eq!(c.drivers["b"].1, Value::Object(Map::new()));
        assert_eq!(c.policies[0].from.topic, "x/y");
        assert_eq!(c.policies[0].consumer, "a/x/y->b/x");
        assert_eq!(c.policies[1].consumer, "zc");
        let c = parse_config("drivers: {}\nforward: []\n").unwrap();
        assert!(c.policies.is_empty());
    }

    #[test]
    fn quoting_is_respected() {
        let c =
            parse_config("drivers: {a: {type: files, options: {n: \"123\", m: 123}}}\nforward: []")
                .unwrap();
        assert_eq!(c.drivers["a"].1["n"], Value::String("123".into()));
        assert_eq!(c.drivers["a"].1["m"], Value::from(123));
    }

    #[test]
    fn bad_configs() {
        for (text, expected) in [
            ("drivers: [", "invalid YAML"),
            ("forward: []", "missing 'drivers'"),
            ("drivers: {a: {options: {}}}\nforward: []", "'type'"),
            ("drivers: {a: {type: files}}", "missing 'forward'"),
            ("drivers: {a: {type: files}}\nforward: [{from: a/x}]", "'to'"),
            ("drivers: {a: {type: files}}\nforward: [{from: ax, to: a/y}]", "driver/topic"),
            ("drivers: {a: {type: files}}\nforward: [{from: a/x, to: c/y}]", "unknown driver 'c'"),
            ("drivers: {a: {type: files}}\nforward: [{from: a/x, to: a/x}]", "itself"),
            (
                "drivers: {a: {type: files}}\nforward: [{from: a/x, to: a/y, data_selector: l.so:f}]",
                "not supported",
            ),
            ("drivers: {a: {type: files}}\nforward: [{from: a/x, to: a/y, tO: 1}]", "unknown key"),
            (
                "drivers: {a: {type: files}}\nforward: [{from: a/x, to: a/y}, {from: a/x, to: a/y}]",
                "same consumer name",
            ),
        ] {
            let e = parse_config(text).unwrap_err();
            assert!(e.contains(expected), "{text}: {e}");
        }
    }
}
