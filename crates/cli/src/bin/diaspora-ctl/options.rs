//! Hierarchical `--prefix.key.sub VALUE` options, typed values, JSON config files and RFC 7386
//! merge patches.
//!
//! Before clap parses the command line, every argument starting with `--driver.`, `--topic.`,
//! `--validator.`, `--serializer.` or `--partition-selector.` is taken out together with the
//! next argument (its value, even if that starts with `--`); `--driver.key=value` is accepted
//! too. The key is split on dots (`a..b` gives `a`, `""`, `b`; a trailing dot is dropped) and the
//! value is typed by [`typed_value`].

use crate::error::{CliError, CliResult};
use serde_json::{Map, Value};
use std::ffi::OsString;
use std::path::Path;

/// The prefixes of hierarchical options, without `--` and the trailing dot.
pub const PREFIXES: [&str; 5] = [
    "driver",
    "topic",
    "validator",
    "serializer",
    "partition-selector",
];

/// The hierarchical options found on the command line, in order.
#[derive(Debug, Default)]
pub struct Dotted {
    /// (prefix, key path, raw value) for each option.
    entries: Vec<(&'static str, String, String)>,
}

/// Splits the hierarchical options off `args`; returns the remaining arguments for clap.
pub fn extract_dotted(args: Vec<OsString>) -> CliResult<(Vec<OsString>, Dotted)> {
    let mut rest = Vec::with_capacity(args.len());
    let mut dotted = Dotted::default();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        if arg == "--" {
            rest.push(arg);
            rest.extend(it);
            break;
        }
        let Some(text) = arg.to_str() else {
            rest.push(arg);
            continue;
        };
        let Some((prefix, body)) = PREFIXES.iter().find_map(|p| {
            text.strip_prefix("--")
                .and_then(|t| t.strip_prefix(p))
                .and_then(|t| t.strip_prefix('.'))
                .map(|body| (*p, body))
        }) else {
            rest.push(arg);
            continue;
        };
        let (key, value) = match body.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => {
                let value = it
                    .next()
                    .ok_or_else(|| CliError(format!("option --{prefix}.{body} needs a value")))?;
                let value = value.into_string().map_err(|v| {
                    CliError(format!(
                        "the value of --{prefix}.{body} is not valid UTF-8: {v:?}"
                    ))
                })?;
                (body.to_string(), value)
            }
        };
        if key.is_empty() {
            return Err(CliError(format!(
                "option --{prefix}. needs a key after the dot (e.g. --{prefix}.name VALUE)"
            )));
        }
        dotted.entries.push((prefix, key, value));
    }
    Ok((rest, dotted))
}

impl Dotted {
    /// Fails if options with prefixes other than `allowed` were given to `command`.
    pub fn only(&self, allowed: &[&str], command: &str) -> CliResult<()> {
        match self.entries.iter().find(|(p, _, _)| !allowed.contains(p)) {
            None => Ok(()),
            Some((p, k, _)) => Err(CliError(format!(
                "option --{p}.{k} is not accepted by `{command}`{}",
                if allowed.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (it accepts {})",
                        allowed
                            .iter()
                            .map(|a| format!("--{a}.*"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ))),
        }
    }

    /// True if at least one option has this prefix.
    pub fn has(&self, prefix: &str) -> bool {
        self.entries.iter().any(|(p, _, _)| *p == prefix)
    }

    /// The JSON object built from the options with this prefix (`{}` if none).
    pub fn object(&self, prefix: &str) -> CliResult<Value> {
        let mut root = Value::Object(Map::new());
        for (p, key, raw) in &self.entries {
            if *p != prefix {
                continue;
            }
            let value = typed_value(raw)
                .map_err(|e| CliError(format!("option --{p}.{key} {raw:?}: {e}")))?;
            set_path(&mut root, &split_key(key), value);
        }
        Ok(root)
    }
}

/// Splits a dotted key: `a..b` gives `["a", "", "b"]`; one trailing dot is dropped.
pub fn split_key(key: &str) -> Vec<String> {
    let key = key.strip_suffix('.').unwrap_or(key);
    key.split('.').map(str::to_string).collect()
}

/// Sets `root[k0][k1]...` to `value`, creating objects (and replacing non-objects) on the way.
pub fn set_path(root: &mut Value, keys: &[String], value: Value) {
    let mut cur = root;
    for (i, k) in keys.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else {
            return;
        };
        if i + 1 == keys.len() {
            map.insert(k.clone(), value);
            return;
        }
        cur = map.entry(k.clone()).or_insert(Value::Null);
    }
}

/// True for an optional sign followed by digits and at most one dot (at least one character).
fn looks_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    !body.is_empty()
        && body.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && body.bytes().filter(|&b| b == b'.').count() <= 1
}

/// Types one scalar: number, boolean or string. Text that looks numeric but does not convert
/// (`.`, an integer beyond 64 bits) stays a string, so that `--driver.root_path .` works.
fn typed_scalar(raw: &str) -> Value {
    if looks_numeric(raw) {
        if raw.contains('.') {
            if let Some(n) = raw
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                return Value::Number(n);
            }
        } else if let Ok(i) = raw.parse::<i64>() {
            return Value::from(i);
        } else if let Ok(u) = raw.trim_start_matches('+').parse::<u64>() {
            return Value::from(u);
        }
    }
    match raw {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        _ => Value::String(raw.to_string()),
    }
}

/// Types a command-line value, in this order: a number (optional sign, digits, at most one dot:
/// integer or decimal), `true`/`false`, JSON (a value starting with `{` or `[`), a list (a value
/// containing commas, split on them, each piece typed as a scalar; one trailing empty piece is
/// dropped), else a string.
pub fn typed_value(raw: &str) -> Result<Value, String> {
    if raw.starts_with('{') || raw.starts_with('[') {
        return serde_json::from_str(raw).map_err(|e| format!("not valid JSON: {e}"));
    }
    if raw.contains(',') {
        let mut pieces: Vec<&str> = raw.split(',').collect();
        if pieces.len() > 1 && pieces.last() == Some(&"") {
            pieces.pop();
        }
        return Ok(Value::Array(pieces.into_iter().map(typed_scalar).collect()));
    }
    Ok(typed_scalar(raw))
}

/// Applies the RFC 7386 JSON merge patch `patch` to `target`.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(map) = target {
        for (k, v) in patch {
            if v.is_null() {
                map.remove(k);
            } else {
                merge_patch(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// Reads a JSON file that must hold an object; `what` names it in errors ("driver config").
pub fn read_json_object(path: &Path, what: &str) -> CliResult<Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError(format!("cannot read {what} file {}: {e}", path.display())))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        CliError(format!(
            "{what} file {} is not valid JSON: {e}",
            path.display()
        ))
    })?;
    if !value.is_object() {
        return Err(CliError(format!(
            "{what} file {} must hold a JSON object",
            path.display()
        )));
    }
    Ok(value)
}

/// `file` (if any) merge-patched with the hierarchical options of `prefix`: the command line wins.
pub fn layered(file: Option<&Path>, what: &str, dotted: &Dotted, prefix: &str) -> CliResult<Value> {
    let mut value = match file {
        Some(f) => read_json_object(f, what)?,
        None => Value::Object(Map::new()),
    };
    merge_patch(&mut value, &dotted.object(prefix)?);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn typing() {
        assert_eq!(typed_value("42").unwrap(), json!(42));
        assert_eq!(typed_value("-3").unwrap(), json!(-3));
        assert_eq!(typed_value("+5").unwrap(), json!(5));
        assert_eq!(typed_value("1.").unwrap(), json!(1.0));
        assert_eq!(typed_value("2.5").unwrap(), json!(2.5));
        assert_eq!(
            typed_value("18446744073709551615").unwrap(),
            json!(u64::MAX)
        );
        assert_eq!(
            typed_value("99999999999999999999999").unwrap(),
            json!("99999999999999999999999")
        );
        assert_eq!(typed_value(".").unwrap(), json!("."));
        assert!(typed_value("1.2.3").unwrap().is_string());
        assert_eq!(typed_value("true").unwrap(), json!(true));
        assert_eq!(typed_value("false").unwrap(), json!(false));
        assert_eq!(typed_value("True").unwrap(), json!("True"));
        assert_eq!(typed_value("abc").unwrap(), json!("abc"));
        assert_eq!(typed_value("").unwrap(), json!(""));
        assert_eq!(typed_value("a,1,true").unwrap(), json!(["a", 1, true]));
        assert_eq!(typed_value("a,,b").unwrap(), json!(["a", "", "b"]));
        assert_eq!(typed_value("a,b,").unwrap(), json!(["a", "b"]));
        assert_eq!(typed_value("{\"a\":[1,2]}").unwrap(), json!({"a": [1, 2]}));
        assert!(typed_value("{oops").is_err());
    }

    #[test]
    fn keys_and_paths() {
        assert_eq!(split_key("a..b"), vec!["a", "", "b"]);
        assert_eq!(split_key("a.b."), vec!["a", "b"]);
        let mut v = json!({"x": 1});
        set_path(&mut v, &split_key("x.y"), json!(2));
        set_path(&mut v, &split_key("z"), json!("s"));
        assert_eq!(v, json!({"x": {"y": 2}, "z": "s"}));
    }

    #[test]
    fn extraction() {
        let (rest, d) = extract_dotted(args(&[
            "ctl",
            "topic",
            "create",
            "--validator.x",
            "42",
            "--validator.y.z",
            "abc",
            "--topic.num_partitions=4",
            "--driver.root_path",
            "--not-an-option",
            "--name",
            "t",
        ]))
        .unwrap();
        assert_eq!(rest, args(&["ctl", "topic", "create", "--name", "t"]));
        assert_eq!(
            d.object("validator").unwrap(),
            json!({"x": 42, "y": {"z": "abc"}})
        );
        assert_eq!(d.object("topic").unwrap(), json!({"num_partitions": 4}));
        assert_eq!(
            d.object("driver").unwrap(),
            json!({"root_path": "--not-an-option"})
        );
        assert_eq!(d.object("serializer").unwrap(), json!({}));
        assert!(d.has("topic") && !d.has("serializer"));
        assert!(d.only(&["driver"], "topic list").is_err());
        assert!(extract_dotted(args(&["ctl", "--driver.x"])).is_err());
        assert!(extract_dotted(args(&["ctl", "--driver.", "v"])).is_err());
        // `--driver-config` is not a hierarchical option.
        let (rest, d) = extract_dotted(args(&["ctl", "--driver-config", "f"])).unwrap();
        assert_eq!(rest.len(), 3);
        assert!(!d.has("driver"));
    }

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}}));
        let mut t = json!({"a": [1]});
        merge_patch(&mut t, &json!({"a": {"b": 1}}));
        assert_eq!(t, json!({"a": {"b": 1}}));
    }
}
