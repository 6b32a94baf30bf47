//! One command run as the agent, in its sandbox and without a network: how
//! the server works in a folder the agent controls (its git worktree)
//! without acting on it as itself. Whatever the agent planted there (hooks,
//! a `.git/config`, links) runs or resolves with the agent's rights only.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use super::{Confinement, Mounts, Owner, Sandbox, Tree};

/// A command to run confined to one workspace.
pub struct OfflineCommand<'a> {
    /// The folder, opened, and the path it is seen at (and run in).
    pub workspace: (&'a Tree, &'a Path),
    /// Folders of the server's it may read (the tenant's git mirrors).
    pub read_only: &'a [PathBuf],
    pub owner: Owner,
    /// Looked up on `/usr/bin:/bin`.
    pub program: &'a str,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where its standard output goes (a file of the server's, say);
    /// `None` collects it into `Output::stdout`.
    pub stdout: Option<std::fs::File>,
    /// The most collected standard output there may be; more stops the
    /// command with a `FileTooLarge` error.
    pub max_stdout: Option<usize>,
    /// The largest file it may write (`RLIMIT_FSIZE`; past it the write
    /// fails and the command ends): bounds what goes to `stdout`'s file.
    pub max_file_bytes: Option<u64>,
    pub timeout: Duration,
}

impl Sandbox {
    /// Runs `command` as `command.owner` in a sandbox shaped like a CLI
    /// process's (its workspace writable, the system read-only, its own
    /// `/tmp`), with no network at all. With the sandbox off, it runs as the
    /// server's user in the folder (the agent is unconfined then anyway).
    pub async fn run_offline(&self, command: OfflineCommand<'_>) -> std::io::Result<Output> {
        let program_path = Path::new("/usr/bin").join(command.program);
        let mounts = Mounts {
            cli: &program_path,
            workspace: command.workspace,
            config_dir: command.workspace,
            add_dirs: command.read_only,
            owner: command.owner,
            tenant: None,
            offline: true,
        };
        let confined = self.confine(&mounts, None).map_err(std::io::Error::other)?;
        let mut process = match &confined {
            Some(confined) => {
                let mut process = tokio::process::Command::new(&confined.program);
                process.args(&confined.args).arg(command.program);
                let fds = confined.raw_fds();
                let max_file = command.max_file_bytes;
                // SAFETY: the closure only calls fcntl and setrlimit
                // (async-signal-safe).
                unsafe {
                    process.pre_exec(move || {
                        Confinement::keep_open(&fds)?;
                        limit_file_size(max_file)
                    });
                }
                process
            }
            None => {
                let mut process = tokio::process::Command::new(command.program);
                process.current_dir(command.workspace.1);
                let max_file = command.max_file_bytes;
                // SAFETY: the closure only calls setrlimit (async-signal-safe).
                unsafe {
                    process.pre_exec(move || limit_file_size(max_file));
                }
                process
            }
        };
        process
            .args(&command.args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/tmp")
            .env("LANG", "C.UTF-8")
            .envs(command.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        match command.stdout {
            Some(file) => process.stdout(Stdio::from(file)),
            None => process.stdout(Stdio::piped()),
        };
        let mut child = process.spawn()?;
        // bwrap holds its own copies of the descriptors from here on.
        drop(confined);
        let limit = command.max_stdout.unwrap_or(usize::MAX);
        let run = async {
            use tokio::io::AsyncReadExt as _;
            let mut stdout = Vec::new();
            let mut stderr = Vec::new();
            let out_pipe = child.stdout.take();
            let err_pipe = child.stderr.take();
            let read_out = async {
                if let Some(pipe) = out_pipe {
                    // One byte more than allowed tells "too large" apart.
                    let mut limited = pipe.take(limit.saturating_add(1) as u64);
                    limited.read_to_end(&mut stdout).await?;
                }
                Ok::<_, std::io::Error>(())
            };
            let read_err = async {
                if let Some(mut pipe) = err_pipe {
                    // Read to the end (a full pipe would stall the command),
                    // keep the first 64 KiB.
                    let mut chunk = [0u8; 8192];
                    loop {
                        let n = pipe.read(&mut chunk).await?;
                        if n == 0 {
                            break;
                        }
                        let room = (64 * 1024usize).saturating_sub(stderr.len());
                        stderr.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
                Ok::<_, std::io::Error>(())
            };
            let (a, b) = tokio::join!(read_out, read_err);
            a?;
            b?;
            if stdout.len() > limit {
                let _ = child.kill().await;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::FileTooLarge,
                    format!(
                        "the output of {} is larger than {limit} bytes",
                        command.program
                    ),
                ));
            }
            let status = child.wait().await?;
            Ok(Output {
                status,
                stdout,
                stderr,
            })
        };
        match tokio::time::timeout(command.timeout, run).await {
            Ok(out) => out,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{} took longer than {:?}", command.program, command.timeout),
            )),
        }
    }
}

/// `RLIMIT_FSIZE` of the child, when given. Async-signal-safe.
fn limit_file_size(max: Option<u64>) -> std::io::Result<()> {
    let Some(max) = max else { return Ok(()) };
    let limit = libc::rlimit {
        rlim_cur: max,
        rlim_max: max,
    };
    // SAFETY: setrlimit with a valid struct; no memory is shared.
    if unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
