//! The conformance kit (`crates/conformance`, the same one third-party drivers run) against the
//! driver named by `DIASPORA_TEST_BACKEND` (default `files`) with the options in
//! `DIASPORA_TEST_BACKEND_ARGS`; topics are created with `DIASPORA_TEST_TOPIC_ARGS` (tests that
//! depend on a partition count merge their own `num_partitions` into those). The mofka driver
//! without a `group_file` gets the mock service (or `MOFKA_GROUP_FILE`), as in the other tests.

#[path = "../common/mod.rs"]
mod common;

#[cfg(feature = "rayon")]
mod pools;

diaspora_stream_conformance::conformance_tests!(diaspora_stream_conformance::Target::with_guard(
    common::backend_name(),
    || {
        let (driver, dir) = common::test_driver();
        (driver, Box::new(dir))
    }
)
.topic_args(common::topic_args()));
