//! This server as one node of a cluster: N servers on one PostgreSQL, the
//! database the only coordinator. Each instance heartbeats on the
//! database's clock (`db::models::instance`); a session runs on the instance
//! holding its lease (`db::models::lease`); a request for a session leased
//! elsewhere is forwarded there (`api::forward`).
//!
//! `Node` is what the rest of the server asks: am I in a cluster, who am I,
//! how long is a lease, how many nodes share the limits, am I draining.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ClusterSettings, NodeSettings};

/// Cheap to clone; shared by the services, the supervisor and the HTTP layer.
#[derive(Clone)]
pub struct Node {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` when this server runs alone.
    cluster: Option<ClusterSettings>,
    instance_id: String,
    heartbeat: Duration,
    live_nodes: AtomicUsize,
    draining: AtomicBool,
    /// For forwarded requests: no overall timeout (streams are long), a
    /// short connect timeout (a dead owner is noticed at once).
    client: reqwest::Client,
    /// Session ids with new events, as the database's notifications tell
    /// (see `db::notify`): wakes the streams this node serves for sessions
    /// another node runs.
    event_wakeups: tokio::sync::broadcast::Sender<String>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("instance_id", &self.inner.instance_id)
            .field("clustered", &self.is_clustered())
            .finish_non_exhaustive()
    }
}

impl Node {
    pub fn new(settings: &NodeSettings, instance_id: String) -> anyhow::Result<Node> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .no_proxy()
            // Below the servers' keep-alive (actix: 5 s), so a pooled
            // connection is never reused just as the other node closes it.
            .pool_idle_timeout(Duration::from_secs(2))
            .build()?;
        Ok(Node {
            inner: Arc::new(Inner {
                cluster: settings.cluster.clone(),
                instance_id,
                heartbeat: settings.heartbeat,
                live_nodes: AtomicUsize::new(1),
                draining: AtomicBool::new(false),
                client,
                event_wakeups: tokio::sync::broadcast::channel(1024).0,
            }),
        })
    }

    /// The cluster's settings, when this server is one node of many.
    pub fn cluster(&self) -> Option<&ClusterSettings> {
        self.inner.cluster.as_ref()
    }

    pub fn is_clustered(&self) -> bool {
        self.inner.cluster.is_some()
    }

    /// This start's instance id: what leases and claims are held by.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    pub fn heartbeat(&self) -> Duration {
        self.inner.heartbeat
    }

    /// A lease lasts three heartbeats: a node unseen that long is dead.
    pub fn lease_ttl(&self) -> Duration {
        self.inner.heartbeat * 3
    }

    /// How long a lease taken or renewed now surely stays this node's: a
    /// lease's time less a heartbeat (for the clocks and the round trip).
    pub fn lease_surely_held(&self) -> Duration {
        self.lease_ttl().saturating_sub(self.heartbeat())
    }

    pub fn lease_ttl_secs(&self) -> f64 {
        self.lease_ttl().as_secs_f64()
    }

    /// Nodes alive at the last heartbeat (at least this one).
    pub fn live_nodes(&self) -> usize {
        self.inner.live_nodes.load(Ordering::Relaxed).max(1)
    }

    pub fn set_live_nodes(&self, n: usize) {
        self.inner.live_nodes.store(n.max(1), Ordering::Relaxed);
    }

    /// This node's share of a cluster-wide limit: the limit divided among
    /// the live nodes, rounded up (so each node allows at least one).
    pub fn share(&self, limit: u64) -> u64 {
        let nodes = u64::try_from(self.live_nodes()).unwrap_or(1);
        limit.div_ceil(nodes).max(1)
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    pub fn set_draining(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.inner.client
    }

    /// On PostgreSQL, starts listening for identity changes made by any
    /// server on the database and, in a cluster, for other nodes' event
    /// inserts.
    pub fn listen(
        &self,
        database_url: &str,
        identities: std::sync::Arc<crate::security::identities::Identities>,
    ) {
        if crate::db::Backend::of_url(database_url) != crate::db::Backend::Postgres {
            return;
        }
        let events = self.is_clustered().then(|| {
            crate::db::notify::enable_event_notifications();
            self.inner.event_wakeups.clone()
        });
        crate::db::notify::listen(
            database_url.to_owned(),
            crate::db::notify::Listeners {
                events,
                identity_changed: {
                    let identities = std::sync::Arc::downgrade(&identities);
                    std::sync::Arc::new(move || {
                        if let Some(identities) = identities.upgrade() {
                            identities.forget_all();
                        }
                    })
                },
                // Ends with the server's identities (a server in a test
                // process stops long before the process does).
                wanted: {
                    let identities = std::sync::Arc::downgrade(&identities);
                    std::sync::Arc::new(move || identities.strong_count() > 0)
                },
            },
        );
    }

    /// Hears the ids of sessions with new events, from any node.
    pub fn event_wakeups(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.inner.event_wakeups.subscribe()
    }
}

/// Proof that the nodes share one workspace root: each node leaves a mark
/// (`.cluster-nodes/<instance id>`) in the root it sees, and the root is
/// shared when every live node's mark is there. Called off the async
/// threads (the heartbeat runs it on the database's blocking pool).
#[derive(Clone)]
pub struct WorkspaceMarks {
    dir: std::path::PathBuf,
    me: String,
}

impl WorkspaceMarks {
    pub fn new(workspace_root: &std::path::Path, instance_id: &str) -> WorkspaceMarks {
        WorkspaceMarks {
            dir: workspace_root.join(".cluster-nodes"),
            me: instance_id.to_owned(),
        }
    }

    /// Leaves this instance's mark.
    pub fn mark(&self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join(&self.me), b"")
    }

    /// Takes this instance's mark away (a clean stop).
    pub fn unmark(&self) {
        let _ = std::fs::remove_file(self.dir.join(&self.me));
    }

    /// Whether the marks of all these instances are in the root seen here.
    pub fn sees_all<'a>(&self, instances: impl IntoIterator<Item = &'a str>) -> bool {
        instances
            .into_iter()
            .all(|id| !id.contains('/') && self.dir.join(id).exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_node_allows_its_share_rounded_up() {
        let settings =
            crate::config::Settings::from_vars(&std::collections::BTreeMap::new()).unwrap();
        let node = Node::new(&settings.node, "i".into()).unwrap();
        assert_eq!(node.share(4), 4);
        node.set_live_nodes(3);
        assert_eq!(node.share(4), 2);
        assert_eq!(node.share(120), 40);
        assert_eq!(node.share(1), 1);
        node.set_live_nodes(0);
        assert_eq!(node.live_nodes(), 1);
    }

    #[test]
    fn marks_show_whether_every_node_sees_one_root() {
        let root = tempfile::tempdir().unwrap();
        let a = WorkspaceMarks::new(root.path(), "a");
        let b = WorkspaceMarks::new(root.path(), "b");
        a.mark().unwrap();
        assert!(a.sees_all(["a"]));
        assert!(!a.sees_all(["a", "b"]));
        b.mark().unwrap();
        assert!(a.sees_all(["a", "b"]));
        assert!(!a.sees_all(["../a"]));
        b.unmark();
        assert!(!a.sees_all(["a", "b"]));
    }
}
