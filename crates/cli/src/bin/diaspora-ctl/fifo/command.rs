//! The control FIFO's commands: `PATH -> TOPIC (options)` and `PATH <- TOPIC (options)`, parsed
//! into a [`Command`], and their options checked into [`CommandOptions`].

use crate::common::parse_batch_size;
use diaspora_stream::BatchSize;

/// How lines map to events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Format {
    Raw,
    Json,
}

/// A parsed control command.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Command {
    pub path: String,
    /// True for `->` (the FIFO produces into the topic).
    pub produce: bool,
    pub topic: String,
    pub options: Vec<(String, String)>,
}

/// Parses one control line; `Ok(None)` for blank lines and `#` comments.
pub(super) fn parse_command(line: &str) -> Result<Option<Command>, String> {
    let trim = |s: &str| s.trim_matches([' ', '\t', '\r', '\n']).to_string();
    let line = trim(line);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (path, rest, produce) = if let Some((p, r)) = line.split_once(" -> ") {
        (p, r, true)
    } else if let Some((p, r)) = line.split_once(" <- ") {
        (p, r, false)
    } else {
        return Err(format!(
            "invalid command {line:?}: expected 'PATH -> TOPIC (options)' or 'PATH <- TOPIC (options)'"
        ));
    };
    let (topic, options) = match rest.split_once('(') {
        None => (trim(rest), Vec::new()),
        Some((topic, opts)) => {
            let Some((inner, after)) = opts.split_once(')') else {
                return Err(format!("invalid command {line:?}: missing ')'"));
            };
            if !trim(after).is_empty() {
                return Err(format!(
                    "invalid command {line:?}: unexpected text after ')'"
                ));
            }
            let mut options: Vec<(String, String)> = Vec::new();
            for pair in inner.split(',').map(trim).filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(format!(
                        "invalid command {line:?}: option {pair:?} is not key=value"
                    ));
                };
                let (k, v) = (trim(k), trim(v));
                if k.is_empty() {
                    return Err(format!(
                        "invalid command {line:?}: option {pair:?} has no name"
                    ));
                }
                if options.iter().any(|(o, _)| *o == k) {
                    return Err(format!(
                        "invalid command {line:?}: option {k:?} is given twice"
                    ));
                }
                options.push((k, v));
            }
            (trim(topic), options)
        }
    };
    let path = trim(path);
    if path.is_empty() || topic.is_empty() {
        return Err(format!(
            "invalid command {line:?}: the FIFO path and the topic must not be empty"
        ));
    }
    Ok(Some(Command {
        path,
        produce,
        topic,
        options,
    }))
}

/// Options common to both directions, with the allowed extra keys checked.
pub(super) struct CommandOptions {
    pub format: Format,
    pub batch_size: BatchSize,
    pub consumer: Option<String>,
    pub ack: bool,
}

pub(super) fn command_options(cmd: &Command) -> Result<CommandOptions, String> {
    let mut o = CommandOptions {
        format: Format::Raw,
        batch_size: BatchSize::Fixed(128),
        consumer: None,
        ack: false,
    };
    for (k, v) in &cmd.options {
        match (k.as_str(), cmd.produce) {
            ("format", _) => {
                o.format = match v.as_str() {
                    "raw" => Format::Raw,
                    "json" => Format::Json,
                    _ => return Err(format!("unknown format {v:?} (expected raw or json)")),
                }
            }
            ("batch_size", _) => o.batch_size = parse_batch_size(v)?,
            ("consumer", false) => o.consumer = Some(v.clone()),
            ("ack", false) => {
                o.ack = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("ack must be true or false, not {v:?}")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown option {k:?} for a {} FIFO (known: format, batch_size{})",
                    if cmd.produce { "producer" } else { "consumer" },
                    if cmd.produce { "" } else { ", consumer, ack" }
                ))
            }
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(path: &str, produce: bool, topic: &str, options: &[(&str, &str)]) -> Command {
        Command {
            path: path.into(),
            produce,
            topic: topic.into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn grammar() {
        assert_eq!(
            parse_command("/tmp/a -> t1\n").unwrap().unwrap(),
            cmd("/tmp/a", true, "t1", &[])
        );
        assert_eq!(
            parse_command("\t/tmp/b <- t2 ( format = json , batch_size=4, )\r\n")
                .unwrap()
                .unwrap(),
            cmd(
                "/tmp/b",
                false,
                "t2",
                &[("format", "json"), ("batch_size", "4")]
            )
        );
        // The producer arrow is looked for first.
        assert_eq!(
            parse_command("a <- b -> c").unwrap().unwrap(),
            cmd("a <- b", true, "c", &[])
        );
        assert_eq!(parse_command("   ").unwrap(), None);
        assert_eq!(parse_command("# comment").unwrap(), None);
        for bad in [
            "no arrow here",
            "a->b",
            " -> t",
            "a ->  (x=1)",
            "a -> t (x=1",
            "a -> t (x)",
            "a -> t (=1)",
            "a -> t (x=1) junk",
            "a -> t (x=1, x=2)",
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options() {
        let o = command_options(&cmd("a", true, "t", &[])).unwrap();
        assert_eq!(o.format, Format::Raw);
        assert_eq!(o.batch_size, BatchSize::Fixed(128));
        let o = command_options(&cmd(
            "a",
            false,
            "t",
            &[
                ("format", "json"),
                ("batch_size", "1"),
                ("ack", "true"),
                ("consumer", "c"),
            ],
        ))
        .unwrap();
        assert_eq!(o.format, Format::Json);
        assert_eq!(o.batch_size, BatchSize::Fixed(1));
        assert!(o.ack);
        assert_eq!(o.consumer.as_deref(), Some("c"));
        assert!(command_options(&cmd("a", true, "t", &[("format", "xml")])).is_err());
        assert!(command_options(&cmd("a", true, "t", &[("batch_size", "-1")])).is_err());
        assert!(command_options(&cmd("a", true, "t", &[("ack", "true")])).is_err());
        assert!(command_options(&cmd("a", false, "t", &[("ack", "yes")])).is_err());
    }
}
