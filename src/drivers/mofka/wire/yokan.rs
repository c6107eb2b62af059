//! The Yokan RPCs a Mofka client uses on the topic database (Yokan 0.10 layouts).
//!
//! Yokan defines its RPC arguments as Mercury C structs, encoded field by field in declaration
//! order: `int32_t` and `double` raw, `uint64_t` raw, `hg_bool_t` as one byte, byte buffers as a
//! `u64` size then the bytes, `u64` lists as a count then the values, strings as [`HgString`]
//! and bulk handles as [`BulkHandle`]. Return codes come *first* in some responses and *last*
//! in others; the structs below keep Yokan's order.
//!
//! The `*_direct` variants carry keys, values and documents inside the RPC; the others expose
//! them through a bulk handle. Mofka's C++ client uses both kinds (see each type).

use super::bulk::BulkHandle;
use super::codec::{Decoder, Encoder, HgString, WireMessage};
use super::error::WireError;

/// Bits of the Yokan `mode` argument that Mofka uses (from Yokan's `common.h`).
pub mod yokan_mode {
    /// No special behavior.
    pub const DEFAULT: i32 = 0;
    /// `put`: only add keys that do not exist yet (Mofka uses it to detect existing topics).
    pub const NEW_ONLY: i32 = 0x10;
    /// Use the variant of an operation that does not use RDMA for data.
    pub const NO_RDMA: i32 = 0x4000;
    /// The C call carried an extra variadic argument (the client sets it with a timeout; it is
    /// sent along but has no effect on the layout).
    pub const EXTRA: i32 = 0x1_0000;

    /// Size reported for a key that does not exist.
    pub const KEY_NOT_FOUND_SIZE: u64 = u64::MAX;
    /// Size reported when the receiving buffer is too small for a value.
    pub const SIZE_TOO_SMALL: u64 = u64::MAX - 1;
    /// Size that ends a listing of keys or documents.
    pub const NO_MORE: u64 = u64::MAX - 2;
}

macro_rules! put_field {
    ($enc:ident, i32, $v:expr) => {
        $enc.i32(*$v)
    };
    ($enc:ident, f64, $v:expr) => {
        $enc.f64(*$v)
    };
    ($enc:ident, u64, $v:expr) => {
        $enc.u64(*$v)
    };
    ($enc:ident, bool, $v:expr) => {
        $enc.bool(*$v)
    };
    ($enc:ident, bytes, $v:expr) => {
        $enc.bytes($v)
    };
    ($enc:ident, u64_list, $v:expr) => {
        $enc.u64_list($v)
    };
    ($enc:ident, put, $v:expr) => {
        $enc.put($v)
    };
}

macro_rules! get_field {
    ($dec:ident, put, $name:expr) => {
        $dec.get($name)
    };
    ($dec:ident, $kind:ident, $name:expr) => {
        $dec.$kind($name)
    };
}

/// Declares a Yokan argument struct and its field-by-field encoding. Each field names its
/// encoding: `i32`, `f64`, `u64`, `bool`, `bytes` (`u64` size + bytes), `u64_list` or `put`
/// (a nested [`WireMessage`]).
macro_rules! yokan_struct {
    (
        $(#[$meta:meta])*
        $name:ident { $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $kind:ident ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }

        impl WireMessage for $name {
            fn write(&self, enc: &mut Encoder<'_>) {
                $( put_field!(enc, $kind, &self.$field); )*
            }

            fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
                Ok($name {
                    $( $field: get_field!(dec, $kind, stringify!($field))?, )*
                })
            }
        }
    };
}

/// Margo's `__identity__` request, which Yokan's client sends once per provider to check the
/// provider's type. It has no arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentityRequest;

impl WireMessage for IdentityRequest {
    fn write(&self, _enc: &mut Encoder<'_>) {}
    fn read(_dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(IdentityRequest)
    }
}

yokan_struct! {
    /// Margo's `__identity__` response: the provider's type (`"yokan"`).
    IdentityResponse {
        /// The provider type.
        identity: HgString => put,
    }
}

yokan_struct! {
    /// A response holding only Yokan's return code (`put_direct`, `coll_create`, `get`,
    /// `doc_list`).
    YokanStatus {
        /// Yokan return code ([`YokanStatus::SUCCESS`], ...).
        ret: i32 => i32,
    }
}

impl YokanStatus {
    /// `YOKAN_SUCCESS`.
    pub const SUCCESS: i32 = 0;
    /// `YOKAN_ERR_KEY_NOT_FOUND`.
    pub const KEY_NOT_FOUND: i32 = 15;
    /// `YOKAN_ERR_KEY_EXISTS` (what creating an existing topic gets).
    pub const KEY_EXISTS: i32 = 17;
    /// `YOKAN_ERR_FROM_MERCURY`: the provider could not decode the request (among others).
    pub const FROM_MERCURY: i32 = 10;

    /// What Yokan's return code `ret` means, in Yokan's own terms (its `YOKAN_ERR_*` list).
    pub fn describe(ret: i32) -> &'static str {
        const NAMES: [&str; 36] = [
            "success",
            "allocation error",
            "invalid margo instance",
            "invalid argument",
            "invalid provider",
            "invalid database",
            "invalid backend type",
            "invalid configuration",
            "invalid document id",
            "invalid filter",
            "Mercury error",
            "Argobots error",
            "REMI error",
            "unsupported operation or mode",
            "forbidden operation",
            "key not found",
            "buffer too small",
            "key exists",
            "data corruption",
            "I/O error",
            "incomplete operation",
            "timeout",
            "operation aborted",
            "busy",
            "operation expired",
            "try again",
            "system error",
            "canceled",
            "permission error",
            "invalid mode",
            "non-contiguous buffer",
            "read-only buffer",
            "database has migrated",
            "margo instance not listening",
            "stop iteration",
            "other error",
        ];
        usize::try_from(ret)
            .ok()
            .and_then(|i| NAMES.get(i))
            .copied()
            .unwrap_or("unknown Yokan error")
    }
}

yokan_struct! {
    /// `yk_put_direct` arguments: store key/value pairs (Mofka writes a topic's validator,
    /// selector and serializer configurations this way). Response: [`YokanStatus`].
    PutDirectRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Size of each key.
        ksizes: Vec<u64> => u64_list,
        /// Size of each value.
        vsizes: Vec<u64> => u64_list,
        /// The keys, back to back.
        keys: Vec<u8> => bytes,
        /// The values, back to back.
        vals: Vec<u8> => bytes,
    }
}

yokan_struct! {
    /// `yk_length_direct` arguments: the sizes of the values of some keys.
    LengthDirectRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// The keys, back to back.
        keys: Vec<u8> => bytes,
        /// Size of each key.
        sizes: Vec<u64> => u64_list,
    }
}

yokan_struct! {
    /// `yk_length_direct` response.
    LengthDirectResponse {
        /// Size of each value ([`yokan_mode::KEY_NOT_FOUND_SIZE`] for a missing key).
        sizes: Vec<u64> => u64_list,
        /// Yokan return code.
        ret: i32 => i32,
    }
}

yokan_struct! {
    /// `yk_get_direct` arguments: read values into a buffer of `vbufsize` bytes.
    GetDirectRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Room for the values, in bytes.
        vbufsize: u64 => u64,
        /// Size of each key.
        ksizes: Vec<u64> => u64_list,
        /// The keys, back to back.
        keys: Vec<u8> => bytes,
    }
}

yokan_struct! {
    /// `yk_get_direct` response.
    GetDirectResponse {
        /// Size of each value (or a marker from [`yokan_mode`]).
        vsizes: Vec<u64> => u64_list,
        /// The values, back to back.
        vals: Vec<u8> => bytes,
        /// Yokan return code.
        ret: i32 => i32,
    }
}

yokan_struct! {
    /// `yk_coll_create` arguments: create a document collection (Mofka keeps a topic's
    /// partition list in one). Response: [`YokanStatus`].
    CollCreateRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Name of the collection.
        coll_name: HgString => put,
    }
}

yokan_struct! {
    /// `yk_doc_store_direct` arguments: append documents to a collection.
    DocStoreDirectRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Name of the collection.
        coll_name: HgString => put,
        /// Size of each document.
        sizes: Vec<u64> => u64_list,
        /// The documents, back to back.
        docs: Vec<u8> => bytes,
    }
}

yokan_struct! {
    /// `yk_doc_store` and `yk_doc_store_direct` response: the ids given to the documents.
    DocStoreResponse {
        /// Yokan return code.
        ret: i32 => i32,
        /// Id of each stored document.
        ids: Vec<u64> => u64_list,
    }
}

yokan_struct! {
    /// `yk_doc_list_direct` arguments: list up to `count` documents from id `from_id`.
    DocListDirectRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Maximum number of documents.
        count: u64 => u64,
        /// First document id.
        from_id: u64 => u64,
        /// Name of the collection.
        coll_name: HgString => put,
        /// Filter (empty for none).
        filter: Vec<u8> => bytes,
        /// Room for the documents, in bytes.
        bufsize: u64 => u64,
    }
}

yokan_struct! {
    /// `yk_doc_list_direct` response.
    DocListDirectResponse {
        /// Id of each document.
        ids: Vec<u64> => u64_list,
        /// Size of each document ([`yokan_mode::NO_MORE`] past the end).
        sizes: Vec<u64> => u64_list,
        /// The documents, back to back.
        docs: Vec<u8> => bytes,
        /// Yokan return code.
        ret: i32 => i32,
    }
}

yokan_struct! {
    /// `yk_list_keys_direct` arguments: list up to `count` keys after `from_key` (Mofka's
    /// topic listing uses the prefix filter `MOFKA:GLOBAL:`).
    ListKeysDirectRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Maximum number of keys.
        count: u64 => u64,
        /// Key to start after (empty for the first).
        from_key: Vec<u8> => bytes,
        /// Filter (a prefix by default).
        filter: Vec<u8> => bytes,
        /// Room for the keys, in bytes.
        keys_buf_size: u64 => u64,
    }
}

yokan_struct! {
    /// `yk_list_keys_direct` response.
    ListKeysDirectResponse {
        /// Yokan return code.
        ret: i32 => i32,
        /// Size of each key ([`yokan_mode::NO_MORE`] past the end).
        ksizes: Vec<u64> => u64_list,
        /// The keys, back to back.
        keys: Vec<u8> => bytes,
    }
}

yokan_struct! {
    /// `yk_get` arguments (bulk variant, used by Mofka's C++ client to read a topic's
    /// configuration): the server pulls `count` key sizes and value sizes and the keys from the
    /// bulk window, then pushes the values and their sizes back. Response: [`YokanStatus`].
    GetRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Number of keys.
        count: u64 => u64,
        /// Offset of the window in the bulk.
        offset: u64 => u64,
        /// Size of the window.
        size: u64 => u64,
        /// Address owning the bulk if not the sender (null for the sender).
        origin: HgString => put,
        /// Whether the values are packed back to back.
        packed: bool => bool,
        /// The bulk handle.
        bulk: BulkHandle => put,
    }
}

yokan_struct! {
    /// `yk_doc_store` arguments (bulk variant, used by Mofka's C++ client to add a partition
    /// to a topic). Response: [`DocStoreResponse`].
    DocStoreRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Name of the collection.
        coll_name: HgString => put,
        /// Number of documents.
        count: u64 => u64,
        /// Offset of the window in the bulk.
        offset: u64 => u64,
        /// Size of the window.
        size: u64 => u64,
        /// Address owning the bulk if not the sender (null for the sender).
        origin: HgString => put,
        /// The bulk handle (`[count × u64 sizes][documents]`).
        bulk: BulkHandle => put,
    }
}

yokan_struct! {
    /// `yk_doc_list` arguments (bulk variant, used by Mofka's C++ client to list a topic's
    /// partitions). Response: [`YokanStatus`].
    DocListRequest {
        /// Mode bits ([`yokan_mode`]).
        mode: i32 => i32,
        /// Timeout in milliseconds, 0 for none.
        timeout_ms: f64 => f64,
        /// Name of the collection.
        coll_name: HgString => put,
        /// Whether the documents are packed back to back.
        packed: bool => bool,
        /// Maximum number of documents.
        count: u64 => u64,
        /// First document id.
        from_id: u64 => u64,
        /// Size of the filter at the start of the window.
        filter_size: u64 => u64,
        /// Offset of the window in the bulk.
        offset: u64 => u64,
        /// Room for the documents, in bytes.
        docs_buf_size: u64 => u64,
        /// Address owning the bulk if not the sender (null for the sender).
        origin: HgString => put,
        /// The bulk handle.
        bulk: BulkHandle => put,
    }
}
