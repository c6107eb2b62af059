//! JSON text output that matches nlohmann::json's `dump()` byte for byte.
//!
//! The files driver stores each event's metadata as the compact JSON text of the value, and the C++
//! reference writes that text with nlohmann::json. To produce byte-identical topics we need the same
//! text: object keys sorted bytewise (serde_json's default map already is), raw UTF-8, the same
//! escapes, and nlohmann's float layout (shortest round-trip digits, `.0` on integral values,
//! decimal notation only for exponents in (-4, 15], and exponents written as `e+15` / `e-05`).

use serde_json::Value;
use std::io::Write;

/// Appends the compact JSON text of `value` to `out`, exactly as nlohmann's `dump()` would.
pub fn write_compact(out: &mut Vec<u8>, value: &Value) {
    write_value(out, value, None, 0);
}

/// Appends the pretty-printed (indent of `indent` spaces) JSON text of `value`, as `dump(indent)`.
pub fn write_pretty(out: &mut Vec<u8>, value: &Value, indent: usize) {
    write_value(out, value, Some(indent), 0);
}

/// Compact JSON text as a `String`.
pub fn to_compact_string(value: &Value) -> String {
    let mut out = Vec::with_capacity(64);
    write_compact(&mut out, value);
    // Only valid UTF-8 is ever written: strings come from `&str`, the rest is ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Pretty JSON text as a `String`.
pub fn to_pretty_string(value: &Value, indent: usize) -> String {
    let mut out = Vec::with_capacity(64);
    write_pretty(&mut out, value, indent);
    String::from_utf8(out).unwrap_or_default()
}

fn newline_indent(out: &mut Vec<u8>, indent: usize, depth: usize) {
    out.push(b'\n');
    out.resize(out.len() + indent * depth, b' ');
}

fn write_value(out: &mut Vec<u8>, value: &Value, indent: Option<usize>, depth: usize) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                write_integer(out, u, false);
            } else if let Some(i) = n.as_i64() {
                write_integer(out, i.unsigned_abs(), i < 0);
            } else if let Some(f) = n.as_f64() {
                write_float(out, f);
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.extend_from_slice(b"[]");
                return;
            }
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Some(ind) = indent {
                    newline_indent(out, ind, depth + 1);
                }
                write_value(out, item, indent, depth + 1);
            }
            if let Some(ind) = indent {
                newline_indent(out, ind, depth);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            if map.is_empty() {
                out.extend_from_slice(b"{}");
                return;
            }
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if let Some(ind) = indent {
                    newline_indent(out, ind, depth + 1);
                }
                write_string(out, k);
                out.push(b':');
                if indent.is_some() {
                    out.push(b' ');
                }
                write_value(out, v, indent, depth + 1);
            }
            if let Some(ind) = indent {
                newline_indent(out, ind, depth);
            }
            out.push(b'}');
        }
    }
}

fn write_integer(out: &mut Vec<u8>, mut v: u64, negative: bool) {
    let mut digits = [0u8; 20];
    let mut pos = digits.len();
    loop {
        pos -= 1;
        digits[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if negative {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[pos..]);
}

fn write_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let escape_at = |out: &mut Vec<u8>, i: usize, start: &mut usize| {
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => return,
        };
        out.extend_from_slice(&bytes[*start..i]);
        if escape.is_empty() {
            // nlohmann writes other control characters as \u00xx with lowercase hex.
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.extend_from_slice(escape);
        }
        *start = i + 1;
    };
    // Sixteen bytes at a time, then eight: most strings need no escape at all.
    let mut i = 0;
    while i + 16 <= bytes.len() {
        if block_needs_escape(&bytes[i..i + 16]) {
            for j in i..i + 16 {
                escape_at(out, j, &mut start);
            }
        }
        i += 16;
    }
    while i + 8 <= bytes.len() {
        let w = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
        if word_needs_escape(w) {
            for j in i..i + 8 {
                escape_at(out, j, &mut start);
            }
        }
        i += 8;
    }
    // The last few bytes: one overlapping word says whether any of them needs a look.
    let tail_clean = i < bytes.len()
        && bytes.len() >= 8
        && !word_needs_escape(u64::from_le_bytes(
            bytes[bytes.len() - 8..].try_into().unwrap_or([0; 8]),
        ));
    if !tail_clean {
        for j in i..bytes.len() {
            escape_at(out, j, &mut start);
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// True if one of the sixteen bytes of `block` is a control character, `"` or `\\`.
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn block_needs_escape(block: &[u8]) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    assert!(block.len() >= 16);
    // SAFETY: SSE2 is enabled in this build (the cfg above); the load reads the first sixteen
    // bytes of `block`, which has at least that many (checked above), unaligned.
    unsafe {
        let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
        // A byte is at most 0x1f when the unsigned maximum of it and 0x1f is 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))) != 0
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn block_needs_escape(block: &[u8]) -> bool {
    let word = |at: usize| u64::from_le_bytes(block[at..at + 8].try_into().unwrap_or([0; 8]));
    word_needs_escape(word(0)) || word_needs_escape(word(8))
}

/// True if one of the eight bytes of `w` is a control character, `"` or `\\` (bit tricks: a
/// byte below 0x20, or equal to 0x22 or 0x5c, sets its high bit in the result).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (below_space | has_zero(w ^ (ONES * 0x22)) | has_zero(w ^ (ONES * 0x5c))) != 0
}

/// Writes a double the way nlohmann::json does (`to_chars` with min exponent -4, max 15).
pub(crate) fn write_float(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    if value == 0.0 {
        if value.is_sign_negative() {
            out.extend_from_slice(b"-0.0");
        } else {
            out.extend_from_slice(b"0.0");
        }
        return;
    }
    // Shortest round-trip digits in scientific form, e.g. "1.5e20", "-1e-5" (at most 25 bytes).
    let mut sci_buf = [0u8; 40];
    let sci_len = {
        let mut cursor = std::io::Cursor::new(&mut sci_buf[..]);
        let _ = write!(cursor, "{:e}", value);
        cursor.position() as usize
    };
    let sci = std::str::from_utf8(&sci_buf[..sci_len]).unwrap_or("0e0");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let exp10: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let mut digit_buf = [0u8; 24];
    let mut k = 0;
    for b in mantissa.bytes().filter(u8::is_ascii_digit) {
        digit_buf[k] = b;
        k += 1;
    }
    let digits = &digit_buf[..k];
    if negative {
        out.push(b'-');
    }
    let k = k as i32;
    // Value = 0.d1d2...dk * 10^n, i.e. the decimal point sits after n digits.
    let n = exp10 + 1;
    const MIN_EXP: i32 = -4;
    const MAX_EXP: i32 = 15;
    if k <= n && n <= MAX_EXP {
        out.extend_from_slice(digits);
        out.resize(out.len() + (n - k) as usize, b'0');
        out.extend_from_slice(b".0");
    } else if 0 < n && n <= MAX_EXP {
        out.extend_from_slice(&digits[..n as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[n as usize..]);
    } else if MIN_EXP < n && n <= 0 {
        out.extend_from_slice(b"0.");
        out.resize(out.len() + (-n) as usize, b'0');
        out.extend_from_slice(digits);
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        let e = n - 1;
        out.push(b'e');
        out.push(if e < 0 { b'-' } else { b'+' });
        let _ = write!(out, "{:02}", e.unsigned_abs());
    }
}

/// Deepest nesting [`is_compact_canonical`] follows (the parser's own limit).
const CANONICAL_DEPTH: usize = 128;

/// True if `text` is exactly what [`write_compact`] writes for the value `text` parses into, so
/// that the text may be stored as it is, without building the value and writing it again.
/// Conservative: anything it does not vouch for (whitespace, keys out of order or escaped, escapes
/// that the writer would spell differently, numbers written otherwise) gives false, and the caller
/// parses and writes. `text` must be JSON that parses.
pub(crate) fn is_compact_canonical(text: &[u8]) -> bool {
    let mut scan = Scan { text, at: 0 };
    scan.value(0) && scan.at == text.len()
}

/// A cursor over JSON text, for [`is_compact_canonical`].
struct Scan<'a> {
    text: &'a [u8],
    at: usize,
}

impl<'a> Scan<'a> {
    fn eat(&mut self, literal: &[u8]) -> bool {
        let found = self.text[self.at..].starts_with(literal);
        if found {
            self.at += literal.len();
        }
        found
    }

    fn value(&mut self, depth: usize) -> bool {
        if depth > CANONICAL_DEPTH {
            return false;
        }
        match self.text.get(self.at) {
            Some(b'n') => self.eat(b"null"),
            Some(b't') => self.eat(b"true"),
            Some(b'f') => self.eat(b"false"),
            Some(b'"') => self.string().is_some(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => {
                self.at += 1;
                if self.eat(b"]") {
                    return true;
                }
                loop {
                    if !self.value(depth + 1) {
                        return false;
                    }
                    if self.eat(b"]") {
                        return true;
                    }
                    if !self.eat(b",") {
                        return false;
                    }
                }
            }
            Some(b'{') => {
                self.at += 1;
                if self.eat(b"}") {
                    return true;
                }
                let mut previous: Option<&[u8]> = None;
                loop {
                    // Keys in strictly increasing byte order (the writer's order; a repeated
                    // key keeps only its last value). Escaped keys are not compared here.
                    let key = match self.string() {
                        Some(k) if !k.contains(&b'\\') => k,
                        _ => return false,
                    };
                    if previous.is_some_and(|p| p >= key) {
                        return false;
                    }
                    previous = Some(key);
                    if !self.eat(b":") || !self.value(depth + 1) {
                        return false;
                    }
                    if self.eat(b"}") {
                        return true;
                    }
                    if !self.eat(b",") {
                        return false;
                    }
                }
            }
            _ => false,
        }
    }

    /// A string at the cursor whose escapes are the ones `write_string` writes; its raw body.
    fn string(&mut self) -> Option<&'a [u8]> {
        let text = self.text;
        if text.get(self.at) != Some(&b'"') {
            return None;
        }
        let start = self.at + 1;
        let mut i = start;
        loop {
            // Eight bytes at a time while none is a quote, a backslash or a control character.
            while i + 8 <= text.len()
                && !word_needs_escape(u64::from_le_bytes(text[i..i + 8].try_into().ok()?))
            {
                i += 8;
            }
            match *text.get(i)? {
                b'"' => {
                    self.at = i + 1;
                    return Some(&text[start..i]);
                }
                0x00..=0x1f => return None,
                b'\\' => match *text.get(i + 1)? {
                    b'"' | b'\\' | b'n' | b'r' | b't' | b'b' | b'f' => i += 2,
                    b'u' => {
                        // Only the \u00xx (lowercase) of a control character without a short
                        // escape.
                        let hex = text.get(i + 2..i + 6)?;
                        let lower = |h: u8| match h {
                            b'0'..=b'9' => Some(h - b'0'),
                            b'a'..=b'f' => Some(h - b'a' + 10),
                            _ => None,
                        };
                        if hex[0] != b'0' || hex[1] != b'0' {
                            return None;
                        }
                        let c = lower(hex[2])? * 16 + lower(hex[3])?;
                        if c >= 0x20 || matches!(c, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                            return None;
                        }
                        i += 6;
                    }
                    _ => return None,
                },
                _ => i += 1,
            }
        }
    }

    /// A number at the cursor: an integer as the writer writes integers (no leading zero, no
    /// "-0", within 64 bits), or a float whose value the writer writes back the same.
    fn number(&mut self) -> bool {
        let text = self.text;
        let start = self.at;
        let negative = text[start] == b'-';
        let first = start + usize::from(negative);
        let mut i = first;
        while i < text.len() && text[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - first;
        if !matches!(text.get(i), Some(b'.' | b'e' | b'E')) {
            self.at = i;
            return match (digits, text.get(first)) {
                (0, _) => false,
                (_, Some(b'0')) => digits == 1 && !negative,
                // Up to 19 digits always fit a u64, up to 18 an i64 (longer ones may not).
                _ => digits <= if negative { 18 } else { 19 },
            };
        }
        while i < text.len() && matches!(text[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
            i += 1;
        }
        self.at = i;
        let token = &text[start..i];
        // The same parser as the whole text's, then the writer.
        match serde_json::from_slice::<Value>(token) {
            Ok(value @ Value::Number(_)) => {
                let mut out = Vec::with_capacity(token.len());
                write_value(&mut out, &value, None, 0);
                out == token
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json_at_every_position() {
        // Each special byte (and its clean neighbours) at every offset of strings of every
        // length up to 40, so that it lands in the sixteen-byte blocks, the eight-byte words and
        // the tail, plus non-ASCII text.
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{0}', '\u{1}', '\u{1f}', ' ', '!',
            '#', '[', ']', 'é', '\u{7f}',
        ];
        let base = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
        for c in specials {
            for (len, at) in (1..=base.len()).flat_map(|len| (0..len).map(move |at| (len, at))) {
                let mut text: String = base[..len].into();
                text.replace_range(at..at + 1, &c.to_string());
                let mut out = Vec::new();
                write_string(&mut out, &text);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    serde_json::to_string(&text).unwrap(),
                    "{text:?}"
                );
            }
        }
    }
    use serde_json::json;

    fn f(v: f64) -> String {
        let mut out = Vec::new();
        write_float(&mut out, v);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn floats_follow_nlohmann_layout() {
        assert_eq!(f(1.0), "1.0");
        assert_eq!(f(-2.5), "-2.5");
        assert_eq!(f(1e14), "100000000000000.0");
        assert_eq!(f(1e15), "1e+15");
        assert_eq!(f(1.5e20), "1.5e+20");
        assert_eq!(f(1e100), "1e+100");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(1e-5), "1e-05");
        assert_eq!(f(1.25e-7), "1.25e-07");
        assert_eq!(f(0.1), "0.1");
        assert_eq!(f(123456.789), "123456.789");
        assert_eq!(f(0.0), "0.0");
        assert_eq!(f(-0.0), "-0.0");
        assert_eq!(f(f64::NAN), "null");
        assert_eq!(f(f64::INFINITY), "null");
        assert_eq!(f(5e-324), "5e-324");
        assert_eq!(f(1.7976931348623157e308), "1.7976931348623157e+308");
    }

    #[test]
    fn compact_and_pretty_text() {
        let v =
            json!({"b": [1, -2, 18446744073709551615u64], "a": "x\"\\\n\u{1}é", "c": {}, "d": []});
        assert_eq!(
            to_compact_string(&v),
            "{\"a\":\"x\\\"\\\\\\n\\u0001é\",\"b\":[1,-2,18446744073709551615],\"c\":{},\"d\":[]}"
        );
        assert_eq!(
            to_pretty_string(&json!({"type": "default", "x": [1, {"y": null}]}), 2),
            "{\n  \"type\": \"default\",\n  \"x\": [\n    1,\n    {\n      \"y\": null\n    }\n  ]\n}"
        );
    }

    /// Round trip of `text` through the parser and the writer.
    fn rewritten(text: &str) -> Option<String> {
        serde_json::from_str::<Value>(text)
            .ok()
            .map(|v| to_compact_string(&v))
    }

    #[test]
    fn canonical_texts_are_recognized() {
        for text in [
            "null",
            "true",
            "0",
            "-1",
            "1234567890123456789",
            "-123456789012345678",
            "1.5",
            "-2.5",
            "1e+15",
            "1.25e-07",
            "0.0001",
            "-0.0",
            "\"\"",
            "\"abcdefghijklmnopqrstuvwxyz é \\\" \\\\ \\n \\t \\b \\f \\r \\u0001 \\u001f\"",
            "[]",
            "{}",
            "[1,[2,[]],{}]",
            "{\"a\":1,\"b\":{\"c\":[true,null]},\"é\":\"x\"}",
        ] {
            assert!(is_compact_canonical(text.as_bytes()), "{text}");
            assert_eq!(rewritten(text).as_deref(), Some(text));
        }
    }

    #[test]
    fn texts_the_writer_spells_otherwise_are_not_canonical() {
        for text in [
            " 1",
            "1 ",
            "[1, 2]",
            "{\"b\":1,\"a\":2}",
            "{\"a\":1,\"a\":2}",
            "{\"a\\u0062\":1}",
            "-0",
            "1.0e0",
            "1E+15",
            "100000000000000000000",
            "-9223372036854775808",
            "0.10",
            "\"\\/\"",
            "\"\\u0041\"",
            "\"\\u000A\"",
            "\"\\u000a\"",
            "\"\\u00e9\"",
            "\"\\ud83d\\ude00\"",
            "{\"a\" :1}",
        ] {
            assert!(!is_compact_canonical(text.as_bytes()), "{text}");
        }
    }

    #[test]
    fn a_text_said_canonical_always_survives_the_round_trip() {
        // Texts the writer wrote from varied values must be recognized; each one bent by one byte
        // (a space, a digit, an escape, a swapped pair...) must be recognized only if the writer
        // would write it back byte for byte.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        fn value(next: &mut dyn FnMut() -> u64, depth: u32) -> Value {
            let pick = next() % if depth > 3 { 6 } else { 8 };
            match pick {
                0 => Value::Null,
                1 => Value::Bool(next().is_multiple_of(2)),
                2 => json!((next() % 2_000_000) as i64 - 1_000_000),
                3 => json!(f64::from_bits(next() >> 2) % 1e20),
                4 => json!((next() % 1000) as f64 / 8.0),
                5 => {
                    let alphabet = ['a', 'Z', '"', '\\', '\n', '\u{1}', 'é', '/', ' ', '\u{7f}'];
                    let n = next() % 12;
                    Value::String(
                        (0..n)
                            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                            .collect(),
                    )
                }
                6 => Value::Array((0..next() % 4).map(|_| value(next, depth + 1)).collect()),
                _ => Value::Object(
                    (0..next() % 4)
                        .map(|_| (format!("k{}", next() % 10), value(next, depth + 1)))
                        .collect(),
                ),
            }
        }
        let bends: [&[u8]; 8] = [b" ", b"0", b"\\", b"-", b".", b"e", b",", b"\""];
        let (mut kept, mut refused) = (0, 0);
        for _ in 0..3000 {
            let v = value(&mut next, 0);
            let text = to_compact_string(&v);
            assert!(is_compact_canonical(text.as_bytes()), "{text}");
            let mut bent = text.clone().into_bytes();
            let at = (next() % (bent.len() as u64 + 1)) as usize;
            match next() % 3 {
                0 => {
                    let b = bends[(next() % bends.len() as u64) as usize];
                    bent.splice(at..at, b.iter().copied());
                }
                1 if at + 1 < bent.len() => bent.swap(at, at + 1),
                _ if at < bent.len() => {
                    bent.remove(at);
                }
                _ => {}
            }
            let Ok(bent) = String::from_utf8(bent) else {
                continue;
            };
            // (Only texts that parse are asked about.)
            let Some(again) = rewritten(&bent) else {
                continue;
            };
            if is_compact_canonical(bent.as_bytes()) {
                assert_eq!(again, bent, "{text}");
                kept += 1;
            } else {
                refused += 1;
            }
        }
        // Both outcomes occur, so the check above had work to do.
        assert!(
            kept > 100 && refused > 100,
            "kept {kept}, refused {refused}"
        );
    }
}
