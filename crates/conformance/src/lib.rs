//! # diaspora-stream-conformance
//!
//! The conformance suite of the Diaspora Stream API as a kit: any crate that implements a
//! driver (see `diaspora_stream::backend`) runs the whole suite against it with one macro, in
//! an integration test such as `tests/conformance.rs`:
//!
//! ```ignore
//! use diaspora_stream_conformance::{conformance_tests, Target};
//!
//! conformance_tests!(Target::with_temp_dir("simple", |dir| {
//!     Ok(diaspora_stream::Driver::from_backend(std::sync::Arc::new(
//!         simple::SimpleDriver::new(&serde_json::json!({"root_path": dir}))?,
//!     )))
//! }));
//! ```
//!
//! Each of the 54 cases becomes a `#[test]` named after its area (`producers::...`,
//! `data_selection::...`), so `cargo test` runs them in parallel and filters them as usual. They
//! cover driver creation and topic administration, producers (batching, thread pools, flush on
//! drop), consumers with and without data, partial data (sub, strided, unstructured and stacked
//! views, allocators), iteration and `pull_many`, futures and timeouts, acknowledged offsets
//! across restarts, steps and start positions, producer liveness, partition targets and selectors, validators, `process`, and concurrent
//! producers and consumers. They are the suite the C++ reference ships, extended with what this
//! library guarantees; the built-in drivers of diaspora-stream run through this same kit.
//!
//! What the kit needs from a driver: topics are created with unique names (so drivers that keep
//! topics across runs work), `num_partitions` is accepted as a topic option, and the name given
//! to the [`Target`] (before any `:LIBRARY`) is the name the backend reports.

#![warn(missing_docs)]

pub mod cases;
mod target;

pub use target::{json_from_env, run, Guard, Target};

/// Every case of the kit, by area, as `area: [case, ...]` (what [`conformance_tests!`] expands).
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident ! ($($args:tt)*)) => {
        $crate::$callback! { ($($args)*)
            acks: [acknowledged_position_survives_consumer_restart],
            concurrency: [concurrent_single_producer_and_consumer, concurrent_producer_faster_than_consumer, concurrent_multiple_producers_single_consumer],
            consumers: [event_consumer_without_data, event_consumer_with_data],
            creation: [producer_creation_and_accessors, consumer_creation_and_accessors],
            data_selection: [data_selection_no_data, data_selection_whole_data, data_selection_sub_view, data_selection_strided_view, data_selection_unstructured_view, data_selection_stacked_views_compose, data_selection_without_allocator_uses_library_memory, data_selection_into_several_allocated_segments],
            driver: [driver_factory_rejects_unknown_names, driver_is_created_from_environment, topic_create_exists_open_and_partitions, list_topics_describes_every_topic],
            futures: [ready_and_failed_futures, push_future_timeout_is_retryable, pull_future_timeout_is_retryable, end_of_stream_arrives_after_every_producer_ended, pool_producers_keep_push_order_over_many_chunks_and_fail_events_one_by_one, a_pull_dropped_before_any_wait_gives_its_event_back],
            liveness: [a_producer_that_stops_renewing_is_reported_after_its_events, a_quiet_producer_that_is_alive_is_never_reported],
            iteration: [consume_events_with_iterator, consume_events_with_pull, custom_data_selector_and_allocator, pull_many_takes_events_in_order_up_to_its_limit_then_the_end_of_stream, pull_many_waits_for_the_first_event_and_times_out_with_none, an_iterator_dropped_early_gives_back_what_it_took],
            process: [process_stops_on_flow_stop_inline, process_stops_on_flow_stop_with_worker_threads, process_honours_max_events, process_returns_when_no_event_arrives],
            steps: [steps_complete_when_every_producer_closed_them, a_restarted_consumer_knows_the_completed_steps, consumers_start_where_they_are_told],
            producers: [event_producer_inline_pool, event_producer_one_thread_pool, event_producer_two_thread_pool, dropping_a_producer_flushes_pending_events, bounded_producer_memory_holds],
            targets: [consumer_targets_restrict_partitions, consumer_targets_out_of_range_are_rejected, push_to_requested_partition_lands_modulo_partition_count, default_selector_round_robins_over_partitions, custom_partition_selector_is_used, out_of_range_partition_selector_fails_the_push],
            validators: [eventbridge_validator_accepts_matching_and_rejects_others, schema_validator_accepts_matching_and_rejects_others]
        }
    };
}

/// Defines one `#[test]` per case of the kit, all against the driver of the [`Target`]
/// expression given (evaluated once per test process). Also defines `conformance_target()`,
/// for tests of your own that use the kit's helpers ([`cases::test_driver`], ...) through
/// [`run`].
#[macro_export]
macro_rules! conformance_tests {
    ($target:expr) => {
        /// The target of this binary's conformance tests.
        #[allow(dead_code)]
        pub(crate) fn conformance_target() -> $crate::Target {
            $target
        }
        $crate::__with_cases!(__conformance_test_fns!(conformance_target));
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test_fns {
    (($target:ident) $($area:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        $(
            mod $area {
                $(
                    #[test]
                    fn $case() {
                        $crate::run(super::$target, $crate::cases::$area::$case)
                    }
                )*
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_names {
    (() $($area:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        vec![$($(concat!(stringify!($area), "::", stringify!($case)),)*)*]
    };
}

/// The names of every case, as `area::case`.
pub fn case_names() -> Vec<&'static str> {
    __with_cases!(__case_names!())
}

#[cfg(test)]
mod tests {
    /// Every `pub fn` of the case files is in the macro's list, and nothing else is.
    #[test]
    fn the_case_list_matches_the_case_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cases");
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let area = path.file_stem().unwrap().to_string_lossy().into_owned();
            if area == "mod" || area == "helpers" {
                continue;
            }
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                if let Some(rest) = line.strip_prefix("pub fn ") {
                    if let Some(name) = rest.strip_suffix("() {") {
                        found.push(format!("{area}::{name}"));
                    }
                }
            }
        }
        found.sort();
        let mut listed: Vec<String> = super::case_names().iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed);
        assert!(listed.len() >= 40, "{listed:?}");
    }
}
