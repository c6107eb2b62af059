//! A second SigV4 implementation, from SHA-256 alone, to check the signatures of MSK IAM tokens
//! independently of the library's signer (`tests/msk.rs`, `tests/msk_handshake.rs`).
#![allow(dead_code)]

use sha2::{Digest, Sha256};

/// The query of `url`, decoded, in order.
pub fn query(url: &str) -> Vec<(String, String)> {
    let (_, q) = url.split_once('?').unwrap_or((url, ""));
    url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The value of query parameter `key` of `url`.
pub fn param(url: &str, key: &str) -> Option<String> {
    query(url)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.iter().map(|x| x ^ b).collect::<Vec<u8>>();
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

/// RFC 3986 encoding as SigV4 wants it (unreserved characters kept).
fn uri_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Checks a presigned URL's SigV4 signature as AWS documents it: over the canonical request (GET,
/// path `/`, every query parameter but the signature and the User-Agent, sorted; header `host`).
pub fn signature_is_valid(url: &str, secret: &str) -> bool {
    let (Some(date), Some(credential), Some(signature)) = (
        param(url, "X-Amz-Date"),
        param(url, "X-Amz-Credential"),
        param(url, "X-Amz-Signature"),
    ) else {
        return false;
    };
    let Some(host) = url
        .strip_prefix("https://")
        .and_then(|u| u.split('/').next())
    else {
        return false;
    };
    let mut signed: Vec<(String, String)> = query(url)
        .iter()
        .filter(|(k, _)| k != "X-Amz-Signature" && k != "User-Agent")
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    signed.sort();
    let canonical_query = signed
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!(
        "GET\n/\n{canonical_query}\nhost:{host}\n\nhost\n{}",
        hex::encode(Sha256::digest(b""))
    );
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 {
        return false;
    }
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{}\n{}",
        scope[1..].join("/"),
        hex::encode(Sha256::digest(canonical.as_bytes()))
    );
    let mut key = hmac(format!("AWS4{secret}").as_bytes(), scope[1].as_bytes());
    for part in &scope[2..] {
        key = hmac(&key, part.as_bytes());
    }
    hex::encode(hmac(&key, to_sign.as_bytes())) == signature
}
