//! How a CLI process is confined. The agent runs commands the model chose,
//! so it is untrusted code: each CLI process starts inside a bubblewrap
//! sandbox of its own (new mount, PID, IPC and UTS namespaces; only the
//! system, the CLI, its session's workspace and its tenant's CLI state are
//! there), as an unprivileged agent user when the server is root, in a
//! cgroup with memory, process and CPU limits, and in a network namespace
//! of its own (`network`).

pub mod cgroup;
pub mod network;
mod offline;
pub mod relay;
mod seccomp;
pub mod tree;
mod users;

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};

use serde::Serialize;

pub use cgroup::Limits;
pub use offline::OfflineCommand;
pub use tree::{Owner, Tree};

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
    /// `AGENT_UID` / `AGENT_GID`: the first agent user when the server is
    /// root; each tenant gets its own, counting up from these.
    pub agent_uid: u32,
    pub agent_gid: u32,
    /// `AGENT_UID_COUNT`: how many agent users (tenants) there can be.
    pub agent_uid_count: u32,
    /// `AGENT_SECCOMP`: refuse namespaces, mounts, tracing and kernel
    /// interfaces to the agent (true; false only to compare, or for a tool
    /// that truly needs one of them).
    pub seccomp: bool,
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
    /// The agent users' range, `uid-uid:gid-gid` (one user a tenant), when
    /// the server is root; else `null`: the server's own user in a user
    /// namespace.
    pub agent_user: Option<String>,
    /// Whether a seccomp filter refuses namespaces, mounts, tracing and
    /// kernel interfaces to the agent.
    pub seccomp: bool,
    /// `v1`, `v2`, or `null` when no limits apply.
    pub cgroup: Option<&'static str>,
    /// The agent's network: `none` or `proxy` (a namespace of its own), or
    /// `host` (shared with the server).
    pub network: &'static str,
    pub limits: Option<Limits>,
    /// Why something is missing, with the fix.
    pub missing: Vec<String>,
}

/// The confinement detected at start; shared by every session actor.
#[derive(Debug)]
pub struct Sandbox {
    bwrap: Option<PathBuf>,
    /// `setpriv`, when the server is root (the agent is dropped to its
    /// tenant's user inside the sandbox).
    setpriv: Option<PathBuf>,
    users: users::AgentUsers,
    cgroups: Option<cgroup::Hierarchy>,
    limits: Limits,
    seccomp: Option<seccomp::Programs>,
    /// The network namespace and its relays; `None` shares the host's.
    network: Option<network::AgentNetwork>,
    /// `/tmp`'s size in bytes.
    tmp_bytes: u64,
    missing: Vec<String>,
}

/// How one process is started confined.
#[derive(Debug)]
pub struct Confinement {
    /// `bwrap`.
    pub program: PathBuf,
    /// Its arguments, up to (and including) the privilege drop and the
    /// network relay; the CLI and its own arguments follow.
    pub args: Vec<String>,
    /// The CLI as the sandbox sees it (links resolved: only the installation
    /// folder is there, not the links that lead to it).
    pub cli: PathBuf,
    /// Variables the CLI gets instead of the server's.
    pub env: BTreeMap<String, String>,
    pub group: Option<cgroup::Group>,
    /// Descriptors bwrap reads (the folders it binds, the seccomp
    /// programs): kept open across `exec` in the child, closed here once
    /// it has started.
    pub fds: Vec<OwnedFd>,
    /// The process's network (its proxy socket lives as long as this).
    pub network: Option<network::ProcessNetwork>,
}

impl Confinement {
    /// For `pre_exec`: lets the descriptors in `fds` (raw numbers, taken
    /// before the fork) survive `exec`. Async-signal-safe: `fcntl` only.
    pub fn keep_open(fds: &[i32]) -> std::io::Result<()> {
        for &fd in fds {
            // SAFETY: fcntl on a descriptor this process holds.
            if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(())
    }

    pub fn raw_fds(&self) -> Vec<i32> {
        self.fds.iter().map(|fd| fd.as_raw_fd()).collect()
    }
}

/// What one process may see besides the system: its workspace and its
/// tenant's CLI state, each an opened folder (bound by descriptor, so a
/// path swapped for a link after the check binds nothing else), at the
/// path the process sees it under.
pub struct Mounts<'a> {
    pub cli: &'a Path,
    pub workspace: (&'a Tree, &'a Path),
    pub config_dir: (&'a Tree, &'a Path),
    /// The operator's `CLAUDE_ADD_DIRS`, read-only.
    pub add_dirs: &'a [PathBuf],
    /// The tenant's agent user (`None`: the server's own user).
    pub owner: Owner,
    /// Whose process it is (the egress proxy's allowlist); `None` for the probe.
    pub tenant: Option<&'a crate::egress::Owner>,
    /// No network at all (not even the model gateway): a command the server
    /// runs as the agent.
    pub offline: bool,
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
    pub fn off(settings: &SandboxSettings, data_dir: &Path, missing: Vec<String>) -> Sandbox {
        Sandbox {
            bwrap: None,
            setpriv: None,
            users: users::AgentUsers::none(settings, data_dir),
            cgroups: None,
            limits: settings.limits,
            seccomp: None,
            network: None,
            tmp_bytes: settings.tmp_max_mb.saturating_mul(1024 * 1024),
            missing,
        }
    }

    /// Probes what this host allows: runs a trivial sandboxed command and
    /// makes this server's cgroup folders. `Err` only in mode `bwrap`.
    pub async fn probe(
        settings: &SandboxSettings,
        data_dir: &Path,
        pool: crate::db::DbPool,
    ) -> Result<Sandbox, String> {
        if settings.mode == Mode::Off {
            return Ok(Sandbox::off(
                settings,
                data_dir,
                vec!["AGENT_SANDBOX=off".into()],
            ));
        }
        let mut missing = Vec::new();
        let refuse_or_off = |missing: Vec<String>| -> Result<Sandbox, String> {
            if settings.mode == Mode::Bwrap {
                Err(format!(
                    "AGENT_SANDBOX=bwrap, but the sandbox cannot run: {}",
                    missing.join("; ")
                ))
            } else {
                Ok(Sandbox::off(settings, data_dir, missing))
            }
        };
        let Some(bwrap) = find_program("bwrap") else {
            return refuse_or_off(vec![
                "bwrap is not installed (Debian: apt-get install bubblewrap)".into(),
            ]);
        };
        let setpriv = if is_root() {
            match find_program("setpriv") {
                Some(setpriv) => Some(setpriv),
                None => {
                    return refuse_or_off(vec![
                        "setpriv is not installed (Debian: util-linux)".into()
                    ])
                }
            }
        } else {
            None
        };
        let users = match &setpriv {
            Some(_) => users::AgentUsers::per_tenant(settings, data_dir, pool),
            None => users::AgentUsers::none(settings, data_dir),
        };
        let seccomp = match seccomp::Programs::build() {
            Ok(programs) if settings.seccomp => Some(programs),
            Ok(_) => {
                missing.push("no seccomp filter: AGENT_SECCOMP=false".into());
                None
            }
            Err(e) => {
                missing.push(format!("no seccomp filter: {e}"));
                None
            }
        };
        let mut sandbox = Sandbox {
            bwrap: Some(bwrap),
            setpriv,
            users,
            cgroups: None,
            limits: settings.limits,
            seccomp,
            network: None,
            tmp_bytes: settings.tmp_max_mb.saturating_mul(1024 * 1024),
            missing: Vec::new(),
        };
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

    /// Runs `true` in a sandbox shaped like a CLI process's, as the first
    /// agent user.
    async fn try_run(&self) -> Result<(), String> {
        let here = std::env::temp_dir();
        let tree = Tree::open(&here).map_err(|e| e.to_string())?;
        let owner = self.setpriv.as_ref().map(|_| self.users.first());
        let Some(confined) = self.confine(
            &Mounts {
                cli: Path::new("/usr/bin/true"),
                workspace: (&tree, &here),
                config_dir: (&tree, &here),
                add_dirs: &[],
                owner,
                tenant: None,
                offline: false,
            },
            None,
        )?
        else {
            return Err("no bwrap".into());
        };
        let fds = confined.raw_fds();
        let mut command = tokio::process::Command::new(&confined.program);
        command
            .args(&confined.args)
            .arg("/usr/bin/true")
            .env_clear()
            .env("PATH", "/usr/bin:/bin");
        // SAFETY: the closure only calls fcntl (async-signal-safe).
        unsafe {
            command.pre_exec(move || Confinement::keep_open(&fds));
        }
        let out = tokio::time::timeout(std::time::Duration::from_secs(20), command.output())
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

    /// The agent user of `tenant_id`'s processes and files, given on first
    /// use (`None` when the agent is the server's own user).
    pub async fn owner(&self, tenant_id: &str) -> std::io::Result<Owner> {
        if self.setpriv.is_none() {
            return Ok(None);
        }
        self.users.of(tenant_id).await.map(Some)
    }

    pub fn status(&self) -> SandboxStatus {
        SandboxStatus {
            mode: if self.is_on() { "bwrap" } else { "off" },
            agent_user: self.setpriv.as_ref().map(|_| self.users.range()),
            seccomp: self.is_on() && self.seccomp.is_some(),
            cgroup: self.cgroups.as_ref().map(cgroup::Hierarchy::version),
            network: self.network.as_ref().map_or("host", |n| n.mode().as_str()),
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
        let mut fds: Vec<OwnedFd> = Vec::new();
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
        if self.setpriv.is_none() {
            // Not root: a user namespace stands in for the privileges.
            args.push("--unshare-user".into());
        }
        if let Some(programs) = &self.seccomp {
            for fd in programs
                .descriptors()
                .map_err(|e| format!("seccomp: {e}"))?
            {
                args.extend(["--add-seccomp-fd".into(), fd.as_raw_fd().to_string()]);
                fds.push(fd);
            }
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
        match mounts.owner {
            Some((uid, gid)) => {
                let (passwd, group_file) = self
                    .users
                    .identity(uid, gid)
                    .map_err(|e| format!("cannot write the agent user's passwd entry: {e}"))?;
                push(&["--ro-bind", &passwd.to_string_lossy(), "/etc/passwd"]);
                push(&["--ro-bind", &group_file.to_string_lossy(), "/etc/group"]);
            }
            None => {
                push(&["--ro-bind-try", "/etc/passwd", "/etc/passwd"]);
                push(&["--ro-bind-try", "/etc/group", "/etc/group"]);
            }
        }
        // Sized: a tmpfs is memory, and unsized it could take half the host's.
        let tmp_size = self.tmp_bytes.to_string();
        push(&["--perms", "1777", "--size", &tmp_size, "--tmpfs", "/tmp"]);

        let cli_root = cli_install_root(mounts.cli);
        let mut read_only: Vec<&Path> = Vec::new();
        if !cli_root.starts_with("/usr") {
            read_only.push(&cli_root);
        }
        read_only.extend(mounts.add_dirs.iter().map(PathBuf::as_path));
        let writable = [mounts.workspace, mounts.config_dir];
        // Folders above each bound path, made traversable for the agent.
        let mut made: Vec<PathBuf> = vec!["/".into(), "/tmp".into(), "/usr".into()];
        let targets = read_only
            .iter()
            .copied()
            .chain(writable.iter().map(|(_, at)| *at));
        for path in targets {
            for ancestor in path.ancestors().collect::<Vec<_>>().into_iter().rev() {
                if ancestor == path || made.iter().any(|m| m == ancestor) {
                    continue;
                }
                made.push(ancestor.to_path_buf());
                push(&["--perms", "0755", "--dir", &ancestor.to_string_lossy()]);
            }
        }
        for path in &read_only {
            let p = path.to_string_lossy();
            push(&["--ro-bind", &p, &p]);
        }
        for (tree, at) in writable {
            let fd = tree
                .descriptor()
                .map_err(|e| format!("cannot open {}: {e}", at.display()))?;
            push(&[
                "--bind-fd",
                &fd.as_raw_fd().to_string(),
                &at.to_string_lossy(),
            ]);
            fds.push(fd);
        }
        let network = match &self.network {
            _ if mounts.offline => {
                args.push("--unshare-net".into());
                None
            }
            Some(net) => Some(
                net.process(mounts.tenant)
                    .map_err(|e| format!("cannot open the agent's network: {e}"))?,
            ),
            None => None,
        };
        if let Some(net) = &network {
            args.extend(net.namespace_args.iter().cloned());
        }
        let mut push = |items: &[&str]| args.extend(items.iter().map(|s| s.to_string()));
        push(&["--chdir", &mounts.workspace.1.to_string_lossy(), "--"]);
        if let (Some(setpriv), Some((uid, gid))) = (&self.setpriv, mounts.owner) {
            push(&[
                &setpriv.to_string_lossy(),
                &format!("--reuid={uid}"),
                &format!("--regid={gid}"),
                "--clear-groups",
                "--no-new-privs",
                "--",
            ]);
        }
        if let Some(net) = &network {
            args.extend(net.relay_args.iter().cloned());
        }
        let group = match (&self.cgroups, group) {
            (Some(h), Some(name)) => Some(h.group(name, &self.limits)?),
            _ => None,
        };
        let mut env = BTreeMap::from([
            (
                "HOME".to_owned(),
                mounts.config_dir.1.to_string_lossy().into_owned(),
            ),
            ("TMPDIR".to_owned(), "/tmp".to_owned()),
        ]);
        if let Some(net) = &network {
            env.extend(net.env.clone());
        }
        Ok(Some(Confinement {
            program: bwrap.clone(),
            args,
            cli: std::fs::canonicalize(mounts.cli).unwrap_or_else(|_| mounts.cli.to_path_buf()),
            env,
            group,
            fds,
            network,
        }))
    }

    /// Records something the sandbox lacks, for `/health` and the log.
    pub fn note_missing(&mut self, what: String) {
        self.missing.push(what);
    }

    /// Puts every later process in a network namespace of its own, after
    /// checking that one starts here (a sandboxed `true` behind the relay).
    pub async fn attach_network(&mut self, network: network::AgentNetwork) -> Result<(), String> {
        self.network = Some(network);
        if let Err(e) = self.try_run().await {
            self.network = None;
            tracing::debug!(error = %e, "the network probe failed");
            return Err(format!(
                "a sandboxed command in a network namespace of its own failed: {e}"
            ));
        }
        Ok(())
    }

    /// Gives the folder `tree` (and, when its top is not the agent's yet,
    /// everything in it) to the agent user `owner`, by descriptor.
    pub fn hand_over(&self, tree: &Tree, owner: Owner) -> std::io::Result<()> {
        match owner {
            Some(owner) => tree.give_to(owner),
            None => Ok(()),
        }
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
