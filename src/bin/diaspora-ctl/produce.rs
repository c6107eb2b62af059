//! `produce`: JSON Lines from stdin to a topic.
//!
//! Each line is `{"metadata": <any JSON>, "data": "<base64>", "partition": <index>}` (`data` and
//! `partition` optional; blank lines skipped). Every line is checked completely (JSON, fields,
//! base64, partition range, the topic's validator) before it is pushed, so a bad line stops the
//! command with nothing of it or after it written; what came before is flushed. The number of
//! events stored is printed on stdout, also when the command fails.

use crate::common::{open_driver, open_topic, parse_batch_size, CliError, CliResult};
use crate::options::Dotted;
use crate::DriverArgs;
use base64::prelude::*;
use clap::Args;
use diaspora_stream::{BatchSize, DataView, EventId, Future, Metadata};
use serde_json::Value;
use std::collections::VecDeque;
use std::io::BufRead;

/// Help text after the options.
pub const HELP: &str = "\
Input (stdin), one event per line:
  {\"metadata\": <any JSON>, \"data\": \"<base64>\", \"partition\": <index>}
\"data\" (default: none) and \"partition\" (default: the topic's partition selector) are optional;
blank lines are skipped. A malformed line stops the command with an error naming its line number;
the events of the lines before it are stored, nothing after. The number of events stored is
printed on stdout.

Driver options: --driver.KEY VALUE (see `diaspora-ctl topic create --help` for value typing).

Example:
  echo '{\"metadata\": {\"step\": 1}, \"data\": \"AAEC\"}' | \\
      diaspora-ctl produce --driver files --driver.root_path /tmp/topics --topic steps";

/// Options of `produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Topic to write to.
    #[arg(long, value_name = "TOPIC")]
    topic: String,

    /// Events per batch: a positive integer, or `adaptive`.
    #[arg(long, value_name = "N", value_parser = parse_batch_size, default_value = "adaptive")]
    batch_size: BatchSize,
}

/// One checked input line.
struct Line {
    metadata: Metadata,
    data: DataView,
    partition: Option<usize>,
}

/// Parses and checks one input line against a topic with `partitions` partitions.
fn parse_line(text: &str, partitions: usize) -> Result<Line, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err(
            "expected a JSON object {\"metadata\": ..., \"data\": \"<base64>\", \"partition\": N}"
                .into(),
        );
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !matches!(k.as_str(), "metadata" | "data" | "partition"))
    {
        return Err(format!(
            "unknown key {k:?} (expected \"metadata\", \"data\", \"partition\")"
        ));
    }
    let metadata = Metadata::new(
        obj.get("metadata")
            .cloned()
            .ok_or_else(|| "missing \"metadata\"".to_string())?,
    );
    let data = match obj.get("data") {
        None | Some(Value::Null) => DataView::new(),
        Some(Value::String(s)) => DataView::from(
            BASE64_STANDARD
                .decode(s)
                .map_err(|e| format!("\"data\" is not valid base64: {e}"))?,
        ),
        Some(_) => return Err("\"data\" must be a base64 string".into()),
    };
    let partition = match obj.get("partition") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let p = v
                .as_u64()
                .ok_or_else(|| format!("\"partition\" must be a non-negative integer, not {v}"))?;
            if p >= partitions as u64 {
                return Err(format!(
                    "partition {p} is out of range (the topic has {partitions})"
                ));
            }
            Some(p as usize)
        }
    };
    Ok(Line {
        metadata,
        data,
        partition,
    })
}

/// `produce`.
pub fn run(a: &ProduceArgs, dotted: &Dotted) -> CliResult<()> {
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let topic = open_topic(&driver, &a.topic)?;
    let producer = topic
        .producer()
        .name("diaspora-ctl produce")
        .batch_size(a.batch_size)
        .build()
        .map_err(|e| CliError(format!("cannot create a producer: {e}")))?;
    let mut in_flight: VecDeque<Future<EventId>> = VecDeque::new();
    let mut written = 0u64;
    let mut failure: Option<String> = None;
    let mut storage_failure: Option<String> = None;
    let stdin = std::io::stdin();
    for (i, line) in stdin.lock().lines().enumerate() {
        let lineno = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                failure = Some(format!("line {lineno}: cannot read stdin: {e}"));
                break;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let ev = match parse_line(&line, topic.num_partitions()) {
            Ok(ev) => ev,
            Err(e) => {
                failure = Some(format!("line {lineno}: {e}"));
                break;
            }
        };
        if let Err(e) = topic.validator().validate(&ev.metadata, &ev.data) {
            failure = Some(format!(
                "line {lineno}: rejected by the topic's validator: {e}"
            ));
            break;
        }
        let f = match ev.partition {
            Some(p) => producer.push_to(ev.metadata, ev.data, p),
            None => producer.push(ev.metadata, ev.data),
        };
        // Failures detected before batching (e.g. by a custom partition selector) are immediate.
        if f.completed() {
            if let Err(e) = f.wait() {
                failure = Some(format!("line {lineno}: {e}"));
                break;
            }
        }
        in_flight.push_back(f);
        while in_flight.front().is_some_and(Future::completed) {
            if let Some(f) = in_flight.pop_front() {
                match f.wait() {
                    Ok(_) => written += 1,
                    Err(e) => {
                        storage_failure.get_or_insert(e.to_string());
                    }
                }
            }
        }
        if let Some(e) = &storage_failure {
            failure = Some(format!("line {lineno}: storing earlier events failed: {e}"));
            break;
        }
    }
    let flushed = producer.flush().wait();
    for f in in_flight {
        match f.wait() {
            Ok(_) => written += 1,
            Err(e) => {
                storage_failure.get_or_insert(e.to_string());
            }
        }
    }
    drop(producer);
    println!("{written}");
    if let Some(f) = failure {
        return Err(CliError(format!(
            "{f} ({written} event(s) from earlier lines were written, nothing after)"
        )));
    }
    if let Some(e) = storage_failure {
        return Err(CliError(format!(
            "storing events failed: {e} ({written} event(s) were written)"
        )));
    }
    flushed.map_err(|e| CliError(format!("flushing the producer failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let l = parse_line(
            r#"{"metadata": {"a": 1}, "data": "AAEC", "partition": 1}"#,
            2,
        )
        .unwrap();
        assert_eq!(l.metadata.json()["a"], 1);
        assert_eq!(l.data.to_vec(), vec![0, 1, 2]);
        assert_eq!(l.partition, Some(1));
        let l = parse_line(r#"{"metadata": "x"}"#, 1).unwrap();
        assert!(l.data.is_empty() && l.partition.is_none());
        for bad in [
            "{",
            "[1]",
            r#"{"data": "AA=="}"#,
            r#"{"metadata": 1, "data": "@@"}"#,
            r#"{"metadata": 1, "data": 5}"#,
            r#"{"metadata": 1, "partition": 2}"#,
            r#"{"metadata": 1, "partition": -1}"#,
            r#"{"metadata": 1, "extra": 0}"#,
        ] {
            assert!(parse_line(bad, 2).is_err(), "{bad}");
        }
    }
}
