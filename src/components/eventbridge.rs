//! An AWS-EventBridge-like pattern matcher, used by the `eventbridge` validator.
//!
//! A pattern is a JSON object; an event satisfies it when it satisfies **every** entry. Each entry
//! maps a dot path (`"a.b"` means `event["a"]["b"]`) to a condition:
//!
//! - a primitive (string, number, boolean, null): the field must exist and equal it;
//! - an object: the field must exist and match that object as a sub-pattern;
//! - an array of primitives: the field must exist and equal one of them;
//! - an array of one-key rule objects: the field must satisfy at least one rule (`exists`,
//!   `anything-but`, `prefix`, `suffix`, `equals-ignore-case`, `numeric`, `$or`, `wildcard`).
//!
//! The whole pattern is compiled once into a tree of [`Condition`]s and [`Rule`]s, so matching
//! never parses JSON again and cannot fail: a malformed pattern is rejected by
//! [`EventbridgePattern::compile`] with the same message texts as the C++ reference.
//!
//! Why this differs from the C++ reference in a few places (all of them were bugs or silent
//! acceptance of malformed patterns there):
//!
//! - `numeric` with an odd-length (or non-array) operand list is rejected at compile time; the
//!   reference read past the end of the array.
//! - `wildcard` treats only `*` as special (any sequence, including the empty one and line
//!   breaks); every other character, regex metacharacters and backslashes included, is literal.
//!   The reference built an unescaped `std::regex` from the pattern.
//! - The object form of `anything-but` must hold exactly one rule, and the object form of
//!   `prefix`/`suffix` must give `equals-ignore-case` a string or a list of strings; the
//!   reference silently ignored extra keys or produced a rule that never matched.
//! - `numeric` only ever matches numbers, even with an empty condition list.
//!
//! Kept on purpose, as in the reference: bare primitives are allowed (AWS requires arrays), an
//! array-valued event field is compared as a whole (no AWS "any element" semantics), an empty
//! rule array never matches, and number equality is numeric (`1` equals `1.0`).

use crate::error::{Error, Result};
use serde_json::{Map, Value};

/// A compiled eventbridge pattern.
#[derive(Debug, Clone)]
pub(crate) struct EventbridgePattern {
    /// The top-level pattern object, compiled.
    root: Pattern,
}

impl EventbridgePattern {
    /// Compiles a pattern, which must be a JSON object.
    ///
    /// A malformed pattern gives [`Error::InvalidConfig`] with kind `"validator"` and the
    /// reference's message text, e.g. `Invalid Eventbridge pattern: cannot mix primitives with
    /// complex conditions`.
    pub(crate) fn compile(pattern: &Value) -> Result<Self> {
        Ok(Self {
            root: Pattern::compile(pattern)?,
        })
    }

    /// True when `event` satisfies every entry of the pattern.
    pub(crate) fn matches(&self, event: &Value) -> bool {
        self.root.matches(event)
    }
}

/// Builds the error every compilation failure is reported with.
fn invalid(message: impl Into<String>) -> Error {
    Error::config("validator", message)
}

/// A malformed pattern: `Invalid Eventbridge pattern: <detail>`.
fn pattern_error(detail: &str) -> Error {
    invalid(format!("Invalid Eventbridge pattern: {detail}"))
}

/// A malformed rule: `Invalid Eventbridge "<rule>" rule: <detail>`.
fn rule_error(rule: &str, detail: &str) -> Error {
    invalid(format!("Invalid Eventbridge \"{rule}\" rule: {detail}"))
}

/// A pattern object: a conjunction of entries.
#[derive(Debug, Clone)]
struct Pattern {
    /// Every entry must hold.
    entries: Vec<Entry>,
}

/// One `path → condition` entry of a pattern object.
#[derive(Debug, Clone)]
struct Entry {
    /// Where the field is looked up in the event.
    path: FieldPath,
    /// What the field must satisfy.
    condition: Condition,
}

/// A dot-separated path into nested objects.
#[derive(Debug, Clone)]
struct FieldPath {
    /// The keys to follow, outermost first. Empty means the value itself.
    segments: Vec<String>,
}

/// What a field must satisfy, one variant per kind of pattern value.
#[derive(Debug, Clone)]
enum Condition {
    /// Bare primitive or list of primitives: the field exists and equals one of the values.
    EqualsAny(Vec<Value>),
    /// Object value: the field exists and matches the sub-pattern.
    SubPattern(Pattern),
    /// List of rule objects: at least one rule holds (an empty list never holds).
    AnyRule(Vec<FieldRule>),
}

/// One rule of a rule list, split by whether it applies to an absent field.
#[derive(Debug, Clone)]
enum FieldRule {
    /// `{"exists": bool}`: holds when the field's presence equals the flag.
    Exists(bool),
    /// Any other rule: holds only when the field is present and the rule accepts its value.
    OnValue(Rule),
}

/// A rule applied to a present field value.
#[derive(Debug, Clone)]
enum Rule {
    /// `anything-but` with an object: the negation of the inner rule.
    Not(Box<Rule>),
    /// `anything-but` with a primitive or a list of primitives: the value equals none of them.
    NoneOf(Vec<Value>),
    /// `prefix`: a string value starting with one of the candidates.
    Prefix(StringCandidates),
    /// `suffix`: a string value ending with one of the candidates.
    Suffix(StringCandidates),
    /// `equals-ignore-case`: a string value equal to one of the (lowercased) candidates.
    EqualsIgnoreCase(Vec<String>),
    /// `numeric`: a number satisfying every comparison.
    Numeric(Vec<(NumericOp, f64)>),
    /// `$or`: the value matches at least one of the sub-patterns.
    Or(Vec<Pattern>),
    /// `wildcard`: a string value matching the glob (`*` is the only special character).
    Wildcard(String),
}

/// The strings a `prefix` or `suffix` rule accepts.
#[derive(Debug, Clone)]
struct StringCandidates {
    /// The candidates; already ASCII-lowercased when `ignore_case` is set.
    values: Vec<String>,
    /// Compare ignoring ASCII case (`{"equals-ignore-case": ...}` form).
    ignore_case: bool,
}

/// A comparison operator of a `numeric` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumericOp {
    /// `=`
    Equal,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
}

impl Pattern {
    /// Compiles a pattern object.
    fn compile(pattern: &Value) -> Result<Self> {
        let object = pattern
            .as_object()
            .ok_or_else(|| pattern_error("expected object"))?;
        let entries = object
            .iter()
            .map(|(key, value)| {
                Ok(Entry {
                    path: FieldPath::parse(key),
                    condition: Condition::compile(value)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { entries })
    }

    /// True when `value` satisfies every entry.
    fn matches(&self, value: &Value) -> bool {
        self.entries
            .iter()
            .all(|entry| entry.condition.matches(entry.path.lookup(value)))
    }
}

impl FieldPath {
    /// Splits a key on `.`.
    ///
    /// Mirrors the reference's `std::getline` tokenisation: an empty key has no segment (it
    /// designates the value itself) and one trailing empty segment is dropped (`"a."` is `"a"`),
    /// while inner empty segments are kept (`"a..b"` looks up the key `""`).
    fn parse(key: &str) -> Self {
        let mut segments: Vec<String> = key.split('.').map(str::to_owned).collect();
        if segments.last().is_some_and(String::is_empty) {
            segments.pop();
        }
        Self { segments }
    }

    /// The value at this path, or `None` when a key is missing or an intermediate is not an
    /// object.
    fn lookup<'a>(&self, value: &'a Value) -> Option<&'a Value> {
        self.segments
            .iter()
            .try_fold(value, |current, segment| current.as_object()?.get(segment))
    }
}

impl Condition {
    /// Compiles the value side of a pattern entry.
    fn compile(value: &Value) -> Result<Self> {
        match value {
            Value::Object(_) => Ok(Condition::SubPattern(Pattern::compile(value)?)),
            Value::Array(items) => Self::compile_list(items),
            primitive => Ok(Condition::EqualsAny(vec![primitive.clone()])),
        }
    }

    /// Compiles a list: either all primitives (possible values) or all one-key rule objects.
    fn compile_list(items: &[Value]) -> Result<Self> {
        let mut has_primitives = false;
        let mut has_objects = false;
        // Classify first, in order, so the first offending element decides the error.
        for item in items {
            match item {
                Value::Object(rule) => {
                    has_objects = true;
                    if has_primitives {
                        return Err(pattern_error(
                            "cannot mix primitives with complex conditions",
                        ));
                    }
                    if rule.len() != 1 {
                        return Err(pattern_error("each rule can only have one statement"));
                    }
                }
                Value::Array(_) => {
                    return Err(pattern_error("expected object or primitive"));
                }
                _ => {
                    has_primitives = true;
                    if has_objects {
                        return Err(pattern_error(
                            "cannot mix primitives with complex conditions",
                        ));
                    }
                }
            }
        }
        if has_primitives {
            return Ok(Condition::EqualsAny(items.to_vec()));
        }
        let rules = items
            .iter()
            .filter_map(Value::as_object)
            .map(FieldRule::compile)
            .collect::<Result<Vec<_>>>()?;
        Ok(Condition::AnyRule(rules))
    }

    /// True when the field (`None` when absent) satisfies the condition.
    fn matches(&self, field: Option<&Value>) -> bool {
        match self {
            Condition::EqualsAny(values) => {
                field.is_some_and(|field| values.iter().any(|value| json_eq(field, value)))
            }
            Condition::SubPattern(pattern) => field.is_some_and(|field| pattern.matches(field)),
            Condition::AnyRule(rules) => rules.iter().any(|rule| rule.matches(field)),
        }
    }
}

impl FieldRule {
    /// Compiles a one-key rule object of a rule list.
    fn compile(rule: &Map<String, Value>) -> Result<Self> {
        match rule.get("exists") {
            Some(Value::Bool(flag)) => Ok(FieldRule::Exists(*flag)),
            Some(_) => Err(rule_error("exists", "expected boolean value")),
            None => Ok(FieldRule::OnValue(Rule::compile(rule)?)),
        }
    }

    /// True when the field (`None` when absent) satisfies the rule.
    fn matches(&self, field: Option<&Value>) -> bool {
        match self {
            FieldRule::Exists(should_exist) => field.is_some() == *should_exist,
            FieldRule::OnValue(rule) => field.is_some_and(|field| rule.matches(field)),
        }
    }
}

impl Rule {
    /// Compiles a rule object other than `exists`; the caller has checked it has one key.
    fn compile(rule: &Map<String, Value>) -> Result<Self> {
        let Some((name, argument)) = rule.iter().next() else {
            return Err(unexpected_rule(rule));
        };
        match name.as_str() {
            "anything-but" => Self::compile_anything_but(argument),
            "prefix" => Ok(Rule::Prefix(StringCandidates::compile(argument, "prefix")?)),
            "suffix" => Ok(Rule::Suffix(StringCandidates::compile(argument, "suffix")?)),
            "equals-ignore-case" => Self::compile_equals_ignore_case(argument),
            "numeric" => Self::compile_numeric(argument),
            "$or" => Self::compile_or(argument),
            "wildcard" => match argument {
                Value::String(glob) => Ok(Rule::Wildcard(glob.clone())),
                _ => Err(rule_error("wildcard", "pattern should be a string")),
            },
            _ => Err(unexpected_rule(rule)),
        }
    }

    /// `{"anything-but": primitive | [primitives] | {rule}}`.
    fn compile_anything_but(argument: &Value) -> Result<Self> {
        match argument {
            Value::Array(items) => {
                if items.iter().any(|item| !is_primitive(item)) {
                    return Err(rule_error(
                        "anything-but",
                        "list should contain only primitive types",
                    ));
                }
                Ok(Rule::NoneOf(items.clone()))
            }
            Value::Object(inner) => {
                // The reference picked one key by priority and ignored the others; a rule with
                // several (or no) statements is rejected instead.
                if inner.len() != 1 {
                    return Err(pattern_error("each rule can only have one statement"));
                }
                Ok(Rule::Not(Box::new(Rule::compile(inner)?)))
            }
            primitive => Ok(Rule::NoneOf(vec![primitive.clone()])),
        }
    }

    /// `{"equals-ignore-case": string | [strings]}`.
    fn compile_equals_ignore_case(argument: &Value) -> Result<Self> {
        match argument {
            Value::String(value) => Ok(Rule::EqualsIgnoreCase(vec![value.to_ascii_lowercase()])),
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_ascii_lowercase).ok_or_else(|| {
                        rule_error("equals-ignore-case", "list should contain only strings")
                    })
                })
                .collect::<Result<Vec<_>>>()
                .map(Rule::EqualsIgnoreCase),
            _ => Err(rule_error(
                "equals-ignore-case",
                "pattern should be a string or a list of strings",
            )),
        }
    }

    /// `{"numeric": [op, number, op, number, ...]}`.
    fn compile_numeric(argument: &Value) -> Result<Self> {
        let items = match argument {
            Value::Array(items) if items.len() % 2 == 0 => items,
            _ => {
                return Err(rule_error(
                    "numeric",
                    "pattern should be a list of even number of elements",
                ))
            }
        };
        items
            .chunks_exact(2)
            .map(|pair| {
                let op = pair[0]
                    .as_str()
                    .ok_or_else(|| rule_error("numeric", "operator should be a string"))?;
                let operand = pair[1]
                    .as_f64()
                    .ok_or_else(|| rule_error("numeric", "operand should be a number"))?;
                let op = match op {
                    "=" => NumericOp::Equal,
                    ">" => NumericOp::Greater,
                    ">=" => NumericOp::GreaterOrEqual,
                    "<" => NumericOp::Less,
                    "<=" => NumericOp::LessOrEqual,
                    unknown => {
                        return Err(rule_error(
                            "numeric",
                            &format!("unknown operator \"{unknown}\""),
                        ))
                    }
                };
                Ok((op, operand))
            })
            .collect::<Result<Vec<_>>>()
            .map(Rule::Numeric)
    }

    /// `{"$or": [pattern objects]}`.
    fn compile_or(argument: &Value) -> Result<Self> {
        let not_a_list = || rule_error("$or", "pattern should be a list of objects");
        let items = argument.as_array().ok_or_else(not_a_list)?;
        items
            .iter()
            .map(|item| {
                if item.is_object() {
                    Pattern::compile(item)
                } else {
                    Err(not_a_list())
                }
            })
            .collect::<Result<Vec<_>>>()
            .map(Rule::Or)
    }

    /// True when the (present) field value satisfies the rule.
    fn matches(&self, value: &Value) -> bool {
        match self {
            Rule::Not(inner) => !inner.matches(value),
            Rule::NoneOf(values) => !values.iter().any(|excluded| json_eq(value, excluded)),
            Rule::Prefix(candidates) => value
                .as_str()
                .is_some_and(|text| candidates.any_prefix_of(text)),
            Rule::Suffix(candidates) => value
                .as_str()
                .is_some_and(|text| candidates.any_suffix_of(text)),
            Rule::EqualsIgnoreCase(values) => value.as_str().is_some_and(|text| {
                values
                    .iter()
                    .any(|expected| text.eq_ignore_ascii_case(expected))
            }),
            Rule::Numeric(conditions) => value.as_f64().is_some_and(|number| {
                conditions
                    .iter()
                    .all(|&(op, operand)| op.holds(number, operand))
            }),
            Rule::Or(patterns) => patterns.iter().any(|pattern| pattern.matches(value)),
            Rule::Wildcard(glob) => value
                .as_str()
                .is_some_and(|text| wildcard_matches(glob.as_bytes(), text.as_bytes())),
        }
    }
}

/// The error for a rule object whose key is not a known rule.
fn unexpected_rule(rule: &Map<String, Value>) -> Error {
    // Serialising a `Map` of `Value`s cannot fail; the fallback only keeps this panic-free.
    let dump = serde_json::to_string(rule).unwrap_or_else(|_| format!("{rule:?}"));
    pattern_error(&format!("unexpected rule: {dump}"))
}

impl StringCandidates {
    /// Compiles the argument of a `prefix` or `suffix` rule (`rule_name` is used in messages).
    fn compile(argument: &Value, rule_name: &str) -> Result<Self> {
        match argument {
            Value::String(value) => Ok(Self {
                values: vec![value.clone()],
                ignore_case: false,
            }),
            Value::Array(items) => {
                let values = items
                    .iter()
                    .map(|item| {
                        item.as_str().map(str::to_owned).ok_or_else(|| {
                            // The reference says "prefixes" for both rules.
                            rule_error(rule_name, "list of prefixes should contain only strings")
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(Self {
                    values,
                    ignore_case: false,
                })
            }
            Value::Object(sub_pattern) => {
                let inner = match sub_pattern.get("equals-ignore-case") {
                    Some(inner) if sub_pattern.len() == 1 => inner,
                    _ => {
                        return Err(rule_error(
                            rule_name,
                            "only \"equals-ignore-case\" is allowed as sub-pattern",
                        ))
                    }
                };
                let values = match inner {
                    Value::String(value) => vec![value.to_ascii_lowercase()],
                    Value::Array(items) => items
                        .iter()
                        .map(|item| {
                            item.as_str().map(str::to_ascii_lowercase).ok_or_else(|| {
                                rule_error(
                                    rule_name,
                                    "list in \"equals-ignore-case\" should contain only strings",
                                )
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                    _ => {
                        return Err(rule_error(
                            rule_name,
                            "\"equals-ignore-case\" should be a string or a list of strings",
                        ))
                    }
                };
                Ok(Self {
                    values,
                    ignore_case: true,
                })
            }
            _ => Err(rule_error(
                rule_name,
                "pattern should be a string, a list, or an object",
            )),
        }
    }

    /// True when `text` starts with one of the candidates.
    fn any_prefix_of(&self, text: &str) -> bool {
        let text = text.as_bytes();
        self.values.iter().any(|candidate| {
            let candidate = candidate.as_bytes();
            text.len() >= candidate.len() && self.bytes_equal(&text[..candidate.len()], candidate)
        })
    }

    /// True when `text` ends with one of the candidates.
    fn any_suffix_of(&self, text: &str) -> bool {
        let text = text.as_bytes();
        self.values.iter().any(|candidate| {
            let candidate = candidate.as_bytes();
            text.len() >= candidate.len()
                && self.bytes_equal(&text[text.len() - candidate.len()..], candidate)
        })
    }

    /// Compares a slice of the event string with a candidate, honouring `ignore_case`.
    fn bytes_equal(&self, text: &[u8], candidate: &[u8]) -> bool {
        if self.ignore_case {
            text.eq_ignore_ascii_case(candidate)
        } else {
            text == candidate
        }
    }
}

impl NumericOp {
    /// Applies `value <op> operand`.
    fn holds(self, value: f64, operand: f64) -> bool {
        match self {
            NumericOp::Equal => value == operand,
            NumericOp::Greater => value > operand,
            NumericOp::GreaterOrEqual => value >= operand,
            NumericOp::Less => value < operand,
            NumericOp::LessOrEqual => value <= operand,
        }
    }
}

/// True for the JSON types the reference calls primitive: null, booleans, numbers, strings.
fn is_primitive(value: &Value) -> bool {
    !matches!(value, Value::Array(_) | Value::Object(_))
}

/// JSON equality with numbers compared by value, as nlohmann::json does (`1 == 1.0`).
///
/// `serde_json`'s own `==` distinguishes integers from floats, which would make `"n": 1` reject
/// an event carrying `1.0`.
fn json_eq(left: &Value, right: &Value) -> bool {
    match (left, right) {
        (Value::Number(l), Value::Number(r)) => {
            let as_integer = |n: &serde_json::Number| {
                n.as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
            };
            match (as_integer(l), as_integer(r)) {
                (Some(l), Some(r)) => l == r,
                _ => l.as_f64() == r.as_f64(),
            }
        }
        (Value::Array(l), Value::Array(r)) => {
            l.len() == r.len() && l.iter().zip(r).all(|(l, r)| json_eq(l, r))
        }
        (Value::Object(l), Value::Object(r)) => {
            l.len() == r.len()
                && l.iter()
                    .all(|(key, l)| r.get(key).is_some_and(|r| json_eq(l, r)))
        }
        _ => left == right,
    }
}

/// Glob match of the whole `text`: `*` matches any byte sequence (possibly empty), every other
/// byte matches itself.
///
/// Greedy scan that, on a mismatch, retries from the most recent `*` with one more byte
/// swallowed; this is complete for `*`-only globs and runs in O(|glob|·|text|) at worst. Working
/// on bytes is safe for UTF-8: literal bytes can only line up on character boundaries.
fn wildcard_matches(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    // (glob index just after the last `*`, text index that `*` currently stops at)
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                g += 1;
                backtrack = Some((g, t));
            }
            Some(&c) if c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((after_star, star_end)) => {
                    g = after_star;
                    t = star_end + 1;
                    backtrack = Some((after_star, t));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
#[path = "eventbridge_tests.rs"]
mod tests;
