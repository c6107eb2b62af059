//! Running a program under the MPI launcher, for the tests of both packages (the library's
//! `tests/mpi.rs`, the command-line crate's `mpi_benchmarks.rs`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;

/// Runs `program` on `n` ranks under `$DIASPORA_MPIEXEC` (default `mpiexec`) in a fresh folder;
/// returns whether it succeeded and its stdout and stderr.
pub fn mpiexec(n: usize, program: &PathBuf, args: &[&str]) -> (bool, String) {
    let launcher = std::env::var("DIASPORA_MPIEXEC").unwrap_or_else(|_| "mpiexec".into());
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(&launcher)
        .arg("-n")
        .arg(n.to_string())
        .arg(program)
        .args(args)
        .current_dir(work.path())
        // OpenMPI: allow root, more ranks than cores, loopback only.
        .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
        .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
        .env("OMPI_MCA_rmaps_base_oversubscribe", "1")
        .env("OMPI_MCA_btl", "self,vader")
        .env("OMPI_MCA_oob_tcp_if_include", "lo")
        // A session folder of its own: concurrent jobs race to create the shared one.
        .env("OMPI_MCA_orte_tmpdir_base", work.path())
        .output()
        .unwrap_or_else(|e| panic!("could not run {launcher}: {e}"));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing is left behind in the working folder.
    let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
    assert!(leftovers.is_empty(), "files left behind: {leftovers:?}");
    (out.status.success(), text)
}
