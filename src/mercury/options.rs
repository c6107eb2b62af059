//! How an [`Engine`](super::Engine) starts: [`EngineOptions`], with Mercury's initialisation
//! settings ([`TransportOptions`], also read from a Margo configuration).

use crate::error::{Error, Result};
use crate::thread_pool::ThreadPool;
use std::sync::Arc;
use std::time::Duration;

/// Options of an [`Engine`](super::Engine).
#[derive(Clone)]
pub struct EngineOptions {
    /// Whether the engine accepts connections (servers and clients that receive RPCs, such as
    /// Mofka consumers, listen).
    pub listen: bool,
    /// Where request handlers run; `None` (or a pool without threads, which would run them on
    /// the progress thread): a pool of `handler_threads` OS threads owned by the engine.
    pub handler_pool: Option<Arc<dyn ThreadPool>>,
    /// Number of threads of the engine's own handler pool.
    pub handler_threads: usize,
    /// Longest time the progress thread blocks waiting for Mercury in one go (it also wakes
    /// when a waiter takes progress over, or when the engine shuts down).
    pub progress_timeout: Duration,
    /// How long shutdown waits for cancelled operations to complete.
    pub shutdown_timeout: Duration,
    /// After the last completion, how long the thread that progresses keeps polling without
    /// blocking before it sleeps again (Margo's "progress spindown"). Polling
    /// saves the wake-up latency of back-to-back RPCs at the price of CPU time; zero never
    /// polls.
    pub progress_spindown: Duration,
    /// Mercury's initialisation settings (all defaults: plain `HG_Init`).
    pub transport: TransportOptions,
}

/// Mercury initialisation settings, as named in the `"mercury"` section of a Margo
/// configuration (see [`TransportOptions::from_margo`]). `None` and `false` leave Mercury's
/// default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportOptions {
    /// Authorisation key of the network (`auth_key`; e.g. a Slingshot VNI for `ofi+cxi`).
    /// Unset on `cxi`, Margo's default applies: `"0:0:1"` (the job's VNI) when
    /// `SLINGSHOT_VNIS` lists several VNIs.
    pub auth_key: Option<String>,
    /// Subnet to pick the interface from (`ip_subnet`).
    pub ip_subnet: Option<String>,
    /// Busy-spin instead of blocking in progress (`na_no_block`).
    pub na_no_block: bool,
    /// Do not retry operations that would block (`na_no_retry`).
    pub na_no_retry: bool,
    /// Number of NA contexts (`max_contexts`).
    pub max_contexts: Option<u8>,
    /// Receive buffers posted at start (`request_post_init`).
    pub request_post_init: Option<u32>,
    /// Receive buffers added when they run out (`request_post_incr`).
    pub request_post_incr: Option<i32>,
    /// Use shared memory for peers on the same node (`auto_sm`).
    pub auto_sm: bool,
    /// Never send bulk data eagerly with the RPC (`no_bulk_eager`).
    pub no_bulk_eager: bool,
    /// No loopback RPCs to self (`no_loopback`).
    pub no_loopback: bool,
    /// Collect Mercury statistics (`stats`).
    pub stats: bool,
    /// Largest unexpected message (`na_max_unexpected_size`).
    pub max_unexpected_size: Option<usize>,
    /// Largest expected message (`na_max_expected_size`).
    pub max_expected_size: Option<usize>,
    /// Shared-memory prefix for `auto_sm` (`sm_info_string`).
    pub sm_info_string: Option<String>,
    /// Checksums of RPC headers or payloads (`checksum_level`: `"none"`, `"rpc_headers"`,
    /// `"rpc_payload"`; needs a Mercury built with checksums).
    pub checksum_level: Option<String>,
    /// Address format (`na_addr_format`: `"unspec"`, `"ipv4"`, `"ipv6"`, `"native"`).
    pub na_addr_format: Option<String>,
    /// Memory of requests allocated on the device (`na_request_mem_device`).
    pub na_request_mem_device: bool,
}

impl TransportOptions {
    /// Reads the `"mercury"` section of a Margo JSON configuration (`margo` is the whole
    /// configuration, as the C++ drivers take it): the keys named by this struct's fields. A
    /// key of the wrong type or value is an error naming it. Margo's own keys (`address`,
    /// `listening`, `version`, `input_eager_size`, `output_eager_size`, `log_level`, ...) and
    /// the other sections (threads, Argobots pools) do not apply to this engine, which runs
    /// its own progress thread, and are ignored.
    pub fn from_margo(margo: &serde_json::Value) -> Result<TransportOptions> {
        use serde_json::Value;
        let mut t = TransportOptions::default();
        let Some(hg) = margo.get("mercury") else {
            return Ok(t);
        };
        let hg = hg
            .as_object()
            .ok_or_else(|| Error::config("margo", "\"mercury\" must be an object".to_string()))?;
        let bad = |key: &str, what: &str, v: &Value| {
            Error::config(
                "margo",
                format!("\"mercury\".\"{key}\" must be {what}, not {v}"),
            )
        };
        for (key, v) in hg {
            let string = || {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(key, "a string", v))
            };
            let boolean = || v.as_bool().ok_or_else(|| bad(key, "true or false", v));
            let uint = || {
                v.as_u64()
                    .ok_or_else(|| bad(key, "a non-negative integer", v))
            };
            match key.as_str() {
                "auth_key" => t.auth_key = Some(string()?),
                "ip_subnet" => t.ip_subnet = Some(string()?),
                "sm_info_string" => t.sm_info_string = Some(string()?),
                "na_no_block" => t.na_no_block = boolean()?,
                "na_no_retry" => t.na_no_retry = boolean()?,
                "auto_sm" => t.auto_sm = boolean()?,
                "no_bulk_eager" => t.no_bulk_eager = boolean()?,
                "no_loopback" => t.no_loopback = boolean()?,
                "stats" => t.stats = boolean()?,
                "max_contexts" => {
                    t.max_contexts =
                        Some(u8::try_from(uint()?).map_err(|_| bad(key, "at most 255", v))?)
                }
                "request_post_init" => {
                    t.request_post_init =
                        Some(u32::try_from(uint()?).map_err(|_| bad(key, "a 32-bit integer", v))?)
                }
                "request_post_incr" => {
                    let n = v.as_i64().ok_or_else(|| bad(key, "an integer", v))?;
                    t.request_post_incr =
                        Some(i32::try_from(n).map_err(|_| bad(key, "a 32-bit integer", v))?)
                }
                "na_max_unexpected_size" => t.max_unexpected_size = Some(uint()? as usize),
                "na_max_expected_size" => t.max_expected_size = Some(uint()? as usize),
                "na_request_mem_device" => t.na_request_mem_device = boolean()?,
                "checksum_level" => {
                    let v = string()?;
                    if !["none", "rpc_headers", "rpc_payload"].contains(&v.as_str()) {
                        return Err(bad(
                            key,
                            "none, rpc_headers or rpc_payload",
                            &Value::from(v),
                        ));
                    }
                    t.checksum_level = Some(v);
                }
                "na_addr_format" => {
                    let v = string()?;
                    if !["unspec", "ipv4", "ipv6", "native"].contains(&v.as_str()) {
                        return Err(bad(key, "unspec, ipv4, ipv6 or native", &Value::from(v)));
                    }
                    t.na_addr_format = Some(v);
                }
                // Margo settings of its own engine, or fixed by the address given.
                _ => {}
            }
        }
        Ok(t)
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            listen: false,
            handler_pool: None,
            handler_threads: 2,
            progress_timeout: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(5),
            progress_spindown: default_spindown(),
            transport: TransportOptions::default(),
        }
    }
}

/// The default [`EngineOptions::progress_spindown`]: `DIASPORA_MERCURY_SPINDOWN_US`
/// microseconds when set, else [`DEFAULT_SPINDOWN`].
fn default_spindown() -> Duration {
    std::env::var("DIASPORA_MERCURY_SPINDOWN_US")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_micros)
        .unwrap_or(DEFAULT_SPINDOWN)
}

/// Default polling time of the progress thread after a completion.
pub const DEFAULT_SPINDOWN: Duration = Duration::from_micros(100);

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("listen", &self.listen)
            .field("handler_pool", &self.handler_pool.is_some())
            .field("handler_threads", &self.handler_threads)
            .field("progress_timeout", &self.progress_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("progress_spindown", &self.progress_spindown)
            .finish()
    }
}
