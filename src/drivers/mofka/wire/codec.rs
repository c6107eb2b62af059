//! The primitive encoder and decoder, and the [`WireMessage`] trait.

use super::error::{WireError, WireErrorKind};
use super::WireVersion;

/// A value with a wire encoding: every message, and the building blocks messages are made of.
///
/// Implementors provide [`write`](WireMessage::write) and [`read`](WireMessage::read), which work
/// on a shared [`Encoder`] / [`Decoder`] so that values nest; the provided methods encode or
/// decode a whole buffer.
pub trait WireMessage: Sized {
    /// Appends this value's encoding.
    fn write(&self, enc: &mut Encoder<'_>);

    /// Reads one value at the decoder's position.
    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError>;

    /// Appends the encoding of this value to `out`, with the current wire version.
    fn encode(&self, out: &mut Vec<u8>) {
        self.encode_as(WireVersion::CURRENT, out);
    }

    /// Appends the encoding of this value to `out`, with the layouts of `version`.
    fn encode_as(&self, version: WireVersion, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out, version);
        self.write(&mut enc);
    }

    /// The encoding of this value in a new buffer, with the current wire version.
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes a buffer holding exactly one value, with the current wire version.
    fn decode(input: &[u8]) -> Result<Self, WireError> {
        Self::decode_as(input, WireVersion::CURRENT)
    }

    /// Decodes a buffer holding exactly one value, with the layouts of `version`. Bytes left
    /// over after the value are an error.
    fn decode_as(input: &[u8], version: WireVersion) -> Result<Self, WireError> {
        let mut dec = Decoder::new(input, version);
        let value = Self::read(&mut dec)?;
        dec.finish()?;
        Ok(value)
    }
}

/// Appends primitives to a byte buffer, in the layout Thallium and Mercury use (little-endian,
/// unaligned, sizes as `u64`).
pub struct Encoder<'a> {
    out: &'a mut Vec<u8>,
    version: WireVersion,
}

impl<'a> Encoder<'a> {
    /// An encoder appending to `out`, using the message layouts of `version`.
    pub fn new(out: &'a mut Vec<u8>, version: WireVersion) -> Self {
        Encoder { out, version }
    }

    /// The wire version messages should be written in.
    pub fn version(&self) -> WireVersion {
        self.version
    }

    /// Number of bytes in the underlying buffer.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    /// Whether the underlying buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// Writes one byte.
    pub fn u8(&mut self, v: u8) {
        self.out.push(v);
    }

    /// Writes a `u16`.
    pub fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Writes a `u32`.
    pub fn u32(&mut self, v: u32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Writes a `u64` (also `size_t`, and the `intptr_t` of consumer contexts).
    pub fn u64(&mut self, v: u64) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Writes an `i32` (Mercury and Yokan return codes, Yokan modes).
    pub fn i32(&mut self, v: i32) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    /// Writes an `f64` bit for bit.
    pub fn f64(&mut self, v: f64) {
        self.out.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    /// Writes a boolean as one byte, 0 or 1.
    pub fn bool(&mut self, v: bool) {
        self.out.push(u8::from(v));
    }

    /// Writes bytes as they are, without a length.
    pub fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes a `u64` length then the bytes (a Thallium string, a Yokan `raw_data`).
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.raw(bytes);
    }

    /// Writes a string as a `u64` length then its UTF-8 bytes, without a NUL.
    pub fn string(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// Writes a `u64` count then the values (a Thallium `std::vector<uint64_t>`, a Yokan
    /// `uint64_list`).
    pub fn u64_list(&mut self, values: &[u64]) {
        self.u64(values.len() as u64);
        for v in values {
            self.u64(*v);
        }
    }

    /// Writes any [`WireMessage`].
    pub fn put<T: WireMessage>(&mut self, value: &T) {
        value.write(self);
    }
}

/// Reads primitives from a byte buffer, keeping track of the position and of the path of the
/// field being read, for error messages.
///
/// Every read names its field; reads of nested values go through [`Decoder::field`] (or
/// [`Decoder::get`]) so that errors carry the full dotted path. A read never panics and never
/// allocates more than the input could hold.
pub struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    version: WireVersion,
    path: Vec<&'static str>,
}

impl<'a> Decoder<'a> {
    /// A decoder over `input`, starting at byte 0.
    pub fn new(input: &'a [u8], version: WireVersion) -> Self {
        Decoder {
            input,
            pos: 0,
            version,
            path: Vec::new(),
        }
    }

    /// The wire version messages are read in.
    pub fn version(&self) -> WireVersion {
        self.version
    }

    /// Current byte offset in the input.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Bytes left after the current position.
    pub fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    /// The bytes after the current position, without consuming them.
    pub fn rest(&self) -> &'a [u8] {
        &self.input[self.pos..]
    }

    /// Checks that the whole input was consumed.
    pub fn finish(self) -> Result<(), WireError> {
        let left = self.remaining();
        if left == 0 {
            Ok(())
        } else {
            Err(WireError {
                field: "(end of message)".into(),
                offset: self.pos,
                kind: WireErrorKind::TrailingBytes(left),
            })
        }
    }

    /// Runs `f` with `name` appended to the field path.
    pub fn field<T>(
        &mut self,
        name: &'static str,
        f: impl FnOnce(&mut Self) -> Result<T, WireError>,
    ) -> Result<T, WireError> {
        self.path.push(name);
        let r = f(self);
        self.path.pop();
        r
    }

    /// Reads a nested [`WireMessage`] named `name`.
    pub fn get<T: WireMessage>(&mut self, name: &'static str) -> Result<T, WireError> {
        self.field(name, T::read)
    }

    /// The dotted path of the current field plus `name` (which may be empty).
    pub fn path_of(&self, name: &str) -> String {
        let mut parts: Vec<&str> = self
            .path
            .iter()
            .copied()
            .filter(|p| !p.is_empty())
            .collect();
        if !name.is_empty() {
            parts.push(name);
        }
        if parts.is_empty() {
            "(message)".to_string()
        } else {
            parts.join(".")
        }
    }

    /// An [`WireErrorKind::Invalid`] error for field `name` starting at `offset`.
    pub fn invalid(&self, name: &str, offset: usize, reason: impl Into<String>) -> WireError {
        WireError::invalid(self.path_of(name), offset, reason)
    }

    /// Takes the next `n` bytes as they are.
    pub fn raw(&mut self, n: u64, name: &str) -> Result<&'a [u8], WireError> {
        let available = self.remaining();
        match usize::try_from(n) {
            Ok(k) if k <= available => {
                let s = &self.input[self.pos..self.pos + k];
                self.pos += k;
                Ok(s)
            }
            _ => Err(WireError {
                field: self.path_of(name),
                offset: self.pos,
                kind: WireErrorKind::Truncated {
                    needed: n,
                    available,
                },
            }),
        }
    }

    fn array<const N: usize>(&mut self, name: &str) -> Result<[u8; N], WireError> {
        let s = self.raw(N as u64, name)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// Reads one byte.
    pub fn u8(&mut self, name: &str) -> Result<u8, WireError> {
        Ok(self.array::<1>(name)?[0])
    }

    /// Reads a `u16`.
    pub fn u16(&mut self, name: &str) -> Result<u16, WireError> {
        Ok(u16::from_le_bytes(self.array(name)?))
    }

    /// Reads a `u32`.
    pub fn u32(&mut self, name: &str) -> Result<u32, WireError> {
        Ok(u32::from_le_bytes(self.array(name)?))
    }

    /// Reads a `u64`.
    pub fn u64(&mut self, name: &str) -> Result<u64, WireError> {
        Ok(u64::from_le_bytes(self.array(name)?))
    }

    /// Reads an `i32`.
    pub fn i32(&mut self, name: &str) -> Result<i32, WireError> {
        Ok(i32::from_le_bytes(self.array(name)?))
    }

    /// Reads an `f64`.
    pub fn f64(&mut self, name: &str) -> Result<f64, WireError> {
        Ok(f64::from_bits(u64::from_le_bytes(self.array(name)?)))
    }

    /// Reads a boolean byte; anything but 0 or 1 is an error (it would not re-encode the same).
    pub fn bool(&mut self, name: &str) -> Result<bool, WireError> {
        let at = self.pos;
        match self.u8(name)? {
            0 => Ok(false),
            1 => Ok(true),
            b => Err(self.invalid(name, at, format!("boolean byte is {b:#04x}, not 0 or 1"))),
        }
    }

    /// Reads a `u64` length then that many bytes.
    pub fn bytes(&mut self, name: &str) -> Result<Vec<u8>, WireError> {
        Ok(self.bytes_ref(name)?.to_vec())
    }

    /// Like [`Decoder::bytes`], borrowing from the input.
    pub fn bytes_ref(&mut self, name: &str) -> Result<&'a [u8], WireError> {
        let len = self.u64(&suffixed(name, "len"))?;
        self.raw(len, name)
    }

    /// Reads a `u64` length then that many bytes of UTF-8 text.
    pub fn string(&mut self, name: &str) -> Result<String, WireError> {
        let at = self.pos + 8;
        let b = self.bytes_ref(name)?;
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => Err(self.invalid(name, at, format!("text is not UTF-8: {e}"))),
        }
    }

    /// Reads a `u64` count then that many `u64` values.
    pub fn u64_list(&mut self, name: &str) -> Result<Vec<u64>, WireError> {
        let count = self.u64(&suffixed(name, "count"))?;
        let mut out = Vec::with_capacity(capacity_for(count, self.remaining(), 8));
        for i in 0..count {
            out.push(self.u64(&format!("{name}[{i}]"))?);
        }
        Ok(out)
    }

    /// Reads a `u64` count then that many values read by `item`, each named `name[i]`.
    ///
    /// `min_size` is the smallest encoding of one value; it bounds the memory reserved up front,
    /// so that a corrupted count cannot make the decoder allocate more than the input could
    /// hold. Values that take no bytes at all are refused past 65536 of them.
    pub fn list<T>(
        &mut self,
        name: &'static str,
        min_size: usize,
        mut item: impl FnMut(&mut Self) -> Result<T, WireError>,
    ) -> Result<Vec<T>, WireError> {
        let count = self.u64(&suffixed(name, "count"))?;
        let mut out = Vec::with_capacity(capacity_for(count, self.remaining(), min_size));
        for i in 0..count {
            let before = self.pos;
            self.path.push(name);
            let label = format!("[{i}]");
            let r = item(self).map_err(|mut e| {
                // Turn "name.x" into "name[i].x" for the element that failed.
                let prefix = self.path_of("");
                if let Some(rest) = e.field.strip_prefix(prefix.as_str()) {
                    e.field = format!("{prefix}{label}{rest}");
                }
                e
            });
            self.path.pop();
            out.push(r?);
            if self.pos == before && i >= 65_536 {
                return Err(self.invalid(name, before, "too many elements that take no bytes"));
            }
        }
        Ok(out)
    }
}

/// How many elements of at least `min_size` bytes to reserve room for, given what is left.
fn capacity_for(count: u64, remaining: usize, min_size: usize) -> usize {
    let fits = remaining / min_size.max(1);
    usize::try_from(count).map_or(fits, |c| c.min(fits))
}

/// `name.suffix`, or `suffix` alone when `name` is empty.
fn suffixed(name: &str, suffix: &str) -> String {
    if name.is_empty() {
        suffix.to_string()
    } else {
        format!("{name}.{suffix}")
    }
}

/// A Mercury `hg_string_t`, as Yokan and Margo send it.
///
/// On the wire: a `u64` length that counts a terminating NUL, then the bytes and the NUL, then
/// two flag bytes (`is_const`, `is_owned`, which describe the sender's memory and are kept only
/// to re-encode the same bytes). A null string is a zero length and nothing else.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HgString {
    /// The text without its NUL, or `None` for a null string.
    pub value: Option<String>,
    /// The sender's `is_const` flag.
    pub is_const: bool,
    /// The sender's `is_owned` flag.
    pub is_owned: bool,
}

impl HgString {
    /// A non-null string with both flags clear (what Mochi's C clients send).
    pub fn new(value: impl Into<String>) -> Self {
        HgString {
            value: Some(value.into()),
            is_const: false,
            is_owned: false,
        }
    }

    /// The null string.
    pub fn null() -> Self {
        HgString::default()
    }

    /// The text, or `""` for the null string.
    pub fn as_str(&self) -> &str {
        self.value.as_deref().unwrap_or("")
    }
}

impl From<&str> for HgString {
    fn from(s: &str) -> Self {
        HgString::new(s)
    }
}

impl WireMessage for HgString {
    fn write(&self, enc: &mut Encoder<'_>) {
        match &self.value {
            None => enc.u64(0),
            Some(s) => {
                enc.u64(s.len() as u64 + 1);
                enc.raw(s.as_bytes());
                enc.u8(0);
                enc.bool(self.is_const);
                enc.bool(self.is_owned);
            }
        }
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        let len = dec.u64("len")?;
        if len == 0 {
            return Ok(HgString::null());
        }
        let at = dec.position();
        let bytes = dec.raw(len, "bytes")?;
        let (text, nul) = bytes.split_at(bytes.len() - 1);
        if nul != [0] {
            return Err(dec.invalid("bytes", at, "string does not end with a NUL byte"));
        }
        let value = std::str::from_utf8(text)
            .map_err(|e| dec.invalid("bytes", at, format!("text is not UTF-8: {e}")))?
            .to_string();
        let is_const = dec.bool("is_const")?;
        let is_owned = dec.bool("is_owned")?;
        Ok(HgString {
            value: Some(value),
            is_const,
            is_owned,
        })
    }
}

impl WireMessage for () {
    fn write(&self, _enc: &mut Encoder<'_>) {}
    fn read(_dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(())
    }
}

impl WireMessage for bool {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.bool(*self);
    }
    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        dec.bool("")
    }
}

impl WireMessage for u16 {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.u16(*self);
    }
    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        dec.u16("")
    }
}

impl WireMessage for u64 {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.u64(*self);
    }
    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        dec.u64("")
    }
}

impl WireMessage for String {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.string(self);
    }
    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        dec.string("")
    }
}

/// A Thallium `std::vector<T>`: a `u64` count, then the elements.
impl<T: WireMessage> WireMessage for Vec<T> {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.u64(self.len() as u64);
        for item in self {
            item.write(enc);
        }
    }
    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        // Every element type used on the wire takes at least one byte, except `()`, which
        // never appears in a vector.
        dec.list("items", 1, T::read)
    }
}
