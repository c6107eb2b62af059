//! Amazon MSK IAM tokens (feature `msk`): the same bytes as AWS's own Python signer for the same
//! credentials, region and instant (apart from the User-Agent), a signature that a second SigV4
//! implementation (`support/sigv4.rs`, from SHA-256 alone) accepts, and clear errors before any connection.
//!
//! The comparison with AWS's signer runs the `aws-msk-iam-sasl-signer-python` package with the
//! Python named by `DIASPORA_MSK_SIGNER_PYTHON` (scripts/test.sh installs it in a virtual
//! environment); without that variable it is skipped, saying so.

#[path = "support/sigv4.rs"]
mod sigv4;

use aws_credential_types::Credentials;
use base64::Engine as _;
use diaspora_stream::drivers::kafka::sign_token;
use diaspora_stream::{Driver, Error};
use serde_json::json;
use sigv4::{query, signature_is_valid};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

fn credentials(session: Option<&str>) -> Credentials {
    Credentials::new(KEY_ID, SECRET, session.map(str::to_string), None, "test")
}

fn decode(token: &str) -> String {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .expect("base64url without padding");
    String::from_utf8(bytes).unwrap()
}

#[test]
fn tokens_carry_the_msk_request_and_a_signature_a_second_sigv4_accepts() {
    let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    for (region, session) in [
        ("us-east-1", None),
        ("eu-west-3", Some("FwoGZXIvYXdzE+tmp/token==")),
    ] {
        let t = sign_token(region, &credentials(session), at).unwrap();
        let url = decode(&t.token);
        assert!(
            url.starts_with(&format!("https://kafka.{region}.amazonaws.com/?")),
            "{url}"
        );
        let q: BTreeMap<String, String> = query(&url).into_iter().collect();
        assert_eq!(q["Action"], "kafka-cluster:Connect");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            q["X-Amz-Credential"],
            format!("{KEY_ID}/20231114/{region}/kafka-cluster/aws4_request")
        );
        assert_eq!(q["X-Amz-Date"], "20231114T221320Z");
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert_eq!(q.get("X-Amz-Security-Token").map(String::as_str), session);
        assert!(q["User-Agent"].starts_with("diaspora-stream-rs/"));
        assert_eq!(t.expires_at_ms, (1_700_000_000 + 900) * 1000);
        assert!(signature_is_valid(&url, SECRET), "{url}");
        assert!(!signature_is_valid(&url, "another-secret"));
        // A changed session token breaks the signature: it is signed in.
        if session.is_some() {
            let forged = url.replace("tmp%2Ftoken", "tmp%2Ftoken2");
            assert!(!signature_is_valid(&forged, SECRET));
        }
    }
}

#[test]
fn tokens_match_aws_python_signer_for_the_same_credentials_region_and_instant() {
    let Ok(python) = std::env::var("DIASPORA_MSK_SIGNER_PYTHON") else {
        eprintln!(
            "skipped: DIASPORA_MSK_SIGNER_PYTHON is not set (scripts/test.sh installs \
             aws-msk-iam-sasl-signer-python and sets it)"
        );
        return;
    };
    // The Python signer with botocore's clock fixed at the instant given.
    let script = r#"
import base64, datetime, sys
import botocore.auth
from botocore.credentials import Credentials
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider as P
at = datetime.datetime.fromtimestamp(int(sys.argv[2]), datetime.timezone.utc).replace(tzinfo=None)
botocore.auth.get_current_datetime = lambda *a, **k: at
creds = Credentials(sys.argv[3], sys.argv[4], sys.argv[5] or None)
token, expiry = getattr(P, "__construct_auth_token")(sys.argv[1], creds)
print(token)
print(expiry)
"#;
    for (region, seconds, session) in [
        ("us-east-1", 1_796_518_923u64, ""),
        (
            "ap-southeast-2",
            1_712_345_678,
            "IQoJb3JpZ2luX2VjE/session+token==",
        ),
    ] {
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                script,
                region,
                &seconds.to_string(),
                KEY_ID,
                SECRET,
                session,
            ])
            .output()
            .expect("run the Python signer");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let mut lines = text.lines();
        let theirs = decode(lines.next().unwrap());
        let their_expiry: i64 = lines.next().unwrap().parse().unwrap();
        let session = (!session.is_empty()).then_some(session);
        let ours = sign_token(
            region,
            &credentials(session),
            UNIX_EPOCH + Duration::from_secs(seconds),
        )
        .unwrap();
        let without_agent = |u: &str| u.split("&User-Agent=").next().unwrap().to_string();
        assert_eq!(without_agent(&decode(&ours.token)), without_agent(&theirs));
        assert!(theirs.contains("&User-Agent=aws-msk-iam-sasl-signer-python"));
        assert_eq!(ours.expires_at_ms, their_expiry);
    }
}

#[test]
fn msk_options_are_checked_before_any_connection() {
    // Nothing listens on port 9: an error here comes from the checks, not a connection.
    let driver = |msk: serde_json::Value| {
        Driver::new(
            "kafka",
            &json!({"kafka": {"bootstrap.servers": "127.0.0.1:9"}, "aws_msk_iam": msk}),
        )
    };
    for (msk, needle) in [
        (json!({"region": ""}), "region"),
        (json!({"region": "Not A Region"}), "not an AWS region name"),
        (json!({}), "region"),
        (json!({"region": "us-east-1", "profil": "x"}), "profil"),
    ] {
        let started = Instant::now();
        let e = driver(msk.clone()).unwrap_err().to_string();
        assert!(e.contains(needle), "{msk}: {e}");
        assert!(started.elapsed() < Duration::from_secs(20), "{msk}: slow");
    }
    let e = Driver::new(
        "kafka",
        &json!({"kafka": {"bootstrap.servers": "127.0.0.1:9", "sasl.mechanisms": "PLAIN"},
                "aws_msk_iam": {"region": "us-east-1"}}),
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidConfig { .. }), "{e}");
    assert!(e.to_string().contains("OAUTHBEARER"), "{e}");
}

#[test]
fn tokens_expire_after_900_seconds_from_their_signing_second() {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_750);
    let t = sign_token("us-east-1", &credentials(None), at).unwrap();
    assert_eq!(t.expires_at_ms, 1_700_000_900_000);
}
