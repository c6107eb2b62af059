//! The librdkafka client context of every client the driver makes, and what those clients
//! share: with `aws_msk_iam` (feature `msk`), the contexts hand librdkafka MSK IAM tokens when
//! it asks for them.

use super::config::KafkaConfig;
use super::{client_config, kafka_err};
use crate::error::Result;
use rdkafka::client::{ClientContext, OAuthToken};
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::BaseConsumer;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a reported authentication failure counts as the state of the cluster's access
/// (librdkafka retries and reports again while it lasts).
const AUTH_FAILURE_VALIDITY: Duration = Duration::from_secs(15);

/// The last authentication failure librdkafka reported to any client of a driver.
#[derive(Default)]
pub(super) struct AuthFailures(Mutex<Option<(Instant, String)>>);

impl AuthFailures {
    /// Records `error` if it is an authentication failure (the others are logged as before).
    fn report(&self, error: &KafkaError, reason: &str) {
        if let KafkaError::Global(RDKafkaErrorCode::Authentication) = error {
            *self.0.lock().unwrap_or_else(|e| e.into_inner()) =
                Some((Instant::now(), reason.to_string()));
        }
    }

    /// The failure reported in the last few seconds, as an error.
    pub(super) fn current(&self) -> Option<crate::error::Error> {
        let last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match &*last {
            Some((at, reason)) if at.elapsed() < AUTH_FAILURE_VALIDITY => {
                Some(kafka_err("authentication with the cluster failed", reason))
            }
            _ => None,
        }
    }
}

#[cfg(feature = "msk")]
pub use super::msk::TokenSource;

/// Where MSK IAM tokens come from (nothing, in a build without feature `msk`).
#[cfg(not(feature = "msk"))]
#[derive(Debug)]
pub enum TokenSource {}

/// A token for librdkafka, or why there is none.
fn oauth_token(
    tokens: Option<&TokenSource>,
) -> std::result::Result<OAuthToken, Box<dyn std::error::Error>> {
    #[cfg(feature = "msk")]
    if let Some(source) = tokens {
        let token = source.token().map_err(|e| e.to_string())?;
        return Ok(OAuthToken {
            lifetime_ms: source.lifetime_ms(&token),
            token: token.token,
            principal_name: String::new(),
        });
    }
    let _ = tokens;
    Err(
        "this driver's OAUTHBEARER tokens come from \"aws_msk_iam\", which is not configured"
            .into(),
    )
}

/// The context of the driver's consumers and admin clients.
#[derive(Clone)]
pub(super) struct Ctx {
    tokens: Option<Arc<TokenSource>>,
    failures: Arc<AuthFailures>,
}

impl ClientContext for Ctx {
    const ENABLE_REFRESH_OAUTH_TOKEN: bool = cfg!(feature = "msk");

    fn error(&self, error: KafkaError, reason: &str) {
        self.failures.report(&error, reason);
        log::error!("librdkafka: {error}: {reason}");
    }

    fn generate_oauth_token(
        &self,
        _oauthbearer_config: Option<&str>,
    ) -> std::result::Result<OAuthToken, Box<dyn std::error::Error>> {
        oauth_token(self.tokens.as_deref())
    }
}

impl ConsumerContext for Ctx {}

impl rdkafka::producer::ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Clients whose librdkafka handle the driver reaches (to give them tokens).
pub(super) trait HasClient<C: ClientContext> {
    /// The client's librdkafka handle.
    fn native(&self) -> &rdkafka::client::Client<C>;
}

impl<C: ConsumerContext> HasClient<C> for rdkafka::consumer::BaseConsumer<C> {
    fn native(&self) -> &rdkafka::client::Client<C> {
        use rdkafka::consumer::Consumer as _;
        self.client()
    }
}

impl<C: rdkafka::producer::ProducerContext> HasClient<C> for rdkafka::producer::BaseProducer<C> {
    fn native(&self) -> &rdkafka::client::Client<C> {
        use rdkafka::producer::Producer as _;
        self.client()
    }
}

impl<C: rdkafka::producer::ProducerContext + 'static> HasClient<C>
    for rdkafka::producer::ThreadedProducer<C>
{
    fn native(&self) -> &rdkafka::client::Client<C> {
        use rdkafka::producer::Producer as _;
        self.client()
    }
}

impl<C: ClientContext> HasClient<C> for rdkafka::admin::AdminClient<C> {
    fn native(&self) -> &rdkafka::client::Client<C> {
        self.inner()
    }
}

/// What every librdkafka client of one driver is made from: the driver's settings and, with
/// `aws_msk_iam`, the source of its tokens.
#[derive(Clone)]
pub(super) struct Access {
    pub(super) settings: BTreeMap<String, String>,
    pub(super) tokens: Option<Arc<TokenSource>>,
    /// Authentication failures reported to the clients made from this access.
    pub(super) failures: Arc<AuthFailures>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("msk", &self.tokens.is_some())
            .finish_non_exhaustive()
    }
}

impl Access {
    /// The access `config` describes. With `aws_msk_iam`, credentials are looked up and a token
    /// signed now, so that missing credentials are reported before any connection.
    pub(super) fn new(config: &KafkaConfig) -> Result<Self> {
        #[cfg(feature = "msk")]
        let tokens = match &config.msk {
            None => None,
            Some(msk) => {
                let source = TokenSource::new(msk)?;
                source.token()?;
                Some(Arc::new(source))
            }
        };
        #[cfg(not(feature = "msk"))]
        let tokens = None;
        Ok(Access {
            settings: config.kafka.clone(),
            tokens,
            failures: Arc::default(),
        })
    }

    /// The context of a new client.
    pub(super) fn context(&self) -> Ctx {
        Ctx {
            tokens: self.tokens.clone(),
            failures: self.failures.clone(),
        }
    }

    /// A client (`what` names it in errors) with the driver's settings, then `extra`, then
    /// `overrides`; with `aws_msk_iam` it has a token at once (librdkafka would otherwise wait
    /// for the application to poll before its first connection).
    pub(super) fn create<T: FromClientConfigAndContext<Ctx> + HasClient<Ctx>>(
        &self,
        what: &str,
        extra: &[(&str, &str)],
        overrides: &BTreeMap<String, String>,
    ) -> Result<T> {
        self.create_with_context(what, extra, overrides, self.context())
    }

    /// A consumer (of group `group`, which never commits) for reading side topics from a
    /// position it assigns itself, told when it reaches the end of a partition.
    pub(super) fn side_topic_reader(&self, group: &str) -> Result<BaseConsumer<Ctx>> {
        self.create(
            "a Kafka consumer of side topics",
            &[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("enable.partition.eof", "true"),
                ("allow.auto.create.topics", "false"),
                // Side topics are tiny: do not let the broker hold empty fetches.
                ("fetch.wait.max.ms", "10"),
                ("fetch.error.backoff.ms", "10"),
            ],
            &BTreeMap::new(),
        )
    }

    /// [`Access::create`] with a context of the caller's, which must wrap [`Access::context`].
    pub(super) fn create_with_context<C, T>(
        &self,
        what: &str,
        extra: &[(&str, &str)],
        overrides: &BTreeMap<String, String>,
        context: C,
    ) -> Result<T>
    where
        C: ClientContext,
        T: FromClientConfigAndContext<C> + HasClient<C>,
    {
        let client: T = client_config(&self.settings, extra, overrides)
            .create_with_context(context)
            .map_err(|e| kafka_err(format!("cannot create {what}"), e))?;
        self.give_token(client.native())?;
        Ok(client)
    }

    /// Gives `client` a token now, for clients that never poll librdkafka's main queue for
    /// token requests (admin clients); nothing without `aws_msk_iam`. Returns when the token
    /// should be renewed (milliseconds since the Unix epoch).
    #[allow(unused_variables)]
    pub(super) fn give_token<C: ClientContext>(
        &self,
        client: &rdkafka::client::Client<C>,
    ) -> Result<Option<i64>> {
        #[cfg(feature = "msk")]
        if let Some(source) = &self.tokens {
            let token = source.token()?;
            let lifetime = source.lifetime_ms(&token);
            let value = std::ffi::CString::new(token.token)
                .map_err(|_| kafka_err("MSK IAM", "the token holds a NUL byte"))?;
            let principal = std::ffi::CString::default();
            let mut err = [0 as std::ffi::c_char; 512];
            // SAFETY: the client pointer is live for the call; the strings are NUL-terminated
            // and copied by librdkafka; no extensions are passed.
            let code = unsafe {
                rdkafka_sys::rd_kafka_oauthbearer_set_token(
                    client.native_ptr(),
                    value.as_ptr(),
                    lifetime,
                    principal.as_ptr(),
                    std::ptr::null_mut(),
                    0,
                    err.as_mut_ptr(),
                    err.len(),
                )
            };
            if code != rdkafka_sys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
                // SAFETY: librdkafka writes a NUL-terminated message into `err`.
                let message = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
                return Err(kafka_err(
                    "MSK IAM: librdkafka refused the token",
                    message.to_string_lossy(),
                ));
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            // Renew 80 % through its life, as librdkafka does.
            return Ok(Some(now + (lifetime - now) * 4 / 5));
        }
        Ok(None)
    }
}
