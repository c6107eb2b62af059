//! Errors of the HDF5 export and import.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Result of the HDF5 functions.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong when exporting or importing. Messages name the file, the HDF5 object
/// (group, dataset or attribute) and the topic and partition involved.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operation on a topic or driver failed.
    #[error("{context}: {source}")]
    Stream {
        /// What was being done ("cannot read partition 2 of topic \"steps\"").
        context: String,
        /// The library's error.
        #[source]
        source: crate::error::Error,
    },

    /// The HDF5 library reported an error.
    #[error("HDF5 file {}: cannot {operation} {object}: {message}", path.display())]
    Hdf5 {
        /// The file.
        path: PathBuf,
        /// What was attempted ("create dataset", "read attribute", ...).
        operation: String,
        /// The object (`/partitions/00000002/data`, `attribute topic of /`, ...).
        object: String,
        /// The HDF5 library's message.
        message: String,
    },

    /// The file is an HDF5 file, but not a valid diaspora-stream export.
    #[error("HDF5 file {}: {object}: {reason}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// The object at fault.
        object: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An argument cannot be used (empty id range, partition out of range, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The topic to import into exists and appending was not asked for.
    #[error("topic {0:?} already exists (import with the append option to add the events to it)")]
    TopicExists(String),

    /// The file to export to exists and overwriting was not asked for.
    #[error("{} already exists (export with the overwrite option to replace it)", .0.display())]
    FileExists(PathBuf),

    /// A file-system call failed.
    #[error("cannot {operation} {}: {source}", path.display())]
    Io {
        /// What was attempted.
        operation: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: Arc<std::io::Error>,
    },

    /// The topic changed in a way the operation cannot follow (events disappeared during an
    /// export, a partition holds more events than it did a moment before, ...).
    #[error("{0}")]
    Inconsistent(String),

    /// A collective (MPI) operation failed on some ranks; every rank gets this same error.
    #[error("{operation} failed on ranks {ranks:?} (rank {}: {message})", ranks.first().copied().unwrap_or(0))]
    Collective {
        /// What was attempted.
        operation: String,
        /// Ranks of the communicator where it failed, ascending.
        ranks: Vec<usize>,
        /// The error of the first of them.
        message: String,
    },
}

impl Error {
    /// Wraps a library error with what was being done.
    pub(crate) fn stream(context: impl Into<String>, source: crate::error::Error) -> Error {
        Error::Stream {
            context: context.into(),
            source,
        }
    }

    /// An [`Error::Format`].
    pub(crate) fn format(
        path: &Path,
        object: impl Into<String>,
        reason: impl Into<String>,
    ) -> Error {
        Error::Format {
            path: path.to_path_buf(),
            object: object.into(),
            reason: reason.into(),
        }
    }

    /// An [`Error::Io`].
    pub(crate) fn io(operation: &'static str, path: &Path, source: std::io::Error) -> Error {
        Error::Io {
            operation,
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }
}

/// Turns HDF5 results into [`Error::Hdf5`] naming the file, the operation and the object.
pub(crate) trait H5Context<T> {
    /// Adds the file, operation and object to an HDF5 error.
    fn h5(self, path: &Path, operation: &str, object: &str) -> Result<T>;
}

impl<T> H5Context<T> for ::hdf5::Result<T> {
    fn h5(self, path: &Path, operation: &str, object: &str) -> Result<T> {
        self.map_err(|e| Error::Hdf5 {
            path: path.to_path_buf(),
            operation: operation.to_string(),
            object: object.to_string(),
            message: e.to_string(),
        })
    }
}
