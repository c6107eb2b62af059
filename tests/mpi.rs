//! Real MPI runs (feature `mpi`): `mpiexec -n 4` on the coupling example and on the MPI checks.
//!
//! The launcher is `$DIASPORA_MPIEXEC` (default `mpiexec`); it must belong to the MPI the crate
//! was built against (`MPICC`), which every rank verifies by printing the world size it sees.
#![cfg(feature = "mpi")]

#[path = "support/mpi_launch.rs"]
mod mpi_launch;
use mpi_launch::mpiexec;
use std::path::PathBuf;

fn example(name: &str) -> PathBuf {
    // Test binaries live in target/<profile>/deps; examples in target/<profile>/examples.
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "example {name} not built at {}",
        path.display()
    );
    path
}

/// The newest build of test target `name` (a rank program built with the tests, in
/// target/<profile>/deps as `<name>-<hash>`).
fn test_helper(name: &str) -> PathBuf {
    let deps = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    let prefix = format!("{name}-");
    let newest = std::fs::read_dir(&deps)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && !n.contains('.')
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path());
    newest.unwrap_or_else(|| {
        panic!(
            "test helper {name} not built in {} (run `cargo test --features mpi` without a \
             target filter, or add `--test {name}`)",
            deps.display()
        )
    })
}

fn assert_every_rank_sees(text: &str, n: usize) {
    for r in 0..n {
        assert!(
            text.contains(&format!("rank {r}/{n}:")),
            "rank {r} did not report a world of {n} ranks:\n{text}"
        );
    }
}

#[test]
fn coupling_two_simulation_two_analysis_ranks() {
    let (ok, text) = mpiexec(
        4,
        &example("coupling"),
        &["--steps", "40", "--values", "1024"],
    );
    assert!(ok, "{text}");
    assert_every_rank_sees(&text, 4);
    assert!(
        text.contains("world size 4: 2 simulation + 2 analysis ranks"),
        "{text}"
    );
    assert!(
        text.contains("80/80 snapshots consumed exactly once (80 expected, 0 duplicates"),
        "{text}"
    );
    assert_eq!(
        text.matches("end of stream after 40 snapshots").count(),
        2,
        "{text}"
    );
    // Each analysis rank analysed the 40 steps as their markers came (the example fails if a
    // snapshot arrives after its step was declared complete).
    assert_eq!(
        text.matches("40 steps analysed as they completed").count(),
        2,
        "{text}"
    );
    assert!(text.contains("coupling: OK"), "{text}");
}

#[test]
fn coupling_with_more_ranks_than_partitions_and_the_reverse() {
    for (args, analysis, expected) in [
        (["--sims", "3", "--partitions", "2"], 1, 90),
        (["--sims", "1", "--partitions", "5"], 3, 30),
    ] {
        let mut all = vec!["--steps", "30", "--values", "256"];
        all.extend(args);
        let (ok, text) = mpiexec(4, &example("coupling"), &all);
        assert!(ok, "{args:?}: {text}");
        assert_every_rank_sees(&text, 4);
        assert!(
            text.contains(&format!(
                "{expected}/{expected} snapshots consumed exactly once"
            )),
            "{args:?}: {text}"
        );
        assert_eq!(
            text.matches("end of stream after").count(),
            analysis,
            "{text}"
        );
        assert_eq!(
            text.matches("30 steps analysed as they completed").count(),
            analysis,
            "{text}"
        );
    }
}

#[test]
fn collective_errors_and_ownership_maps() {
    let (ok, text) = mpiexec(4, &test_helper("mpi_checks"), &[]);
    assert!(ok, "{text}");
    for check in [
        "creation error reported everywhere",
        "create or open",
        "failure agreement",
        "ownership maps",
    ] {
        assert_eq!(
            text.matches(&format!("{check} ok")).count(),
            4,
            "{check}:\n{text}"
        );
    }
    assert_every_rank_sees(&text, 4);
}

#[test]
fn coupling_rejects_a_world_without_analysis_ranks() {
    let (ok, text) = mpiexec(2, &example("coupling"), &["--sims", "2"]);
    assert!(!ok);
    assert!(
        text.contains("need at least one simulation and one analysis rank"),
        "{text}"
    );
}
