//! The Bedrock RPCs a Mofka client uses (provider id 0 of each Bedrock server).

use super::codec::{Decoder, Encoder, WireMessage};
use super::error::WireError;
use super::result::RequestResult;

/// `bedrock_query_config` arguments: a Jx9 script that the server runs against its
/// configuration (the client finds the Mofka master database this way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryConfigRequest {
    /// The script's text.
    pub script: String,
}

impl WireMessage for QueryConfigRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.string(&self.script);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(QueryConfigRequest {
            script: dec.string("script")?,
        })
    }
}

/// `bedrock_query_config` response, Bedrock's `RequestResult<std::string>`: the success flag and
/// one string, which is the script's JSON result on success and the error message otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryConfigResponse {
    /// Whether the script ran.
    pub success: bool,
    /// The result (JSON text) or the error message.
    pub content: String,
}

impl WireMessage for QueryConfigResponse {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.bool(self.success);
        enc.string(&self.content);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(QueryConfigResponse {
            success: dec.bool("success")?,
            content: dec.string("content")?,
        })
    }
}

/// `bedrock_start_provider` arguments: the JSON description of a provider to create (name,
/// type, config, tags, dependencies). Mofka creates each partition this way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StartProviderRequest {
    /// The provider description, as JSON text.
    pub description: String,
}

impl WireMessage for StartProviderRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.string(&self.description);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(StartProviderRequest {
            description: dec.string("description")?,
        })
    }
}

/// `bedrock_start_provider` response: the new provider's id.
pub type StartProviderResponse = RequestResult<u16>;

/// `bedrock_lookup_provider` arguments (Bedrock servers send it to each other, or to
/// themselves, to resolve a dependency such as `"yokan:2"`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LookupProviderRequest {
    /// What to look for: `"<type>:<provider id>"` or a provider name.
    pub spec: String,
    /// How long to wait for the provider to appear, in seconds.
    pub timeout: f64,
}

impl WireMessage for LookupProviderRequest {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.string(&self.spec);
        enc.f64(self.timeout);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(LookupProviderRequest {
            spec: dec.string("spec")?,
            timeout: dec.f64("timeout")?,
        })
    }
}

/// Bedrock's description of a provider, as `bedrock_lookup_provider` returns it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderDescriptor {
    /// The provider's name.
    pub name: String,
    /// Its module type (the lookup leaves it empty).
    pub type_name: String,
    /// Its provider id.
    pub provider_id: u16,
}

impl WireMessage for ProviderDescriptor {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.string(&self.name);
        enc.string(&self.type_name);
        enc.u16(self.provider_id);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(ProviderDescriptor {
            name: dec.string("name")?,
            type_name: dec.string("type")?,
            provider_id: dec.u16("provider_id")?,
        })
    }
}

/// `bedrock_lookup_provider` response.
pub type LookupProviderResponse = RequestResult<ProviderDescriptor>;
