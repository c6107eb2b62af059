//! The table of known RPCs, and messages of any of them.

use super::bedrock::*;
use super::codec::{Decoder, Encoder, WireMessage};
use super::error::WireError;
use super::margo::{
    read_request_header, read_response_header, write_request_header, write_response_header,
    Request, Response, HG_SUCCESS,
};
use super::mofka::*;
use super::yokan::*;
use super::WireVersion;
use crate::margo::{jenkins_hash, rpc_id};

macro_rules! rpc_table {
    ( $( $(#[$doc:meta])* $variant:ident = $name:literal, $req:ty, $resp:ty; )* ) => {
        /// An RPC this codec knows, by its registered name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Rpc {
            $( $(#[$doc])* $variant, )*
        }

        impl Rpc {
            /// Every known RPC.
            pub const ALL: &'static [Rpc] = &[ $( Rpc::$variant, )* ];

            /// The name the RPC is registered under.
            pub fn name(self) -> &'static str {
                match self {
                    $( Rpc::$variant => $name, )*
                }
            }
        }

        /// The arguments of a request of any known RPC.
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnyRequest {
            $( $(#[$doc])* $variant($req), )*
        }

        impl AnyRequest {
            /// The RPC these arguments belong to.
            pub fn rpc(&self) -> Rpc {
                match self {
                    $( AnyRequest::$variant(_) => Rpc::$variant, )*
                }
            }

            /// Appends the arguments' encoding.
            pub fn write(&self, enc: &mut Encoder<'_>) {
                match self {
                    $( AnyRequest::$variant(m) => m.write(enc), )*
                }
            }

            /// Reads the arguments of a request of `rpc`.
            pub fn read(rpc: Rpc, dec: &mut Decoder<'_>) -> Result<Self, WireError> {
                Ok(match rpc {
                    $( Rpc::$variant => AnyRequest::$variant(<$req>::read(dec)?), )*
                })
            }
        }

        /// The value of a response of any known RPC.
        #[derive(Clone, Debug, PartialEq)]
        pub enum AnyResponse {
            $( $(#[$doc])* $variant($resp), )*
        }

        impl AnyResponse {
            /// The RPC this value answers.
            pub fn rpc(&self) -> Rpc {
                match self {
                    $( AnyResponse::$variant(_) => Rpc::$variant, )*
                }
            }

            /// Appends the value's encoding.
            pub fn write(&self, enc: &mut Encoder<'_>) {
                match self {
                    $( AnyResponse::$variant(m) => m.write(enc), )*
                }
            }

            /// Reads the value of a response of `rpc`.
            pub fn read(rpc: Rpc, dec: &mut Decoder<'_>) -> Result<Self, WireError> {
                Ok(match rpc {
                    $( Rpc::$variant => AnyResponse::$variant(<$resp>::read(dec)?), )*
                })
            }
        }
    };
}

rpc_table! {
    /// `mofka_producer_send_batch` (producer → partition).
    SendBatch = "mofka_producer_send_batch", SendBatchRequest, SendBatchResponse;
    /// `mofka_consumer_request_events` (consumer → partition).
    RequestEvents = "mofka_consumer_request_events", RequestEventsRequest, RequestEventsResponse;
    /// `mofka_consumer_recv_batch` (partition → consumer, provider id 0).
    RecvBatch = "mofka_consumer_recv_batch", RecvBatchRequest, RecvBatchResponse;
    /// `mofka_consumer_request_data` (consumer → partition).
    RequestData = "mofka_consumer_request_data", RequestDataRequest, RequestDataResponse;
    /// `mofka_consumer_ack_event` (consumer → partition).
    AckEvent = "mofka_consumer_ack_event", AckEventRequest, AckEventResponse;
    /// `mofka_consumer_remove_consumer` (consumer → partition).
    RemoveConsumer = "mofka_consumer_remove_consumer", RemoveConsumerRequest, RemoveConsumerResponse;
    /// `bedrock_query_config` (client → Bedrock, provider id 0).
    QueryConfig = "bedrock_query_config", QueryConfigRequest, QueryConfigResponse;
    /// `bedrock_start_provider` (client → Bedrock, provider id 0).
    StartProvider = "bedrock_start_provider", StartProviderRequest, StartProviderResponse;
    /// `bedrock_lookup_provider` (Bedrock → Bedrock, provider id 0).
    LookupProvider = "bedrock_lookup_provider", LookupProviderRequest, LookupProviderResponse;
    /// Margo's `__identity__` (any client → any provider).
    Identity = "__identity__", IdentityRequest, IdentityResponse;
    /// `yk_put_direct`.
    PutDirect = "yk_put_direct", PutDirectRequest, YokanStatus;
    /// `yk_length_direct`.
    LengthDirect = "yk_length_direct", LengthDirectRequest, LengthDirectResponse;
    /// `yk_get_direct`.
    GetDirect = "yk_get_direct", GetDirectRequest, GetDirectResponse;
    /// `yk_coll_create`.
    CollCreate = "yk_coll_create", CollCreateRequest, YokanStatus;
    /// `yk_doc_store_direct`.
    DocStoreDirect = "yk_doc_store_direct", DocStoreDirectRequest, DocStoreResponse;
    /// `yk_doc_list_direct`.
    DocListDirect = "yk_doc_list_direct", DocListDirectRequest, DocListDirectResponse;
    /// `yk_list_keys_direct`.
    ListKeysDirect = "yk_list_keys_direct", ListKeysDirectRequest, ListKeysDirectResponse;
    /// `yk_get` (bulk variant).
    Get = "yk_get", GetRequest, YokanStatus;
    /// `yk_doc_store` (bulk variant).
    DocStore = "yk_doc_store", DocStoreRequest, DocStoreResponse;
    /// `yk_doc_list` (bulk variant).
    DocList = "yk_doc_list", DocListRequest, YokanStatus;
}

impl Rpc {
    /// The RPC registered under `name`, if this codec knows it.
    pub fn from_name(name: &str) -> Option<Rpc> {
        Rpc::ALL.iter().copied().find(|r| r.name() == name)
    }

    /// The Jenkins hash of the name (the high half of the RPC's ids).
    pub fn hash(self) -> u32 {
        jenkins_hash(self.name().as_bytes())
    }

    /// The Margo id of this RPC on provider `provider_id`.
    pub fn id(self, provider_id: u16) -> u64 {
        rpc_id(self.name(), provider_id)
    }

    /// The RPC whose ids have this hash in their high half, if this codec knows it.
    pub fn from_id(id: u64) -> Option<Rpc> {
        let hash = (id >> 32) as u32;
        Rpc::ALL.iter().copied().find(|r| r.hash() == hash)
    }
}

impl AnyRequest {
    /// Decodes exactly one request of `rpc` (arguments only, without the Margo header).
    pub fn decode_as(rpc: Rpc, input: &[u8], version: WireVersion) -> Result<Self, WireError> {
        let mut dec = Decoder::new(input, version);
        let m = AnyRequest::read(rpc, &mut dec)?;
        dec.finish()?;
        Ok(m)
    }

    /// Appends the arguments' encoding to `out` (without the Margo header).
    pub fn encode_as(&self, version: WireVersion, out: &mut Vec<u8>) {
        self.write(&mut Encoder::new(out, version));
    }
}

impl AnyResponse {
    /// Decodes exactly one response value of `rpc` (without the Margo header).
    pub fn decode_as(rpc: Rpc, input: &[u8], version: WireVersion) -> Result<Self, WireError> {
        let mut dec = Decoder::new(input, version);
        let m = AnyResponse::read(rpc, &mut dec)?;
        dec.finish()?;
        Ok(m)
    }

    /// Appends the value's encoding to `out` (without the Margo header).
    pub fn encode_as(&self, version: WireVersion, out: &mut Vec<u8>) {
        self.write(&mut Encoder::new(out, version));
    }
}

impl Request<AnyRequest> {
    /// Decodes the payload of a request for `rpc` (exactly one request, header included).
    pub fn decode_payload(
        rpc: Rpc,
        payload: &[u8],
        version: WireVersion,
    ) -> Result<Self, WireError> {
        let mut dec = Decoder::new(payload, version);
        let parent_rpc_id = read_request_header(&mut dec)?;
        let body = AnyRequest::read(rpc, &mut dec)?;
        dec.finish()?;
        Ok(Request {
            parent_rpc_id,
            body,
        })
    }

    /// Appends the payload (header and arguments) to `out`.
    pub fn encode_payload(&self, version: WireVersion, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out, version);
        write_request_header(&mut enc, self.parent_rpc_id);
        self.body.write(&mut enc);
    }
}

impl Response<AnyResponse> {
    /// Decodes the payload of a response for `rpc` (exactly one response, header included).
    pub fn decode_payload(
        rpc: Rpc,
        payload: &[u8],
        version: WireVersion,
    ) -> Result<Self, WireError> {
        let mut dec = Decoder::new(payload, version);
        let hg_ret = read_response_header(&mut dec)?;
        let body = if hg_ret == HG_SUCCESS {
            Some(AnyResponse::read(rpc, &mut dec)?)
        } else {
            None
        };
        dec.finish()?;
        Ok(Response { hg_ret, body })
    }

    /// Appends the payload (header and value) to `out`.
    pub fn encode_payload(&self, version: WireVersion, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out, version);
        if write_response_header(&mut enc, self.hg_ret) {
            if let Some(body) = &self.body {
                body.write(&mut enc);
            }
        }
    }
}
