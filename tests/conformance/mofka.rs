//! The Mofka service the conformance run uses when the driver options name none.

use diaspora_stream::drivers::mofka::{mock::MockService, wire::WireVersion};
use std::sync::OnceLock;

/// The Mofka service the tests use when the driver options name none: the real one given by
/// `MOFKA_GROUP_FILE`, or else a Rust mock service started once for this test process (on
/// `DIASPORA_TEST_MOFKA_TRANSPORT`, default `na+sm`) speaking wire `version`.
pub fn mofka_group_file(version: &str) -> String {
    if let Ok(g) = std::env::var("MOFKA_GROUP_FILE") {
        return g;
    }
    static MOCK: OnceLock<(MockService, tempfile::TempDir)> = OnceLock::new();
    let (mock, _dir) = MOCK.get_or_init(|| {
        let dir = tempfile::tempdir().expect("cannot create a temporary directory");
        let transport =
            std::env::var("DIASPORA_TEST_MOFKA_TRANSPORT").unwrap_or_else(|_| "na+sm".to_string());
        let version: WireVersion = version.parse().expect("wire_version");
        let mock = MockService::start(&transport, version, dir.path())
            .unwrap_or_else(|e| panic!("cannot start the Mofka mock service on {transport}: {e}"));
        (mock, dir)
    });
    mock.group_file().to_string_lossy().into_owned()
}
