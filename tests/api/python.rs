//! Real Python clients for the compatibility surfaces: a virtualenv under
//! `CARGO_TARGET_TMPDIR` with pinned packages from PyPI, made once and
//! reused. A test calls `python_with` and skips (with a message saying why)
//! only when Python or the packages cannot be installed here.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Pinned client versions.
pub const OPENAI: &str = "openai==3.57.0";
pub const MCP: &str = "mcp==1.30.0";
/// The OpenAPI tools, in one environment: the validator, a client
/// generator and the fuzzer.
pub const OPENAPI_TOOLS: &[&str] = &[
    "openapi-spec-validator==0.9.0",
    "openapi-python-client==0.29.1",
    "schemathesis==4.32.5",
];

static INSTALL: Mutex<()> = Mutex::new(());

/// The venv's python with `packages` installed, or why not.
pub fn python_with(packages: &[&str]) -> Result<PathBuf, String> {
    let _guard = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    let name = packages.join("_").replace(['=', '.'], "-");
    let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("py-{name}"));
    // Made by another user (root's run, for the run as `nobody`): used
    // when this user can run it.
    if shared.join(".installed").exists() && runs(&shared.join("bin/python")) {
        return Ok(shared.join("bin/python"));
    }
    // Made here when this user may write there, else in its own temp folder.
    let venv = crate::helpers::writable_or_temp(
        Path::new(env!("CARGO_TARGET_TMPDIR")).to_path_buf(),
        "cca-python",
    )
    .join(format!("py-{name}"));
    let python = venv.join("bin/python");
    let marker = venv.join(".installed");
    if marker.exists() {
        return Ok(python);
    }
    let status = Command::new(base_python())
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .map_err(|e| format!("python3 cannot run: {e}"))?;
    if !status.success() {
        return Err(format!("python3 -m venv failed: {status}"));
    }
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .output()
        .map_err(|e| format!("pip cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pip install {packages:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::write(&marker, packages.join("\n")).map_err(|e| e.to_string())?;
    Ok(python)
}

/// The interpreter a virtualenv is made from: the system's, which every
/// user may run (a venv's `python` links to it; one under root's home
/// would not run for the unprivileged test run), else `python3` on PATH.
fn base_python() -> &'static str {
    let system = "/usr/bin/python3";
    let usable = Command::new(system)
        .args(["-c", "import venv, ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    if usable {
        system
    } else {
        "python3"
    }
}

/// Whether `python` runs for this user.
fn runs(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", ""])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs a script of `tests/api/py/` with `args`; returns its stdout lines
/// parsed as JSON, panicking with its stderr when it fails.
pub async fn run_script(python: &Path, script: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/api/py")
        .join(script);
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(path).args(args);
    let out = cmd.output().await.expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{script} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

/// `python_with`, or `None` after printing why the test is skipped.
pub fn python_or_skip(packages: &[&str]) -> Option<PathBuf> {
    match python_with(packages) {
        Ok(p) => Some(p),
        Err(why) => {
            eprintln!("SKIPPED: cannot install {packages:?} from PyPI: {why}");
            None
        }
    }
}
