//! The agents' egress proxy (`AGENT_NETWORK=proxy`): an HTTP(S) proxy of the
//! server that a sandboxed CLI process reaches through a unix socket of its
//! own (relayed to `127.0.0.1:3128` inside its network namespace). The
//! socket says whose process is asking, so every connection is checked
//! against that tenant's allowlist (`tenant_egress_hosts`), then against
//! the special-purpose address ranges (`AGENT_EGRESS_PRIVATE_HOSTS` exempts
//! a host), and only then made. A refusal is a 403 whose body names the host
//! and how to allow it; it is logged and counted.
//!
//! The proxy runs on an arbiter (thread) of its own, so a busy download
//! never delays the session actors.

pub mod allowlist;
mod connection;
pub mod head;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use crate::db::DbPool;

/// `AGENT_EGRESS_*`.
#[derive(Debug, Clone)]
pub struct EgressSettings {
    /// `AGENT_EGRESS_PRIVATE_HOSTS`: hosts the proxy may reach even where
    /// they resolve to loopback, private or link-local addresses (a tenant
    /// must still list them).
    pub private_hosts: Vec<String>,
    /// `AGENT_EGRESS_MAX_CONNECTIONS`: open connections per CLI process (64).
    pub max_connections: usize,
    /// `AGENT_EGRESS_IDLE_TIMEOUT_SECONDS`: a connection with no byte either
    /// way for this long is closed (300).
    pub idle_timeout: Duration,
}

/// Whose process a listener serves.
#[derive(Debug, Clone)]
pub struct Owner {
    pub tenant_id: String,
    pub session_id: String,
}

/// The proxy, shared by every session actor.
#[derive(Clone)]
pub struct EgressProxy {
    inner: Arc<Inner>,
}

struct Inner {
    pool: DbPool,
    settings: EgressSettings,
    arbiter: actix_rt::ArbiterHandle,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.arbiter.stop();
    }
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// One CLI process's proxy socket; dropped with the process, it stops
/// serving (open connections are cut) and its file is removed.
#[derive(Debug)]
pub struct ProcessListener {
    path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for ProcessListener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl EgressProxy {
    /// Starts the proxy's arbiter; must run inside the actix system.
    pub fn new(pool: DbPool, settings: EgressSettings) -> EgressProxy {
        let arbiter = actix_rt::Arbiter::new().handle();
        EgressProxy {
            inner: Arc::new(Inner {
                pool,
                settings,
                arbiter,
            }),
        }
    }

    /// Serves `owner`'s process on a new unix socket at `path` (which any
    /// user may connect to: only the process's sandbox sees it).
    pub fn listen(&self, path: &Path, owner: Owner) -> std::io::Result<ProcessListener> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(path);
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        // The agent user (another uid) connects through the bound file.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        let (stop, stopped) = oneshot::channel();
        let proxy = self.clone();
        let started = self
            .inner
            .arbiter
            .spawn(async move { proxy.serve(listener, owner, stopped).await });
        if !started {
            let _ = std::fs::remove_file(path);
            return Err(std::io::Error::other("the egress proxy has stopped"));
        }
        Ok(ProcessListener {
            path: path.to_path_buf(),
            stop: Some(stop),
        })
    }

    async fn serve(
        self,
        listener: std::os::unix::net::UnixListener,
        owner: Owner,
        mut stopped: oneshot::Receiver<()>,
    ) {
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serve an egress proxy socket");
                return;
            }
        };
        let owner = Arc::new(owner);
        let slots = Arc::new(tokio::sync::Semaphore::new(
            self.inner.settings.max_connections,
        ));
        // Dropped when the process ends: its open connections go with it.
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        // Out of descriptors, say: a pause instead of a spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    };
                    let permit = slots.clone().try_acquire_owned().ok();
                    let context = connection::Context {
                        proxy: self.clone(),
                        owner: owner.clone(),
                    };
                    connections.spawn(async move {
                        connection::handle(stream, context, permit).await;
                    });
                }
            }
        }
    }
}
