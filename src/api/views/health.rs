//! What `/health` reports that needs the database or the shared disk: the
//! database answers, the cluster's nodes, whether their workspace root is
//! shared. Probed in the background every `PROBE_EVERY` and kept here, so
//! a `/health` poll costs no database work.

use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::web;

use crate::state::AppState;

/// How often the background probe runs.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A probe older than this is not trusted: the answer probes itself.
const PROBE_STALE: Duration = Duration::from_secs(5);

/// The last background probe of what needs the database or the disk.
#[derive(Default)]
pub struct Probe {
    latest: RwLock<Option<Probed>>,
}

#[derive(Clone)]
pub struct Probed {
    pub database_ok: bool,
    pub nodes: Vec<crate::api::views::nodes::NodeData>,
    pub workspace_shared: Option<bool>,
    pub at: Instant,
}

impl Probe {
    /// The last probe, or a new one when that is missing or stale.
    pub async fn latest(&self, state: &AppState) -> Probed {
        let latest = {
            let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
            latest.clone().filter(|p| p.at.elapsed() < PROBE_STALE)
        };
        match latest {
            Some(latest) => latest,
            None => self.probe_now(state).await,
        }
    }

    /// Probes now (and keeps the answer for the next polls).
    pub async fn probe_now(&self, state: &AppState) -> Probed {
        let probed = probe(state).await;
        self.store(probed.clone());
        probed
    }

    fn store(&self, probed: Probed) {
        *self.latest.write().unwrap_or_else(|e| e.into_inner()) = Some(probed);
    }

    /// Probes now and every `PROBE_EVERY` after, for the life of the server.
    pub fn spawn(state: web::Data<AppState>, kept: web::Data<Probe>) {
        actix_web::rt::spawn(async move {
            let mut tick = tokio::time::interval(PROBE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let probed = probe(&state).await;
                kept.store(probed);
            }
        });
    }
}

/// The database (a ping), and in a cluster the nodes and whether their
/// workspace root is shared.
async fn probe(state: &AppState) -> Probed {
    let database_ok = claude_code_api_core::db::ping(&state.services.pool).await;
    let node = &state.services.node;
    let nodes = if node.is_clustered() {
        crate::api::views::nodes::nodes(state)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let workspace_root = if node.is_clustered() {
        let marks = claude_code_api_core::cluster::WorkspaceMarks::new(
            &state.services.workspace_root,
            node.instance_id(),
        );
        let live: Vec<String> = nodes
            .iter()
            .filter(|n| n.is_live())
            .map(|n| n.id().to_owned())
            .collect();
        let shared = claude_code_api_core::blocking::run(move || {
            marks.sees_all(live.iter().map(String::as_str))
        })
        .await
        .unwrap_or(false);
        Some(shared)
    } else {
        None
    };
    Probed {
        database_ok,
        nodes,
        workspace_shared: workspace_root,
        at: Instant::now(),
    }
}
