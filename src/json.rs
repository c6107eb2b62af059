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
    // Eight bytes at a time: most strings need no escape at all.
    let mut i = 0;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_like_serde_json_at_every_position() {
        // Each special byte at every offset of a 19-byte string, so that it lands in both the
        // eight-byte words and the tail, plus non-ASCII text.
        let specials = [
            '"', '\\', '\n', '\r', '\t', '\u{8}', '\u{c}', '\u{1}', '\u{1f}', 'é', '\u{7f}',
        ];
        for c in specials {
            for at in 0..19 {
                let mut text: String = "abcdefghijklmnopqrs".into();
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
}
