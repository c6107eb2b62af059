//! The file layout: names, creation of the groups and datasets, buffered writing of one
//! partition, and small typed readers. Creation is the same on every rank of a collective
//! export (parallel HDF5 requires every rank to create every object with the same arguments).

use super::error::{Error, H5Context, Result};
use super::{IdRange, FLUSH_BYTES, FORMAT_NAME, FORMAT_VERSION};
use ::hdf5::types::{IntSize, TypeDescriptor, VarLenUnicode};
use ::hdf5::{Dataset, File, Group, Location};
use serde_json::Value;
use std::path::Path;

pub(crate) const ATTR_FORMAT: &str = "diaspora_format";
pub(crate) const ATTR_VERSION: &str = "format_version";
pub(crate) const ATTR_TOPIC: &str = "topic";
pub(crate) const ATTR_NUM_PARTITIONS: &str = "num_partitions";
pub(crate) const ATTR_VALIDATOR: &str = "validator";
pub(crate) const ATTR_SELECTOR: &str = "partition_selector";
pub(crate) const ATTR_SERIALIZER: &str = "serializer";
pub(crate) const ATTR_DRIVER: &str = "driver";
pub(crate) const ATTR_ID_START: &str = "id_start";
pub(crate) const ATTR_ID_END: &str = "id_end";
pub(crate) const ATTR_EXPORTED: &str = "exported_partitions";
pub(crate) const ATTR_CREATED_BY: &str = "created_by";

pub(crate) const PARTITIONS: &str = "partitions";
pub(crate) const P_PARTITION: &str = "partition";
pub(crate) const P_NUM_EVENTS: &str = "num_events";
pub(crate) const P_METADATA_BYTES: &str = "metadata_bytes";
pub(crate) const P_DATA_BYTES: &str = "data_bytes";
pub(crate) const DS_IDS: &str = "ids";
pub(crate) const DS_METADATA: &str = "metadata";
pub(crate) const DS_METADATA_OFFSETS: &str = "metadata_offsets";
pub(crate) const DS_DATA: &str = "data";
pub(crate) const DS_DATA_OFFSETS: &str = "data_offsets";

/// Options for every file this module opens or creates: HDF5's own file locking is off. Files
/// are written under a temporary name and renamed into place when complete, so no reader ever
/// sees one being written; and HDF5 opens files without close-on-exec, so a process spawned
/// meanwhile by another thread would inherit the descriptor and hold the lock after the file
/// is closed, making the next open of that file fail ("unable to lock file").
pub(crate) fn file_options() -> ::hdf5::FileBuilder {
    let mut b = File::with_options();
    b.with_fapl(|p| p.file_locking(false));
    b
}

/// Name of a partition's group under `/partitions`.
pub(crate) fn partition_name(p: usize) -> String {
    format!("{p:08}")
}

/// Full path of a partition's group.
pub(crate) fn partition_path(p: usize) -> String {
    format!("/{PARTITIONS}/{}", partition_name(p))
}

/// What the root attributes record.
#[derive(Clone, Debug)]
pub(crate) struct Header {
    pub topic: String,
    pub num_partitions: usize,
    pub validator: Value,
    pub partition_selector: Value,
    pub serializer: Value,
    pub driver: String,
    pub ids: IdRange,
    pub partitions: Vec<usize>,
}

/// Sizes of one partition's datasets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sizes {
    pub events: u64,
    pub metadata_bytes: u64,
    pub data_bytes: u64,
}

/// The datasets of one partition.
pub(crate) struct PartitionDatasets {
    pub partition: usize,
    pub ids: Dataset,
    pub metadata: Dataset,
    pub metadata_offsets: Dataset,
    pub data: Dataset,
    pub data_offsets: Dataset,
}

fn write_str_attr(
    path: &Path,
    loc: &Location,
    object: &str,
    name: &str,
    value: &str,
) -> Result<()> {
    let what = format!("attribute {name} of {object}");
    let v: VarLenUnicode = value
        .parse()
        .map_err(|e| Error::InvalidArgument(format!("{what} cannot hold {value:?}: {e}")))?;
    loc.new_attr::<VarLenUnicode>()
        .shape(())
        .create(name)
        .and_then(|a| a.write_scalar(&v))
        .h5(path, "write", &what)
}

fn write_u64_attr(path: &Path, loc: &Location, object: &str, name: &str, value: u64) -> Result<()> {
    loc.new_attr::<u64>()
        .shape(())
        .create(name)
        .and_then(|a| a.write_scalar(&value))
        .h5(path, "write", &format!("attribute {name} of {object}"))
}

fn usize_of(n: u64, path: &Path, object: &str) -> Result<usize> {
    usize::try_from(n).map_err(|_| {
        Error::format(
            path,
            object,
            format!("size {n} does not fit in this machine's memory"),
        )
    })
}

fn create_dataset<T: ::hdf5::H5Type>(
    path: &Path,
    group: &Group,
    group_path: &str,
    name: &str,
    len: u64,
) -> Result<Dataset> {
    let object = format!("{group_path}/{name}");
    let len = usize_of(len, path, &object)?;
    group
        .new_dataset::<T>()
        .shape(len)
        .no_chunk()
        .fill_time(::hdf5::dataset::FillTime::Never)
        .create(name)
        .h5(path, "create dataset", &object)
}

/// Writes the root attributes and creates every partition group and dataset with its final size.
/// `sizes[i]` belongs to `header.partitions[i]`.
pub(crate) fn create_layout(
    path: &Path,
    file: &File,
    header: &Header,
    sizes: &[Sizes],
) -> Result<Vec<PartitionDatasets>> {
    let root = "/";
    write_str_attr(path, file, root, ATTR_FORMAT, FORMAT_NAME)?;
    file.new_attr::<u32>()
        .shape(())
        .create(ATTR_VERSION)
        .and_then(|a| a.write_scalar(&FORMAT_VERSION))
        .h5(path, "write", &format!("attribute {ATTR_VERSION} of /"))?;
    write_str_attr(path, file, root, ATTR_TOPIC, &header.topic)?;
    write_u64_attr(
        path,
        file,
        root,
        ATTR_NUM_PARTITIONS,
        header.num_partitions as u64,
    )?;
    write_str_attr(
        path,
        file,
        root,
        ATTR_VALIDATOR,
        &compact(&header.validator),
    )?;
    write_str_attr(
        path,
        file,
        root,
        ATTR_SELECTOR,
        &compact(&header.partition_selector),
    )?;
    write_str_attr(
        path,
        file,
        root,
        ATTR_SERIALIZER,
        &compact(&header.serializer),
    )?;
    write_str_attr(path, file, root, ATTR_DRIVER, &header.driver)?;
    write_u64_attr(path, file, root, ATTR_ID_START, header.ids.start)?;
    write_u64_attr(
        path,
        file,
        root,
        ATTR_ID_END,
        header.ids.end.unwrap_or(u64::MAX),
    )?;
    let exported: Vec<u64> = header.partitions.iter().map(|&p| p as u64).collect();
    file.new_attr::<u64>()
        .shape(exported.len())
        .create(ATTR_EXPORTED)
        .and_then(|a| a.write_raw(&exported))
        .h5(path, "write", &format!("attribute {ATTR_EXPORTED} of /"))?;
    write_str_attr(
        path,
        file,
        root,
        ATTR_CREATED_BY,
        concat!("diaspora-stream ", env!("CARGO_PKG_VERSION")),
    )?;
    let parts =
        file.create_group(PARTITIONS)
            .h5(path, "create group", &format!("/{PARTITIONS}"))?;
    let mut out = Vec::with_capacity(sizes.len());
    for (&p, s) in header.partitions.iter().zip(sizes) {
        let gp = partition_path(p);
        let g = parts
            .create_group(&partition_name(p))
            .h5(path, "create group", &gp)?;
        write_u64_attr(path, &g, &gp, P_PARTITION, p as u64)?;
        write_u64_attr(path, &g, &gp, P_NUM_EVENTS, s.events)?;
        write_u64_attr(path, &g, &gp, P_METADATA_BYTES, s.metadata_bytes)?;
        write_u64_attr(path, &g, &gp, P_DATA_BYTES, s.data_bytes)?;
        out.push(PartitionDatasets {
            partition: p,
            ids: create_dataset::<u64>(path, &g, &gp, DS_IDS, s.events)?,
            metadata: create_dataset::<u8>(path, &g, &gp, DS_METADATA, s.metadata_bytes)?,
            metadata_offsets: create_dataset::<u64>(
                path,
                &g,
                &gp,
                DS_METADATA_OFFSETS,
                s.events + 1,
            )?,
            data: create_dataset::<u8>(path, &g, &gp, DS_DATA, s.data_bytes)?,
            data_offsets: create_dataset::<u64>(path, &g, &gp, DS_DATA_OFFSETS, s.events + 1)?,
        });
    }
    Ok(out)
}

fn compact(v: &Value) -> String {
    crate::json::to_compact_string(v)
}

/// Writes the events of one partition, in order, through buffers flushed at about 32 MiB.
pub(crate) struct PartitionWriter<'a> {
    path: &'a Path,
    ds: &'a PartitionDatasets,
    expected: Sizes,
    /// Index of the first buffered event.
    flushed_events: u64,
    /// Position in the metadata / data blobs of the first buffered byte.
    flushed_metadata: u64,
    flushed_data: u64,
    ids: Vec<u64>,
    metadata_offsets: Vec<u64>,
    metadata: Vec<u8>,
    data_offsets: Vec<u64>,
    data: Vec<u8>,
}

impl<'a> PartitionWriter<'a> {
    pub(crate) fn new(path: &'a Path, ds: &'a PartitionDatasets, expected: Sizes) -> Self {
        PartitionWriter {
            path,
            ds,
            expected,
            flushed_events: 0,
            flushed_metadata: 0,
            flushed_data: 0,
            ids: Vec::new(),
            metadata_offsets: Vec::new(),
            metadata: Vec::new(),
            data_offsets: Vec::new(),
            data: Vec::new(),
        }
    }

    fn object(&self, name: &str) -> String {
        format!("{}/{name}", partition_path(self.ds.partition))
    }

    fn too_much(&self, what: &str) -> Error {
        Error::Inconsistent(format!(
            "partition {} holds more {what} than when it was counted ({} events, {} metadata \
             bytes, {} data bytes): was it rewritten during the export?",
            self.ds.partition,
            self.expected.events,
            self.expected.metadata_bytes,
            self.expected.data_bytes
        ))
    }

    /// Events buffered or written so far.
    pub(crate) fn events(&self) -> u64 {
        self.flushed_events + self.ids.len() as u64
    }

    /// Appends one event; `data` is given as its segments.
    pub(crate) fn push(&mut self, id: u64, metadata: &[u8], data: &[&[u8]]) -> Result<()> {
        if self.events() >= self.expected.events {
            return Err(self.too_much("events"));
        }
        let md_pos = self.flushed_metadata + self.metadata.len() as u64;
        let data_pos = self.flushed_data + self.data.len() as u64;
        let data_len: u64 = data.iter().map(|d| d.len() as u64).sum();
        if md_pos + metadata.len() as u64 > self.expected.metadata_bytes {
            return Err(self.too_much("metadata bytes"));
        }
        if data_pos + data_len > self.expected.data_bytes {
            return Err(self.too_much("data bytes"));
        }
        self.ids.push(id);
        self.metadata_offsets.push(md_pos);
        self.metadata.extend_from_slice(metadata);
        self.data_offsets.push(data_pos);
        for d in data {
            self.data.extend_from_slice(d);
        }
        if self.metadata.len() + self.data.len() >= FLUSH_BYTES || self.ids.len() >= 1 << 16 {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        let n = self.ids.len();
        if n == 0 {
            return Ok(());
        }
        let e0 = self.flushed_events as usize;
        let path = self.path;
        self.ds.ids.write_slice(&self.ids[..], e0..e0 + n).h5(
            path,
            "write",
            &self.object(DS_IDS),
        )?;
        self.ds
            .metadata_offsets
            .write_slice(&self.metadata_offsets[..], e0..e0 + n)
            .h5(path, "write", &self.object(DS_METADATA_OFFSETS))?;
        self.ds
            .data_offsets
            .write_slice(&self.data_offsets[..], e0..e0 + n)
            .h5(path, "write", &self.object(DS_DATA_OFFSETS))?;
        let m0 = self.flushed_metadata as usize;
        self.ds
            .metadata
            .write_slice(&self.metadata[..], m0..m0 + self.metadata.len())
            .h5(path, "write", &self.object(DS_METADATA))?;
        let d0 = self.flushed_data as usize;
        self.ds
            .data
            .write_slice(&self.data[..], d0..d0 + self.data.len())
            .h5(path, "write", &self.object(DS_DATA))?;
        self.flushed_events += n as u64;
        self.flushed_metadata += self.metadata.len() as u64;
        self.flushed_data += self.data.len() as u64;
        self.ids.clear();
        self.metadata_offsets.clear();
        self.metadata.clear();
        self.data_offsets.clear();
        self.data.clear();
        Ok(())
    }

    /// Writes what is buffered and the closing offsets; fails if fewer events or bytes came
    /// than the datasets were created for.
    pub(crate) fn finish(mut self) -> Result<()> {
        self.flush()?;
        let got = Sizes {
            events: self.flushed_events,
            metadata_bytes: self.flushed_metadata,
            data_bytes: self.flushed_data,
        };
        if got != self.expected {
            return Err(Error::Inconsistent(format!(
                "partition {} changed during the export: {} events, {} metadata bytes and {} data \
                 bytes were counted, {} events, {} and {} bytes were read",
                self.ds.partition,
                self.expected.events,
                self.expected.metadata_bytes,
                self.expected.data_bytes,
                got.events,
                got.metadata_bytes,
                got.data_bytes
            )));
        }
        let n = got.events as usize;
        let path = self.path;
        self.ds
            .metadata_offsets
            .write_slice(&[got.metadata_bytes][..], n..n + 1)
            .h5(path, "write", &self.object(DS_METADATA_OFFSETS))?;
        self.ds
            .data_offsets
            .write_slice(&[got.data_bytes][..], n..n + 1)
            .h5(path, "write", &self.object(DS_DATA_OFFSETS))?;
        Ok(())
    }
}

// ----- reading -----

/// Reads a string attribute.
pub(crate) fn read_str_attr(
    path: &Path,
    loc: &Location,
    object: &str,
    name: &str,
) -> Result<String> {
    let what = format!("attribute {name} of {object}");
    let attr = loc
        .attr(name)
        .map_err(|_| Error::format(path, object, format!("attribute {name:?} is missing")))?;
    let dtype = attr.dtype().h5(path, "read the type of", &what)?;
    match dtype.to_descriptor() {
        Ok(TypeDescriptor::VarLenUnicode) | Ok(TypeDescriptor::VarLenAscii) => {}
        _ => {
            return Err(Error::format(
                path,
                &what,
                "is not a variable-length string",
            ))
        }
    }
    if !attr.is_scalar() {
        return Err(Error::format(path, &what, "is not a scalar"));
    }
    let v: VarLenUnicode = attr.read_scalar().h5(path, "read", &what)?;
    Ok(v.as_str().to_string())
}

/// Reads an unsigned integer scalar attribute.
pub(crate) fn read_u64_attr(path: &Path, loc: &Location, object: &str, name: &str) -> Result<u64> {
    let what = format!("attribute {name} of {object}");
    let attr = loc
        .attr(name)
        .map_err(|_| Error::format(path, object, format!("attribute {name:?} is missing")))?;
    let dtype = attr.dtype().h5(path, "read the type of", &what)?;
    if !matches!(dtype.to_descriptor(), Ok(TypeDescriptor::Unsigned(_))) {
        return Err(Error::format(path, &what, "is not an unsigned integer"));
    }
    if !attr.is_scalar() {
        return Err(Error::format(path, &what, "is not a scalar"));
    }
    attr.read_scalar::<u64>().h5(path, "read", &what)
}

/// Reads a one-dimensional unsigned integer array attribute.
pub(crate) fn read_u64s_attr(
    path: &Path,
    loc: &Location,
    object: &str,
    name: &str,
) -> Result<Vec<u64>> {
    let what = format!("attribute {name} of {object}");
    let attr = loc
        .attr(name)
        .map_err(|_| Error::format(path, object, format!("attribute {name:?} is missing")))?;
    let dtype = attr.dtype().h5(path, "read the type of", &what)?;
    if !matches!(dtype.to_descriptor(), Ok(TypeDescriptor::Unsigned(_))) || attr.ndim() != 1 {
        return Err(Error::format(
            path,
            &what,
            "is not a one-dimensional array of unsigned integers",
        ));
    }
    attr.read_raw::<u64>().h5(path, "read", &what)
}

/// Opens a one-dimensional dataset whose elements must be unsigned integers of `size`.
pub(crate) fn open_dataset(
    path: &Path,
    group: &Group,
    group_path: &str,
    name: &str,
    size: IntSize,
) -> Result<(Dataset, u64)> {
    let object = format!("{group_path}/{name}");
    if !group.link_exists(name) {
        return Err(Error::format(path, &object, "dataset is missing"));
    }
    let ds = group.dataset(name).h5(path, "open dataset", &object)?;
    let dtype = ds.dtype().h5(path, "read the type of", &object)?;
    match dtype.to_descriptor() {
        Ok(TypeDescriptor::Unsigned(s)) if s == size => {}
        other => {
            return Err(Error::format(
                path,
                &object,
                format!(
                    "has element type {}, expected {}",
                    other
                        .map(|d| d.to_string())
                        .unwrap_or_else(|_| "unknown".into()),
                    TypeDescriptor::Unsigned(size)
                ),
            ))
        }
    }
    let shape = ds.shape();
    if shape.len() != 1 {
        return Err(Error::format(
            path,
            &object,
            format!("has {} dimensions, expected 1", shape.len()),
        ));
    }
    Ok((ds, shape[0] as u64))
}

/// Reads elements `range` of a one-dimensional dataset.
pub(crate) fn read_range<T: ::hdf5::H5Type + Clone>(
    path: &Path,
    ds: &Dataset,
    object: &str,
    range: std::ops::Range<u64>,
) -> Result<Vec<T>> {
    if range.start >= range.end {
        return Ok(Vec::new());
    }
    let r = range.start as usize..range.end as usize;
    let arr =
        ds.read_slice_1d::<T, _>(r)
            .h5(path, &format!("read elements {range:?} of"), object)?;
    Ok(arr.into_raw_vec_and_offset().0)
}
