//! Decoding errors.

/// Why a message could not be decoded, where, and in which field.
///
/// `field` is a dotted path from the message down to the primitive being read when decoding
/// stopped (for example `metadata.handle.size` inside a send-batch request); `offset` is the byte
/// position in the decoded buffer where that primitive starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} at byte {offset}: {kind}")]
pub struct WireError {
    /// Dotted path of the field being decoded.
    pub field: String,
    /// Byte offset, in the decoded buffer, of the start of that field.
    pub offset: usize,
    /// What went wrong.
    pub kind: WireErrorKind,
}

/// The kinds of [`WireError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireErrorKind {
    /// The input ends before the field does.
    #[error("needs {needed} bytes but only {available} remain")]
    Truncated {
        /// Bytes the field needs (a decoded length can make this huge).
        needed: u64,
        /// Bytes left in the input.
        available: usize,
    },
    /// The bytes are there but do not form a valid value (a boolean that is not 0 or 1, text
    /// that is not UTF-8, inconsistent sizes, ...).
    #[error("{0}")]
    Invalid(String),
    /// The message ended before the input did.
    #[error("{0} unexpected bytes after the end of the message")]
    TrailingBytes(usize),
}

impl WireError {
    /// A [`WireErrorKind::Invalid`] error.
    pub fn invalid(field: impl Into<String>, offset: usize, reason: impl Into<String>) -> Self {
        WireError {
            field: field.into(),
            offset,
            kind: WireErrorKind::Invalid(reason.into()),
        }
    }
}
