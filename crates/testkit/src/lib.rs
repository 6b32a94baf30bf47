//! What the tests and benchmarks run against instead of the outside world:
//! `mock_model`, a scripted Anthropic Messages API for the real CLI, and the
//! `fake-claude` binary, a CLI stand-in for faults the real one cannot be
//! made to show (crashes, hangs, garbage output).

pub mod mock_model;

use std::path::PathBuf;

/// The `fake-claude` executable: an example of this crate, built into the
/// profile's `examples/` beside the test executables' `deps/` (by `cargo
/// test` at the workspace root, or `cargo build -p claude-code-api-testkit
/// --examples`, as scripts/test.sh does first).
pub fn fake_cli_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let found = exe
        .ancestors()
        .map(|dir| dir.join("examples").join("fake-claude"))
        .find(|candidate| candidate.is_file());
    match found {
        Some(path) => path,
        None => panic!(
            "fake-claude is not built beside {}: run the tests from the workspace root \
             (`cargo test`), or `cargo build -p claude-code-api-testkit --examples`",
            exe.display()
        ),
    }
}
