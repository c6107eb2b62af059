//! Event contents of every kind, for the HDF5 round trips of both packages (the library's
//! `tests/hdf5_roundtrip.rs`, the command-line crate's `cli_hdf5.rs`).
#![allow(dead_code)]

use serde_json::{json, Value};

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect()
}

/// Metadata of every kind: nested, unicode, big integers, floats, non-objects.
pub fn varied_metadata(i: usize) -> Value {
    match i % 8 {
        0 => json!({"step": i, "nested": {"a": [1, 2, {"b": null}], "c": {"d": {"e": true}}}}),
        1 => json!({"name": "héllo wörld ✓ 𝄞 日本語 \"quoted\" \\ \n\t\u{1}", "step": i}),
        2 => json!({"big": u64::MAX, "big2": (1u64 << 63) + 1, "neg": i64::MIN, "step": i}),
        3 => json!({
            "floats": [0.1, -2.5e-300, 1.7976931348623157e308, 5e-324, std::f64::consts::PI, 1e21, -0.0, 123456.789],
            "step": i
        }),
        4 => json!("a plain string metadata"),
        5 => json!([1, "two", 3.5, false, null]),
        6 => json!(i as f64 * 0.25 + 1e-7),
        _ => json!({}),
    }
}

/// Data sizes from 0 bytes to 1 MiB.
pub fn varied_size(i: usize) -> usize {
    [0, 1, 7, 255, 4096, 65_537, 1 << 20, 3][i % 8]
}
