//! Amazon MSK with IAM access control (feature `msk`): AWS credentials and the tokens that
//! librdkafka presents with SASL/OAUTHBEARER.
//!
//! A token is the URL `https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect`
//! presigned with SigV4 (service `kafka-cluster`, valid 900 s, the credentials' session token
//! signed in), followed by a `User-Agent` parameter, encoded as base64url without padding: the
//! same bytes as AWS's own signer libraries, apart from the User-Agent. It expires 900 s after
//! its signing time; librdkafka asks for a new one before that.
//!
//! Credentials come from the standard AWS chain (environment, shared config and credentials
//! files with `profile` or `AWS_PROFILE`, web identity, ECS container, EC2 instance metadata with
//! short timeouts), or from assuming `role_arn` with those. Secrets and tokens never appear in
//! errors or logs.

use super::config::MskIamConfig;
use crate::error::{Error, Result};
use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_types::region::Region;
use base64::Engine as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a token is valid (what AWS's signers use).
pub const TOKEN_EXPIRY: Duration = Duration::from_secs(900);
/// The signing name of MSK's IAM access control.
const SIGNING_NAME: &str = "kafka-cluster";
/// How long finding credentials may take before the chain is given up.
const CREDENTIALS_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeouts of each instance-metadata request (there is none off EC2).
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);
/// What the chain tries, in order, for error messages.
const CHAIN: &str = "the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
    AWS_SESSION_TOKEN), the shared config and credentials files (AWS_CONFIG_FILE, \
    AWS_SHARED_CREDENTIALS_FILE, ~/.aws) with profile {profile}, a web identity token \
    (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), ECS container credentials \
    (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or _FULL_URI) and EC2 instance metadata";

fn msk_err(message: String) -> Error {
    Error::Driver {
        driver: "kafka",
        message: format!("MSK IAM: {message}"),
    }
}

/// A signed MSK IAM token.
#[derive(Clone)]
pub struct MskToken {
    /// The token (base64url of the presigned URL).
    pub token: String,
    /// When it expires, in milliseconds since the Unix epoch (signing time + 900 s).
    pub expires_at_ms: i64,
}

impl std::fmt::Debug for MskToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("MskToken")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

/// The User-Agent parameter of our tokens.
fn user_agent() -> String {
    format!("diaspora-stream-rs/{}", env!("CARGO_PKG_VERSION"))
}

/// Signs the MSK IAM token of `region` for `credentials` at instant `at`.
pub fn sign_token(region: &str, credentials: &Credentials, at: SystemTime) -> Result<MskToken> {
    use aws_sigv4::http_request::{
        sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    };
    use aws_sigv4::sign::v4;
    check_region(region)?;
    let mut url = url::Url::parse(&format!("https://kafka.{region}.amazonaws.com/"))
        .map_err(|e| msk_err(format!("region {region:?} makes no valid endpoint: {e}")))?;
    url.query_pairs_mut()
        .append_pair("Action", "kafka-cluster:Connect");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_EXPIRY);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| msk_err(format!("cannot build the signing parameters: {e}")))?;
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::empty(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| msk_err(format!("cannot sign the request: {e}")))?;
    let (instructions, _) = sign(request, &params.into())
        .map_err(|e| msk_err(format!("cannot sign the request: {e}")))?
        .into_parts();
    {
        // AWS's signers put the signature last, after the session token.
        let mut query = url.query_pairs_mut();
        let (signature, others): (Vec<_>, Vec<_>) = instructions
            .params()
            .iter()
            .partition(|(name, _)| *name == "X-Amz-Signature");
        for (name, value) in others.into_iter().chain(signature) {
            query.append_pair(name, value);
        }
        query.append_pair("User-Agent", &user_agent());
    }
    // The signing time, to the second (X-Amz-Date), plus the validity.
    let signed_at = at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| msk_err("the clock is before 1970".into()))?
        .as_secs() as i64;
    Ok(MskToken {
        token: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url.as_str()),
        expires_at_ms: (signed_at + TOKEN_EXPIRY.as_secs() as i64) * 1000,
    })
}

fn check_region(region: &str) -> Result<()> {
    let ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(msk_err(format!(
            "region {region:?} is not an AWS region name (such as \"us-east-1\")"
        )))
    }
}

/// Finds credentials and signs tokens for one driver (shared by all its clients).
pub struct TokenSource {
    config: MskIamConfig,
    runtime: tokio::runtime::Runtime,
    provider: SharedCredentialsProvider,
    /// The last token and when it was made, and temporary credentials with their expiry
    /// (one request at a time: librdkafka clients ask on their own threads).
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    token: Option<(std::time::Instant, MskToken)>,
    credentials: Option<(SystemTime, Credentials)>,
}

/// A token signed this recently is handed out again (clients made together ask together).
const TOKEN_REUSE: Duration = Duration::from_secs(30);
/// Temporary credentials are fetched again this long before they expire.
const CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// Sets up the credential chain for `config` (nothing is fetched yet).
    pub fn new(config: &MskIamConfig) -> Result<Self> {
        check_region(&config.region)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| msk_err(format!("cannot start the AWS client runtime: {e}")))?;
        let region = Region::new(config.region.clone());
        let provider = runtime.block_on(async {
            let imds = aws_config::imds::Client::builder()
                .connect_timeout(IMDS_TIMEOUT)
                .read_timeout(IMDS_TIMEOUT)
                .max_attempts(1)
                .build();
            let mut chain = DefaultCredentialsChain::builder()
                .region(region.clone())
                .imds_client(imds);
            if let Some(p) = &config.profile {
                chain = chain.profile_name(p);
            }
            let chain = chain.build().await;
            match &config.role_arn {
                None => SharedCredentialsProvider::new(chain),
                Some(arn) => {
                    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                        .region(region.clone())
                        .load()
                        .await;
                    let role = AssumeRoleProvider::builder(arn.clone())
                        .configure(&sdk)
                        .region(region)
                        .session_name(
                            config
                                .session_name
                                .clone()
                                .unwrap_or_else(|| "MSKSASLDefaultSession".to_string()),
                        )
                        .build_from_provider(chain)
                        .await;
                    SharedCredentialsProvider::new(role)
                }
            }
        });
        Ok(TokenSource {
            config: config.clone(),
            runtime,
            provider,
            cache: Mutex::default(),
        })
    }

    /// The region tokens are signed for.
    pub fn region(&self) -> &str {
        &self.config.region
    }

    /// Credentials from the chain, within 10 s; the error names what was
    /// tried.
    pub fn credentials(&self) -> Result<Credentials> {
        let tried = || {
            let profile = match &self.config.profile {
                Some(p) => format!("{p:?}"),
                None => match std::env::var("AWS_PROFILE") {
                    Ok(p) if !p.is_empty() => format!("{p:?} (AWS_PROFILE)"),
                    _ => "\"default\"".to_string(),
                },
            };
            let chain = CHAIN.replace("{profile}", &profile);
            match &self.config.role_arn {
                Some(arn) => format!("assuming role {arn} with credentials from {chain}"),
                None => chain,
            }
        };
        let found = self.runtime.block_on(async {
            tokio::time::timeout(CREDENTIALS_TIMEOUT, self.provider.provide_credentials()).await
        });
        match found {
            Ok(Ok(c)) if !c.access_key_id().is_empty() && !c.secret_access_key().is_empty() => {
                Ok(c)
            }
            Ok(Ok(_)) => Err(msk_err(format!(
                "the credentials found have an empty key (tried {})",
                tried()
            ))),
            Ok(Err(e)) => Err(msk_err(format!(
                "no AWS credentials: {} (tried {})",
                error_chain(&e),
                tried()
            ))),
            Err(_) => Err(msk_err(format!(
                "no AWS credentials within {} s (tried {})",
                CREDENTIALS_TIMEOUT.as_secs(),
                tried()
            ))),
        }
    }

    /// A token signed now, or in the last seconds (at most 30 s, and a quarter of
    /// `token_lifetime_s`). Temporary credentials (assumed roles, web identity, instance
    /// metadata) are reused until five minutes before they expire; others are looked up again.
    pub fn token(&self) -> Result<MskToken> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let reuse = match self.config.token_lifetime_s {
            Some(s) => TOKEN_REUSE.min(Duration::from_millis(s * 250)),
            None => TOKEN_REUSE,
        };
        if let Some((at, token)) = &cache.token {
            if at.elapsed() < reuse {
                return Ok(token.clone());
            }
        }
        let now = SystemTime::now();
        let credentials = match &cache.credentials {
            Some((until, c)) if now < *until => c.clone(),
            _ => {
                let c = self.credentials()?;
                cache.credentials = c
                    .expiry()
                    .and_then(|e| e.checked_sub(CREDENTIALS_MARGIN))
                    .map(|until| (until, c.clone()));
                c
            }
        };
        let token = sign_token(&self.config.region, &credentials, now)?;
        cache.token = Some((std::time::Instant::now(), token.clone()));
        Ok(token)
    }

    /// When librdkafka should consider `token` expired: its expiry, or earlier when the
    /// configuration asks for a shorter `token_lifetime_s`.
    pub fn lifetime_ms(&self, token: &MskToken) -> i64 {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        match self.config.token_lifetime_s {
            Some(s) => token.expires_at_ms.min(now_ms + s as i64 * 1000),
            None => token.expires_at_ms,
        }
    }
}

/// An error and its sources, on one line (AWS errors keep their detail in the sources).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_string),
            None,
            "test",
        )
    }

    fn decode(token: &str) -> String {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .unwrap();
        String::from_utf8(bytes).unwrap()
    }

    /// 2026-12-06T01:02:03Z.
    fn instant() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_796_518_923)
    }

    #[test]
    fn tokens_are_byte_for_byte_those_of_aws_python_signer_but_the_user_agent() {
        // Made by aws-msk-iam-sasl-signer-python 1.0.2 (botocore's SigV4QueryAuth) for the same
        // credentials, region and instant; tests/msk.rs compares with the live library too.
        let expected = [
            (
                None,
                "0c8ab5bf76dbb75c11522642d1092236e36b89eadb7ab18e83b07e869aaf208d",
                "",
            ),
            (
                Some("SESSION/TOKEN+x=="),
                "d771fe96ea9965c514254a9502774a96cc612d28979758d1100d789e661886ec",
                "&X-Amz-Security-Token=SESSION%2FTOKEN%2Bx%3D%3D",
            ),
        ];
        for (session, signature, token_param) in expected {
            let t = sign_token("us-east-1", &creds(session), instant()).unwrap();
            assert_eq!(
                decode(&t.token),
                format!(
                    "https://kafka.us-east-1.amazonaws.com/?Action=kafka-cluster%3AConnect\
                     &X-Amz-Algorithm=AWS4-HMAC-SHA256\
                     &X-Amz-Credential=AKIDEXAMPLE%2F20261206%2Fus-east-1%2Fkafka-cluster%2Faws4_request\
                     &X-Amz-Date=20261206T010203Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
                     {token_param}&X-Amz-Signature={signature}\
                     &User-Agent=diaspora-stream-rs%2F{}",
                    env!("CARGO_PKG_VERSION")
                )
            );
            assert_eq!(t.expires_at_ms, (1_796_518_923 + 900) * 1000);
            assert!(!t.token.contains('='), "no padding");
            assert!(
                !format!("{t:?}").contains(&t.token),
                "Debug hides the token"
            );
        }
    }

    #[test]
    fn bad_regions_are_refused_before_signing() {
        for bad in ["", "US-EAST-1", "us east 1", "x/../y"] {
            let e = sign_token(bad, &creds(None), instant()).unwrap_err();
            assert!(e.to_string().contains("region"), "{e}");
        }
    }
}
