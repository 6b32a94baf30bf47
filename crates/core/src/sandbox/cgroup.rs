//! Resource limits per CLI process: a cgroup of its own (v2 where the host
//! mounts it with a writable subtree, else the v1 `memory`, `pids` and `cpu`
//! controllers), joined before the process runs anything, emptied and removed
//! when the process ends.

use std::ffi::CString;
use std::path::{Path, PathBuf};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// The CFS period used with `AGENT_CPU_MAX` (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// The limits each process gets.
#[derive(Debug, Clone, Copy, serde::Serialize, utoipa::ToSchema)]
pub struct Limits {
    pub memory_max_mb: u64,
    pub pids_max: u64,
    /// Cores; `None` = unlimited.
    pub cpu_max: Option<f64>,
}

/// Where this server's process groups are made.
#[derive(Debug, Clone)]
pub enum Hierarchy {
    /// One folder per controller, each this server's own.
    V1 {
        memory: PathBuf,
        pids: PathBuf,
        cpu: Option<PathBuf>,
    },
    /// One folder with the controllers enabled for its children.
    V2 { base: PathBuf },
}

impl Hierarchy {
    pub fn version(&self) -> &'static str {
        match self {
            Hierarchy::V1 { .. } => "v1",
            Hierarchy::V2 { .. } => "v2",
        }
    }

    /// Makes this server's folders (named `instance`) under its own cgroups,
    /// so the host's limits on the server still bound its agents.
    pub fn create(instance: &str) -> Result<Hierarchy, String> {
        let own = own_cgroups();
        if Path::new(CGROUP_ROOT).join("cgroup.controllers").exists() {
            return create_v2(instance);
        }
        let dir = |controller: &str| -> Result<PathBuf, String> {
            let relative = own
                .iter()
                .find(|(names, _)| names.split(',').any(|n| n == controller))
                .map_or("/", |(_, path)| path.as_str());
            let parent = Path::new(CGROUP_ROOT)
                .join(controller)
                .join(relative.trim_start_matches('/'));
            let path = parent.join(instance);
            std::fs::create_dir_all(&path)
                .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
            Ok(path)
        };
        let memory = dir("memory")?;
        let pids = dir("pids")?;
        let cpu = dir("cpu").ok();
        Ok(Hierarchy::V1 { memory, pids, cpu })
    }

    /// A group for one process, with `limits` written. Each call gets a
    /// folder of its own: a retired process's folder is removed a moment
    /// after it ends, which must never be its successor's (same session).
    pub fn group(&self, name: &str, limits: &Limits) -> Result<Group, String> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let unique = format!(
            "{name}-{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let make = |parent: &Path| -> Result<PathBuf, String> {
            let dir = parent.join(&unique);
            std::fs::create_dir(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            Ok(dir)
        };
        let memory_bytes = limits.memory_max_mb * 1024 * 1024;
        let mut dirs = Vec::new();
        match self {
            Hierarchy::V1 { memory, pids, cpu } => {
                let m = make(memory)?;
                write(&m.join("memory.limit_in_bytes"), &memory_bytes.to_string())?;
                dirs.push(m);
                let p = make(pids)?;
                write(&p.join("pids.max"), &limits.pids_max.to_string())?;
                dirs.push(p);
                if let (Some(cpu), Some(cores)) = (cpu, limits.cpu_max) {
                    let c = make(cpu)?;
                    write(&c.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                    let quota = (cores * CPU_PERIOD_US as f64).round() as u64;
                    write(&c.join("cpu.cfs_quota_us"), &quota.to_string())?;
                    dirs.push(c);
                }
            }
            Hierarchy::V2 { base } => {
                let g = make(base)?;
                write(&g.join("memory.max"), &memory_bytes.to_string())?;
                let _ = write(&g.join("memory.swap.max"), "0");
                write(&g.join("pids.max"), &limits.pids_max.to_string())?;
                if let Some(cores) = limits.cpu_max {
                    let quota = (cores * CPU_PERIOD_US as f64).round() as u64;
                    write(&g.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
                }
                dirs.push(g);
            }
        }
        let procs = dirs
            .iter()
            .filter_map(|d| CString::new(d.join("cgroup.procs").to_string_lossy().as_bytes()).ok())
            .collect();
        Ok(Group {
            dirs,
            procs: Joiner {
                procs: std::sync::Arc::new(procs),
            },
            v2: matches!(self, Hierarchy::V2 { .. }),
        })
    }

    /// Removes this server's folders (at shutdown; groups are gone by then).
    pub fn remove(&self) {
        let dirs: Vec<&PathBuf> = match self {
            Hierarchy::V1 { memory, pids, cpu } => [Some(memory), Some(pids), cpu.as_ref()]
                .into_iter()
                .flatten()
                .collect(),
            Hierarchy::V2 { base } => vec![base],
        };
        for dir in dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn create_v2(instance: &str) -> Result<Hierarchy, String> {
    // The root's children may use the controllers when the root enables
    // them for its subtree; a server in a container has its own root.
    let root = Path::new(CGROUP_ROOT);
    let _ = write(&root.join("cgroup.subtree_control"), "+memory +pids +cpu");
    let enabled = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
    if !(enabled.contains("memory") && enabled.contains("pids")) {
        return Err(
            "cgroup v2: the memory and pids controllers are not enabled for the subtree".into(),
        );
    }
    let base = root.join(instance);
    std::fs::create_dir_all(&base).map_err(|e| format!("cannot create {}: {e}", base.display()))?;
    let _ = write(&base.join("cgroup.subtree_control"), "+memory +pids +cpu");
    Ok(Hierarchy::V2 { base })
}

/// `(controllers, path)` of each line of `/proc/self/cgroup`.
fn own_cgroups() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let _id = parts.next()?;
            let names = parts.next()?.to_owned();
            let path = parts.next()?.to_owned();
            Some((names, path))
        })
        .collect()
}

fn write(path: &Path, value: &str) -> Result<(), String> {
    std::fs::write(path, value).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One process's cgroup: joined by the child before it runs the sandbox,
/// and everything in it killed and the folders removed when dropped.
#[derive(Debug)]
pub struct Group {
    dirs: Vec<PathBuf>,
    procs: Joiner,
    v2: bool,
}

/// The `cgroup.procs` files of a group, ready for the child to write its pid
/// to between fork and exec.
#[derive(Debug, Clone)]
pub struct Joiner {
    procs: std::sync::Arc<Vec<CString>>,
}

impl Group {
    pub fn procs_handle(&self) -> Joiner {
        self.procs.clone()
    }
}

impl Joiner {
    /// Moves the calling process into the group. Runs in the child between
    /// fork and exec, so it only makes system calls (no allocation, no locks).
    pub fn join_self(&self) -> std::io::Result<()> {
        // SAFETY: getpid, open, write and close are async-signal-safe; the
        // paths were made before the fork.
        unsafe {
            let mut digits = [0u8; 20];
            let mut n = libc::getpid() as u64;
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            for path in self.procs.iter() {
                let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let len = digits.len() - at;
                let written = libc::write(fd, digits[at..].as_ptr().cast(), len);
                libc::close(fd);
                if written < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

impl Group {
    /// Kills every process in the group (`setsid` children included).
    pub fn kill_all(&self) {
        if self.v2 {
            if let Some(dir) = self.dirs.first() {
                if write(&dir.join("cgroup.kill"), "1").is_ok() {
                    return;
                }
            }
        }
        for dir in &self.dirs {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                // SAFETY: kill only sends a signal.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill_all();
        let dirs = std::mem::take(&mut self.dirs);
        // A killed process leaves its group a moment later; the folder can
        // only be removed once it is empty.
        std::thread::spawn(move || {
            for _ in 0..50 {
                dirs.iter().for_each(|d| {
                    let _ = std::fs::remove_dir(d);
                });
                if dirs.iter().all(|d| !d.exists()) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
    }
}
