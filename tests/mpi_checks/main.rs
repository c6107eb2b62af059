//! Checks of the MPI layer's collective behaviour: the rank program that `tests/mpi.rs` runs
//! under `mpiexec` (a test helper, built with the tests; run alone by `cargo test`, outside any
//! launcher, it says so and does nothing).
//!
//! Every rank prints `rank R/S: <check> ok` for each check it passed and exits non-zero on the
//! first failure.

use diaspora_stream::mpi::mpi::traits::*;
use diaspora_stream::mpi::{self as dmpi, PartitionMap};
use diaspora_stream::{Driver, Error};
use serde_json::json;

/// True when a launcher (mpiexec/mpirun of OpenMPI or MPICH, srun) started this process.
fn under_a_launcher() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "PMI_RANK",
        "SLURM_STEP_ID",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

fn main() {
    if !under_a_launcher() {
        println!(
            "mpi_checks: the rank program of tests/mpi.rs, run under mpiexec; nothing to do alone"
        );
        return;
    }
    let universe = dmpi::mpi::initialize().expect("MPI initialisation failed");
    let world = universe.world();
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let say = |what: &str| println!("rank {rank}/{size}: {what} ok");

    let mut root = Vec::new();
    let mut tmp = None;
    if rank == 0 {
        let dir = tempfile::Builder::new()
            .prefix("diaspora-mpi-checks-")
            .tempdir_in(".")
            .expect("tmp");
        root = dir.path().to_string_lossy().into_owned().into_bytes();
        tmp = Some(dir);
    }
    let mut len = root.len() as u64;
    world.process_at_rank(0).broadcast_into(&mut len);
    root.resize(len as usize, 0);
    world.process_at_rank(0).broadcast_into(&mut root[..]);
    let driver = Driver::new(
        "files",
        &json!({"root_path": String::from_utf8(root).unwrap()}),
    )
    .unwrap();

    // 1. A creation error on rank 0 is reported on every rank.
    match dmpi::create_or_open_topic(&world, &driver, "../escape", &json!({})) {
        Err(Error::Collective { ranks, .. }) if ranks == vec![0] => {
            say("creation error reported everywhere")
        }
        other => panic!("rank {rank}: expected a collective error, got {other:?}"),
    }

    // 2. Collective create-or-open: every rank ends with the same topic.
    let topic =
        dmpi::create_or_open_topic(&world, &driver, "checks", &json!({"num_partitions": 3}))
            .unwrap();
    assert_eq!(topic.num_partitions(), 3);
    say("create or open");

    // 3. A failure on one rank only is reported on all ranks, naming that rank.
    let local = if rank == size - 1 {
        Err(Error::InvalidArgument("only here".into()))
    } else {
        Ok(())
    };
    match dmpi::agree(&world, "check", local) {
        Err(Error::Collective { ranks, local, .. }) => {
            assert_eq!(ranks, vec![size - 1]);
            assert_eq!(local.is_some(), rank == size - 1);
            say("failure agreement");
        }
        other => panic!("rank {rank}: expected a collective error, got {other:?}"),
    }

    // 4. Consumer maps over the world are disjoint and complete for fewer and more partitions
    //    than ranks; producer maps are never empty.
    for n in [1, 3, size, 2 * size + 1] {
        for map in [PartitionMap::Block, PartitionMap::Cyclic] {
            let mut mask = vec![0u32; n];
            for p in map.consumer_partitions(rank, size, n).unwrap() {
                mask[p] += 1;
            }
            let mut total = vec![0u32; n];
            world.all_reduce_into(
                &mask[..],
                &mut total[..],
                dmpi::mpi::collective::SystemOperation::sum(),
            );
            assert!(
                total.iter().all(|&c| c == 1),
                "{map:?} with {n} partitions: {total:?}"
            );
            assert!(!map.producer_partitions(rank, size, n).unwrap().is_empty());
        }
    }
    say("ownership maps");
    world.barrier();
    drop(tmp);
}
