//! `settings.node`: this server's heartbeat, and the cluster it may be one
//! node of.

use std::time::Duration;

use super::parse::Env;
use super::{ConfigError, Secret};

#[derive(Debug, Clone)]
pub struct NodeSettings {
    /// `NODE_ADVERTISE_URL` with a PostgreSQL `DATABASE_URL`: this server is
    /// one node of a cluster; `None` runs alone.
    pub cluster: Option<ClusterSettings>,
    /// `NODE_HEARTBEAT_SECONDS`: how often this server says it is alive (2
    /// in a cluster, 10 alone); three missed beats and it counts as dead.
    pub heartbeat: Duration,
}

impl NodeSettings {
    pub(super) fn read(env: &Env) -> Result<NodeSettings, ConfigError> {
        let cluster = cluster_settings(env)?;
        let heartbeat = env
            .bounded_opt("NODE_HEARTBEAT_SECONDS", 0.2, 60.0)?
            .unwrap_or(if cluster.is_some() { 2.0 } else { 10.0 });
        Ok(NodeSettings {
            cluster,
            heartbeat: Duration::from_secs_f64(heartbeat),
        })
    }

    /// A session lease's length: three heartbeats.
    pub fn lease_ttl(&self) -> Duration {
        self.heartbeat * 3
    }
}

/// How this node of a cluster is reached and proves itself to the others.
#[derive(Clone)]
pub struct ClusterSettings {
    /// `NODE_ADVERTISE_URL`: where the other nodes reach this one
    /// (`http://10.0.0.5:8000`), for the requests they forward.
    pub advertise_url: String,
    /// `CLUSTER_SECRET`: shared by every node; signs forwarded requests.
    pub secret: Secret,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("advertise_url", &self.advertise_url)
            .finish_non_exhaustive()
    }
}

/// The cluster settings: all or nothing. `NODE_ADVERTISE_URL` asks for a
/// cluster, which needs PostgreSQL (the only coordinator) and a secret.
fn cluster_settings(env: &Env) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(advertise_url) = env.get("NODE_ADVERTISE_URL") else {
        return Ok(None);
    };
    match url::Url::parse(&advertise_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => {
            return Err(env.error(
                "NODE_ADVERTISE_URL",
                &advertise_url,
                "expected an http(s) URL",
            ))
        }
    }
    let postgres = env
        .get("DATABASE_URL")
        .is_some_and(|u| u.starts_with("postgres://") || u.starts_with("postgresql://"));
    if !postgres {
        return Err(env.error(
            "NODE_ADVERTISE_URL",
            &advertise_url,
            "a cluster needs a PostgreSQL DATABASE_URL shared by its nodes",
        ));
    }
    let secret = env.get("CLUSTER_SECRET").unwrap_or_default();
    if secret.len() < 16 {
        return Err(env.error(
            "CLUSTER_SECRET",
            &secret,
            "a cluster needs a secret of at least 16 characters, the same on every node",
        ));
    }
    Ok(Some(ClusterSettings {
        advertise_url: advertise_url.trim_end_matches('/').to_owned(),
        secret: Secret(secret),
    }))
}
