//! The two result wrappers RPC responses use: Mofka's and Bedrock's.

use super::codec::{Decoder, Encoder, WireMessage};
use super::error::WireError;

/// Mofka's `Result<T>`: a success byte, then the value on success or an error message on
/// failure. `MofkaResult<()>` is Mofka's `Result<void>` (a lone success byte when it succeeded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MofkaResult<T> {
    /// The call succeeded and produced this value.
    Ok(T),
    /// The call failed with this message.
    Err(String),
}

impl<T> MofkaResult<T> {
    /// Whether this is [`MofkaResult::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, MofkaResult::Ok(_))
    }

    /// Converts to a standard `Result`.
    pub fn into_result(self) -> Result<T, String> {
        match self {
            MofkaResult::Ok(v) => Ok(v),
            MofkaResult::Err(e) => Err(e),
        }
    }
}

impl<T> From<Result<T, String>> for MofkaResult<T> {
    fn from(r: Result<T, String>) -> Self {
        match r {
            Ok(v) => MofkaResult::Ok(v),
            Err(e) => MofkaResult::Err(e),
        }
    }
}

impl<T: WireMessage> WireMessage for MofkaResult<T> {
    fn write(&self, enc: &mut Encoder<'_>) {
        match self {
            MofkaResult::Ok(v) => {
                enc.bool(true);
                v.write(enc);
            }
            MofkaResult::Err(e) => {
                enc.bool(false);
                enc.string(e);
            }
        }
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        if dec.bool("success")? {
            Ok(MofkaResult::Ok(dec.get("value")?))
        } else {
            Ok(MofkaResult::Err(dec.string("error")?))
        }
    }
}

/// Bedrock's `RequestResult<T>`: the success flag, the error message (empty on success) and the
/// value (default-constructed on failure) are always all present.
///
/// Bedrock specializes `RequestResult<std::string>` differently: see
/// [`QueryConfigResponse`](super::QueryConfigResponse).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestResult<T> {
    /// Whether the request succeeded.
    pub success: bool,
    /// The error message, empty on success.
    pub error: String,
    /// The value (meaningful on success).
    pub value: T,
}

impl<T> RequestResult<T> {
    /// A successful result.
    pub fn ok(value: T) -> Self {
        RequestResult {
            success: true,
            error: String::new(),
            value,
        }
    }
}

impl<T: WireMessage> WireMessage for RequestResult<T> {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.bool(self.success);
        enc.string(&self.error);
        self.value.write(enc);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(RequestResult {
            success: dec.bool("success")?,
            error: dec.string("error")?,
            value: dec.get("value")?,
        })
    }
}
