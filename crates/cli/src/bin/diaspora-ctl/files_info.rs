//! Details only the `files` driver can give, read straight from its directory layout (see
//! `src/drivers/files/mod.rs` and `offsets.rs` in the library): the byte sizes of each
//! partition's files and the names of the consumers that stored positions.
//!
//! Everything driver-specific of `diaspora-ctl` is here; the generic API has no call for sizes
//! or for listing consumer names.

use crate::error::{CliError, CliResult};
use diaspora_stream::drivers::files::FilesConfig;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Byte sizes of one partition's files.
#[derive(Debug, Default, Clone, Copy)]
pub struct PartitionBytes {
    /// `index` file.
    pub index: u64,
    /// `metadata` file.
    pub metadata: u64,
    /// `data` file.
    pub data: u64,
}

impl PartitionBytes {
    /// Sum of the three files.
    pub fn total(&self) -> u64 {
        self.index + self.metadata + self.data
    }
}

/// What [`inspect`] found.
#[derive(Debug)]
pub struct FilesDetails {
    /// Topic directory.
    pub path: PathBuf,
    /// Sizes per partition.
    pub partitions: Vec<PartitionBytes>,
    /// Consumer names with a positions file, sorted.
    pub consumers: Vec<String>,
}

fn file_size(path: &Path) -> CliResult<u64> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(CliError(format!("cannot stat {}: {e}", path.display()))),
    }
}

/// Decodes a positions file name `c-<name>.offsets` (`%XX` escapes) back to the consumer name.
pub fn decode_consumer_file(file: &str) -> Option<String> {
    let encoded = file.strip_prefix("c-")?.strip_suffix(".offsets")?;
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Reads the sizes and consumer names of topic `name` of a files driver with `driver_options`.
pub fn inspect(driver_options: &Value, name: &str, partitions: usize) -> CliResult<FilesDetails> {
    let config = FilesConfig::from_json(driver_options)
        .map_err(|e| CliError(format!("invalid files driver options: {e}")))?;
    let path = config.root_path.join(name);
    let mut sizes = Vec::with_capacity(partitions);
    for p in 0..partitions {
        let dir = path.join("partitions").join(format!("{p:08}"));
        sizes.push(PartitionBytes {
            index: file_size(&dir.join("index"))?,
            metadata: file_size(&dir.join("metadata"))?,
            data: file_size(&dir.join("data"))?,
        });
    }
    let mut consumers = Vec::new();
    let cdir = path.join("consumers");
    match std::fs::read_dir(&cdir) {
        Ok(entries) => {
            for entry in entries.flatten() {
                if let Some(n) = entry.file_name().to_str().and_then(decode_consumer_file) {
                    consumers.push(n);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CliError(format!("cannot list {}: {e}", cdir.display())));
        }
    }
    consumers.sort();
    Ok(FilesDetails {
        path,
        partitions: sizes,
        consumers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names() {
        assert_eq!(decode_consumer_file("c-ana-1.offsets").unwrap(), "ana-1");
        assert_eq!(decode_consumer_file("c-a%2Fb.offsets").unwrap(), "a/b");
        assert_eq!(decode_consumer_file("c-.offsets").unwrap(), "");
        assert!(decode_consumer_file("x.offsets").is_none());
        assert!(decode_consumer_file("c-a%2.offsets").is_none());
    }
}
