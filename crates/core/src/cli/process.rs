//! One running CLI process: its own process group (so tool children die with
//! it), an ordered stdin writer, an unbounded stdout line reader, a drained
//! stderr tail, and a pid file so a later server start can kill orphans.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::sync::{mpsc, oneshot};

use super::command::{self, LaunchPlan};
use crate::sandbox::Confinement;

/// Longest wait for a killed process to be reaped.
const KILL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Bytes of stderr kept for error reports.
const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// What the process produced, tagged with the generation it belongs to so a
/// late line from a replaced process is never mistaken for the current one.
#[derive(Debug)]
pub struct ProcessEvent {
    pub generation: u64,
    pub output: ProcessOutput,
}

#[derive(Debug)]
pub enum ProcessOutput {
    /// One stdout line, without its newline (any length).
    Line(String),
    /// stdout closed and the process was reaped.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

/// Handle to a live process. Dropping it kills the whole process group.
#[derive(Debug)]
pub struct CliProcess {
    pub pid: u32,
    pub generation: u64,
    stdin: Option<mpsc::UnboundedSender<String>>,
    stderr: Arc<Mutex<VecDeque<u8>>>,
    /// Fires once the process has been reaped.
    exited: Option<oneshot::Receiver<()>>,
    /// The sandbox's cgroup: everything in it dies with the process.
    group: Option<crate::sandbox::cgroup::Group>,
    /// The sandbox's network (its egress proxy socket closes with the process).
    _network: Option<crate::sandbox::network::ProcessNetwork>,
}

impl CliProcess {
    /// Starts the CLI described by `plan`, inside `confinement` when given.
    /// Output arrives on `events`.
    pub fn spawn(
        plan: &LaunchPlan,
        confinement: Option<crate::sandbox::Confinement>,
        pid_dir: &Path,
        generation: u64,
        events: mpsc::UnboundedSender<ProcessEvent>,
    ) -> io::Result<CliProcess> {
        std::fs::create_dir_all(&plan.config_dir)?;
        if confinement.is_some() {
            // Inside the sandbox a missing CLI would only be bwrap's riddle.
            std::fs::metadata(&plan.cli_path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot start {}: {e}", plan.cli_path.display()),
                )
            })?;
        }
        let mut env = command::env(plan);
        // Descriptors bwrap reads; closed here once the child has them.
        let mut inherited = Vec::new();
        let (program, mut cmd, group, network) = match confinement {
            Some(c) => {
                let fds = c.raw_fds();
                let mut cmd = tokio::process::Command::new(&c.program);
                // SAFETY: the closure only calls fcntl (async-signal-safe).
                unsafe {
                    cmd.pre_exec(move || Confinement::keep_open(&fds));
                }
                env.extend(c.env);
                cmd.args(&c.args).arg(&c.cli);
                inherited = c.fds;
                (c.program, cmd, c.group, c.network)
            }
            None => (
                plan.cli_path.clone(),
                tokio::process::Command::new(&plan.cli_path),
                None,
                None,
            ),
        };
        if let Some(group) = &group {
            let procs = group.procs_handle();
            // SAFETY: the closure only makes async-signal-safe system calls
            // on paths prepared before the fork (see `Group::join_self`).
            unsafe {
                cmd.pre_exec(move || procs.join_self());
            }
        }
        if let Some(max) = plan.file_size_max {
            let limit = libc::rlimit {
                rlim_cur: max,
                rlim_max: max,
            };
            // SAFETY: setrlimit is async-signal-safe; `limit` is a plain
            // value copied into the closure.
            unsafe {
                cmd.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) == 0 {
                        Ok(())
                    } else {
                        Err(io::Error::last_os_error())
                    }
                });
            }
        }
        cmd.args(command::args(&plan.spec, &plan.conversation))
            .current_dir(&plan.workspace)
            .env_clear()
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            io::Error::new(e.kind(), format!("cannot start {}: {e}", program.display()))
        })?;
        drop(inherited);
        let pid = child.id().unwrap_or(0);
        let pid_file = write_pid_file(pid_dir, pid, &program);

        let (stdin_tx, mut stdin_rx) = mpsc::unbounded_channel::<String>();
        if let Some(mut stdin) = child.stdin.take() {
            // One writer task keeps lines whole and in order.
            tokio::spawn(async move {
                while let Some(mut line) = stdin_rx.recv().await {
                    line.push('\n');
                    if stdin.write_all(line.as_bytes()).await.is_err()
                        || stdin.flush().await.is_err()
                    {
                        break;
                    }
                }
            });
        }

        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_BYTES)));
        if let Some(mut err) = child.stderr.take() {
            let ring = stderr.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut ring) = ring.lock() {
                        ring.extend(&buf[..n]);
                        let excess = ring.len().saturating_sub(STDERR_TAIL_BYTES);
                        ring.drain(..excess);
                    }
                }
            });
        }

        let stdout = child.stdout.take();
        let (exited_tx, exited_rx) = oneshot::channel();
        tokio::spawn(async move {
            if let Some(stdout) = stdout {
                let mut reader = BufReader::new(stdout);
                let mut buf = Vec::new();
                loop {
                    buf.clear();
                    match reader.read_until(b'\n', &mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if buf.last() == Some(&b'\n') {
                                buf.pop();
                            }
                            let line = String::from_utf8_lossy(&buf).into_owned();
                            let event = ProcessEvent {
                                generation,
                                output: ProcessOutput::Line(line),
                            };
                            if events.send(event).is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            let status = child.wait().await.ok();
            if let Some(file) = pid_file {
                let _ = std::fs::remove_file(file);
            }
            let _ = exited_tx.send(());
            use std::os::unix::process::ExitStatusExt;
            let _ = events.send(ProcessEvent {
                generation,
                output: ProcessOutput::Exited {
                    code: status.and_then(|s| s.code()),
                    signal: status.and_then(|s| s.signal()),
                },
            });
        });

        Ok(CliProcess {
            pid,
            generation,
            stdin: Some(stdin_tx),
            stderr,
            exited: Some(exited_rx),
            group,
            _network: network,
        })
    }

    /// Queues one line for stdin; `false` when the process no longer reads.
    pub fn send_line(&self, line: String) -> bool {
        self.stdin.as_ref().is_some_and(|tx| tx.send(line).is_ok())
    }

    /// The last few KiB the process wrote to stderr.
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|ring| {
                let bytes: Vec<u8> = ring.iter().copied().collect();
                String::from_utf8_lossy(&bytes).trim().to_owned()
            })
            .unwrap_or_default()
    }

    /// Stops the process the way it likes to be stopped: stdin closed, so it
    /// finishes writing its transcript and exits; killed (with its group)
    /// only if it has not exited within `grace` (zero: at once). Returns
    /// once it is reaped (or after `KILL_WAIT`), so whoever stops it finds
    /// no process of it still writing.
    pub async fn retire(mut self, grace: std::time::Duration) {
        self.stdin = None;
        let mut exited = self.exited.take();
        let mut reaped = false;
        if let Some(exited) = exited.as_mut() {
            if !grace.is_zero() {
                reaped = tokio::time::timeout(grace, exited).await.is_ok();
            }
        }
        self.kill();
        if let (false, Some(exited)) = (reaped, exited.as_mut()) {
            let _ = tokio::time::timeout(KILL_WAIT, exited).await;
        }
    }

    /// Kills the process and every tool process it started (those that
    /// left its process group too, when it runs in a cgroup of its own).
    pub fn kill(&mut self) {
        self.stdin = None;
        kill_group(self.pid);
        if let Some(group) = &self.group {
            group.kill_all();
        }
    }
}

impl Drop for CliProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

fn kill_group(pid: u32) {
    if let Ok(pgid) = i32::try_from(pid) {
        if pgid > 1 {
            // SAFETY: killpg only sends a signal; a stale group id yields ESRCH.
            unsafe {
                libc::killpg(pgid, libc::SIGKILL);
            }
        }
    }
}

fn write_pid_file(dir: &Path, pid: u32, cli_path: &Path) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let exe = std::fs::canonicalize(cli_path).unwrap_or_else(|_| cli_path.to_path_buf());
    let file = dir.join(format!("cli-{pid}.pid"));
    std::fs::write(&file, exe.to_string_lossy().as_bytes()).ok()?;
    Some(file)
}

/// Kills the process groups recorded by a previous server run that did not
/// stop cleanly. A recorded pid now used by another program is left alone.
pub fn reap_orphans(pid_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(pid_dir) else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        let pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("cli-"))
            .and_then(|n| n.strip_suffix(".pid"))
            .and_then(|n| n.parse::<u32>().ok());
        let recorded_exe = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        let Some(pid) = pid else { continue };
        let proc_exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
        let same_program = match &proc_exe {
            Some(exe) => exe.to_string_lossy() == recorded_exe,
            // Leader gone: its group id stays reserved while members (tool
            // children) live, so signalling the group reaches only them.
            None => true,
        };
        if same_program {
            kill_group(pid);
            killed += 1;
        }
    }
    killed
}
