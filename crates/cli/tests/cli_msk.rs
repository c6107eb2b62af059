//! `diaspora-ctl msk-token`: credentials from the standard AWS chain (environment, shared
//! files and profiles), clear errors that name what was tried and never print secrets. Each case
//! runs the command with its own environment (no AWS variable of the caller leaks in, and
//! instance metadata is disabled so that nothing waits on the network).
//!
//! In a build without feature `msk` the command must refuse, which the last test checks.
#![cfg_attr(not(feature = "msk"), allow(dead_code, unused_imports))]

use base64::Engine as _;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CTL: &str = env!("CARGO_BIN_EXE_diaspora-ctl");
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn msk_token(args: &[&str], env: &[(&str, &str)]) -> Output {
    let home = tempfile::tempdir().unwrap();
    let mut c = Command::new(CTL);
    c.arg("msk-token").args(args).env_clear();
    c.env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The URL inside a token printed by the command.
fn url(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout.clone()).unwrap();
    let token = text.lines().next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[cfg(feature = "msk")]
#[test]
fn environment_credentials_with_a_session_token() {
    let out = msk_token(
        &["--region", "eu-central-1", "--expiry"],
        &[
            ("AWS_ACCESS_KEY_ID", "ASIAENVEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", "session/token+1=="),
        ],
    );
    let u = url(&out);
    assert!(
        u.starts_with("https://kafka.eu-central-1.amazonaws.com/?Action=kafka-cluster%3AConnect&"),
        "{u}"
    );
    assert!(u.contains("X-Amz-Credential=ASIAENVEXAMPLE%2F"), "{u}");
    assert!(
        u.contains("X-Amz-Security-Token=session%2Ftoken%2B1%3D%3D"),
        "{u}"
    );
    assert!(
        !u.contains(SECRET) && !u.contains("wJalr"),
        "the secret is never in a token"
    );
    // The expiry line: 900 s after now, give or take the run.
    let text = String::from_utf8(out.stdout).unwrap();
    let expiry: i64 = text.lines().nth(1).unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        (now + 800_000..now + 901_000).contains(&expiry),
        "{expiry} vs {now}"
    );
}

#[cfg(feature = "msk")]
#[test]
fn shared_credentials_file_profiles_by_option_and_by_aws_profile() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = {SECRET}\n\n\
             [analysis]\naws_access_key_id = AKIAANALYSIS\naws_secret_access_key = {SECRET}\n"
        ),
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(&config, "").unwrap();
    let files = [
        ("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap()),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
    ];
    let key = |out: &Output| {
        let u = url(out);
        u.split("X-Amz-Credential=")
            .nth(1)
            .unwrap()
            .split("%2F")
            .next()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        key(&msk_token(&["--region", "us-east-1"], &files)),
        "AKIADEFAULT"
    );
    assert_eq!(
        key(&msk_token(
            &["--region", "us-east-1", "--profile", "analysis"],
            &files
        )),
        "AKIAANALYSIS"
    );
    let mut with_env = files.to_vec();
    with_env.push(("AWS_PROFILE", "analysis"));
    assert_eq!(
        key(&msk_token(&["--region", "us-east-1"], &with_env)),
        "AKIAANALYSIS"
    );
}

#[cfg(feature = "msk")]
#[test]
fn no_credentials_is_a_quick_error_naming_what_was_tried_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    // A profile with a key and no secret: unusable, and its key id must not be printed either.
    let file = dir.path().join("credentials");
    std::fs::write(&file, "[default]\naws_access_key_id = AKIANOSECRET\n").unwrap();
    let started = Instant::now();
    let out = msk_token(
        &["--region", "us-east-1"],
        &[("AWS_SHARED_CREDENTIALS_FILE", file.to_str().unwrap())],
    );
    assert!(started.elapsed() < Duration::from_secs(30), "no hang");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    for tried in [
        "no AWS credentials",
        "AWS_ACCESS_KEY_ID",
        "shared config and credentials files",
        "profile \"default\"",
        "web identity",
        "ECS container",
        "EC2 instance metadata",
    ] {
        assert!(err.contains(tried), "{tried:?} missing from: {err}");
    }
    assert!(
        !err.contains(SECRET) && !err.contains("AKIANOSECRET"),
        "{err}"
    );
    // An empty or malformed region is refused before credentials are looked for.
    for region in ["", "Us East"] {
        let out = msk_token(&["--region", region], &[]);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("region"), "{err}");
    }
}

#[cfg(not(feature = "msk"))]
#[test]
fn without_the_msk_feature_the_command_says_which_build_it_needs() {
    let out = msk_token(&["--region", "us-east-1"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("`msk`") && err.contains("+msk"), "{err}");
}

/// A stand-in for STS on 127.0.0.1: answers every request with an AssumeRole response whose
/// temporary credentials are `key`/`secret`/`session`, and keeps the requests' bodies.
#[cfg(feature = "msk")]
fn fake_sts(
    key: &'static str,
    session: &'static str,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if line == "\r\n" {
                    break;
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            seen.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let xml = format!(
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <AssumeRoleResult><AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>\
                 <Arn>arn:aws:sts::123456789012:assumed-role/analysis/s</Arn></AssumedRoleUser>\
                 <Credentials><AccessKeyId>{key}</AccessKeyId>\
                 <SecretAccessKey>assumed/secret</SecretAccessKey>\
                 <SessionToken>{session}</SessionToken>\
                 <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
                 </AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId>\
                 </ResponseMetadata></AssumeRoleResponse>"
            );
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{xml}",
                xml.len()
            );
        }
    });
    (port, bodies)
}

#[cfg(feature = "msk")]
#[test]
fn a_role_is_assumed_with_the_credentials_found_and_its_session_signs_the_token() {
    let (port, bodies) = fake_sts("ASIAASSUMEDROLE", "assumed-session-token");
    let endpoint = format!("http://127.0.0.1:{port}");
    let out = msk_token(
        &[
            "--region",
            "us-west-2",
            "--role-arn",
            "arn:aws:iam::123456789012:role/analysis",
            "--session-name",
            "job-42",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", "AKIABASEKEY"),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_ENDPOINT_URL_STS", &endpoint),
        ],
    );
    let u = url(&out);
    assert!(u.contains("X-Amz-Credential=ASIAASSUMEDROLE%2F"), "{u}");
    assert!(
        u.contains("X-Amz-Security-Token=assumed-session-token"),
        "{u}"
    );
    let bodies = bodies.lock().unwrap();
    let request = bodies.first().expect("STS was asked");
    assert!(request.contains("Action=AssumeRole"), "{request}");
    assert!(request.contains("RoleSessionName=job-42"), "{request}");
    assert!(
        request.contains("arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fanalysis"),
        "{request}"
    );
}
