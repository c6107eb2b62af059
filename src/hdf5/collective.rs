//! Collective export (features `mpi` and `hdf5`, with a parallel HDF5 library): the ranks of a
//! communicator export disjoint sets of partitions into one file through MPI-IO.
//!
//! Every rank opens the topic, then calls [`export_topic_collective`] with the same path and
//! options. The selected partitions are dealt round robin over the ranks
//! ([`PartitionMap::Cyclic`] over the list of selected partitions); each rank counts the events
//! and bytes of its own partitions, the counts are summed over the communicator, every rank
//! creates every group and dataset with the same sizes (HDF5 object creation is collective),
//! then each rank writes its own partitions' datasets with independent MPI-IO writes. The file
//! has exactly the layout of [`export_topic`](super::export_topic), so
//! [`import_file`](super::import_file) and any HDF5 reader read it the same way.
//!
//! ```no_run
//! use diaspora_stream::hdf5::{export_topic_collective, ExportOptions};
//! use diaspora_stream::mpi::mpi::traits::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let universe = diaspora_stream::mpi::mpi::initialize().expect("MPI");
//! let world = universe.world();
//! let driver = diaspora_stream::Driver::new("files", &serde_json::json!({"root_path": "/scratch"}))?;
//! let topic = driver.open_topic("steps")?;
//! let summary = export_topic_collective(&world, &topic, "/scratch/steps.h5", &ExportOptions::default())?;
//! if world.rank() == 0 {
//!     println!("{} events in {}", summary.events(), summary.path.display());
//! }
//! # Ok(()) }
//! ```

use super::error::{Error, H5Context, Result};
use super::export::{
    check_target, finish_file, plan, scan_partition, summary, temporary_path, write_partition, Scan,
};
use super::layout::{create_layout, Sizes};
use super::{batch_events, ExportOptions, ExportSummary, Phase, Progress};
use crate::mpi::PartitionMap;
use crate::topic::TopicHandle;
use ::mpi::collective::{CommunicatorCollectives, SystemOperation};
use ::mpi::raw::AsRaw;
use ::mpi::topology::Communicator;
use ::mpi::traits::Root;
use std::path::Path;

/// Turns each rank's local outcome into the same outcome on every rank: the value if all ranks
/// succeeded, otherwise [`Error::Collective`] naming the failed ranks and the first one's error.
fn agree<C: Communicator, T>(comm: &C, what: &str, local: Result<T>) -> Result<T> {
    match crate::mpi::gather_failures(comm, &local) {
        None => local,
        Some(f) => Err(Error::Collective {
            operation: what.to_string(),
            ranks: f.ranks,
            message: f.first_error,
        }),
    }
}

/// Collective over `comm`: exports `topic` to the single HDF5 file `path`, each rank writing
/// its share of the partitions (see the [module](self)). Every rank must pass the same path
/// (on a file system all ranks share) and options, and gets the same summary or the same error.
/// Needs a parallel HDF5 library (`HDF5_DIR` pointing at an MPI build, e.g. Debian's
/// `/usr/lib/x86_64-linux-gnu/hdf5/openmpi`) of the same MPI as the program.
pub fn export_topic_collective<C>(
    comm: &C,
    topic: &TopicHandle,
    path: impl AsRef<Path>,
    options: &ExportOptions,
) -> Result<ExportSummary>
where
    C: Communicator + AsRaw<Raw = ::mpi::ffi::MPI_Comm>,
{
    export_topic_collective_with_progress(comm, topic, path, options, &mut |_| {})
}

/// [`export_topic_collective`], calling `progress` with this rank's own progress after each
/// batch.
pub fn export_topic_collective_with_progress<C>(
    comm: &C,
    topic: &TopicHandle,
    path: impl AsRef<Path>,
    options: &ExportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ExportSummary>
where
    C: Communicator + AsRaw<Raw = ::mpi::ffi::MPI_Comm>,
{
    let path = path.as_ref();
    let rank = comm.rank() as usize;
    let size = comm.size() as usize;
    let header = agree(comm, "checking the export options", plan(topic, options))?;
    let target = if rank == 0 {
        check_target(path, options.overwrite)
    } else {
        Ok(())
    };
    agree(comm, "checking the export target", target)?;
    let k = header.partitions.len();
    let mine: Vec<usize> = PartitionMap::Cyclic
        .consumer_partitions(rank, size, k)
        .map_err(|e| Error::stream("cannot map partitions to ranks", e))?;
    let batch = batch_events(options.batch_events);

    // Count this rank's partitions, then sum the counts of every partition over the ranks.
    let mut done = (0u64, 0u64);
    let local = mine
        .iter()
        .map(|&i| {
            let p = header.partitions[i];
            scan_partition(topic, p, header.ids, batch, &mut |n, b| {
                done.0 += n;
                done.1 += b;
                progress(&Progress {
                    phase: Phase::Scan,
                    partition: p,
                    events_done: done.0,
                    events_total: None,
                    bytes_done: done.1,
                    bytes_total: None,
                });
            })
        })
        .collect::<Result<Vec<Scan>>>();
    let local = agree(comm, "counting the events to export", local)?;
    const FIELDS: usize = 6;
    let mut counts = vec![0u64; FIELDS * k];
    for (&i, s) in mine.iter().zip(&local) {
        counts[FIELDS * i..FIELDS * (i + 1)].copy_from_slice(&[
            s.sizes.events,
            s.sizes.metadata_bytes,
            s.sizes.data_bytes,
            s.first_id.is_some() as u64,
            s.first_id.unwrap_or(0),
            s.last_id.unwrap_or(0),
        ]);
    }
    let mut totals = vec![0u64; FIELDS * k];
    comm.all_reduce_into(&counts[..], &mut totals[..], SystemOperation::sum());
    let scans: Vec<Scan> = header
        .partitions
        .iter()
        .zip(totals.chunks_exact(FIELDS))
        .map(|(&p, c)| Scan {
            partition: p,
            sizes: Sizes {
                events: c[0],
                metadata_bytes: c[1],
                data_bytes: c[2],
            },
            first_id: (c[3] != 0).then_some(c[4]),
            last_id: (c[3] != 0).then_some(c[5]),
        })
        .collect();
    let sizes: Vec<Sizes> = scans.iter().map(|s| s.sizes).collect();
    let my_total = mine.iter().fold((0, 0), |t, &i| {
        (t.0 + sizes[i].events, t.1 + sizes[i].data_bytes)
    });

    // Every rank writes under rank 0's temporary name.
    let mut tag = std::process::id();
    comm.process_at_rank(0).broadcast_into(&mut tag);
    let tmp = temporary_path(path, tag);
    let written = (|| -> Result<()> {
        let created = ::hdf5::File::with_options()
            .with_fapl(|p| p.mpio(comm.as_raw(), None).file_locking(false))
            .create(&tmp)
            .h5(&tmp, "create", "file (parallel, MPI-IO)");
        let file = agree(comm, "creating the file", created)?;
        let datasets = agree(
            comm,
            "creating the datasets",
            create_layout(&tmp, &file, &header, &sizes),
        )?;
        let mut done = (0u64, 0u64);
        let local = mine.iter().try_for_each(|&i| {
            let ds = &datasets[i];
            write_partition(&tmp, topic, ds, &scans[i], batch, &mut |n, b| {
                done.0 += n;
                done.1 += b;
                progress(&Progress {
                    phase: Phase::Write,
                    partition: ds.partition,
                    events_done: done.0,
                    events_total: Some(my_total.0),
                    bytes_done: done.1,
                    bytes_total: Some(my_total.1),
                });
            })
        });
        agree(comm, "writing the partitions", local)?;
        drop(datasets);
        let closed = file.close().h5(&tmp, "close", "file");
        agree(comm, "closing the file", closed)
    })();
    if let Err(e) = written {
        if rank == 0 {
            let _ = std::fs::remove_file(&tmp);
        }
        comm.barrier();
        return Err(e);
    }
    let finished = if rank == 0 {
        finish_file(&tmp, path, options.overwrite, Ok(()))
    } else {
        Ok(())
    };
    agree(comm, "moving the export into place", finished)?;
    Ok(summary(path, &header, &scans))
}
