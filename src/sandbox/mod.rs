//! How a CLI process is confined. The agent runs commands the model chose,
//! so it is untrusted code: each CLI process starts inside a bubblewrap
//! sandbox of its own (new mount, PID, IPC and UTS namespaces; only the
//! system, the CLI, its session's workspace and its tenant's CLI state are
//! there), as an unprivileged agent user when the server is root, in a
//! cgroup with memory, process and CPU limits.

pub mod cgroup;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use cgroup::Limits;

/// `AGENT_SANDBOX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Sandbox where it works, else unconfined with a warning.
    Auto,
    /// Sandbox, or refuse to start.
    Bwrap,
    /// Unconfined.
    Off,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        match s {
            "auto" => Ok(Mode::Auto),
            "bwrap" => Ok(Mode::Bwrap),
            "off" => Ok(Mode::Off),
            _ => Err("expected auto, bwrap or off".into()),
        }
    }
}

/// The sandbox settings (`AGENT_*`).
#[derive(Debug, Clone)]
pub struct SandboxSettings {
    pub mode: Mode,
    /// `AGENT_UID` / `AGENT_GID`: who the agent is when the server is root.
    pub agent_uid: u32,
    pub agent_gid: u32,
    /// `AGENT_TMP_MAX_MB`: size of the sandbox's own `/tmp` (a tmpfs, so
    /// memory rather than disk).
    pub tmp_max_mb: u64,
    pub limits: Limits,
}

/// The parts of `/etc` that name resolution, TLS and everyday tools read.
const ETC_ENTRIES: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
    "/etc/terminfo",
    "/etc/mime.types",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/gitconfig",
    "/etc/python3",
    "/etc/pip.conf",
    // The operator's managed policy for the CLI, where there is one.
    "/etc/claude-code",
];
/// Top-level folders that are, on merged-/usr systems, links into `/usr`.
const SYSTEM_LINKS: &[&str] = &["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/// What `/health` says of the sandbox.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SandboxStatus {
    /// `bwrap` (confined) or `off`.
    pub mode: &'static str,
    /// `uid:gid` the agent runs as, when the server is root; else the
    /// server's own user in a user namespace.
    pub agent_user: Option<String>,
    /// `v1`, `v2`, or `null` when no limits apply.
    pub cgroup: Option<&'static str>,
    pub limits: Option<Limits>,
    /// Why something is missing, with the fix.
    pub missing: Vec<String>,
}

/// The confinement detected at start; shared by every session actor.
#[derive(Debug)]
pub struct Sandbox {
    bwrap: Option<PathBuf>,
    /// `setpriv`, with the agent's ids, when the server is root.
    drop_to: Option<(PathBuf, u32, u32)>,
    cgroups: Option<cgroup::Hierarchy>,
    limits: Limits,
    /// `/tmp`'s size in bytes.
    tmp_bytes: u64,
    /// A copy of `/etc/passwd` and `/etc/group` that name the agent user.
    identity: Option<(PathBuf, PathBuf)>,
    missing: Vec<String>,
}

/// How one process is started confined.
#[derive(Debug)]
pub struct Confinement {
    /// `bwrap`.
    pub program: PathBuf,
    /// Its arguments, up to (and including) the privilege drop; the CLI and
    /// its own arguments follow.
    pub args: Vec<String>,
    /// The CLI as the sandbox sees it (links resolved: only the installation
    /// folder is there, not the links that lead to it).
    pub cli: PathBuf,
    /// Variables the CLI gets instead of the server's.
    pub env: BTreeMap<String, String>,
    pub group: Option<cgroup::Group>,
}

/// The paths one process may see besides the system.
pub struct Mounts<'a> {
    pub cli: &'a Path,
    pub workspace: &'a Path,
    pub config_dir: &'a Path,
    pub add_dirs: &'a [PathBuf],
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

impl Sandbox {
    /// Unconfined: what `off` gives, and `auto` where the sandbox cannot run.
    pub fn off(settings: &SandboxSettings, missing: Vec<String>) -> Sandbox {
        Sandbox {
            bwrap: None,
            drop_to: None,
            cgroups: None,
            limits: settings.limits,
            tmp_bytes: settings.tmp_max_mb.saturating_mul(1024 * 1024),
            identity: None,
            missing,
        }
    }

    /// Probes what this host allows: runs a trivial sandboxed command and
    /// makes this server's cgroup folders. `Err` only in mode `bwrap`.
    pub async fn probe(settings: &SandboxSettings, data_dir: &Path) -> Result<Sandbox, String> {
        if settings.mode == Mode::Off {
            return Ok(Sandbox::off(settings, vec!["AGENT_SANDBOX=off".into()]));
        }
        let mut missing = Vec::new();
        let refuse_or_off = |missing: Vec<String>| -> Result<Sandbox, String> {
            if settings.mode == Mode::Bwrap {
                Err(format!(
                    "AGENT_SANDBOX=bwrap, but the sandbox cannot run: {}",
                    missing.join("; ")
                ))
            } else {
                Ok(Sandbox::off(settings, missing))
            }
        };
        let Some(bwrap) = find_program("bwrap") else {
            return refuse_or_off(vec![
                "bwrap is not installed (Debian: apt-get install bubblewrap)".into(),
            ]);
        };
        let drop_to = if is_root() {
            match find_program("setpriv") {
                Some(setpriv) => Some((setpriv, settings.agent_uid, settings.agent_gid)),
                None => {
                    return refuse_or_off(vec![
                        "setpriv is not installed (Debian: util-linux)".into()
                    ])
                }
            }
        } else {
            None
        };
        let mut sandbox = Sandbox {
            bwrap: Some(bwrap),
            drop_to,
            cgroups: None,
            limits: settings.limits,
            tmp_bytes: settings.tmp_max_mb.saturating_mul(1024 * 1024),
            identity: None,
            missing: Vec::new(),
        };
        if sandbox.drop_to.is_some() {
            match write_identity(data_dir, settings.agent_uid, settings.agent_gid) {
                Ok(files) => sandbox.identity = Some(files),
                Err(e) => missing.push(format!("no passwd entry for the agent user: {e}")),
            }
        }
        if let Err(e) = sandbox.try_run().await {
            return refuse_or_off(vec![format!(
                "a sandboxed test command failed: {e} (bwrap needs unprivileged user namespaces, or a server running as root with CAP_SYS_ADMIN)"
            )]);
        }
        let instance = format!(
            "claude-code-api-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        match cgroup::Hierarchy::create(&instance) {
            Ok(h) => sandbox.cgroups = Some(h),
            Err(e) => missing.push(format!(
                "no resource limits: {e} (needs a writable cgroup v2 subtree, or the v1 memory and pids controllers, as root)"
            )),
        }
        sandbox.missing = missing;
        Ok(sandbox)
    }

    /// Runs `true` in a sandbox shaped like a CLI process's.
    async fn try_run(&self) -> Result<(), String> {
        let here = std::env::temp_dir();
        let Some(confined) = self.confine(
            &Mounts {
                cli: Path::new("/usr/bin/true"),
                workspace: &here,
                config_dir: &here,
                add_dirs: &[],
            },
            None,
        )?
        else {
            return Err("no bwrap".into());
        };
        let out = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            tokio::process::Command::new(&confined.program)
                .args(&confined.args)
                .arg("/usr/bin/true")
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .output(),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn is_on(&self) -> bool {
        self.bwrap.is_some()
    }

    /// The owner that files the agent must write get (uploads, workspaces,
    /// CLI state), when the agent is another user than the server.
    pub fn agent_owner(&self) -> Option<(u32, u32)> {
        self.drop_to.as_ref().map(|(_, uid, gid)| (*uid, *gid))
    }

    pub fn status(&self) -> SandboxStatus {
        SandboxStatus {
            mode: if self.is_on() { "bwrap" } else { "off" },
            agent_user: self.agent_owner().map(|(u, g)| format!("{u}:{g}")),
            cgroup: self.cgroups.as_ref().map(cgroup::Hierarchy::version),
            limits: self.cgroups.as_ref().map(|_| self.limits),
            missing: self.missing.clone(),
        }
    }

    /// The command line that confines a process to `mounts`, with a cgroup
    /// named `group` when limits are available. `None` when the sandbox is off.
    pub fn confine(
        &self,
        mounts: &Mounts<'_>,
        group: Option<&str>,
    ) -> Result<Option<Confinement>, String> {
        let Some(bwrap) = &self.bwrap else {
            return Ok(None);
        };
        let mut args: Vec<String> = [
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if self.drop_to.is_none() {
            // Not root: a user namespace stands in for the privileges.
            args.push("--unshare-user".into());
        }
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        push(&[
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--ro-bind",
            "/usr",
            "/usr",
        ]);
        for link in SYSTEM_LINKS {
            let path = Path::new(link);
            if let Ok(target) = std::fs::read_link(path) {
                push(&["--symlink", &target.to_string_lossy(), link]);
            } else if path.is_dir() {
                push(&["--ro-bind", link, link]);
            }
        }
        push(&["--perms", "0755", "--dir", "/etc"]);
        for entry in ETC_ENTRIES {
            push(&["--ro-bind-try", entry, entry]);
        }
        if let Some((passwd, group_file)) = &self.identity {
            push(&["--ro-bind", &passwd.to_string_lossy(), "/etc/passwd"]);
            push(&["--ro-bind", &group_file.to_string_lossy(), "/etc/group"]);
        } else {
            push(&["--ro-bind-try", "/etc/passwd", "/etc/passwd"]);
            push(&["--ro-bind-try", "/etc/group", "/etc/group"]);
        }
        // Sized: a tmpfs is memory, and unsized it could take half the host's.
        let tmp_size = self.tmp_bytes.to_string();
        push(&["--perms", "1777", "--size", &tmp_size, "--tmpfs", "/tmp"]);

        let cli_root = cli_install_root(mounts.cli);
        let mut binds: Vec<(&Path, bool)> = Vec::new();
        if !cli_root.starts_with("/usr") {
            binds.push((&cli_root, false));
        }
        binds.extend(mounts.add_dirs.iter().map(|d| (d.as_path(), false)));
        binds.push((mounts.workspace, true));
        binds.push((mounts.config_dir, true));
        // Folders above each bound path, made traversable for the agent.
        let mut made: Vec<PathBuf> = vec!["/".into(), "/tmp".into(), "/usr".into()];
        for (path, _) in &binds {
            for ancestor in path.ancestors().collect::<Vec<_>>().into_iter().rev() {
                if ancestor == *path || made.iter().any(|m| m == ancestor) {
                    continue;
                }
                made.push(ancestor.to_path_buf());
                push(&["--perms", "0755", "--dir", &ancestor.to_string_lossy()]);
            }
        }
        for (path, writable) in &binds {
            let p = path.to_string_lossy();
            push(&[if *writable { "--bind" } else { "--ro-bind" }, &p, &p]);
        }
        push(&["--chdir", &mounts.workspace.to_string_lossy(), "--"]);
        if let Some((setpriv, uid, gid)) = &self.drop_to {
            push(&[
                &setpriv.to_string_lossy(),
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--no-new-privs",
                "--",
            ]);
        }
        let group = match (&self.cgroups, group) {
            (Some(h), Some(name)) => Some(h.group(name, &self.limits)?),
            _ => None,
        };
        let env = BTreeMap::from([
            (
                "HOME".to_owned(),
                mounts.config_dir.to_string_lossy().into_owned(),
            ),
            ("TMPDIR".to_owned(), "/tmp".to_owned()),
        ]);
        Ok(Some(Confinement {
            program: bwrap.clone(),
            args,
            cli: std::fs::canonicalize(mounts.cli).unwrap_or_else(|_| mounts.cli.to_path_buf()),
            env,
            group,
        }))
    }

    /// Gives `dir` (and, when its top is not the agent's yet, everything in
    /// it) to the agent user; `always_walk` checks every entry (small
    /// folders, such as the CLI state, where the server writes too).
    pub fn hand_over(&self, dir: &Path, always_walk: bool) -> std::io::Result<()> {
        let Some((uid, gid)) = self.agent_owner() else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        use std::os::unix::fs::MetadataExt as _;
        let top = std::fs::symlink_metadata(dir)?;
        if top.uid() == uid && !always_walk {
            return Ok(());
        }
        chown_tree(dir, uid, gid)
    }

    /// Removes this server's cgroup folders (at shutdown).
    pub fn shutdown(&self) {
        if let Some(h) = &self.cgroups {
            h.remove();
        }
    }
}

/// The folder of the CLI's installation: the package folder of an npm
/// install (`…/node_modules/@anthropic-ai/claude-code`), else the binary's
/// own folder.
fn cli_install_root(cli: &Path) -> PathBuf {
    let real = std::fs::canonicalize(cli).unwrap_or_else(|_| cli.to_path_buf());
    let package = real
        .ancestors()
        .find(|a| a.ends_with("@anthropic-ai/claude-code"))
        .map(Path::to_path_buf);
    package.unwrap_or_else(|| real.parent().unwrap_or(Path::new("/")).to_path_buf())
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::symlink_metadata(path)?;
    if meta.uid() != uid || meta.gid() != gid {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// `/etc/passwd` and `/etc/group` with the agent user added, so tools that
/// look their user up (git, ssh, Python's getpass) find one.
fn write_identity(data_dir: &Path, uid: u32, gid: u32) -> std::io::Result<(PathBuf, PathBuf)> {
    let dir = data_dir.join("sandbox");
    std::fs::create_dir_all(&dir)?;
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let uid_taken = passwd
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&uid.to_string()));
    let gid_taken = group
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&gid.to_string()));
    let mut passwd = passwd;
    if !uid_taken {
        passwd.push_str(&format!("agent:x:{uid}:{gid}:agent:/tmp:/bin/bash\n"));
    }
    let mut group = group;
    if !gid_taken {
        group.push_str(&format!("agent:x:{gid}:\n"));
    }
    let passwd_file = dir.join("passwd");
    let group_file = dir.join("group");
    std::fs::write(&passwd_file, passwd)?;
    std::fs::write(&group_file, group)?;
    Ok((passwd_file, group_file))
}
