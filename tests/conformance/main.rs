//! The conformance kit (`crates/conformance`, the same one third-party drivers run) against the
//! driver named by `DIASPORA_TEST_BACKEND` (default `files`) with the options in
//! `DIASPORA_TEST_BACKEND_ARGS`; topics are created with `DIASPORA_TEST_TOPIC_ARGS` (tests that
//! depend on a partition count merge their own `num_partitions` into those), as
//! `Target::from_env` reads them. The mofka driver without a `group_file` gets the mock service
//! (or `MOFKA_GROUP_FILE`).

#[cfg(feature = "mofka")]
mod mofka;
#[cfg(feature = "rayon")]
mod pools;

use diaspora_stream_conformance::Target;

fn target() -> Target {
    #[cfg(feature = "mofka")]
    {
        use diaspora_stream_conformance::json_from_env;
        use serde_json::Value;
        let name = std::env::var("DIASPORA_TEST_BACKEND").unwrap_or_default();
        let mut args = json_from_env("DIASPORA_TEST_BACKEND_ARGS");
        if !args.is_object() {
            args = Value::Object(Default::default());
        }
        if name.trim() == "mofka" && args.get("group_file").is_none() {
            let version = args
                .get("wire_version")
                .and_then(Value::as_str)
                .unwrap_or("0.9")
                .to_string();
            args["group_file"] = Value::String(mofka::mofka_group_file(&version));
            return Target::by_name("mofka", args, false)
                .topic_args(json_from_env("DIASPORA_TEST_TOPIC_ARGS"));
        }
    }
    Target::from_env()
}

diaspora_stream_conformance::conformance_tests!(target());
