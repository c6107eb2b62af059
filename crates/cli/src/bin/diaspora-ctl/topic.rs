//! `topic create`, `topic list` and `topic info`.

use crate::common::{end_position, open_driver, open_topic, DriverArgs};
use crate::error::{CliError, CliResult, Context};
use crate::files_info;
use crate::options::{layered, Dotted};
use clap::Args;
use diaspora_stream::components::{
    partition_selector_from_config, serializer_from_config, validator_from_config,
};
use diaspora_stream::{Error, TopicComponents};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::PathBuf;

/// Options of `topic create`.
#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Name of the topic to create.
    #[arg(long, value_name = "TOPIC")]
    name: String,

    /// JSON file holding the topic's options, e.g. {"num_partitions": 4} (--topic.KEY VALUE
    /// options override it).
    #[arg(long, value_name = "FILE")]
    topic_config: Option<PathBuf>,

    /// Validator type: default, schema, eventbridge, or a registered one.
    #[arg(long, value_name = "TYPE")]
    validator: Option<String>,

    /// JSON file holding the validator's configuration (--validator.KEY VALUE overrides it).
    #[arg(long, value_name = "FILE")]
    validator_config: Option<PathBuf>,

    /// Serializer type: default, schema, or a registered one.
    #[arg(long, value_name = "TYPE")]
    serializer: Option<String>,

    /// JSON file holding the serializer's configuration (--serializer.KEY VALUE overrides it).
    #[arg(long, value_name = "FILE")]
    serializer_config: Option<PathBuf>,

    /// Partition selector type: default, or a registered one.
    #[arg(long, value_name = "TYPE")]
    partition_selector: Option<String>,

    /// JSON file holding the partition selector's configuration (--partition-selector.KEY VALUE
    /// overrides it).
    #[arg(long, value_name = "FILE")]
    partition_selector_config: Option<PathBuf>,
}

/// Options of `topic list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Print one JSON document per topic (name, partitions, components, ...) instead of names.
    #[arg(short, long)]
    verbose: bool,
}

/// Options of `topic info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Name of the topic.
    #[arg(value_name = "TOPIC")]
    name: String,
}

/// Options of `topic status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Name of the topic.
    #[arg(value_name = "TOPIC")]
    name: String,

    /// A producer whose announcement was not renewed for this many seconds (and that did not
    /// end its stream) is shown as "lost". On drivers that age announcements from the first
    /// look (kafka, mofka), the command looks twice, this long apart.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = crate::common::parse_seconds)]
    liveness_timeout: f64,
}

/// Options of `topic check`.
#[derive(Args, Debug)]
pub struct CheckArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Name of the topic.
    #[arg(value_name = "TOPIC")]
    name: String,
}

/// Options of `topic repair`.
#[derive(Args, Debug)]
pub struct RepairArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Name of the topic.
    #[arg(value_name = "TOPIC")]
    name: String,

    /// Carry the repairs out (without it, only say what would be done).
    #[arg(long)]
    apply: bool,
}

/// The files driver of `args`, or a clear refusal for other drivers.
fn files_driver(
    args: &DriverArgs,
    dotted: &Dotted,
    command: &str,
) -> CliResult<diaspora_stream::Driver> {
    let (driver, _) = open_driver(args, dotted)?;
    if driver
        .backend_as::<diaspora_stream::drivers::files::FilesDriver>()
        .is_none()
    {
        return Err(CliError(format!(
            "`topic {command}` works on the files driver only, not on {:?}",
            driver.backend().name()
        )));
    }
    Ok(driver)
}

/// Turns a failed `check`/`repair` of topic `name` into the command's error.
fn files_failure<'a>(name: &'a str, verb: &'a str) -> impl FnOnce(Error) -> CliError + 'a {
    move |e| match e {
        Error::TopicNotFound(_) => CliError(format!("topic {name:?} does not exist")),
        e => CliError(format!("cannot {verb} topic {name:?}: {e}")),
    }
}

/// One partition's report, as lines of text.
fn partition_report(c: &diaspora_stream::drivers::files::PartitionCheck, dry_run: bool) -> String {
    let mut text = format!(
        "partition {}: {} event(s), {} verified against checksums: {}\n",
        c.partition,
        c.events,
        c.verified,
        if c.is_clean() { "ok" } else { "DAMAGED" }
    );
    for p in &c.problems {
        text.push_str(&format!("  problem: {p}\n"));
    }
    for n in &c.notes {
        text.push_str(&format!("  note: {n}\n"));
    }
    for r in &c.repairs {
        let verb = if dry_run {
            "repair would"
        } else {
            "repair can"
        };
        text.push_str(&format!("  {verb}: {r}\n"));
    }
    text
}

fn topic_report(r: &diaspora_stream::drivers::files::TopicCheck) -> String {
    let mut text = String::new();
    for p in &r.problems {
        text.push_str(&format!("topic {:?}: problem: {p}\n", r.topic));
    }
    let events: u64 = r.partitions.iter().map(|p| p.events).sum();
    text.push_str(&format!(
        "topic {:?}: {} partition(s), {events} readable event(s): {}\n",
        r.topic,
        r.partitions.len(),
        if r.is_clean() { "ok" } else { "DAMAGED" }
    ));
    text
}

/// `topic check`: reports on stdout, exits 1 when something is wrong.
pub fn check(a: &CheckArgs, dotted: &Dotted) -> CliResult<()> {
    let driver = files_driver(&a.driver, dotted, "check")?;
    let files = driver
        .backend_as::<diaspora_stream::drivers::files::FilesDriver>()
        .ok_or_else(|| CliError("not a files driver".into()))?;
    let report = files
        .check_topic(&a.name, |c| {
            let _ = print_stdout(&partition_report(c, false));
        })
        .map_err(files_failure(&a.name, "check"))?;
    print_stdout(&topic_report(&report))?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError(format!(
            "topic {:?} is damaged (see above; `diaspora-ctl topic repair` says what it can fix)",
            a.name
        )))
    }
}

/// `topic repair`: a dry run unless --apply.
pub fn repair(a: &RepairArgs, dotted: &Dotted) -> CliResult<()> {
    let driver = files_driver(&a.driver, dotted, "repair")?;
    let files = driver
        .backend_as::<diaspora_stream::drivers::files::FilesDriver>()
        .ok_or_else(|| CliError("not a files driver".into()))?;
    let report = files
        .repair_topic(&a.name, a.apply, |c| {
            let _ = print_stdout(&partition_report(c, !a.apply));
        })
        .map_err(files_failure(&a.name, "repair"))?;
    print_stdout(&topic_report(&report))?;
    let planned = report.partitions.iter().any(|p| !p.repairs.is_empty());
    if !a.apply {
        if planned {
            print_stdout("dry run: nothing was changed; run again with --apply to repair\n")?;
        }
        return Ok(());
    }
    if report.is_clean() {
        Ok(())
    } else {
        Err(CliError(format!(
            "topic {:?} still has damage that repair cannot undo (see above)",
            a.name
        )))
    }
}

/// The configuration of one component from its type, file and `--<prefix>.*` options; `None`
/// when none of them is given (the default component is used).
fn component_config(
    kind: &str,
    prefix: &str,
    type_name: Option<&str>,
    file: Option<&std::path::Path>,
    dotted: &Dotted,
) -> CliResult<Option<Value>> {
    if type_name.is_none() && file.is_none() && !dotted.has(prefix) {
        return Ok(None);
    }
    let mut config = layered(file, &format!("{kind} config"), dotted, prefix)?;
    if let (Some(t), Value::Object(map)) = (type_name, &mut config) {
        map.insert("type".into(), Value::String(t.to_string()));
    }
    if !config.get("type").is_some_and(Value::is_string) {
        return Err(CliError(format!(
            "the {kind} options have no type: give --{prefix} TYPE (or a \"type\" key in --{prefix}-config)"
        )));
    }
    Ok(Some(config))
}

/// `topic create`.
pub fn create(a: &CreateArgs, dotted: &Dotted) -> CliResult<()> {
    let topic_options = layered(a.topic_config.as_deref(), "topic config", dotted, "topic")?;
    let mut components = TopicComponents::default();
    if let Some(c) = component_config(
        "validator",
        "validator",
        a.validator.as_deref(),
        a.validator_config.as_deref(),
        dotted,
    )? {
        components.validator =
            validator_from_config(&c).context(|| "cannot create the validator".to_string())?;
    }
    if let Some(c) = component_config(
        "serializer",
        "serializer",
        a.serializer.as_deref(),
        a.serializer_config.as_deref(),
        dotted,
    )? {
        components.serializer =
            serializer_from_config(&c).context(|| "cannot create the serializer".to_string())?;
    }
    if let Some(c) = component_config(
        "partition selector",
        "partition-selector",
        a.partition_selector.as_deref(),
        a.partition_selector_config.as_deref(),
        dotted,
    )? {
        components.partition_selector = partition_selector_from_config(&c)
            .context(|| "cannot create the partition selector".to_string())?;
    }
    log_info!("creating driver: {}", a.driver.driver);
    let (driver, _) = open_driver(&a.driver, dotted)?;
    log_info!("creating topic: {} with options {topic_options}", a.name);
    driver
        .create_topic_with(&a.name, &topic_options, components)
        .map_err(|e| match e {
            Error::TopicExists(_) => CliError(format!("topic {:?} already exists", a.name)),
            e => CliError(format!("cannot create topic {:?}: {e}", a.name)),
        })?;
    log_info!("topic '{}' created successfully", a.name);
    Ok(())
}

/// Writes `text` to stdout; a closed pipe (`| head`) ends quietly.
fn print_stdout(text: &str) -> CliResult<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(CliError(format!("cannot write to stdout: {e}"))),
    }
}

/// `topic list`.
pub fn list(a: &ListArgs, dotted: &Dotted) -> CliResult<()> {
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let topics = driver
        .list_topics()
        .context(|| "cannot list topics".to_string())?;
    let mut text = String::new();
    for (name, desc) in topics {
        if a.verbose {
            let mut desc = desc;
            if let Value::Object(map) = &mut desc {
                map.entry("name").or_insert(Value::String(name));
            }
            text.push_str(&desc.to_string());
        } else {
            text.push_str(&name);
        }
        text.push('\n');
    }
    print_stdout(&text)
}

/// `topic info`: a pretty JSON document on stdout.
pub fn info(a: &InfoArgs, dotted: &Dotted) -> CliResult<()> {
    let (driver, options) = open_driver(&a.driver, dotted)?;
    let topic = open_topic(&driver, &a.name)?;
    let backend = topic.backend();
    let n = topic.num_partitions();
    let files = if driver.backend().name() == "files" {
        Some(files_info::inspect(&options, &a.name, n)?)
    } else {
        None
    };
    let mut partitions = Vec::with_capacity(n);
    let mut counts = Vec::with_capacity(n);
    let mut total_bytes = 0u64;
    for p in 0..n {
        let events = end_position(backend.as_ref(), p)?;
        counts.push(events);
        let mut entry = json!({"partition": p, "events": events});
        if let Some(f) = &files {
            let b = &f.partitions[p];
            total_bytes += b.total();
            entry["bytes"] = json!({
                "index": b.index,
                "metadata": b.metadata,
                "data": b.data,
                "total": b.total(),
            });
        }
        partitions.push(entry);
    }
    let mut doc = json!({
        "name": a.name,
        "driver": driver.backend().name(),
        "num_partitions": n,
        "events": counts.iter().sum::<u64>(),
        "partitions": partitions,
        "validator": topic.validator().metadata(),
        "serializer": topic.serializer().metadata(),
        "partition_selector": topic.partition_selector().metadata(),
    });
    if let Some(f) = &files {
        doc["path"] = json!(f.path);
        doc["bytes"] = json!(total_bytes);
        let mut consumers = Map::new();
        for name in &f.consumers {
            let mut offsets = Vec::with_capacity(n);
            let mut pending = Vec::with_capacity(n);
            for (p, &count) in counts.iter().enumerate() {
                let next = backend
                    .load_offset(name, p)
                    .context(|| format!("cannot read the position of consumer {name:?}"))?;
                offsets.push(next);
                pending.push(count.saturating_sub(next));
            }
            consumers.insert(name.clone(), json!({"next": offsets, "pending": pending}));
        }
        doc["consumers"] = Value::Object(consumers);
    }
    let text = serde_json::to_string_pretty(&doc).context(|| "cannot format JSON".to_string())?;
    print_stdout(&(text + "\n"))
}

/// `topic status`: per partition the last id and the last step every producer closed, and the
/// producers that announced themselves (alive or lost), as JSON on stdout.
pub fn status(a: &StatusArgs, dotted: &Dotted) -> CliResult<()> {
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let topic = open_topic(&driver, &a.name)?;
    let backend = topic.backend();
    let mut partitions = Vec::new();
    for p in 0..topic.num_partitions() {
        let end = end_position(backend.as_ref(), p)?;
        let step = diaspora_stream::consumer::partition_completed_step(backend.as_ref(), p)
            .context(|| format!("cannot read the steps of partition {p}"))?;
        partitions.push(json!({
            "partition": p,
            "last_id": end.checked_sub(1),
            "completed_step": step,
        }));
    }
    let timeout = std::time::Duration::from_secs_f64(a.liveness_timeout);
    let look = || {
        backend
            .producers()
            .context(|| "cannot read the producers' liveness".to_string())
    };
    let mut first = look()?;
    if backend.liveness_from_first_look()
        && first
            .as_ref()
            .is_some_and(|list| list.iter().any(|(info, _)| !info.ended))
    {
        // This driver ages leases from the first look: look again a timeout later.
        eprintln!(
            "diaspora-ctl: watching the producers' leases for {:.1} s",
            a.liveness_timeout
        );
        std::thread::sleep(timeout + std::time::Duration::from_millis(100));
        first = look()?;
    }
    let producers = match first {
        None => Value::String(format!(
            "the {} driver keeps no producer liveness",
            driver.backend().name()
        )),
        Some(list) => Value::Array(
            list.into_iter()
                .map(|(info, silent)| {
                    let state = if info.ended {
                        "ended"
                    } else if silent > timeout {
                        "lost"
                    } else {
                        "alive"
                    };
                    json!({
                        "name": info.name,
                        "host": info.host,
                        "pid": info.pid,
                        "rank": info.rank,
                        "last_ids": info.last_ids,
                        "state": state,
                        "silent_s": silent.as_secs_f64(),
                    })
                })
                .collect(),
        ),
    };
    let doc = json!({"name": a.name, "partitions": partitions, "producers": producers});
    let text = serde_json::to_string_pretty(&doc).context(|| "cannot format JSON".to_string())?;
    print_stdout(&(text + "\n"))
}
