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
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(pattern: Value) -> EventbridgePattern {
        EventbridgePattern::compile(&pattern).expect("pattern should compile")
    }

    fn compile_error(pattern: Value) -> String {
        match EventbridgePattern::compile(&pattern) {
            Ok(compiled) => panic!("pattern {pattern} should not compile: {compiled:?}"),
            Err(Error::InvalidConfig { kind, message }) => {
                assert_eq!(kind, "validator");
                message
            }
            Err(other) => panic!("unexpected error kind: {other:?}"),
        }
    }

    fn matches(pattern: Value, event: Value) -> bool {
        compile(pattern).matches(&event)
    }

    // ---- full reference pattern (tests/EventbridgeTest.cpp) ----

    fn reference_pattern() -> Value {
        json!({
            "a1": "a_value",
            "a2": ["a2_value_1", "a2_value_2"],

            "b1": [{"anything-but": "b1_value"}],
            "b2": [{"anything-but": ["b2_value_1", "b2_value_2"]}],
            "b3": [{"anything-but": {"prefix": "b3_prefix"}}],
            "b4": [{"anything-but": {"prefix": ["b4_prefix_1", "b4_prefix_2"]}}],
            "b5": [{"anything-but": {"prefix": {"equals-ignore-case": "b5_prefix"}}}],
            "b6": [{"anything-but": {"prefix": {"equals-ignore-case": ["b6_prefix_1", "b6_prefix_2"]}}}],
            "b7": [{"anything-but": {"suffix": "b7_suffix"}}],
            "b8": [{"anything-but": {"suffix": ["b8_suffix_1", "b8_suffix_2"]}}],
            "b9": [{"anything-but": {"suffix": {"equals-ignore-case": "b9_suffix"}}}],
            "b10": [{"anything-but": {"suffix": {"equals-ignore-case": ["b10_suffix_1", "b10_suffix_2"]}}}],

            "c1": [{"prefix": "c1_prefix"}],
            "c2": [{"prefix": ["c2_prefix_1", "c2_prefix_2"]}],
            "c3": [{"prefix": {"equals-ignore-case": "c3_prefix"}}],
            "c4": [{"prefix": {"equals-ignore-case": ["c4_prefix_1", "c4_prefix_2"]}}],

            "d1": [{"suffix": "d1_suffix"}],
            "d2": [{"suffix": ["d2_suffix_1", "d2_suffix_2"]}],
            "d3": [{"suffix": {"equals-ignore-case": "d3_suffix"}}],
            "d4": [{"suffix": {"equals-ignore-case": ["d4_suffix_1", "d4_suffix_2"]}}],

            "e1": [{"numeric": ["<", 42, ">=", 10]}],
            "e2": [{"numeric": ["<=", 42, ">", 10]}],

            "f1": [{"exists": true}],
            "f2": [{"exists": false}],

            "g1": [{"equals-ignore-case": "g1_VAluE_1"}],
            "g2": [{"equals-ignore-case": ["g2_VAluE_1", "g2_VAluE_2"]}],

            "h1": [{"wildcard": "abc*def*ghi"}],

            "i1": {"i1_1": "i1_1_value"},
            "i2.i2_1": "i2_1_value",

            "j1": [{"$or": [
                {"j1_1": [{"exists": true}]},
                {"j2_2": [{"exists": true}]}
            ]}]
        })
    }

    fn reference_example() -> Value {
        json!({
            "a1": "a_value",
            "a2": "a2_value_2",
            "b1": "not_b1_value",
            "b2": "not_b2_value_1",
            "b3": "not_b3_prefix_value",
            "b4": "not_b4_prefix_1",
            "b5": "not_b5_PREfix",
            "b6": "not_b6_PREfix_1",
            "b7": "b7_suffix_not",
            "b8": "b8_suffix_1_not",
            "b9": "b9_SUFfix_not",
            "b10": "b10_SUFfix_1_not",
            "c1": "c1_prefix_value",
            "c2": "c2_prefix_1_value",
            "c3": "c3_PREfix_value",
            "c4": "c4_PREfix_1_value",
            "d1": "value_d1_suffix",
            "d2": "value_d2_suffix_2",
            "d3": "value_d3_SUFfix",
            "d4": "value_d4_SUFfix_2",
            "e1": 33,
            "e2": 34,
            "f1": "something",
            "g1": "g1_vaLUe_1",
            "g2": "g2_vaLUe_2",
            "h1": "abcXXXdefYYghi",
            "i1": {"i1_1": "i1_1_value"},
            "i2": {"i2_1": "i2_1_value"},
            "j1": {"j2_2": 123}
        })
    }

    #[test]
    fn reference_example_matches_reference_pattern() {
        let pattern = compile(reference_pattern());
        assert!(pattern.matches(&reference_example()));
    }

    #[test]
    fn reference_pattern_rejects_each_single_violation() {
        let pattern = compile(reference_pattern());
        let violations: Vec<(&str, Value)> = vec![
            ("a1", json!("other")),
            ("a2", json!("a2_value_3")),
            ("b1", json!("b1_value")),
            ("b2", json!("b2_value_2")),
            ("b3", json!("b3_prefix_value")),
            ("b4", json!("b4_prefix_2_value")),
            ("b5", json!("B5_PREFIX_value")),
            ("b6", json!("b6_PREFIX_2_value")),
            ("b7", json!("value_b7_suffix")),
            ("b8", json!("value_b8_suffix_2")),
            ("b9", json!("value_B9_Suffix")),
            ("b10", json!("value_b10_SUFFIX_1")),
            ("c1", json!("value_c1_prefix")),
            ("c2", json!("c2_prefix_3")),
            ("c3", json!("c3_prefi")),
            ("c4", json!("c4_prefix_3")),
            ("d1", json!("d1_suffix_value")),
            ("d2", json!("d2_suffix_3")),
            ("d3", json!("d3_suffiX_")),
            ("d4", json!("D4_SUFFIX_3")),
            ("e1", json!(42)),
            ("e1", json!(9.99)),
            ("e2", json!(10)),
            ("e2", json!(42.5)),
            ("e2", json!("34")),
            ("f2", json!(null)),
            ("g1", json!("g1_value_2")),
            ("g2", json!("g2_value_3")),
            ("h1", json!("abcXXXdefYYgh")),
            ("i1", json!({"i1_1": "other"})),
            ("i2", json!({"i2_1": "other"})),
            ("i2", json!("i2_1_value")),
            ("j1", json!({"j3_3": 1})),
            ("j1", json!(5)),
        ];
        for (key, bad) in violations {
            let mut event = reference_example();
            event[key] = bad.clone();
            assert!(
                !pattern.matches(&event),
                "event with {key} = {bad} should not match"
            );
        }
        // Removing a field required by any rule but `exists: false` must fail too.
        for key in [
            "a1", "b1", "c1", "d1", "e1", "f1", "g1", "h1", "i1", "i2", "j1",
        ] {
            let mut event = reference_example();
            if let Some(object) = event.as_object_mut() {
                object.remove(key);
            }
            assert!(
                !pattern.matches(&event),
                "event without {key} should not match"
            );
        }
    }

    // ---- lookup and plain values ----

    #[test]
    fn bare_primitive_must_exist_and_be_equal() {
        assert!(matches(json!({"a": "x"}), json!({"a": "x"})));
        assert!(!matches(json!({"a": "x"}), json!({"a": "y"})));
        assert!(!matches(json!({"a": "x"}), json!({"b": "x"})));
        assert!(matches(json!({"a": true}), json!({"a": true})));
        assert!(!matches(json!({"a": true}), json!({"a": "true"})));
        assert!(matches(json!({"a": null}), json!({"a": null})));
        assert!(!matches(json!({"a": null}), json!({})));
        assert!(matches(json!({"n": 1}), json!({"n": 1.0})));
        assert!(matches(json!({"n": 2.5}), json!({"n": 2.5})));
        assert!(!matches(json!({"n": 1}), json!({"n": "1"})));
        assert!(matches(json!({"n": -3}), json!({"n": -3})));
        assert!(matches(json!({"n": u64::MAX}), json!({"n": u64::MAX})));
        assert!(!matches(json!({"n": u64::MAX}), json!({"n": -1})));
    }

    #[test]
    fn array_fields_are_compared_as_a_whole() {
        assert!(!matches(json!({"a": "x"}), json!({"a": ["x", "y"]})));
        assert!(!matches(json!({"a": ["x", "y"]}), json!({"a": ["x", "y"]})));
        assert!(matches(
            json!({"a": [{"anything-but": "x"}]}),
            json!({"a": ["x"]})
        ));
        assert!(!matches(
            json!({"a": [{"prefix": "x"}]}),
            json!({"a": ["xy"]})
        ));
    }

    #[test]
    fn list_of_primitives_matches_any() {
        let pattern = json!({"a": ["x", 1, null, false]});
        assert!(matches(pattern.clone(), json!({"a": "x"})));
        assert!(matches(pattern.clone(), json!({"a": 1.0})));
        assert!(matches(pattern.clone(), json!({"a": null})));
        assert!(matches(pattern.clone(), json!({"a": false})));
        assert!(!matches(pattern.clone(), json!({"a": "y"})));
        assert!(!matches(pattern, json!({})));
    }

    #[test]
    fn empty_pattern_and_empty_lists() {
        assert!(matches(json!({}), json!({"anything": 1})));
        assert!(matches(json!({}), json!("not even an object")));
        // An empty rule list has no rule that can hold.
        assert!(!matches(json!({"a": []}), json!({"a": 1})));
        assert!(!matches(json!({"a": []}), json!({})));
        // An empty sub-pattern only requires presence.
        assert!(matches(json!({"a": {}}), json!({"a": 3})));
        assert!(!matches(json!({"a": {}}), json!({})));
    }

    #[test]
    fn dot_paths_follow_nested_objects() {
        let pattern = json!({"a.b.c": 1});
        assert!(matches(pattern.clone(), json!({"a": {"b": {"c": 1}}})));
        assert!(!matches(pattern.clone(), json!({"a": {"b": {"c": 2}}})));
        assert!(!matches(pattern.clone(), json!({"a": {"b": 1}})));
        assert!(!matches(pattern.clone(), json!({"a": [{"b": {"c": 1}}]})));
        assert!(!matches(pattern.clone(), json!({"a": "b"})));
        assert!(!matches(pattern, json!({"a.b.c": 1})));
        // getline-style tokenisation of odd keys.
        assert!(matches(json!({"a.": 1}), json!({"a": 1})));
        assert!(matches(json!({"a..b": 1}), json!({"a": {"": {"b": 1}}})));
        assert!(matches(json!({"": [{"numeric": [">", 0]}]}), json!(5)));
    }

    #[test]
    fn nested_objects_are_sub_patterns() {
        let pattern = json!({"a": {"b": {"c": [{"prefix": "p"}]}, "d": 4}});
        assert!(matches(
            pattern.clone(),
            json!({"a": {"b": {"c": "pq"}, "d": 4, "e": 0}})
        ));
        assert!(!matches(
            pattern.clone(),
            json!({"a": {"b": {"c": "qp"}, "d": 4}})
        ));
        assert!(!matches(pattern.clone(), json!({"a": {"b": {"c": "pq"}}})));
        assert!(!matches(pattern.clone(), json!({"a": 4})));
        assert!(!matches(pattern, json!({})));
        // A dot path inside a sub-pattern is relative to the sub-object.
        assert!(matches(
            json!({"a": {"b.c": 1}}),
            json!({"a": {"b": {"c": 1}}})
        ));
    }

    #[test]
    fn several_entries_must_all_hold() {
        let pattern = json!({"a": 1, "b": [{"exists": true}]});
        assert!(matches(pattern.clone(), json!({"a": 1, "b": 0})));
        assert!(!matches(pattern.clone(), json!({"a": 1})));
        assert!(!matches(pattern, json!({"a": 2, "b": 0})));
    }

    #[test]
    fn a_rule_list_matches_when_any_rule_matches() {
        let pattern = json!({"a": [{"prefix": "x"}, {"numeric": [">", 10]}, {"exists": false}]});
        assert!(matches(pattern.clone(), json!({"a": "xyz"})));
        assert!(matches(pattern.clone(), json!({"a": 11})));
        assert!(matches(pattern.clone(), json!({})));
        assert!(!matches(pattern.clone(), json!({"a": "yz"})));
        assert!(!matches(pattern, json!({"a": 10})));
    }

    // ---- rules ----

    #[test]
    fn exists_true_and_false() {
        assert!(matches(
            json!({"a": [{"exists": true}]}),
            json!({"a": null})
        ));
        assert!(matches(json!({"a": [{"exists": true}]}), json!({"a": 0})));
        assert!(!matches(json!({"a": [{"exists": true}]}), json!({})));
        assert!(matches(json!({"a": [{"exists": false}]}), json!({})));
        assert!(!matches(
            json!({"a": [{"exists": false}]}),
            json!({"a": null})
        ));
        assert!(matches(
            json!({"a.b": [{"exists": false}]}),
            json!({"a": 1})
        ));
        assert!(matches(
            json!({"a.b": [{"exists": false}]}),
            json!({"a": {"c": 1}})
        ));
        assert!(!matches(
            json!({"a.b": [{"exists": false}]}),
            json!({"a": {"b": 1}})
        ));
        assert!(matches(
            json!({"a.b": [{"exists": true}]}),
            json!({"a": {"b": 1}})
        ));
    }

    #[test]
    fn other_rules_never_match_an_absent_field() {
        for rule in [
            json!({"anything-but": "x"}),
            json!({"anything-but": []}),
            json!({"anything-but": {"prefix": "x"}}),
            json!({"prefix": ""}),
            json!({"suffix": ""}),
            json!({"equals-ignore-case": "x"}),
            json!({"numeric": []}),
            json!({"$or": [{}]}),
            json!({"wildcard": "*"}),
        ] {
            assert!(
                !matches(json!({"a": [rule.clone()]}), json!({"b": 1})),
                "{rule} matched an absent field"
            );
        }
    }

    #[test]
    fn anything_but_primitive() {
        let pattern = json!({"a": [{"anything-but": "x"}]});
        assert!(matches(pattern.clone(), json!({"a": "y"})));
        assert!(matches(pattern.clone(), json!({"a": 1})));
        assert!(matches(pattern.clone(), json!({"a": {"x": 1}})));
        assert!(!matches(pattern, json!({"a": "x"})));
        let numeric = json!({"a": [{"anything-but": 3}]});
        assert!(!matches(numeric.clone(), json!({"a": 3.0})));
        assert!(matches(numeric, json!({"a": 4})));
        assert!(!matches(
            json!({"a": [{"anything-but": null}]}),
            json!({"a": null})
        ));
    }

    #[test]
    fn anything_but_list() {
        let pattern = json!({"a": [{"anything-but": ["x", 2, true]}]});
        assert!(matches(pattern.clone(), json!({"a": "y"})));
        assert!(matches(pattern.clone(), json!({"a": false})));
        assert!(!matches(pattern.clone(), json!({"a": "x"})));
        assert!(!matches(pattern.clone(), json!({"a": 2})));
        assert!(!matches(pattern, json!({"a": true})));
        assert!(matches(
            json!({"a": [{"anything-but": []}]}),
            json!({"a": 1})
        ));
    }

    #[test]
    fn anything_but_object() {
        let prefix = json!({"a": [{"anything-but": {"prefix": "x"}}]});
        assert!(matches(prefix.clone(), json!({"a": "yx"})));
        assert!(!matches(prefix.clone(), json!({"a": "xy"})));
        // The negation of "a string with this prefix" accepts non-strings.
        assert!(matches(prefix, json!({"a": 5})));
        let numeric = json!({"a": [{"anything-but": {"numeric": [">", 0]}}]});
        assert!(matches(numeric.clone(), json!({"a": -1})));
        assert!(!matches(numeric, json!({"a": 1})));
        let double = json!({"a": [{"anything-but": {"anything-but": "x"}}]});
        assert!(matches(double.clone(), json!({"a": "x"})));
        assert!(!matches(double, json!({"a": "y"})));
        let wildcard = json!({"a": [{"anything-but": {"wildcard": "x*"}}]});
        assert!(matches(wildcard.clone(), json!({"a": "yx"})));
        assert!(!matches(wildcard, json!({"a": "xy"})));
    }

    #[test]
    fn prefix_rule() {
        let single = json!({"a": [{"prefix": "ab"}]});
        assert!(matches(single.clone(), json!({"a": "ab"})));
        assert!(matches(single.clone(), json!({"a": "abc"})));
        assert!(!matches(single.clone(), json!({"a": "a"})));
        assert!(!matches(single.clone(), json!({"a": "Abc"})));
        assert!(!matches(single.clone(), json!({"a": "cab"})));
        assert!(!matches(single, json!({"a": ["abc"]})));
        let list = json!({"a": [{"prefix": ["ab", "cd"]}]});
        assert!(matches(list.clone(), json!({"a": "cde"})));
        assert!(!matches(list, json!({"a": "de"})));
        let ignore_case = json!({"a": [{"prefix": {"equals-ignore-case": "AbC"}}]});
        assert!(matches(ignore_case.clone(), json!({"a": "aBcdef"})));
        assert!(!matches(ignore_case.clone(), json!({"a": "ab"})));
        assert!(!matches(ignore_case, json!({"a": 1})));
        let ignore_case_list = json!({"a": [{"prefix": {"equals-ignore-case": ["X", "yZ"]}}]});
        assert!(matches(ignore_case_list.clone(), json!({"a": "YZZ"})));
        assert!(!matches(ignore_case_list, json!({"a": "zy"})));
        assert!(matches(json!({"a": [{"prefix": ""}]}), json!({"a": ""})));
        assert!(!matches(json!({"a": [{"prefix": []}]}), json!({"a": "x"})));
        // Non-ASCII text is compared byte for byte; only ASCII letters fold.
        assert!(matches(
            json!({"a": [{"prefix": "é"}]}),
            json!({"a": "été"})
        ));
        assert!(!matches(
            json!({"a": [{"prefix": {"equals-ignore-case": "É"}}]}),
            json!({"a": "été"})
        ));
    }

    #[test]
    fn suffix_rule() {
        let single = json!({"a": [{"suffix": "yz"}]});
        assert!(matches(single.clone(), json!({"a": "xyz"})));
        assert!(matches(single.clone(), json!({"a": "yz"})));
        assert!(!matches(single.clone(), json!({"a": "z"})));
        assert!(!matches(single.clone(), json!({"a": "xyZ"})));
        assert!(!matches(single, json!({"a": 12})));
        let list = json!({"a": [{"suffix": ["yz", "12"]}]});
        assert!(matches(list.clone(), json!({"a": "a12"})));
        assert!(!matches(list, json!({"a": "a21"})));
        let ignore_case = json!({"a": [{"suffix": {"equals-ignore-case": "YZ"}}]});
        assert!(matches(ignore_case.clone(), json!({"a": "xYz"})));
        assert!(!matches(ignore_case, json!({"a": "yzx"})));
        let ignore_case_list = json!({"a": [{"suffix": {"equals-ignore-case": ["Q", "rs"]}}]});
        assert!(matches(ignore_case_list.clone(), json!({"a": "aRS"})));
        assert!(!matches(ignore_case_list, json!({"a": "sr"})));
    }

    #[test]
    fn equals_ignore_case_rule() {
        let single = json!({"a": [{"equals-ignore-case": "HeLLo"}]});
        assert!(matches(single.clone(), json!({"a": "hello"})));
        assert!(matches(single.clone(), json!({"a": "HELLO"})));
        assert!(!matches(single.clone(), json!({"a": "hello!"})));
        assert!(!matches(single, json!({"a": 5})));
        let list = json!({"a": [{"equals-ignore-case": ["A", "b"]}]});
        assert!(matches(list.clone(), json!({"a": "B"})));
        assert!(!matches(list, json!({"a": "c"})));
    }

    #[test]
    fn numeric_rule() {
        let range = json!({"a": [{"numeric": [">", 0, "<=", 5]}]});
        assert!(matches(range.clone(), json!({"a": 5})));
        assert!(matches(range.clone(), json!({"a": 0.5})));
        assert!(!matches(range.clone(), json!({"a": 0})));
        assert!(!matches(range.clone(), json!({"a": 5.01})));
        assert!(!matches(range.clone(), json!({"a": "3"})));
        assert!(!matches(range, json!({"a": null})));
        let equal = json!({"a": [{"numeric": ["=", 301.8]}]});
        assert!(matches(equal.clone(), json!({"a": 3.018e2})));
        assert!(!matches(equal, json!({"a": 301})));
        let ge_lt = json!({"a": [{"numeric": [">=", -1, "<", 1]}]});
        assert!(matches(ge_lt.clone(), json!({"a": -1})));
        assert!(!matches(ge_lt.clone(), json!({"a": 1})));
        assert!(!matches(ge_lt, json!({"a": -1.5})));
        // Without conditions only the "is a number" requirement remains.
        let empty = json!({"a": [{"numeric": []}]});
        assert!(matches(empty.clone(), json!({"a": 7})));
        assert!(!matches(empty, json!({"a": "7"})));
    }

    #[test]
    fn or_rule() {
        let pattern = json!({"a": [{"$or": [
            {"x": [{"numeric": [">", 0, "<=", 5]}]},
            {"y": [{"numeric": ["<", 10]}]},
            {"z": [{"numeric": ["=", 3.018e2]}]}
        ]}]});
        assert!(matches(pattern.clone(), json!({"a": {"x": 3}})));
        assert!(matches(pattern.clone(), json!({"a": {"y": 9, "x": 100}})));
        assert!(matches(pattern.clone(), json!({"a": {"z": 301.8}})));
        assert!(!matches(pattern.clone(), json!({"a": {"x": 6, "y": 10}})));
        assert!(!matches(pattern.clone(), json!({"a": 3})));
        assert!(!matches(pattern.clone(), json!({"x": 3})));
        assert!(!matches(json!({"a": [{"$or": []}]}), json!({"a": {}})));
        // Sub-patterns apply to the field value, which need not be an object.
        assert!(matches(
            json!({"a": [{"$or": [{"b": [{"exists": false}]}]}]}),
            json!({"a": 1})
        ));
    }

    #[test]
    fn wildcard_rule() {
        let pattern = json!({"a": [{"wildcard": "abc*def*ghi"}]});
        assert!(matches(pattern.clone(), json!({"a": "abcdefghi"})));
        assert!(matches(pattern.clone(), json!({"a": "abcXXXdefYYghi"})));
        assert!(matches(pattern.clone(), json!({"a": "abcdefdefghighi"})));
        assert!(!matches(pattern.clone(), json!({"a": "abcdefgh"})));
        assert!(!matches(pattern.clone(), json!({"a": "xabcdefghi"})));
        assert!(!matches(pattern, json!({"a": 5})));
        // Regex metacharacters are literal.
        let dot = json!({"a": [{"wildcard": "a.b*"}]});
        assert!(!matches(dot.clone(), json!({"a": "axbc"})));
        assert!(matches(dot.clone(), json!({"a": "a.bc"})));
        assert!(matches(dot, json!({"a": "a.b"})));
        for (glob, literal) in [
            ("(x|y)+", "(x|y)+"),
            ("[ab]?", "[ab]?"),
            ("^$", "^$"),
            ("a\\d", "a\\d"),
            ("a\\\\b", "a\\\\b"),
            ("{1,2}", "{1,2}"),
        ] {
            let pattern = json!({"a": [{"wildcard": glob}]});
            assert!(matches(pattern.clone(), json!({"a": literal})), "{glob}");
            assert!(!matches(pattern, json!({"a": "x"})), "{glob}");
        }
        assert!(!matches(
            json!({"a": [{"wildcard": "a\\\\b"}]}),
            json!({"a": "a\\b"})
        ));
        // `*` matches any sequence, the empty one and line breaks included.
        assert!(matches(json!({"a": [{"wildcard": "*"}]}), json!({"a": ""})));
        assert!(matches(
            json!({"a": [{"wildcard": "**"}]}),
            json!({"a": "x\ny"})
        ));
        assert!(matches(json!({"a": [{"wildcard": ""}]}), json!({"a": ""})));
        assert!(!matches(
            json!({"a": [{"wildcard": ""}]}),
            json!({"a": "x"})
        ));
        assert!(matches(
            json!({"a": [{"wildcard": "*é*"}]}),
            json!({"a": "caféine"})
        ));
    }

    #[test]
    fn wildcard_glob_matcher() {
        let cases: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("", "a", false),
            ("*", "", true),
            ("*", "anything", true),
            ("a*", "a", true),
            ("a*", "ba", false),
            ("*a", "ba", true),
            ("*a", "ab", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "acb", false),
            ("*ab*ab*", "xabyab", true),
            ("*aab", "aaaab", true),
            ("a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
            ("abc", "abc", true),
            ("abc", "abcd", false),
        ];
        for &(glob, text, expected) in cases {
            assert_eq!(
                wildcard_matches(glob.as_bytes(), text.as_bytes()),
                expected,
                "{glob:?} vs {text:?}"
            );
        }
    }

    // ---- compile errors ----

    #[test]
    fn pattern_must_be_an_object() {
        for pattern in [json!([]), json!("x"), json!(1), json!(null)] {
            assert_eq!(
                compile_error(pattern),
                "Invalid Eventbridge pattern: expected object"
            );
        }
    }

    #[test]
    fn list_shape_errors() {
        let mix = "Invalid Eventbridge pattern: cannot mix primitives with complex conditions";
        assert_eq!(compile_error(json!({"a": [1, {"exists": true}]})), mix);
        assert_eq!(compile_error(json!({"a": [{"exists": true}, "x"]})), mix);
        assert_eq!(
            compile_error(json!({"a": [[1]]})),
            "Invalid Eventbridge pattern: expected object or primitive"
        );
        assert_eq!(
            compile_error(json!({"a": [1, [2]]})),
            "Invalid Eventbridge pattern: expected object or primitive"
        );
        let one = "Invalid Eventbridge pattern: each rule can only have one statement";
        assert_eq!(
            compile_error(json!({"a": [{"prefix": "x", "suffix": "y"}]})),
            one
        );
        assert_eq!(compile_error(json!({"a": [{}]})), one);
        assert_eq!(
            compile_error(json!({"a": [{"anything-but": {"prefix": "x", "suffix": "y"}}]})),
            one
        );
        // Errors inside nested objects surface too.
        assert_eq!(compile_error(json!({"a": {"b": [{}]}})), one);
    }

    #[test]
    fn unexpected_rule_error() {
        assert_eq!(
            compile_error(json!({"a": [{"regex": "x"}]})),
            "Invalid Eventbridge pattern: unexpected rule: {\"regex\":\"x\"}"
        );
        assert_eq!(
            compile_error(json!({"a": [{"anything-but": {"exists": true}}]})),
            "Invalid Eventbridge pattern: unexpected rule: {\"exists\":true}"
        );
    }

    #[test]
    fn exists_error() {
        for value in [json!("true"), json!(1), json!(null), json!([true])] {
            assert_eq!(
                compile_error(json!({"a": [{"exists": value}]})),
                "Invalid Eventbridge \"exists\" rule: expected boolean value"
            );
        }
    }

    #[test]
    fn anything_but_error() {
        assert_eq!(
            compile_error(json!({"a": [{"anything-but": ["x", ["y"]]}]})),
            "Invalid Eventbridge \"anything-but\" rule: list should contain only primitive types"
        );
        assert_eq!(
            compile_error(json!({"a": [{"anything-but": [{"prefix": "x"}]}]})),
            "Invalid Eventbridge \"anything-but\" rule: list should contain only primitive types"
        );
        // Errors of the negated rule are reported as is.
        assert_eq!(
            compile_error(json!({"a": [{"anything-but": {"numeric": [">"]}}]})),
            "Invalid Eventbridge \"numeric\" rule: pattern should be a list of even number of elements"
        );
    }

    #[test]
    fn prefix_and_suffix_errors() {
        for rule in ["prefix", "suffix"] {
            assert_eq!(
                compile_error(json!({"a": [{rule: ["x", 1]}]})),
                format!(
                    "Invalid Eventbridge \"{rule}\" rule: list of prefixes should contain only strings"
                )
            );
            assert_eq!(
                compile_error(json!({"a": [{rule: {"other": "x"}}]})),
                format!(
                    "Invalid Eventbridge \"{rule}\" rule: only \"equals-ignore-case\" is allowed as sub-pattern"
                )
            );
            assert_eq!(
                compile_error(
                    json!({"a": [{rule: {"equals-ignore-case": "x", "other": "y"}}]})
                ),
                format!(
                    "Invalid Eventbridge \"{rule}\" rule: only \"equals-ignore-case\" is allowed as sub-pattern"
                )
            );
            assert_eq!(
                compile_error(json!({"a": [{rule: {"equals-ignore-case": ["x", null]}}]})),
                format!(
                    "Invalid Eventbridge \"{rule}\" rule: list in \"equals-ignore-case\" should contain only strings"
                )
            );
            assert_eq!(
                compile_error(json!({"a": [{rule: {"equals-ignore-case": 3}}]})),
                format!(
                    "Invalid Eventbridge \"{rule}\" rule: \"equals-ignore-case\" should be a string or a list of strings"
                )
            );
            for bad in [json!(1), json!(null), json!(true)] {
                assert_eq!(
                    compile_error(json!({"a": [{rule: bad}]})),
                    format!(
                        "Invalid Eventbridge \"{rule}\" rule: pattern should be a string, a list, or an object"
                    )
                );
            }
        }
    }

    #[test]
    fn equals_ignore_case_errors() {
        assert_eq!(
            compile_error(json!({"a": [{"equals-ignore-case": ["x", 2]}]})),
            "Invalid Eventbridge \"equals-ignore-case\" rule: list should contain only strings"
        );
        for bad in [json!(2), json!({"x": "y"}), json!(null)] {
            assert_eq!(
                compile_error(json!({"a": [{"equals-ignore-case": bad}]})),
                "Invalid Eventbridge \"equals-ignore-case\" rule: pattern should be a string or a list of strings"
            );
        }
    }

    #[test]
    fn numeric_errors() {
        let arity =
            "Invalid Eventbridge \"numeric\" rule: pattern should be a list of even number of elements";
        // The reference read past the end of an odd-length list; it is rejected here.
        assert_eq!(compile_error(json!({"a": [{"numeric": [">"]}]})), arity);
        assert_eq!(
            compile_error(json!({"a": [{"numeric": [">", 1, "<"]}]})),
            arity
        );
        assert_eq!(compile_error(json!({"a": [{"numeric": 5}]})), arity);
        assert_eq!(compile_error(json!({"a": [{"numeric": ">"}]})), arity);
        assert_eq!(compile_error(json!({"a": [{"numeric": {}}]})), arity);
        assert_eq!(
            compile_error(json!({"a": [{"numeric": [1, 1]}]})),
            "Invalid Eventbridge \"numeric\" rule: operator should be a string"
        );
        assert_eq!(
            compile_error(json!({"a": [{"numeric": [">", "1"]}]})),
            "Invalid Eventbridge \"numeric\" rule: operand should be a number"
        );
        // As in the reference, the operand is checked before the operator's name.
        assert_eq!(
            compile_error(json!({"a": [{"numeric": ["!=", null]}]})),
            "Invalid Eventbridge \"numeric\" rule: operand should be a number"
        );
        assert_eq!(
            compile_error(json!({"a": [{"numeric": [">", 0, "!=", 1]}]})),
            "Invalid Eventbridge \"numeric\" rule: unknown operator \"!=\""
        );
    }

    #[test]
    fn or_errors() {
        let message = "Invalid Eventbridge \"$or\" rule: pattern should be a list of objects";
        assert_eq!(compile_error(json!({"a": [{"$or": {"b": 1}}]})), message);
        assert_eq!(
            compile_error(json!({"a": [{"$or": [{"b": 1}, 2]}]})),
            message
        );
        assert_eq!(
            compile_error(json!({"a": [{"$or": [[{"b": 1}]]}]})),
            message
        );
        // Errors inside the sub-patterns surface too.
        assert_eq!(
            compile_error(json!({"a": [{"$or": [{"b": [{"exists": 1}]}]}]})),
            "Invalid Eventbridge \"exists\" rule: expected boolean value"
        );
    }

    #[test]
    fn wildcard_error() {
        for bad in [json!(1), json!(["a*"]), json!(null), json!({"x": 1})] {
            assert_eq!(
                compile_error(json!({"a": [{"wildcard": bad}]})),
                "Invalid Eventbridge \"wildcard\" rule: pattern should be a string"
            );
        }
    }

    #[test]
    fn error_display_names_the_validator() {
        let error = EventbridgePattern::compile(&json!([])).expect_err("not an object");
        assert_eq!(
            error.to_string(),
            "invalid validator configuration: Invalid Eventbridge pattern: expected object"
        );
    }
}
