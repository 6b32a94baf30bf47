//! What the tests and benchmarks run against instead of the outside world:
//! `mock_model`, a scripted Anthropic Messages API for the real CLI, and the
//! `fake-claude` binary, a CLI stand-in for faults the real one cannot be
//! made to show (crashes, hangs, garbage output).

pub mod mock_model;

use std::path::PathBuf;

/// The `fake-claude` binary, built with the workspace's tests (it sits next
/// to the test executables' `deps/` folder).
pub fn fake_cli_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .ancestors()
        .find(|dir| dir.join("fake-claude").is_file())
        .map(PathBuf::from);
    match profile_dir {
        Some(dir) => dir.join("fake-claude"),
        None => panic!(
            "fake-claude is not built next to {}: run the tests from the workspace root \
             (`cargo test`), or `cargo build -p claude-code-api-testkit`",
            exe.display()
        ),
    }
}
