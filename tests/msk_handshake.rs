//! librdkafka really authenticates with our MSK IAM tokens: SASL/OAUTHBEARER over TLS.
//!
//! No Kafka broker here checks MSK tokens, so the test runs a small endpoint of its own: TLS
//! with a certificate made for the test, and just enough of the Kafka protocol (ApiVersions,
//! SaslHandshake, SaslAuthenticate, Metadata v0) for a client to authenticate and ask the
//! cluster's metadata. It checks each token's SigV4 signature with the test's credentials (the
//! same independent check as tests/msk.rs), counts the tokens it sees, and refuses a bad one with
//! SASL_AUTHENTICATION_FAILED, as MSK does.

#[path = "support/sigv4.rs"]
mod sigv4;

use base64::Engine as _;
use diaspora_stream::Driver;
use openssl::asn1::Asn1Time;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::ssl::{SslAcceptor, SslMethod, SslStream};
use openssl::x509::extension::SubjectAlternativeName;
use openssl::x509::{X509Name, X509};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY_ID: &str = "AKIAHANDSHAKEXAMPLE";
const SECRET: &str = "handshake/secret+KEY";

/// What the endpoint saw.
#[derive(Default, Debug)]
struct Seen {
    /// The URLs of the tokens it accepted, in order.
    accepted: Vec<String>,
    /// Authentications it refused.
    refused: usize,
}

struct Endpoint {
    port: u16,
    ca: tempfile::NamedTempFile,
    seen: Arc<Mutex<Seen>>,
}

/// A TLS endpoint on 127.0.0.1 that accepts tokens signed with `secret`; with
/// `session_lifetime_ms` > 0 it asks clients to authenticate again within that time.
fn endpoint(secret: &'static str, session_lifetime_ms: i64) -> Endpoint {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509Name::builder().unwrap();
    name.append_entry_by_text("CN", "127.0.0.1").unwrap();
    let name = name.build();
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_subject_name(&name).unwrap();
    cert.set_issuer_name(&name).unwrap();
    cert.set_pubkey(&key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(1).unwrap())
        .unwrap();
    let serial = openssl::bn::BigNum::from_u32(1)
        .unwrap()
        .to_asn1_integer()
        .unwrap();
    cert.set_serial_number(&serial).unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&cert.x509v3_context(None, None))
        .unwrap();
    cert.append_extension(san).unwrap();
    cert.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = cert.build();
    let mut ca = tempfile::NamedTempFile::new().unwrap();
    ca.write_all(&cert.to_pem().unwrap()).unwrap();

    let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).unwrap();
    acceptor.set_private_key(&key).unwrap();
    acceptor.set_certificate(&cert).unwrap();
    let acceptor = Arc::new(acceptor.build());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (acceptor, seen) = (acceptor.clone(), s.clone());
            std::thread::spawn(move || {
                if let Ok(tls) = acceptor.accept(stream) {
                    serve(tls, port, secret, session_lifetime_ms, &seen);
                }
            });
        }
    });
    Endpoint { port, ca, seen }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as i16).to_be_bytes());
    out.extend(s.as_bytes());
}

/// Answers one client until it disconnects.
fn serve(
    mut tls: SslStream<TcpStream>,
    port: u16,
    secret: &str,
    session_lifetime_ms: i64,
    seen: &Mutex<Seen>,
) {
    loop {
        let mut len = [0u8; 4];
        if tls.read_exact(&mut len).is_err() {
            return;
        }
        let mut req = vec![0u8; i32::from_be_bytes(len) as usize];
        if tls.read_exact(&mut req).is_err() {
            return;
        }
        let api_key = i16::from_be_bytes([req[0], req[1]]);
        let version = i16::from_be_bytes([req[2], req[3]]);
        let client_id_len = i16::from_be_bytes([req[8], req[9]]).max(0) as usize;
        // Request header v1 (v2, with empty tagged fields, for flexible ApiVersions v3).
        let mut body = 10 + client_id_len;
        if api_key == 18 && version >= 3 {
            body += 1;
        }
        let body = &req[body..];
        let mut out = req[4..8].to_vec(); // correlation id
        match api_key {
            18 => {
                // ApiVersions: what this endpoint speaks.
                let apis: [(i16, i16, i16); 4] = [(18, 0, 3), (17, 0, 1), (36, 0, 1), (3, 0, 0)];
                out.extend(0i16.to_be_bytes());
                if version >= 3 {
                    out.push(apis.len() as u8 + 1);
                    for (k, lo, hi) in apis {
                        out.extend(k.to_be_bytes());
                        out.extend(lo.to_be_bytes());
                        out.extend(hi.to_be_bytes());
                        out.push(0);
                    }
                    out.extend(0i32.to_be_bytes());
                    out.push(0);
                } else {
                    out.extend((apis.len() as i32).to_be_bytes());
                    for (k, lo, hi) in apis {
                        out.extend(k.to_be_bytes());
                        out.extend(lo.to_be_bytes());
                        out.extend(hi.to_be_bytes());
                    }
                    if version >= 1 {
                        out.extend(0i32.to_be_bytes());
                    }
                }
            }
            17 => {
                // SaslHandshake: OAUTHBEARER only.
                let n = i16::from_be_bytes([body[0], body[1]]) as usize;
                let mechanism = std::str::from_utf8(&body[2..2 + n]).unwrap_or("");
                let code: i16 = if mechanism == "OAUTHBEARER" { 0 } else { 33 };
                out.extend(code.to_be_bytes());
                out.extend(1i32.to_be_bytes());
                put_str(&mut out, "OAUTHBEARER");
            }
            36 => {
                // SaslAuthenticate: "n,,\x01auth=Bearer <token>\x01\x01".
                let n = i32::from_be_bytes([body[0], body[1], body[2], body[3]]) as usize;
                let message = String::from_utf8_lossy(&body[4..4 + n]).to_string();
                let verdict = check_message(&message, secret);
                let mut seen = seen.lock().unwrap();
                match verdict {
                    Ok(url) => {
                        seen.accepted.push(url);
                        out.extend(0i16.to_be_bytes());
                        out.extend((-1i16).to_be_bytes());
                    }
                    Err(why) => {
                        seen.refused += 1;
                        out.extend(58i16.to_be_bytes());
                        put_str(&mut out, &format!("Access denied: {why}"));
                    }
                }
                out.extend(0i32.to_be_bytes());
                if version >= 1 {
                    out.extend(session_lifetime_ms.to_be_bytes());
                }
            }
            3 => {
                // Metadata v0: this endpoint is the one broker; no topics.
                out.extend(1i32.to_be_bytes());
                out.extend(1i32.to_be_bytes());
                put_str(&mut out, "127.0.0.1");
                out.extend((port as i32).to_be_bytes());
                out.extend(0i32.to_be_bytes());
            }
            _ => return,
        }
        let mut frame = (out.len() as i32).to_be_bytes().to_vec();
        frame.extend(out);
        if tls.write_all(&frame).is_err() {
            return;
        }
    }
}

/// The token's URL if the SASL message carries a valid, unexpired MSK token.
fn check_message(message: &str, secret: &str) -> Result<String, String> {
    let token = message
        .strip_prefix("n,,\u{1}auth=Bearer ")
        .and_then(|m| m.strip_suffix("\u{1}\u{1}"))
        .ok_or("not an OAUTHBEARER client message")?;
    let url = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| "not base64url")?;
    let url = String::from_utf8(url).map_err(|_| "not text")?;
    if !url.starts_with("https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect&") {
        return Err(format!("not an MSK connect request: {url}"));
    }
    if !token_is_valid(&url, secret) {
        return Err("bad signature".into());
    }
    Ok(url)
}

/// The token's own signature (the independent SigV4 check), its key, and that it has not expired.
fn token_is_valid(url: &str, secret: &str) -> bool {
    let (Some(date), Some(credential)) = (
        sigv4::param(url, "X-Amz-Date"),
        sigv4::param(url, "X-Amz-Credential"),
    ) else {
        return false;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    sigv4::signature_is_valid(url, secret)
        && credential.split('/').next() == Some(KEY_ID)
        && now - chrono_like_seconds(&date) < 900
}

/// Seconds since the epoch of an X-Amz-Date (`YYYYMMDDTHHMMSSZ`).
fn chrono_like_seconds(date: &str) -> i64 {
    let n = |a: usize, b: usize| date[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(4, 6), n(6, 8));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(9, 11) * 3600 + n(11, 13) * 60 + n(13, 15)
}

fn driver(e: &Endpoint, msk: serde_json::Value) -> diaspora_stream::Result<Driver> {
    Driver::new(
        "kafka",
        &json!({
            "kafka": {
                "bootstrap.servers": format!("127.0.0.1:{}", e.port),
                "ssl.ca.location": e.ca.path(),
            },
            "aws_msk_iam": msk,
        }),
    )
}

#[test]
fn librdkafka_authenticates_with_our_tokens_renews_them_and_reports_refusals() {
    // This process's credentials (the only test of this file: nothing else reads them).
    std::env::set_var("AWS_ACCESS_KEY_ID", KEY_ID);
    std::env::set_var("AWS_SECRET_ACCESS_KEY", SECRET);
    std::env::remove_var("AWS_SESSION_TOKEN");
    std::env::remove_var("AWS_PROFILE");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");

    // 1. A valid token: the client authenticates and gets the metadata (no topics).
    let good = endpoint(SECRET, 0);
    let d = driver(&good, json!({"region": "us-east-1"})).unwrap();
    let topics = d
        .list_topics()
        .expect("metadata through an authenticated connection");
    assert!(topics.is_empty(), "{topics:?}");
    let seen = good.seen.lock().unwrap();
    assert!(!seen.accepted.is_empty(), "no token reached the endpoint");
    assert_eq!(seen.refused, 0, "{seen:?}");
    assert!(seen.accepted[0].contains("User-Agent=diaspora-stream-rs%2F"));
    drop(seen);
    drop(d);

    // 2. Renewal: tokens said to last 2 s, sessions that must re-authenticate every 1.5 s: the
    //    endpoint sees new tokens while the driver keeps working.
    let renewing = endpoint(SECRET, 1500);
    let d = driver(
        &renewing,
        json!({"region": "us-east-1", "token_lifetime_s": 2}),
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        d.list_topics().expect("metadata while tokens are renewed");
        let dates: std::collections::BTreeSet<String> = renewing
            .seen
            .lock()
            .unwrap()
            .accepted
            .iter()
            .filter_map(|u| u.split("X-Amz-Date=").nth(1).map(|s| s[..16].to_string()))
            .collect();
        if dates.len() >= 3 {
            break;
        }
        assert!(
            Instant::now() < until,
            "no renewed tokens within 30 s: {dates:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(renewing.seen.lock().unwrap().refused, 0);
    drop(d);

    // 3. A cluster that refuses the signature: an authentication error, not a hang.
    let refusing = endpoint("some-other-secret", 0);
    let d = driver(&refusing, json!({"region": "us-east-1"})).unwrap();
    let started = Instant::now();
    let e = d.list_topics().unwrap_err().to_string();
    assert!(e.contains("authentication"), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "took {:?}",
        started.elapsed()
    );
    eprintln!("refused as: {e}");
    assert!(refusing.seen.lock().unwrap().refused > 0);
    assert!(!e.contains(SECRET));
}
